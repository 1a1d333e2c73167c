package proxy

// In-process benchmark of the proxy engine: a real Server on a loopback listener, net/http
// upstreams on loopback answering a fixed body (as ../shared/bench's upstream does), and callers on
// keep-alive raw HTTP/1.1 connections that write a request and read its answer with bufio, without
// allocating. Callers, proxy and upstreams share the process and its cores, so ns/op is the wall
// time per request of the whole loop (its inverse is the throughput), and allocs/op count the
// upstream's net/http allocations too: the "direct" variant (the same callers straight to the
// upstreams) is that baseline, to subtract.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// benchConnsPerProc is how many caller connections per GOMAXPROCS the benchmark keeps busy (16 on
// 2 cores): each RunParallel goroutine has its own connection, a closed loop.
const benchConnsPerProc = 8

// benchRequest is what callers send: a Cookie that the cookie rules do not match, so that with
// rules every rule of the destination is evaluated and the weighted split decides.
const benchRequest = "GET /svc/books/1 HTTP/1.1\r\nHost: localhost:6379\r\nUser-Agent: a8-bench\r\nAccept: */*\r\nCookie: session=abc; user=alice\r\n\r\n"

func BenchmarkProxy(b *testing.B) {
	before := runtime.NumGoroutine()
	for _, bc := range []struct {
		name         string
		body         int
		direct       bool // callers go straight to the upstreams: the baseline of the loop
		rules, swap  bool
		swapInterval time.Duration
	}{
		{name: "direct", body: 64, direct: true},
		{name: "plain", body: 64},
		{name: "body4k", body: 4 << 10},
		{name: "body64k", body: 64 << 10},
		{name: "rules", body: 64, rules: true},
		{name: "swap100ms", body: 64, rules: true, swap: true, swapInterval: 100 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newBenchEnv(b, bc.body, bc.direct, bc.rules)
			var swaps atomic.Int64
			if bc.swap {
				stop, done := make(chan struct{}), make(chan struct{})
				go func() {
					defer close(done)
					t := time.NewTicker(bc.swapInterval)
					defer t.Stop()
					for rev := int64(2); ; rev++ {
						select {
						case <-stop:
							return
						case <-t.C:
						}
						e.p.SetTable(e.build(rev)) // compiled afresh, as the sidecar does on a change
						swaps.Add(1)
					}
				}()
				b.Cleanup(func() { close(stop); <-done })
			}
			e.run(b)
			if bc.swap {
				b.ReportMetric(float64(swaps.Load()), "swaps")
			}
		})
	}
	// Every listener, connection and goroutine of the variants is gone (their cleanups ran).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			b.Errorf("%d goroutines left (%d before):\n%s", runtime.NumGoroutine(), before, buf.String())
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchEnv is one variant's setup: upstreams, proxy and callers' connections. Its parts are closed
// by the benchmark's cleanups.
type benchEnv struct {
	p     *Proxy
	ups   []string // upstream addresses: v1, v2
	rs    []api.Rule
	insts []api.Instance
	pool  *table.Pool
	m     *Metrics
	conns chan *benchConn
	n     int
	body  int
}

var benchSelf = rules.Caller{Name: "bench", Tags: []string{"version=v1"}}

