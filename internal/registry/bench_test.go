package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// Load benchmarks over real HTTP on loopback: the registry served by net/http, clients on the same
// machine (and cores). Run with: go test -run '^$' -bench HTTP -benchtime 10s ./internal/registry/

const clients = 64

func benchBackends(b *testing.B, fn func(b *testing.B, s store.Instances)) {
	b.Run("memory", func(b *testing.B) { fn(b, memory.NewInstances(nil)) })
	b.Run("redis", func(b *testing.B) {
		srv := redistest.Start(b)
		c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
		if err != nil {
			b.Fatal(err)
		}
		s := redisstore.NewInstances(c, redisstore.InstancesOptions{})
		b.Cleanup(func() { s.Close(); c.Close() })
		fn(b, s)
	})
}

func benchServer(b *testing.B, s store.Instances) (string, *http.Client) {
	reg, err := registry.New(registry.Config{Store: s})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	b.Cleanup(tr.CloseIdleConnections)
	return srv.URL, &http.Client{Transport: tr}
}

func send(b *testing.B, hc *http.Client, method, url string, body []byte, want int) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
}

func registration(i int, service string) []byte {
	return fmt.Appendf(nil, `{"service_name":%q,"endpoint":{"type":"http","value":"10.%d.%d.%d:9080"},"tags":["version=v1"],"metadata":{"zone":"a"},"ttl":600}`,
		service, i>>16&255, i>>8&255, i&255)
}

func registerN(b *testing.B, url string, hc *http.Client, n int, service func(int) string) []string {
	ids := make([]string, n)
	for i := range n {
		send(b, hc, "POST", url+"/api/v1/instances", registration(i, service(i)), 201)
		ids[i] = registry.InstanceID(service(i), "http", fmt.Sprintf("10.%d.%d.%d:9080", i>>16&255, i>>8&255, i&255))
	}
	return ids
}

func parallel64(b *testing.B) {
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
}

// BenchmarkHTTP_Heartbeat: 64 concurrent clients renewing 1,000 instances.
func BenchmarkHTTP_Heartbeat(b *testing.B) {
	benchBackends(b, func(b *testing.B, s store.Instances) {
		url, hc := benchServer(b, s)
		ids := registerN(b, url, hc, 1000, func(int) string { return "svc" })
		var k atomic.Int64
		parallel64(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				send(b, hc, "PUT", url+"/api/v1/instances/"+ids[k.Add(1)%int64(len(ids))]+"/heartbeat", nil, 200)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
	})
}

// BenchmarkHTTP_Register: 64 concurrent clients registering new instances.
func BenchmarkHTTP_Register(b *testing.B) {
	benchBackends(b, func(b *testing.B, s store.Instances) {
		url, hc := benchServer(b, s)
		var k atomic.Int64
		parallel64(b)
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(k.Add(1))
				send(b, hc, "POST", url+"/api/v1/instances", registration(i, fmt.Sprintf("svc%d", i%100)), 201)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "registers/s")
	})
}

// BenchmarkHTTP_ListService1000: one client listing a service of 1,000 instances (in a tenant of
// 2,000), the whole answer read; reports the median and p99 latency.
func BenchmarkHTTP_ListService1000(b *testing.B) {
	benchBackends(b, func(b *testing.B, s store.Instances) {
		url, hc := benchServer(b, s)
		registerN(b, url, hc, 2000, func(i int) string { return []string{"big", "other"}[i%2] })
		lat := make([]time.Duration, 0, 1024)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			send(b, hc, "GET", url+"/api/v1/instances?service_name=big", nil, 200)
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	})
}

// BenchmarkMemoryPerInstance: heap held per registered instance on the memory store, beyond its
// metadata, for 20,000 instances.
func BenchmarkMemoryPerInstance(b *testing.B) {
	const n = 20000
	meta := []byte(`{"zone":"a"}`)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := memory.NewInstances(nil)
		for i := range n {
			addr := fmt.Sprintf("10.%d.%d.%d:9080", i>>16&255, i>>8&255, i&255)
			if _, err := s.Register(context.Background(), "bench", store.Instance{
				ID: registry.InstanceID("reviews", "http", addr), ServiceName: "reviews",
				Endpoint: store.Endpoint{Type: api.EndpointHTTP, Value: addr}, Status: api.StatusUp,
				Tags: []string{"version=v1"}, Metadata: meta, TTL: time.Minute,
			}, -1); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(s)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n-float64(len(meta)), "B/instance")
	}
}
