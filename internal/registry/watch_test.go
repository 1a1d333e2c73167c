package registry_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/registry"
)

func index(t *testing.T, r reply) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(r.header.Get(api.IndexHeader), 10, 64)
	if err != nil {
		t.Fatalf("%s header %q: %v", api.IndexHeader, r.header.Get(api.IndexHeader), err)
	}
	return v
}

func TestRegistry_Watch(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		e.register("", reg("reviews", "h:1"))
		for _, path := range []string{"/api/v1/instances", "/api/v1/services", "/api/v1/services/reviews"} {
			r := e.do("GET", path, "", nil)
			if idx := index(t, r); idx != 1 {
				t.Fatalf("GET %s: index %d, want 1", path, idx)
			}
		}

		// A watch at the current index blocks until a change, then answers with the new state.
		type result struct {
			r   reply
			dur time.Duration
		}
		for _, path := range []string{"/api/v1/instances?service_name=reviews&", "/api/v1/services/reviews?", "/api/v1/services?"} {
			cur := index(t, e.do("GET", "/api/v1/instances", "", nil))
			done := make(chan result, 1)
			go func() {
				start := time.Now()
				done <- result{e.do("GET", path+"index="+strconv.FormatUint(cur, 10)+"&wait=30s", "", nil), time.Since(start)}
			}()
			select {
			case res := <-done:
				t.Fatalf("watch %s returned without a change: %s", path, res.r)
			case <-time.After(100 * time.Millisecond):
			}
			e.register("", reg("reviews", "h:"+strconv.FormatUint(cur+10, 10)))
			select {
			case res := <-done:
				if res.r.code != 200 || index(t, res.r) != cur+1 {
					t.Fatalf("watch %s woke with %s, index %s; want 200 at %d", path, res.r, res.r.header.Get(api.IndexHeader), cur+1)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("watch %s did not wake on a registration", path)
			}
		}

		// A watch behind the current index, or ahead of it (the registry restarted), answers at once.
		cur := index(t, e.do("GET", "/api/v1/instances", "", nil))
		for _, idx := range []uint64{0, cur - 1, cur + 100} {
			start := time.Now()
			r := e.do("GET", "/api/v1/instances?index="+strconv.FormatUint(idx, 10)+"&wait=30s", "", nil)
			if index(t, r) != cur || time.Since(start) > 10*time.Second {
				t.Fatalf("watch at index %d: %s after %v, want index %d at once", idx, r, time.Since(start), cur)
			}
		}

		// The wait ends with the unchanged state.
		r := e.do("GET", "/api/v1/instances?index="+strconv.FormatUint(cur, 10)+"&wait=100ms", "", nil)
		if r.code != 200 || index(t, r) != cur {
			t.Fatalf("watch that timed out: %s index %s", r, r.header.Get(api.IndexHeader))
		}
	})
}

// Heartbeats do not wake watchers: a sidecar watching a tenant of many instances must not be woken
// every time one of them renews its lease.
func TestRegistry_WatchIgnoresHeartbeats(t *testing.T) {
	e := newMemoryEnv(t, nil)
	id := e.register("", reg("reviews", "h:1"))
	done := make(chan reply, 1)
	go func() { done <- e.do("GET", "/api/v1/instances?index=1&wait=500ms", "", nil) }()
	for range 5 {
		if r := e.do("PUT", "/api/v1/instances/"+id+"/heartbeat", "", nil); r.code != 200 {
			t.Fatal(r)
		}
	}
	r := <-done
	if index(t, r) != 1 {
		t.Fatalf("heartbeats moved the index to %d", index(t, r))
	}
}

// Expiry wakes watchers, through the server's reaper.
func TestRegistry_WatchSeesExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(func(c *registry.Config) { c.ReapInterval = 10 * time.Millisecond })
		e.register("", reg("reviews", "h:1", with("ttl", 10)))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		srv, err := registry.New(registry.Config{Store: e.store, ReapInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Run(ctx) }()
		done := make(chan reply, 1)
		go func() { done <- e.do("GET", "/api/v1/instances?index=1&wait=30s", "", nil) }()
		e.clock.Advance(11 * time.Second)
		select {
		case r := <-done:
			if r.code != http.StatusOK || string(r.body) != `{"instances":[]}` {
				t.Fatalf("watch woke with %s, want the empty list", r)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("expiry did not wake the watch")
		}
	})
}
