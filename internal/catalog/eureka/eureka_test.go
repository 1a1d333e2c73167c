package eureka_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/eureka"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

func newCatalog(t *testing.T, urls ...string) *eureka.Catalog {
	t.Helper()
	c, err := eureka.New(eureka.Config{URLs: urls, Namespace: "team-a", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listed(c catalog.Catalog) map[string]store.Instance {
	out := map[string]store.Instance{}
	for _, in := range c.Snapshot().Tenant("team-a").Instances {
		out[in.ID] = in
	}
	return out
}

func idsOf(c catalog.Catalog) string {
	var ids []string
	for _, in := range c.Snapshot().Tenant("team-a").Instances {
		ids = append(ids, in.ID)
	}
	return strings.Join(ids, ",")
}

func TestEureka_FullFetchMapping(t *testing.T) {
	f := newFakeEureka(t)
	f.put(instance("REVIEWS", "reviews-1", "10.0.0.1", 9080, "UP", map[string]string{"amalgam8.tags": "version=v1; zone=a", "zone": "a"}))
	f.put(instance("REVIEWS", "reviews-2", "10.0.0.2", 9080, "DOWN", nil))
	secure := instance("PAYMENTS", "pay-1", "10.0.0.3", 8080, "UP", nil)
	secure["securePort"] = map[string]any{"$": "8443", "@enabled": true} // fargo/eureka-js shapes
	secure["vipAddress"] = "Payments-VIP,payments-old"
	f.put(secure)
	noID := instance("LEGACY", "", "", 0, "STARTING", nil)
	noID["hostName"] = "legacy.local"
	noID["port"] = 7001 // a bare number
	f.put(noID)
	noPort := instance("BROKEN", "broken-1", "10.0.0.9", 80, "UP", nil)
	noPort["port"] = map[string]any{"$": 80, "@enabled": "false"}
	f.put(noPort)

	c := newCatalog(t, f.URL+"/eureka/")
	c.Poll(context.Background())
	if st := c.Status(); !st.OK || st.Instances != 4 {
		t.Fatalf("status = %+v", st)
	}
	got := listed(c)
	tests := []struct {
		id, service, typ, value, status, tags, meta string
	}{
		{"REVIEWS:reviews-1", "reviews", "http", "10.0.0.1:9080", "UP", "version=v1,zone=a", `{"amalgam8.tags":"version=v1; zone=a","zone":"a"}`},
		{"REVIEWS:reviews-2", "reviews", "http", "10.0.0.2:9080", "DOWN", "", ""},
		{"PAYMENTS:pay-1", "payments-vip", "https", "10.0.0.3:8443", "UP", "", ""},
		{"LEGACY:legacy.local", "legacy", "http", "legacy.local:7001", "STARTING", "", ""},
	}
	for _, tc := range tests {
		in, ok := got[tc.id]
		if !ok {
			t.Errorf("%s not listed; have %v", tc.id, idsOf(c))
			continue
		}
		if in.ServiceName != tc.service || in.Endpoint.Type != tc.typ || in.Endpoint.Value != tc.value || in.Status != tc.status ||
			strings.Join(in.Tags, ",") != tc.tags || string(in.Metadata) != tc.meta || in.TTL != 0 {
			t.Errorf("%s = %+v", tc.id, in)
		}
	}
	if _, ok := got["BROKEN:broken-1"]; ok {
		t.Error("an instance with no enabled port is listed")
	}
}

func TestEureka_Delta(t *testing.T) {
	f := newFakeEureka(t)
	f.put(instance("REVIEWS", "r1", "10.0.0.1", 9080, "UP", nil))
	f.put(instance("REVIEWS", "r2", "10.0.0.2", 9080, "UP", nil))
	f.reset()
	c := newCatalog(t, f.URL+"/eureka")
	ctx := context.Background()
	c.Poll(ctx)
	if idsOf(c) != "REVIEWS:r1,REVIEWS:r2" || f.fulls.Load() != 1 {
		t.Fatalf("after the first poll: %s, %d full fetches", idsOf(c), f.fulls.Load())
	}

	// Added, modified, deleted: applied from the delta alone.
	f.put(instance("RATINGS", "t1", "10.0.1.1", 9080, "UP", map[string]string{"amalgam8.tags": "version=v2"}))
	f.put(instance("REVIEWS", "r1", "10.0.0.1", 9080, "OUT_OF_SERVICE", nil))
	f.remove("REVIEWS", "r2")
	c.Poll(ctx)
	if f.fulls.Load() != 1 || f.deltas.Load() != 1 {
		t.Fatalf("fetches: %d full, %d delta; want the delta alone", f.fulls.Load(), f.deltas.Load())
	}
	got := listed(c)
	if idsOf(c) != "RATINGS:t1,REVIEWS:r1" || got["REVIEWS:r1"].Status != "OUT_OF_SERVICE" || got["RATINGS:t1"].Tags[0] != "version=v2" {
		t.Fatalf("after the delta: %v", got)
	}
	// Replaying the same delta (the server keeps 3 minutes of changes) changes nothing.
	gen := c.Snapshot().Tenant("team-a").Generation
	c.Poll(ctx)
	if c.Snapshot().Tenant("team-a").Generation != gen || f.fulls.Load() != 1 {
		t.Fatalf("replayed delta: generation %d → %d, %d full fetches", gen, c.Snapshot().Tenant("team-a").Generation, f.fulls.Load())
	}
}

func TestEureka_FallsBackToFullFetch(t *testing.T) {
	tests := []struct {
		name  string
		setup func(f *fakeEureka)
	}{
		// The delta does not add up to the server's registry: a change fell out of the delta
		// queue (reset) before the catalog saw it.
		{"hashcode mismatch", func(f *fakeEureka) {
			f.put(instance("REVIEWS", "r3", "10.0.0.3", 9080, "UP", nil))
			f.reset()
		}},
		{"wrong hashcode sent", func(f *fakeEureka) {
			f.put(instance("REVIEWS", "r3", "10.0.0.3", 9080, "UP", nil))
			f.badHash.Store(true)
		}},
		{"delta disabled", func(f *fakeEureka) {
			f.put(instance("REVIEWS", "r3", "10.0.0.3", 9080, "UP", nil))
			f.noDelta.Store(true)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeEureka(t)
			f.put(instance("REVIEWS", "r1", "10.0.0.1", 9080, "UP", nil))
			f.reset()
			c := newCatalog(t, f.URL+"/eureka")
			ctx := context.Background()
			c.Poll(ctx)
			tc.setup(f)
			c.Poll(ctx)
			if f.fulls.Load() != 2 {
				t.Fatalf("%d full fetches, want 2 (the first, then the fallback)", f.fulls.Load())
			}
			if idsOf(c) != "REVIEWS:r1,REVIEWS:r3" || !c.Status().OK {
				t.Fatalf("after the fallback: %s %+v", idsOf(c), c.Status())
			}
		})
	}
}

// A server away keeps the last content in force, says so, and fails over to the next URL.
func TestEureka_ServerDown(t *testing.T) {
	f := newFakeEureka(t)
	f.put(instance("REVIEWS", "r1", "10.0.0.1", 9080, "UP", nil))
	c := newCatalog(t, f.URL+"/eureka")
	ctx := context.Background()
	c.Poll(ctx)
	f.down.Store(true)
	c.Poll(ctx)
	st := c.Status()
	if st.OK || !strings.Contains(st.Detail, "503") || !strings.Contains(st.Detail, "keeping the content of") || idsOf(c) != "REVIEWS:r1" {
		t.Fatalf("server down: %+v, %s", st, idsOf(c))
	}
	f.down.Store(false)
	f.put(instance("REVIEWS", "r2", "10.0.0.2", 9080, "UP", nil))
	c.Poll(ctx)
	if !c.Status().OK || idsOf(c) != "REVIEWS:r1,REVIEWS:r2" {
		t.Fatalf("back: %+v %s", c.Status(), idsOf(c))
	}

	// Failover: the first URL refuses connections, the second serves.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/eureka"
	ln.Close()
	c2 := newCatalog(t, dead, f.URL+"/eureka/apps/")
	c2.Poll(ctx)
	if !c2.Status().OK || idsOf(c2) != "REVIEWS:r1,REVIEWS:r2" {
		t.Fatalf("failover: %+v %s", c2.Status(), idsOf(c2))
	}
	// Nothing answers at first: the status says nothing was fetched.
	c3 := newCatalog(t, dead)
	c3.Poll(ctx)
	if st := c3.Status(); st.OK || !strings.Contains(st.Detail, "nothing fetched yet") || !strings.Contains(st.Detail, "connection refused") {
		t.Fatalf("never reached: %+v", st)
	}
}

func TestEureka_Config(t *testing.T) {
	for _, urls := range [][]string{nil, {"eureka:8761"}, {"ftp://x/eureka"}} {
		if _, err := eureka.New(eureka.Config{URLs: urls}); err == nil || !strings.Contains(err.Error(), "--eureka_url") {
			t.Errorf("New(%q) = %v", urls, err)
		}
	}
}

// Run follows the server: a new instance shows in the merged store and wakes its watchers.
func TestEureka_RunWakesWatchers(t *testing.T) {
	f := newFakeEureka(t)
	c, err := eureka.New(eureka.Config{URLs: []string{f.URL + "/eureka"}, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	s := catalog.Merge(memory.NewInstances(nil), c)
	l, err := s.List(ctx, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	f.put(instance("REVIEWS", "r1", "10.0.0.1", 9080, "UP", nil))
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	for {
		idx, err := s.Wait(wctx, "default", l.Index)
		if err != nil {
			t.Fatalf("not woken: %v", err)
		}
		if l, _ = s.List(ctx, "default", ""); len(l.Instances) == 1 && l.Index == idx {
			break
		}
	}
	if !strings.Contains(strings.Join(f.paths(), " "), "/eureka/apps/") {
		t.Fatalf("paths: %v", f.paths())
	}
}
