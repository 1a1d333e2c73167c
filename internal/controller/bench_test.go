package controller_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// BenchmarkPropagation: 1,000 watchers hold blocking queries on GET /v1/rules over real HTTP on
// loopback (one connection each); one rule write; the time from the write's acknowledgement to each
// watcher holding the new revision. On Redis, the watchers are split over two controller replicas
// and the write goes through one of them. Reports p50, p99 and max per write.
//
//	go test -run '^$' -bench Propagation -benchtime 20x ./internal/controller/
func BenchmarkPropagation(b *testing.B) {
	const watchers = 1000
	b.Run("memory", func(b *testing.B) {
		s, err := memory.NewRules(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		url := benchController(b, s)
		propagation(b, watchers, []string{url}, url)
	})
	b.Run("redis-2-replicas", func(b *testing.B) {
		srv := redistest.Start(b)
		var urls []string
		for range 2 {
			c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
			if err != nil {
				b.Fatal(err)
			}
			s := redisstore.NewRules(c, redisstore.RulesOptions{})
			b.Cleanup(func() { s.Close(); c.Close() })
			urls = append(urls, benchController(b, s))
		}
		propagation(b, watchers, urls, urls[0])
	})
}

func benchController(b *testing.B, s store.Rules) string {
	ctl, err := controller.New(controller.Config{Store: s})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(ctl.Handler())
	srv.Config.MaxHeaderBytes = 1 << 16
	srv.Start()
	b.Cleanup(func() { ctl.Drain(); srv.Close() })
	return srv.URL
}

func propagation(b *testing.B, watchers int, urls []string, writeURL string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: watchers, MaxConnsPerHost: watchers, DialContext: (&net.Dialer{}).DialContext}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	var mu sync.Mutex
	seen := map[int64][]time.Time{} // revision -> when each watcher got it
	started := sync.WaitGroup{}
	for i := range watchers {
		c, err := client.NewController(client.ControllerConfig{URL: urls[i%len(urls)], HTTPClient: hc})
		if err != nil {
			b.Fatal(err)
		}
		started.Add(1)
		go func() {
			first := true
			_ = c.WatchRules(ctx, client.RuleFilter{}, client.WatchOptions{Wait: 5 * time.Minute}, func(l api.RuleList, _ client.QueryMeta) {
				now := time.Now()
				if first {
					first = false
					started.Done()
					return
				}
				mu.Lock()
				seen[l.Revision] = append(seen[l.Revision], now)
				mu.Unlock()
			})
		}()
	}
	started.Wait()
	time.Sleep(200 * time.Millisecond) // let every watcher's blocking query reach the server
	writer, _ := client.NewController(client.ControllerConfig{URL: writeURL})
	var p50s, p99s, maxs []time.Duration
	b.ResetTimer()
	for i := range b.N {
		rule := api.Rule{ID: "r", Destination: "reviews", Priority: i, Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}}}}}
		if _, err := writer.CreateRules(ctx, []api.Rule{rule}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		l, _, err := writer.GetRules(ctx, client.RuleFilter{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			n := len(seen[l.Revision])
			mu.Unlock()
			if n == watchers {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d watchers got revision %d within 30s", n, watchers, l.Revision)
			}
			time.Sleep(time.Millisecond)
		}
		mu.Lock()
		lat := make([]time.Duration, 0, watchers)
		for _, at := range seen[l.Revision] {
			lat = append(lat, max(at.Sub(acked), 0))
		}
		mu.Unlock()
		slices.Sort(lat)
		p50s = append(p50s, lat[len(lat)/2])
		p99s = append(p99s, lat[len(lat)*99/100])
		maxs = append(maxs, lat[len(lat)-1])
		time.Sleep(100 * time.Millisecond) // let the watchers re-arm their blocking queries
	}
	b.StopTimer()
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	b.ReportMetric(med(p50s), "p50-ms")
	b.ReportMetric(med(p99s), "p99-ms")
	b.ReportMetric(med(maxs), "max-ms")
	b.ReportMetric(0, "ns/op") // the loop's time includes the pauses; the latencies are the figures
}
