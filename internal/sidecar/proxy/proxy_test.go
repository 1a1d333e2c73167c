package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// upstream is a test instance that answers with its name and echoes what it got.
type upstream struct {
	*httptest.Server
	name  string
	hits  atomic.Int64
	seen  chan *http.Request
	reply func(w http.ResponseWriter, r *http.Request) // nil: 200 "<name> <path>"
}

func newUpstream(t *testing.T, name string) *upstream {
	u := &upstream{name: name, seen: make(chan *http.Request, 1000)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		select {
		case u.seen <- r.Clone(context.Background()):
		default:
		}
		if u.reply != nil {
			u.reply(w, r)
			return
		}
		w.Header().Set("X-Upstream", name)
		fmt.Fprintf(w, "%s %s", name, r.URL.RequestURI())
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func instance(service, addr string, tags ...string) api.Instance {
	return api.Instance{ID: service + "@" + addr, ServiceName: service, Endpoint: &api.Endpoint{Type: "http", Value: addr}, Tags: tags}
}

type harness struct {
	t     *testing.T
	proxy *Proxy
	url   string
	ring  *records.Ring
	reg   *prometheus.Registry
	pool  *table.Pool
}

var self = rules.Caller{Name: "productpage", Tags: []string{"version=v1"}}

func newHarness(t *testing.T) *harness {
	ring := records.NewRing(10000)
	reg := prometheus.NewRegistry()
	p := New(Config{Self: self, Ring: ring, Metrics: NewMetrics(reg, "productpage")})
	return &harness{t: t, proxy: p, url: serveProxy(t, p), ring: ring, reg: reg, pool: table.NewPool()}
}

// serveProxy serves p on a loopback port until the test ends, and returns its URL.
func serveProxy(t *testing.T, p *Proxy) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(p)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve: %v", err)
		}
		p.Close()
	})
	return "http://" + ln.Addr().String()
}

func (h *harness) set(rs []api.Rule, instances ...api.Instance) {
	h.t.Helper()
	set, err := rules.Compile(rs)
	if err != nil {
		h.t.Fatal(err)
	}
	m := h.proxy.cfg.Metrics
	h.proxy.SetTable(table.Build(set, 1, instances, 1, table.Options{Self: self, Pool: h.pool,
		OnEject: func(c *table.Cluster, _ *table.Endpoint) { m.Ejected(c) }}))
}

type result struct {
	code   int
	body   string
	header http.Header
	err    error
	took   time.Duration
}

func (h *harness) get(path string, hdr ...string) result {
	return h.do("GET", path, "", hdr...)
}

func (h *harness) do(method, path, body string, hdr ...string) result {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: string(data), header: resp.Header, err: err, took: time.Since(start)}
}

func f(v float64) *float64 { return &v }
func n(v int) *int         { return &v }

func TestProxy_Routing(t *testing.T) {
	h := newHarness(t)
	v1 := newUpstream(t, "reviews-v1")
	h.set(nil, instance("reviews", v1.addr(), "version=v1"))

	r := h.get("/reviews/books/1?x=y")
	if r.code != 200 || r.body != "reviews-v1 /books/1?x=y" {
		t.Fatalf("prefix routing: %d %q %v", r.code, r.body, r.err)
	}
	if r := h.get("/reviews"); r.body != "reviews-v1 /" {
		t.Fatalf("destination alone: %q", r.body)
	}
	// A Host naming a destination routes without a prefix, the path untouched.
	if r := h.get("/books/2", "Host", "reviews:6379"); r.code != 200 || r.body != "reviews-v1 /books/2" {
		t.Fatalf("host routing: %d %q", r.code, r.body)
	}
	r = h.get("/ratings/1")
	if r.code != 404 || r.header.Get(ResponseFlagsHeader) != FlagNoRoute || !strings.Contains(r.body, `no service "ratings"`) {
		t.Fatalf("unknown destination: %d %q %v", r.code, r.body, r.header)
	}
	// Escaped path segments reach the instance as they were sent.
	if r := h.get("/reviews/a%2Fb/c"); r.body != "reviews-v1 /a%2Fb/c" {
		t.Fatalf("escaped path: %q", r.body)
	}
}

