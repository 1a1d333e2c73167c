package eureka

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/store/storetest"
)

func (s *Server) viewCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.views)
}

func get(t *testing.T, h http.Handler, path string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code
}

// TestServer_IdleNamespaces: a namespace is followed from its first Eureka request until it has had
// none for IdleTimeout; its goroutine ends then, and a later request starts it again.
func TestServer_IdleNamespaces(t *testing.T) {
	clock := storetest.NewClock()
	s, err := New(Config{Store: memory.NewInstances(clock.Now), Clock: clock.Now, IdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.viewCount() != 0 {
		t.Fatal("views before any request")
	}
	get(t, s, "/eureka/apps")
	if s.viewCount() != 1 {
		t.Fatalf("%d views after a request", s.viewCount())
	}
	v := s.views["default"]

	clock.Advance(59 * time.Second)
	get(t, s, "/eureka/apps/delta") // used again: the minute restarts
	clock.Advance(59 * time.Second)
	s.prune()
	if s.viewCount() != 1 {
		t.Fatal("a namespace in use was dropped")
	}
	clock.Advance(2 * time.Second)
	s.prune()
	if s.viewCount() != 0 {
		t.Fatal("an idle namespace is still followed")
	}
	select {
	case <-v.done:
	default:
		t.Fatal("the idle view's goroutine still runs")
	}
	get(t, s, "/eureka/apps")
	if s.viewCount() != 1 || s.views["default"] == v {
		t.Fatal("a new request did not start a new view")
	}
}

// TestServer_RunAndClose: Run prunes the delta queue on its own and stops every goroutine when its
// context ends.
func TestServer_RunAndClose(t *testing.T) {
	clock := storetest.NewClock()
	st := memory.NewInstances(clock.Now)
	s, err := New(Config{Store: st, Clock: clock.Now, PruneInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx) }()

	for _, ns := range []string{"/api/eureka/default/v2/apps", "/eureka/apps"} {
		get(t, s, ns)
	}
	v := s.view("default")
	v.mu.Lock()
	v.queue = append(v.queue, change{at: clock.Now(), action: ActionAdded, id: "x", in: &Instance{}})
	v.mu.Unlock()
	clock.Advance(3*time.Minute + time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v.mu.Lock()
		n := len(v.queue)
		v.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not prune the delta queue")
		}
		time.Sleep(5 * time.Millisecond)
	}

	cancel()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	select {
	case <-v.done:
	default:
		t.Fatal("a view's goroutine outlived Run")
	}
	// Requests still work after Close (without following other replicas' changes).
	if code := get(t, s, "/api/eureka/other/v2/apps"); code != http.StatusUnauthorized {
		t.Fatalf("after Close: %d", code)
	}
	if code := get(t, s, "/eureka/apps"); code != http.StatusOK {
		t.Fatalf("after Close: %d", code)
	}
}

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
		want route
	}{
		{"/eureka/v2/apps", true, route{op: opApps}},
		{"/eureka/apps/", true, route{op: opApps}},
		{"/api/eureka/team%2Fa/v2/apps/", true, route{op: opApps, token: "team/a", tokenInPath: true}},
		{"/api/eureka/t/apps/delta", true, route{op: opDelta, token: "t", tokenInPath: true}},
		{"/eureka/v2/apps/Demo", true, route{op: opApp, app: "DEMO"}},
		{"/eureka/v2/apps/DELTA", true, route{op: opApp, app: "DELTA"}},
		{"/eureka/v2/apps/demo/host%3A1", true, route{op: opInstance, app: "DEMO", id: "host:1"}},
		{"/eureka/v2/apps/demo/i%2F1", true, route{op: opInstance, app: "DEMO", id: "i/1"}},
		{"/eureka/v2/apps/demo/i1/status", true, route{op: opStatus, app: "DEMO", id: "i1"}},
		{"/eureka/v2/apps/demo/i1/metadata/", true, route{op: opMetadata, app: "DEMO", id: "i1"}},
		{"/eureka/v2/apps/demo/i1/other", false, route{}},
		{"/eureka/instances/i1", true, route{op: opByID, id: "i1"}},
		{"/eureka/vips/Demo", true, route{op: opVIP, vip: "Demo"}},
		{"/eureka/svips/demo", true, route{op: opSVIP, vip: "demo"}},
		{"/eureka/v2/vips", false, route{}},
		{"/eureka/v2", false, route{}},
		{"/eureka/v2/apps/a//b", false, route{}},
		{"/api/eureka", false, route{}},
		{"/api/v1/instances", false, route{}},
	} {
		got, ok := parseRoute(tc.path)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: %+v %v, want %+v %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