func newBenchEnv(b *testing.B, body int, direct, withRules bool) *benchEnv {
	e := &benchEnv{body: body, n: benchConnsPerProc * runtime.GOMAXPROCS(0)} // RunParallel's goroutines
	e.conns = make(chan *benchConn, e.n)
	e.ups = []string{benchUpstream(b, "v1", body), benchUpstream(b, "v2", body)}
	e.insts = []api.Instance{
		{ID: "svc-1", ServiceName: "svc", Endpoint: &api.Endpoint{Type: "http", Value: e.ups[0]}, Tags: []string{"version=v1"}},
		{ID: "svc-2", ServiceName: "svc", Endpoint: &api.Endpoint{Type: "http", Value: e.ups[1]}, Tags: []string{"version=v2"}},
	}
	if withRules {
		e.rs = benchRules()
	}
	addrs := e.ups
	if !direct {
		// As the sidecar sets the proxy up by default: a ring of records, metrics, no access log.
		e.m = NewMetrics(prometheus.NewRegistry(), benchSelf.Name)
		e.p = New(Config{Self: benchSelf, Ring: records.NewRing(config.Defaults().ProxyConfig.Records), Metrics: e.m})
		e.pool = table.NewPool()
		e.p.SetTable(e.build(1))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := NewServer(e.p)
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ln) }()
		b.Cleanup(func() {
			srv.Close()
			if err := <-done; err != ErrServerClosed {
				b.Errorf("Serve: %v", err)
			}
			e.p.Close()
		})
		addrs = []string{ln.Addr().String()}
	}
	b.Cleanup(func() {
		close(e.conns)
		for c := range e.conns {
			c.c.Close()
		}
	})
	req := benchRequest
	if direct {
		req = strings.Replace(req, "/svc/", "/", 1)
	}
	for i := range e.n {
		c, err := net.Dial("tcp", addrs[i%len(addrs)])
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Minute)) // a hang fails rather than blocks
		bc := &benchConn{c: c, br: bufio.NewReaderSize(c, 16<<10), req: []byte(req)}
		e.conns <- bc
		// Warm up: the connection, and the proxy's connections to the upstreams.
		for range 4 {
			if err := bc.check(body); err != nil {
				b.Fatal(err)
			}
		}
	}
	if !direct {
		e.verify(b, withRules)
	}
	return e
}

// build compiles the variant's rules and builds a table, as the sidecar does on a change.
func (e *benchEnv) build(rev int64) *table.Table {
	set, err := rules.Compile(e.rs)
	if err != nil {
		panic(err)
	}
	m := e.m
	return table.Build(set, rev, e.insts, 1, table.Options{Self: benchSelf, Pool: e.pool,
		OnEject: func(c *table.Cluster, _ *table.Endpoint) { m.Ejected(c) }})
}

// benchRules are bench/proxy/run.sh's RULES=1 set: 100 other destinations with a cookie rule and a
// default route each, and on svc a cookie rule, a header rule and a 50/50 weighted split.
func benchRules() []api.Rule {
	v := func(tag string) []api.Backend { return []api.Backend{{Tags: []string{tag}}} }
	var rs []api.Rule
	for i := 1; i <= 100; i++ {
		dest := fmt.Sprintf("other%d", i)
		rs = append(rs,
			api.Rule{Destination: dest, Priority: 2, Match: &api.Match{Headers: map[string]string{"Cookie": fmt.Sprintf("^(.*?;)?(user=u%d)(;.*)?$", i)}},
				Route: &api.Route{Backends: v("version=v2")}},
			api.Rule{Destination: dest, Priority: 1, Route: &api.Route{Backends: v("version=v1")}})
	}
	half := 0.5
	return append(rs,
		api.Rule{Destination: "svc", Priority: 3, Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
			Route: &api.Route{Backends: v("version=v2")}},
		api.Rule{Destination: "svc", Priority: 2, Match: &api.Match{Headers: map[string]string{"X-Canary": "^yes$"}},
			Route: &api.Route{Backends: v("version=v2")}},
		api.Rule{Destination: "svc", Priority: 1, Route: &api.Route{Backends: []api.Backend{
			{Tags: []string{"version=v1"}, Weight: &half}, {Tags: []string{"version=v2"}}}}})
}