func TestProxy_NoInstance(t *testing.T) {
	h := newHarness(t)
	v1 := newUpstream(t, "v1")
	h.set([]api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}}},
		instance("reviews", v1.addr(), "version=v1"))
	r := h.get("/reviews/x")
	if r.code != 503 || r.header.Get(ResponseFlagsHeader) != FlagNoHealthy || !strings.Contains(r.body, "no instance of reviews:version=v2") {
		t.Fatalf("rule to a version without instances: %d %q", r.code, r.body)
	}
}

func TestProxy_HeadersForwarded(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	h.set(nil, instance("svc", u.addr()))
	r := h.get("/svc/a", "Connection", "X-Drop-Me", "X-Drop-Me", "1", "X-Keep", "2", "Cookie", "user=jason")
	if r.code != 200 {
		t.Fatal(r)
	}
	got := <-u.seen
	rid := got.Header.Get("X-Request-Id")
	if len(rid) != 36 || got.Header.Get("X-Drop-Me") != "" || got.Header.Get("X-Keep") != "2" || got.Header.Get("Cookie") != "user=jason" ||
		!strings.HasPrefix(got.Header.Get("X-Forwarded-For"), "127.0.0.1") {
		t.Fatalf("upstream saw headers %v", got.Header)
	}
	h.get("/svc/a", "X-Request-Id", "mine-1")
	if got := <-u.seen; got.Header.Get("X-Request-Id") != "mine-1" {
		t.Fatalf("X-Request-ID not forwarded as given: %v", got.Header)
	}
	recs := h.ring.Query(records.Filter{})
	if len(recs) != 2 || recs[0].RequestID != rid || recs[1].RequestID != "mine-1" {
		t.Fatalf("records' request ids: %+v", recs)
	}
}

func TestProxy_WeightedSplitAndHeaderRule(t *testing.T) {
	h := newHarness(t)
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	h.set([]api.Rule{
		{ID: "jason", Priority: 2, Destination: "helloworld", Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
		{ID: "split", Priority: 1, Destination: "helloworld", Route: &api.Route{Backends: []api.Backend{
			{Tags: []string{"version=v2"}, Weight: f(0.25)}, {Tags: []string{"version=v1"}}}}},
	}, instance("helloworld", v1.addr(), "version=v1"), instance("helloworld", v2.addr(), "version=v2"))
	const total = 2000
	for range total {
		if r := h.get("/helloworld/hello"); r.code != 200 {
			t.Fatal(r)
		}
	}
	if pct := float64(v2.hits.Load()) * 100 / total; pct < 20 || pct > 30 {
		t.Fatalf("v2 got %.1f%% of %d requests, want 25 ± 5", pct, total)
	}
	before := v2.hits.Load()
	for range 50 {
		if r := h.get("/helloworld/hello", "Cookie", "foo=bar;user=jason;x"); !strings.HasPrefix(r.body, "v2 ") {
			t.Fatalf("jason's request went to %q", r.body)
		}
	}
	if v2.hits.Load()-before != 50 {
		t.Fatal("jason's requests did not all reach v2")
	}
}

func TestProxy_Delay(t *testing.T) {
	h := newHarness(t)
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	h.set([]api.Rule{
		{ID: "split", Destination: "ratings", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}, Weight: f(0.5)}, {Tags: []string{"version=v2"}}}}},
		{ID: "delay", Destination: "ratings", Match: &api.Match{Source: &api.Source{Name: "productpage"}, Headers: map[string]string{"Cookie": "user=jason"}},
			Actions: []api.Action{{Action: "delay", Duration: 0.3, Tags: []string{"version=v1"}}}},
	}, instance("ratings", v1.addr(), "version=v1"), instance("ratings", v2.addr(), "version=v2"))
	var slowV1, fastV2, fastOthers int
	for range 20 {
		r := h.get("/ratings/1", "Cookie", "user=jason")
		switch {
		case strings.HasPrefix(r.body, "v1 ") && r.took >= 300*time.Millisecond:
			slowV1++
		case strings.HasPrefix(r.body, "v2 ") && r.took < 300*time.Millisecond:
			fastV2++ // the action's tags limit it to v1
		default:
			t.Fatalf("%q took %v", r.body, r.took)
		}
	}
	for range 10 {
		if r := h.get("/ratings/1", "Cookie", "user=shriram"); r.took < 300*time.Millisecond {
			fastOthers++
		}
	}
	if slowV1 == 0 || fastV2 == 0 || fastOthers != 10 {
		t.Fatalf("slow v1 %d, fast v2 %d, fast others %d", slowV1, fastV2, fastOthers)
	}
	recs := h.ring.Query(records.Filter{Dst: "ratings:version=v1"})
	if len(recs) == 0 || !strings.Contains(recs[0].ResponseFlags, FlagFaultDelay) || recs[0].RequestTime < 300 {
		t.Fatalf("delayed record: %+v", recs[0])
	}
}

