package bookinfo

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an io.Writer that Run's goroutines and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fault is what the stand-in proxy does to the calls of one service.
type fault struct {
	delay     time.Duration // wait this long (or until the caller gives up) before answering
	status    int           // answer this status instead of forwarding
	failFirst int           // answer 503 to the first failFirst calls
}

// seenCall is a call the stand-in proxy received.
type seenCall struct {
	service, path, cookie, requestID string
}

// testProxy stands in for a sidecar proxy: it routes /<service>/<path> to the service's instance as
// /<path>, records what it saw and injects faults. A service without an instance gets 503.
type testProxy struct {
	srv    *httptest.Server
	client *http.Client

	mu       sync.Mutex
	backends map[string]string
	faults   map[string]fault
	seen     []seenCall
}

func newTestProxy(t *testing.T) *testProxy {
	p := &testProxy{
		client:   &http.Client{Transport: &http.Transport{}},
		backends: map[string]string{},
		faults:   map[string]fault{},
	}
	p.srv = httptest.NewServer(p)
	t.Cleanup(func() {
		p.srv.Close()
		p.client.CloseIdleConnections()
	})
	return p
}

func (p *testProxy) URL() string { return p.srv.URL }

func (p *testProxy) setBackend(service, url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends[service] = url
}

func (p *testProxy) setFault(service string, f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults[service] = f
}

// calls returns the calls seen for service so far.
func (p *testProxy) calls(service string) []seenCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seenCall
	for _, c := range p.seen {
		if c.service == service {
			out = append(out, c)
		}
	}
	return out
}

func (p *testProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	service, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	p.mu.Lock()
	p.seen = append(p.seen, seenCall{service: service, path: "/" + rest, cookie: r.Header.Get("Cookie"), requestID: r.Header.Get(requestIDHeader)})
	n := 0
	for _, c := range p.seen {
		if c.service == service {
			n++
		}
	}
	backend, f := p.backends[service], p.faults[service]
	p.mu.Unlock()

	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.status != 0:
		http.Error(w, "injected fault", f.status)
		return
	case n <= f.failFirst:
		http.Error(w, "injected failure", http.StatusServiceUnavailable)
		return
	case backend == "":
		http.Error(w, "no healthy upstream", http.StatusServiceUnavailable)
		return
	}
	target := backend + "/" + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	req.Header = r.Header.Clone()
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// instance is a service started with run on a free loopback port.
type instance struct {
	url            string
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

// start runs a bookinfo service with args (and --port 0) until the test ends.
func start(t *testing.T, opts options, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	addrs := make(chan net.Addr, 1)
	opts.host = "127.0.0.1"
	opts.getenv = func(string) string { return "" }
	opts.ready = func(a net.Addr) { addrs <- a }
	go func() { in.done <- run(ctx, append([]string{"--port", "0"}, args...), in.stdout, in.stderr, opts) }()
	select {
	case a := <-addrs:
		in.url = "http://" + a.String()
	case err := <-in.done:
		cancel()
		t.Fatalf("run %v: %v", args, err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("run %v: not listening after 10s", args)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-in.done:
			if err != nil {
				t.Errorf("run %v returned %v after cancel", args, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("run %v did not return after cancel", args)
		}
	})
	return in
}

// fabric is a set of bookinfo services behind one stand-in proxy.
type fabric struct {
	proxy *testProxy
	svc   map[string]*instance // by service name
}

// newFabric starts the services ("details", "reviews:v2", ...) behind a stand-in proxy.
func newFabric(t *testing.T, opts options, services ...string) *fabric {
	t.Helper()
	f := &fabric{proxy: newTestProxy(t), svc: map[string]*instance{}}
	for _, s := range services {
		name, version, ok := strings.Cut(s, ":")
		if !ok {
			version = "v1"
		}
		in := start(t, opts, "--service", name, "--version", version, "--proxy", f.proxy.URL())
		f.svc[name] = in
		f.proxy.setBackend(name, in.url)
	}
	return f
}

// testClient follows no redirects.
var testClient = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// get fetches url with the headers given as name, value pairs.
func get(t *testing.T, url string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return do(t, testClient, req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(body)
}

// getJSON fetches url, expects 200 and JSON, and decodes it into v; it returns the raw body.
func getJSON(t *testing.T, url string, v any, headers ...string) string {
	t.Helper()
	resp, body := get(t, url, headers...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", url, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return body
}
