package registry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// Registry scale: one tenant of many services and instances, filled through the store directly
// (as fast as the store takes them), then served over real HTTP on loopback. The size is a knob,
// not b.N, so that the one-iteration smoke run of `make test` stays quick:
//
//	A8_BENCH_SCALE unset (or smoke): 100 services, 1,000 instances
//	A8_BENCH_SCALE=full:             10,000 services, 100,000 instances
//
//	A8_BENCH_SCALE=full go test -run '^$' -bench 'Scale/(memory|redis)/(Fill|List|Heartbeat)' -benchtime 5s ./internal/registry/
//	A8_BENCH_SCALE=full go test -run '^$' -bench 'Scale/(memory|redis)/Watch' -benchtime 20x ./internal/registry/
//
// (bench/registry/scale.sh runs both, then redis-benchmark as the ceiling of Redis on this machine.)
//
// The tenant holds one big service ("big", 1 % of the instances: 1,000 at full size) and the rest
// spread evenly over the other services (about 10 instances each). Sub-benchmarks, per backend:
//
//	Fill              what the fill cost: instances, seconds, heap (memory) or Redis used_memory;
//	                  measured once before serving, so its iteration count means nothing
//	ListBigService    GET /api/v1/instances?service_name=big        p50/p99, one client
//	ListSmallService  GET /api/v1/instances?service_name=svc00000   p50/p99, one client
//	ListServices      GET /api/v1/services (every service name)     p50/p99, one client
//	ListInstances     GET /api/v1/instances (the whole tenant)      p50/p99, one client
//	Heartbeat         64 concurrent clients renewing random instances of the tenant
//	WatchService      100 watchers of one small service (the Go client's WatchInstances)
//	WatchTenant       1 watcher of the whole tenant's instances, as a sidecar watches
//
// A Watch iteration registers a new instance of the watched service, then deregisters it, each
// through HTTP; a sample is the time from the 201/200 to a watcher's callback holding the change
// (the blocking query returned and its answer decoded), clamped at 0 when the watcher was quicker
// than the acknowledgement (p50-ms, p99-ms, max-ms), and from the start of the write (the
// *-from-write-ms metrics, never clamped). List latencies run from the start of a request to the end
// of its answer.

type scaleSize struct {
	services, instances int
}

func benchScaleSize(b *testing.B) scaleSize {
	switch v := os.Getenv("A8_BENCH_SCALE"); v {
	case "", "smoke":
		return scaleSize{services: 100, instances: 1000}
	case "full":
		return scaleSize{services: 10000, instances: 100000}
	default:
		b.Fatalf("A8_BENCH_SCALE=%q: want full, smoke or unset", v)
		return scaleSize{}
	}
}

// big is the number of instances of the service "big"; the rest go to services svc00000...
func (z scaleSize) big() int { return z.instances / 100 }

func (z scaleSize) service(i int) string {
	if i < z.big() {
		return "big"
	}
	return fmt.Sprintf("svc%05d", (i-z.big())%(z.services-1))
}

func scaleAddr(i int) string { return fmt.Sprintf("10.%d.%d.%d:9080", i>>16&255, i>>8&255, i&255) }

var scaleMeta = []byte(`{"zone":"a"}`)

// scaleInstance is what POST /api/v1/instances stores for registration(i, service) (bench_test.go).
func scaleInstance(i int, service string) store.Instance {
	addr := scaleAddr(i)
	return store.Instance{
		ID: registry.InstanceID(service, "http", addr), ServiceName: service,
		Endpoint: store.Endpoint{Type: api.EndpointHTTP, Value: addr}, Status: api.StatusUp,
		Tags: []string{"version=v1"}, Metadata: scaleMeta, TTL: 600 * time.Second,
	}
}

// fill registers z's instances straight into s, from 32 goroutines (Redis takes them over a pool of
// connections; the memory store serializes them on the tenant's lock), and returns their ids.
func fill(b *testing.B, s store.Instances, z scaleSize) []string {
	ids := make([]string, z.instances)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= z.instances {
					return
				}
				in := scaleInstance(i, z.service(i))
				if _, err := s.Register(context.Background(), "default", in, -1); err != nil {
					errs <- err
					return
				}
				ids[i] = in.ID
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	return ids
}

// BenchmarkScale: see the comment at the top of this file.
func BenchmarkScale(b *testing.B) {
	z := benchScaleSize(b)
	b.Run("memory", func(b *testing.B) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := memory.NewInstances(nil)
		start := time.Now()
		ids := fill(b, s, z)
		took := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		scaleSuite(b, z, s, ids, func(b *testing.B) {
			b.ReportMetric(took.Seconds(), "fill-s")
			b.ReportMetric(heap/(1<<20), "heap-MiB")
			// As BenchmarkMemoryPerInstance: beyond the instance's metadata.
			b.ReportMetric(heap/float64(z.instances)-float64(len(scaleMeta)), "B/instance")
		})
	})
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
		if err != nil {
			b.Fatal(err)
		}
		s := redisstore.NewInstances(c, redisstore.InstancesOptions{})
		b.Cleanup(func() { s.Close(); c.Close() })
		used := func() float64 {
			info, err := c.Info(context.Background(), "memory").Result()
			if err != nil {
				b.Fatal(err)
			}
			for line := range strings.Lines(info) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
					n, err := strconv.ParseFloat(v, 64)
					if err != nil {
						b.Fatal(err)
					}
					return n
				}
			}
			b.Fatalf("no used_memory in INFO memory:\n%s", info)
			return 0
		}
		before := used()
		start := time.Now()
		ids := fill(b, s, z)
		took := time.Since(start)
		mem := used() - before
		scaleSuite(b, z, s, ids, func(b *testing.B) {
			b.ReportMetric(took.Seconds(), "fill-s")
			b.ReportMetric(mem/(1<<20), "redis-MiB")
			b.ReportMetric(mem/float64(z.instances), "redis-B/instance")
		})
	})
}

