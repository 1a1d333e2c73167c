package caller

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// dependency counts calls and fails while failing is set.
type dependency struct {
	calls   atomic.Int32
	failing atomic.Bool
	ids     chan string
}

func (d *dependency) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.calls.Add(1)
	select {
	case d.ids <- r.Header.Get("X-Request-Id") + "|" + r.Header.Get("Cookie"):
	default:
	}
	if d.failing.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("hello"))
}

func setup(t *testing.T, o Options) (*dependency, *httptest.Server) {
	dep := &dependency{ids: make(chan string, 100)}
	up := httptest.NewServer(dep)
	t.Cleanup(up.Close)
	o.Target = up.URL + "/hello"
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	srv := httptest.NewServer(New(o))
	t.Cleanup(srv.Close)
	return dep, srv
}

func get(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Request-Id", "req-1")
	req.Header.Set("Cookie", "user=jason")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCaller_ForwardsAndRetries(t *testing.T) {
	dep, srv := setup(t, Options{Retries: 3})
	if code := get(t, srv.URL+"/call"); code != 200 {
		t.Fatalf("healthy dependency: %d", code)
	}
	if got := <-dep.ids; got != "req-1|user=jason" {
		t.Fatalf("forwarded %q, want the request id and cookie", got)
	}
	dep.failing.Store(true)
	before := dep.calls.Load()
	if code := get(t, srv.URL+"/call"); code != 503 {
		t.Fatalf("failing dependency: %d", code)
	}
	if n := dep.calls.Load() - before; n != 4 {
		t.Fatalf("%d calls, want 1 + 3 retries", n)
	}
}

func TestCaller_Backoff(t *testing.T) {
	dep, srv := setup(t, Options{Retries: 2, Backoff: 50 * time.Millisecond})
	dep.failing.Store(true)
	start := time.Now()
	get(t, srv.URL+"/call")
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("3 attempts with 50ms backoff took %v", took)
	}
}

func TestCaller_CircuitBreaker(t *testing.T) {
	dep, srv := setup(t, Options{BreakerFailures: 2, BreakerReset: 200 * time.Millisecond})
	dep.failing.Store(true)
	get(t, srv.URL+"/call")
	get(t, srv.URL+"/call") // opens
	before := dep.calls.Load()
	for range 5 {
		if code := get(t, srv.URL+"/call"); code != 503 {
			t.Fatalf("open breaker answered %d", code)
		}
	}
	if n := dep.calls.Load() - before; n != 0 {
		t.Fatalf("%d calls went out with the breaker open", n)
	}
	// After the reset time one trial goes through; it fails, so the breaker opens again.
	deadline := time.Now().Add(5 * time.Second)
	for dep.calls.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("no trial call after the reset time")
		}
		get(t, srv.URL+"/call")
		time.Sleep(10 * time.Millisecond)
	}
	before = dep.calls.Load()
	get(t, srv.URL+"/call")
	if n := dep.calls.Load() - before; n != 0 {
		t.Fatalf("a failed trial must open the breaker again; %d calls went out", n)
	}
	// Recovery: the next trial succeeds and closes the breaker.
	dep.failing.Store(false)
	deadline = time.Now().Add(5 * time.Second)
	for get(t, srv.URL+"/call") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close after the dependency recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code := get(t, srv.URL+"/call"); code != 200 {
		t.Fatalf("closed breaker: %d", code)
	}
}