func TestProxy_Abort(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	h.set([]api.Rule{
		{ID: "abort", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"X-Test": "abort"}}, Actions: []api.Action{{Action: "abort", ReturnCode: n(418)}}},
		{ID: "half", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"X-Test": "half"}}, Actions: []api.Action{{Action: "abort", ReturnCode: n(503), Probability: f(0.5)}}},
		{ID: "reset", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"X-Test": "reset"}}, Actions: []api.Action{{Action: "abort", ReturnCode: n(-1)}}},
	}, instance("ratings", u.addr()))
	r := h.get("/ratings/1", "X-Test", "abort")
	if r.code != 418 || r.header.Get(ResponseFlagsHeader) != FlagFaultAbort || !strings.Contains(r.body, "fault injected") || u.hits.Load() != 0 {
		t.Fatalf("abort: %d %q (upstream hits %d)", r.code, r.body, u.hits.Load())
	}
	aborted := 0
	for range 400 {
		if h.get("/ratings/1", "X-Test", "half").code == 503 {
			aborted++
		}
	}
	if aborted < 160 || aborted > 240 {
		t.Fatalf("%d of 400 aborted with probability 0.5", aborted)
	}
	if r := h.get("/ratings/1", "X-Test", "reset"); r.err == nil {
		t.Fatalf("a negative return code must close the connection, got %d %q", r.code, r.body)
	}
	recs := h.ring.Query(records.Filter{Limit: 1})
	if recs[0].Status != 0 || recs[0].ResponseFlags != FlagFaultAbort {
		t.Fatalf("reset record: %+v", recs[0])
	}
}

func TestProxy_Trace(t *testing.T) {
	h := newHarness(t)
	var started []records.Record
	var mu sync.Mutex
	h.proxy.cfg.OnTraceStart = func(r *records.Record) { mu.Lock(); started = append(started, *r); mu.Unlock() }
	u := newUpstream(t, "u")
	h.set([]api.Rule{{ID: "trace", Destination: "ratings", Match: &api.Match{Headers: map[string]string{"X-Request-ID": "*"}},
		Actions: []api.Action{{Action: "trace", LogKey: "gremlin_recipe_id", LogValue: "r1"}}}}, instance("ratings", u.addr(), "version=v1", "zone=a"))
	h.get("/ratings/1", "X-Request-ID", "req-9")
	h.get("/ratings/2", "X-Request-ID", "req-10")
	recs := h.ring.Query(records.Filter{TraceKey: "gremlin_recipe_id", TraceValue: "r1"})
	// On the default route the record names the instance's version, tags sorted.
	if len(recs) != 2 || recs[0].Src != "productpage:version=v1" || recs[0].Dst != "ratings:version=v1,zone=a" || recs[0].Status != 200 ||
		recs[0].UpstreamHost != u.addr() || recs[0].Attempts != 1 || recs[0].UpstreamResponseTime < 0 {
		t.Fatalf("traced record: %+v", recs)
	}
	if recs[0].ID == "" || recs[0].ID == recs[1].ID {
		t.Fatalf("traced records need distinct ids: %q, %q", recs[0].ID, recs[1].ID)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(started) != 2 || started[0].ID != recs[0].ID || started[0].TraceValue != "r1" || started[0].Dst != "ratings:version=v1,zone=a" ||
		started[0].RequestID != "req-9" || started[0].Status != 0 {
		t.Fatalf("trace starts: %+v", started)
	}
	// An untraced request carries no id and is not announced.
	h.set(nil, instance("ratings", u.addr(), "version=v1"))
	h.get("/ratings/3")
	if last := h.ring.Query(records.Filter{Limit: 1}); last[0].ID != "" || len(started) != 2 {
		t.Fatalf("untraced request: %+v, %d starts", last[0], len(started))
	}
}

func TestProxy_Timeout(t *testing.T) {
	h := newHarness(t)
	slow := newUpstream(t, "slow")
	slow.reply = func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}
	h.set([]api.Rule{{Destination: "slow", Route: &api.Route{HTTPReqTimeout: f(0.2), Backends: []api.Backend{{Tags: []string{"v1"}}}}}}, instance("slow", slow.addr(), "v1"))
	r := h.get("/slow/x")
	if r.code != 504 || r.header.Get(ResponseFlagsHeader) != FlagTimeout || r.took > 3*time.Second {
		t.Fatalf("timeout: %d %q after %v", r.code, r.body, r.took)
	}
}