// verify checks, before timing, that requests go where the variant says: to both instances, and
// with rules, to v2 for the cookie and header rules.
func (e *benchEnv) verify(b *testing.B, withRules bool) {
	c := <-e.conns
	defer func() { e.conns <- c }()
	req := c.req
	defer func() { c.req = req }()
	seen := map[byte]int{}
	for range 40 {
		_, up, err := c.roundTrip()
		if err != nil {
			b.Fatal(err)
		}
		seen[up]++
	}
	if seen['1'] == 0 || seen['2'] == 0 {
		b.Fatalf("answers by instance: %v; want both v1 and v2", seen)
	}
	if !withRules {
		return
	}
	for _, r := range []string{
		strings.Replace(benchRequest, "session=abc; user=alice", "user=jason", 1),
		strings.Replace(benchRequest, "\r\n\r\n", "\r\nX-Canary: yes\r\n\r\n", 1),
	} {
		c.req = []byte(r)
		for range 10 {
			if _, up, err := c.roundTrip(); err != nil || up != '2' {
				b.Fatalf("%q: answered by v%c (%v); want v2", r, up, err)
			}
		}
	}
}

// run times requests on every connection at once, and reports latency percentiles.
func (e *benchEnv) run(b *testing.B) {
	samples := make([]int64, b.N)
	var next atomic.Int64
	var failed atomic.Bool
	b.SetParallelism(benchConnsPerProc)
	b.ReportAllocs()
	b.SetBytes(int64(e.body))
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := <-e.conns
		defer func() { e.conns <- c }()
		for pb.Next() {
			start := time.Now()
			err := c.check(e.body)
			d := time.Since(start)
			if err != nil {
				if !failed.Swap(true) {
					b.Error(err)
				}
				return
			}
			if i := next.Add(1) - 1; i < int64(len(samples)) {
				samples[i] = int64(d)
			}
		}
	})
	b.StopTimer()
	if failed.Load() {
		b.FailNow()
	}
	// CPU time of the whole process (callers, proxy, upstreams, and the swapper) per request:
	// steadier than ns/op on a shared machine, where the loop waits for cores others use.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	s := samples[:min(next.Load(), int64(len(samples)))]
	slices.Sort(s)
	if len(s) > 0 {
		b.ReportMetric(float64(s[len(s)/2])/1e3, "p50-µs")
		b.ReportMetric(float64(s[len(s)*99/100])/1e3, "p99-µs")
	}
}

// processCPU returns the CPU time the process used so far (user and system), in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// benchUpstream serves a fixed body of size bytes (the last one a newline) with an X-Upstream
// header naming it, as ../shared/bench/upstream does, until the benchmark ends.
func benchUpstream(b *testing.B, name string, size int) string {
	body := bytes.Repeat([]byte("x"), size)
	body[size-1] = '\n'
	clen := strconv.Itoa(len(body))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd["Content-Type"] = []string{"text/plain"}
		hd["Content-Length"] = []string{clen}
		hd["X-Upstream"] = []string{name}
		w.Write(body)
	}), ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	b.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

// benchConn is a caller's keep-alive connection.
type benchConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

// check makes a round trip and checks for a 200 with a body of size bytes.
func (c *benchConn) check(size int) error {
	n, _, err := c.roundTrip()
	if err == nil && n != size {
		err = fmt.Errorf("answer of %d bytes, want %d", n, size)
	}
	return err
}

var errBenchAnswer = errors.New("unexpected answer")

// roundTrip writes the request, reads the answer's head (its status must be 200, and its body
// framed by Content-Length) and discards its body, allocating nothing. It returns the body's
// length and the last byte of X-Upstream ('1' or '2').
func (c *benchConn) roundTrip() (n int, up byte, err error) {
	if _, err := c.c.Write(c.req); err != nil {
		return 0, 0, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, 0, fmt.Errorf("%w: %q", errBenchAnswer, line)
	}
	n = -1
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n = 0
			for _, d := range value {
				n = n*10 + int(d-'0')
			}
		case bytes.EqualFold(name, []byte("X-Upstream")) && len(value) > 0:
			up = value[len(value)-1]
		}
	}
	if n < 0 {
		return 0, 0, fmt.Errorf("%w: no Content-Length", errBenchAnswer)
	}
	if _, err := c.br.Discard(n); err != nil {
		return 0, 0, err
	}
	return n, up, nil
}