func scaleSuite(b *testing.B, z scaleSize, s store.Instances, ids []string, fillMetrics func(*testing.B)) {
	url, hc := benchServer(b, s)
	b.Run("Fill", func(b *testing.B) {
		// Measured once, by the parent, before serving; nothing runs per iteration.
		b.ReportMetric(float64(z.instances), "instances")
		fillMetrics(b)
		b.ReportMetric(0, "ns/op")
	})
	list := func(name, path string) {
		b.Run(name, func(b *testing.B) {
			lat := make([]time.Duration, 0, 1024)
			var size int64
			for b.Loop() {
				start := time.Now()
				size = get(b, hc, url+path)
				lat = append(lat, time.Since(start))
			}
			reportLatency(b, lat, false)
			b.ReportMetric(float64(size)/1024, "KiB/answer")
		})
	}
	list("ListBigService", "/api/v1/instances?service_name=big")
	list("ListSmallService", "/api/v1/instances?service_name=svc00000")
	list("ListServices", "/api/v1/services")
	list("ListInstances", "/api/v1/instances")
	b.Run("Heartbeat", func(b *testing.B) {
		var k atomic.Int64
		parallel64(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// A stride through the ids, so that concurrent clients renew different instances.
				i := k.Add(7919) % int64(len(ids))
				send(b, hc, "PUT", url+"/api/v1/instances/"+ids[i]+"/heartbeat", nil, 200)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
	})
	b.Run("WatchService", func(b *testing.B) {
		benchWatch(b, url, hc, 100, client.InstanceQuery{ServiceName: "svc00000"}, "svc00000")
	})
	b.Run("WatchTenant", func(b *testing.B) {
		benchWatch(b, url, hc, 1, client.InstanceQuery{}, "svc00000")
	})
}

// get reads url's whole answer, which must be 200, and returns its size.
func get(b *testing.B, hc *http.Client, url string) int64 {
	resp, err := hc.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET %s: %d, %v", url, resp.StatusCode, err)
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportLatency reports the median and p99 of lat (and the max if asked).
func reportLatency(b *testing.B, lat []time.Duration, withMax bool) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	if withMax {
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	}
}

// benchWatch starts watchers (client.WatchInstances with q, each on its own connection), then per
// iteration registers and deregisters an instance of service through writeHC, and collects the time
// from each acknowledgement to each watcher's callback holding the change.
func benchWatch(b *testing.B, url string, writeHC *http.Client, watchers int, q client.InstanceQuery, service string) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &http.Transport{MaxIdleConnsPerHost: watchers, MaxConnsPerHost: watchers}
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
	}()

	const addr = "192.0.2.1:9080" // outside the fill's 10.0.0.0/8
	probe := registry.InstanceID(service, "http", addr)
	probeReg := fmt.Appendf(nil, `{"service_name":%q,"endpoint":{"type":"http","value":%q},"tags":["version=v1"],"metadata":{"zone":"a"},"ttl":600}`, service, addr)
	type event struct {
		at  time.Time
		has bool // the answer holds the probe instance
	}
	events := make([]chan event, watchers)
	var started sync.WaitGroup
	for i := range watchers {
		c, err := client.NewRegistry(client.RegistryConfig{URL: url, HTTPClient: hc})
		if err != nil {
			b.Fatal(err)
		}
		events[i] = make(chan event, 16)
		started.Add(1)
		wg.Go(func() {
			first := true
			_ = c.WatchInstances(ctx, q, client.WatchOptions{Wait: 5 * time.Minute}, func(l []api.Instance, _ client.QueryMeta) {
				now := time.Now()
				if first {
					first = false
					started.Done()
					return
				}
				has := slices.ContainsFunc(l, func(in api.Instance) bool { return in.ID == probe })
				select {
				case events[i] <- event{now, has}:
				case <-ctx.Done():
				}
			})
		})
	}
	started.Wait()
	time.Sleep(200 * time.Millisecond) // let every watcher's blocking query reach the server

	lat := make([]time.Duration, 0, 2*watchers*max(b.N, 1))
	sent := make([]time.Duration, 0, cap(lat)) // from the start of the write instead: never clamped
	b.ResetTimer()
	for range b.N {
		for _, want := range []bool{true, false} {
			start := time.Now()
			if want {
				send(b, writeHC, "POST", url+"/api/v1/instances", probeReg, 201)
			} else {
				send(b, writeHC, "DELETE", url+"/api/v1/instances/"+probe, nil, 200)
			}
			acked := time.Now()
			deadline := time.After(60 * time.Second)
			for w := range watchers {
				for done := false; !done; {
					select {
					case ev := <-events[w]:
						if ev.has == want {
							lat = append(lat, max(ev.at.Sub(acked), 0))
							sent = append(sent, ev.at.Sub(start))
							done = true
						}
					case <-deadline:
						b.Fatalf("watcher %d did not see the %s of %s within 60s", w, map[bool]string{true: "registration", false: "deregistration"}[want], probe)
					}
				}
			}
			time.Sleep(100 * time.Millisecond) // let the watchers re-arm their blocking queries
		}
	}
	b.StopTimer()
	reportLatency(b, lat, true)
	if len(sent) > 0 {
		slices.Sort(sent)
		b.ReportMetric(ms(sent[len(sent)/2]), "p50-from-write-ms")
		b.ReportMetric(ms(sent[len(sent)*99/100]), "p99-from-write-ms")
	}
	b.ReportMetric(0, "ns/op") // the loop's time includes the pauses; the latencies are the figures
}