func TestProxy_RetriesHideAFailingInstance(t *testing.T) {
	h := newHarness(t)
	good := newUpstream(t, "good")
	dead := deadAddr(t)
	route := func(retries int) []api.Rule {
		return []api.Rule{{Destination: "svc", Route: &api.Route{HTTPReqRetries: n(retries), Backends: []api.Backend{{Tags: []string{"v1"}}}}}}
	}
	h.set(route(0), instance("svc", good.addr(), "v1"), instance("svc", dead, "v1"))
	failed := 0
	for range 20 {
		r := h.get("/svc/x")
		if r.code == 503 {
			failed++
			if !strings.Contains(r.header.Get(ResponseFlagsHeader), FlagConnectFailure) || !strings.Contains(r.body, "upstream connect error") {
				t.Fatalf("connect failure answer: %q %v", r.body, r.header)
			}
		}
	}
	if failed == 0 {
		t.Fatal("without retries, round robin must hit the dead instance")
	}
	h.set(route(2), instance("svc", good.addr(), "v1"), instance("svc", dead, "v1"))
	for range 20 {
		if r := h.get("/svc/x"); r.code != 200 {
			t.Fatalf("with retries: %d %q", r.code, r.body)
		}
	}
	// A POST is retried after a failed connection too: its body was never sent.
	for range 10 {
		if r := h.do("POST", "/svc/x", "payload"); r.code != 200 {
			t.Fatalf("POST with retries: %d %q", r.code, r.body)
		}
	}
	recs := h.ring.Query(records.Filter{})
	retried := 0
	for _, rec := range recs {
		if rec.Attempts == 2 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no record shows a second attempt")
	}
}

func TestProxy_Retry5xxOnlyWhenSafe(t *testing.T) {
	h := newHarness(t)
	var calls atomic.Int64
	flaky := newUpstream(t, "flaky")
	flaky.reply = func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, "ok")
	}
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{HTTPReqRetries: n(1), Backends: []api.Backend{{Tags: []string{"v1"}}}}}}, instance("svc", flaky.addr(), "v1"))
	if r := h.get("/svc/x"); r.code != 200 || r.body != "ok" {
		t.Fatalf("GET after a 503: %d %q", r.code, r.body)
	}
	calls.Store(0)
	if r := h.do("POST", "/svc/x", "not idempotent"); r.code != 503 || calls.Load() != 1 {
		t.Fatalf("POST after a 503 must not be retried: %d (%d calls)", r.code, calls.Load())
	}
}

func TestProxy_BodiesStream(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	u.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			data, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %d bytes", len(data))
			return
		}
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}
	h.set(nil, instance("svc", u.addr()))
	big := strings.Repeat("x", 3<<20)
	if r := h.do("POST", "/svc/upload", big); r.code != 200 || r.body != fmt.Sprintf("got %d bytes", len(big)) {
		t.Fatalf("upload: %d %q", r.code, r.body)
	}
	resp, err := http.Get(h.url + "/svc/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "chunk 0\n" || time.Since(start) > 150*time.Millisecond {
		t.Fatalf("first chunk %q after %v: the answer is buffered, not streamed", line, time.Since(start))
	}
}

func TestProxy_CircuitBreaker(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	slow := newUpstream(t, "slow")
	slow.reply = func(w http.ResponseWriter, r *http.Request) { <-release }
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}, Resilience: &api.Resilience{MaxRequests: 1}}}}}},
		instance("svc", slow.addr(), "v1"))
	first := make(chan result, 1)
	go func() { first <- h.get("/svc/x") }()
	deadline := time.Now().Add(10 * time.Second)
	for slow.hits.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := h.get("/svc/x")
	close(release)
	if r.code != 503 || r.header.Get(ResponseFlagsHeader) != FlagOverflow || !strings.Contains(r.body, "circuit breaker open") {
		t.Fatalf("second request over max_requests 1: %d %q", r.code, r.body)
	}
	if r := <-first; r.code != 200 {
		t.Fatalf("first request: %d", r.code)
	}
}

func TestProxy_OutlierEjection(t *testing.T) {
	h := newHarness(t)
	good, bad := newUpstream(t, "good"), newUpstream(t, "bad")
	bad.reply = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"},
		Resilience: &api.Resilience{ConsecutiveErrors: 2, SleepWindow: 60}}}}}},
		instance("svc", good.addr(), "v1"), instance("svc", bad.addr(), "v1"))
	for range 10 {
		h.get("/svc/x")
	}
	if hits := bad.hits.Load(); hits != 2 {
		t.Fatalf("the failing instance got %d requests; it must be ejected after 2", hits)
	}
	m := h.proxy.cfg.Metrics
	if v := testutil.ToFloat64(m.ejections.WithLabelValues("productpage", "svc", "v1")); v != 1 {
		t.Fatalf("ejections counted: %v", v)
	}
	if v := gauge(t, h.reg, "a8_proxy_ejected_endpoints", "svc"); v != 1 {
		t.Fatalf("ejected endpoints gauge: %v", v)
	}
}

func TestProxy_UpstreamCutOff(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	u.reply = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}
	h.set(nil, instance("svc", u.addr()))
	r := h.get("/svc/x")
	if r.err == nil {
		t.Fatalf("a cut-off answer must reach the caller as an error, got %d %q", r.code, r.body)
	}
	recs := h.ring.Query(records.Filter{Limit: 1})
	if !strings.Contains(recs[0].ResponseFlags, FlagReset) {
		t.Fatalf("record flags %q", recs[0].ResponseFlags)
	}
}

func TestProxy_Metrics(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	h.set(nil, instance("svc", u.addr(), "version=v1"))
	for range 3 {
		h.get("/svc/x")
	}
	h.get("/nothing/x")
	if v := testutil.ToFloat64(h.proxy.cfg.Metrics.requests.WithLabelValues("productpage", "svc", "", "2xx")); v != 3 {
		t.Fatalf("2xx requests to svc: %v", v)
	}
	for i := range 50 {
		h.get(fmt.Sprintf("/nothing%d/x", i))
	}
	// A request is counted once its answer is out, so the last one may land just after.
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(h.proxy.cfg.Metrics.requests.WithLabelValues("productpage", UnknownDestination, "", "4xx")) != 51 {
		if time.Now().After(deadline) {
			t.Fatalf("4xx requests to unknown destinations: %v, want 51", testutil.ToFloat64(h.proxy.cfg.Metrics.requests.WithLabelValues("productpage", UnknownDestination, "", "4xx")))
		}
		time.Sleep(time.Millisecond)
	}
	// svc's six status classes, and one series for every unknown destination.
	if n := testutil.CollectAndCount(h.proxy.cfg.Metrics.requests); n != 7 {
		t.Fatalf("%d request series: unknown destinations must share one label value", n)
	}
}

// Tables swap under load without a request failing.
func TestProxy_SwapUnderLoad(t *testing.T) {
	h := newHarness(t)
	v1, v2 := newUpstream(t, "v1"), newUpstream(t, "v2")
	insts := []api.Instance{instance("svc", v1.addr(), "version=v1"), instance("svc", v2.addr(), "version=v2")}
	h.set(nil, insts...)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if r := h.get("/svc/x"); r.code != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	for i := range 200 {
		tag := []string{"version=v1", "version=v2"}[i%2]
		h.set([]api.Rule{{Destination: "svc", Route: &api.Route{Backends: []api.Backend{{Tags: []string{tag}}}}}}, insts...)
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d requests failed while tables were swapped", failures.Load())
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name, dest string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "destination" && l.GetValue() == dest {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// The ejected-endpoints gauge falls back when an ejection ends.
func TestProxy_EjectedGaugeFalls(t *testing.T) {
	h := newHarness(t)
	good, bad := newUpstream(t, "good"), newUpstream(t, "bad")
	bad.reply = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"},
		Resilience: &api.Resilience{ConsecutiveErrors: 1, SleepWindow: 0.1}}}}}},
		instance("svc", good.addr(), "v1"), instance("svc", bad.addr(), "v1"))
	for range 4 {
		h.get("/svc/x")
	}
	if v := gauge(t, h.reg, "a8_proxy_ejected_endpoints", "svc"); v != 1 {
		t.Fatalf("gauge while ejected: %v", v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gauge(t, h.reg, "a8_proxy_ejected_endpoints", "svc") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gauge did not fall after the sleep window")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An upstream that answers 5xx before reading a streamed body: the request is not retried (the body
// is being read by the first attempt and cannot be sent again), so no instance gets a torn body.
func TestProxy_NoRetryOfRequestsWithBodies(t *testing.T) {
	h := newHarness(t)
	var early, good atomic.Int64
	eager := newUpstream(t, "eager")
	eager.reply = func(w http.ResponseWriter, r *http.Request) { early.Add(1); w.WriteHeader(503) }
	ok := newUpstream(t, "ok")
	ok.reply = func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		if string(data) != "hello body" {
			t.Errorf("an instance got a torn body %q", data)
		}
		good.Add(1)
	}
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{HTTPReqRetries: n(3), Backends: []api.Backend{{Tags: []string{"v1"}}}}}},
		instance("svc", eager.addr(), "v1"), instance("svc", ok.addr(), "v1"))
	for range 12 {
		pr, pw := io.Pipe()
		go func() {
			time.Sleep(20 * time.Millisecond)
			pw.Write([]byte("hello body"))
			pw.Close()
		}()
		req, _ := http.NewRequest("PUT", h.url+"/svc/x", pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 && resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if early.Load() == 0 || good.Load() == 0 {
		t.Fatalf("both instances must have been used: eager %d, ok %d", early.Load(), good.Load())
	}
}

func TestProxy_HeadAndNoContent(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	u.reply = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "hop")
		w.Header().Set("Keep-Alive", "timeout=5")
		if r.URL.Path == "/empty" {
			w.WriteHeader(204)
			return
		}
		w.Header().Set("Content-Length", "5")
		if r.Method != "HEAD" {
			w.Write([]byte("hello"))
		}
	}
	h.set(nil, instance("svc", u.addr()))
	r := h.do("HEAD", "/svc/x", "")
	if r.code != 200 || r.header.Get("Content-Length") != "5" || r.body != "" {
		t.Fatalf("HEAD: %d %v %q", r.code, r.header, r.body)
	}
	if r.header.Get("X-Secret") != "" || r.header.Get("Keep-Alive") != "" {
		t.Fatalf("hop-by-hop answer headers forwarded: %v", r.header)
	}
	if r := h.get("/svc/empty"); r.code != 204 || r.body != "" {
		t.Fatalf("204: %d %q", r.code, r.body)
	}
	h.get("/svc/x", "X-Forwarded-For", "10.9.9.9")
	var got *http.Request
	for got = range u.seen {
		if got.Header.Get("X-Forwarded-For") != "" && strings.HasPrefix(got.Header.Get("X-Forwarded-For"), "10.9.9.9") {
			break
		}
	}
	if xff := got.Header.Get("X-Forwarded-For"); !strings.HasPrefix(xff, "10.9.9.9, 127.0.0.1") {
		t.Fatalf("X-Forwarded-For %q: the caller's address must be appended", xff)
	}
}

// Tagged actions apply on the default route too, to the instance picked.
func TestProxy_TaggedActionOnDefaultRoute(t *testing.T) {
	h := newHarness(t)
	v2 := newUpstream(t, "v2")
	h.set([]api.Rule{{Destination: "svc", Actions: []api.Action{{Action: "abort", ReturnCode: n(418), Tags: []string{"version=v2"}}}}},
		instance("svc", v2.addr(), "version=v2"))
	if r := h.get("/svc/x"); r.code != 418 {
		t.Fatalf("tagged abort on the default route to a v2 instance: %d", r.code)
	}
}

// max_connections without max_pending_requests queues (Envoy's default of 1024 pending).
func TestProxy_MaxConnectionsQueues(t *testing.T) {
	h := newHarness(t)
	u := newUpstream(t, "u")
	u.reply = func(w http.ResponseWriter, r *http.Request) { time.Sleep(50 * time.Millisecond) }
	h.set([]api.Rule{{Destination: "svc", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}, Resilience: &api.Resilience{MaxConnections: 1}}}}}},
		instance("svc", u.addr(), "v1"))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.get("/svc/x"); r.code != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 4 concurrent requests refused with one connection allowed: they must queue", failed.Load())
	}
}
