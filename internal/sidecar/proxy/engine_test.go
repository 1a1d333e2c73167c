package proxy

// Wire-level tests of the proxy's HTTP/1.x engine: raw callers (net.Conn) and raw upstreams
// (TCP listeners answering with bytes written here), so that framing, connection handling and
// header handling are checked byte for byte.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// waitFor is how long a test waits for something that must happen.
const waitFor = 10 * time.Second

// rawUpstream is a TCP server whose connections a test handles itself.
type rawUpstream struct {
	ln      net.Listener
	accepts atomic.Int64
	done    chan struct{} // closed when the test ends: handlers waiting on it give up
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func newRawUpstream(t *testing.T, handle func(u *rawUpstream, c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, done: make(chan struct{})}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			u.mu.Lock()
			u.conns = append(u.conns, c)
			u.mu.Unlock()
			u.wg.Add(1)
			go func() {
				defer u.wg.Done()
				defer c.Close()
				handle(u, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		close(u.done)
		ln.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) addr() string { return u.ln.Addr().String() }

// rawMsg is a request or an answer as it came over the wire.
type rawMsg struct {
	first   string      // the request or status line
	lines   []string    // the header lines, as they came
	hdr     http.Header // the same, by name
	body    []byte      // the body's data
	wire    []byte      // the body as it came: chunked framing and trailers included
	trailer http.Header
}

// readRawHead reads a head.
func readRawHead(br *bufio.Reader) (*rawMsg, error) {
	m := &rawMsg{hdr: http.Header{}}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case m.first == "":
			m.first = line
		case line == "":
			return m, nil
		default:
			m.lines = append(m.lines, line)
			name, value, _ := strings.Cut(line, ":")
			m.hdr.Add(name, strings.TrimSpace(value))
		}
	}
}

// readBody reads the body framed by m's head (chunked or Content-Length; none otherwise).
func (m *rawMsg) readBody(br *bufio.Reader) error {
	switch {
	case strings.EqualFold(m.hdr.Get("Transfer-Encoding"), "chunked"):
		var wire bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			wire.WriteString(line)
			sz, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
			size, err := strconv.ParseInt(strings.TrimSpace(sz), 16, 64)
			if err != nil {
				return err
			}
			if size == 0 {
				m.trailer = http.Header{}
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return err
					}
					wire.WriteString(line)
					line = strings.TrimRight(line, "\r\n")
					if line == "" {
						m.wire = wire.Bytes()
						return nil
					}
					name, value, _ := strings.Cut(line, ":")
					m.trailer.Add(name, strings.TrimSpace(value))
				}
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return err
			}
			wire.Write(chunk)
			m.body = append(m.body, chunk[:size]...)
		}
	case m.hdr.Get("Content-Length") != "":
		n, err := strconv.Atoi(m.hdr.Get("Content-Length"))
		if err != nil {
			return err
		}
		m.body = make([]byte, n)
		if _, err := io.ReadFull(br, m.body); err != nil {
			return err
		}
		m.wire = m.body
	}
	return nil
}

func readRawRequest(br *bufio.Reader) (*rawMsg, error) {
	m, err := readRawHead(br)
	if err != nil {
		return nil, err
	}
	return m, m.readBody(br)
}

// target is the request target of a request line.
func (m *rawMsg) target() string {
	f := strings.Fields(m.first)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// hasLine reports whether a header line named name came (any value).
func (m *rawMsg) hasLine(name string) bool {
	for _, l := range m.lines {
		if n, _, _ := strings.Cut(l, ":"); strings.EqualFold(strings.TrimSpace(n), name) {
			return true
		}
	}
	return false
}

// keepAlive returns a handler answering every request on a connection with answer's bytes,
// until answer returns "" or the connection ends. seen, if not nil, gets every request.
func keepAlive(seen chan<- *rawMsg, answer func(m *rawMsg) string) func(*rawUpstream, net.Conn, *bufio.Reader) {
	return func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		for {
			m, err := readRawRequest(br)
			if err != nil {
				return
			}
			if seen != nil {
				select {
				case seen <- m:
				case <-u.done:
					return
				}
			}
			a := answer(m)
			if a == "" {
				return
			}
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
		}
	}
}

// ok answers 200 with body.
func ok(body string) string {
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// echoTarget answers with the request's method and target.
func echoTarget(m *rawMsg) string { return ok(strings.Join(strings.Fields(m.first)[:2], " ")) }

// conn is a raw caller's connection to the proxy.
type conn struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

func (h *harness) dial() *conn {
	h.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(h.url, "http://"))
	if err != nil {
		h.t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(waitFor))
	h.t.Cleanup(func() { c.Close() })
	return &conn{t: h.t, Conn: c, br: bufio.NewReader(c)}
}

func (c *conn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		c.t.Fatalf("writing to the proxy: %v", err)
	}
}

// answer reads an answer to a request with method.
func (c *conn) answer(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading an answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading the answer's body (%d %v): %v after %q", resp.StatusCode, resp.Header, err, body)
	}
	return resp, string(body)
}

// closed checks that the proxy closes the connection: nothing more comes, then the end.
func (c *conn) closed() {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("the connection must close, got more bytes: %q", append([]byte{b}, rest...))
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.t.Fatal("the proxy did not close the connection")
	}
}

// record waits for the record of the request to path and returns it.
func (h *harness) record(path string) *records.Record {
	h.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		recs := h.ring.Query(records.Filter{})
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Path == path {
				return recs[i]
			}
		}
		if time.Now().After(deadline) {
			var all []string
			for _, r := range recs {
				all = append(all, fmt.Sprintf("%s %d %s", r.Path, r.Status, r.ResponseFlags))
			}
			h.t.Fatalf("no record of %s; records: %v", path, all)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func timeoutRule(dest string, seconds float64, retries int) []api.Rule {
	return []api.Rule{{Destination: dest, Route: &api.Route{HTTPReqTimeout: f(seconds), HTTPReqRetries: n(retries),
		Backends: []api.Backend{{Tags: []string{"v1"}}}}}}
}

func TestEngine_Pipelined(t *testing.T) {
	h := newHarness(t)
	hit := make(chan *rawMsg, 10)
	u := newRawUpstream(t, keepAlive(hit, func(m *rawMsg) string {
		return ok(m.target() + " " + string(m.body))
	}))
	h.set(nil, instance("svc", u.addr()))

	c := h.dial()
	c.send("GET /svc/a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /svc/b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody" +
		"GET /svc/c HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/a ", "/b body", "/c "} {
		if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != want || resp.Close {
			t.Fatalf("pipelined answer: %d %q (close %v), want %q", resp.StatusCode, body, resp.Close, want)
		}
	}

	// A request pipelined while the first waits for a slow answer (past the moment the proxy
	// starts watching the caller's connection) is kept and answered next.
	slowHit := make(chan *rawMsg, 1)
	release := make(chan struct{})
	slow := newRawUpstream(t, keepAlive(slowHit, func(m *rawMsg) string {
		select {
		case <-release:
		case <-time.After(waitFor):
		}
		return echoTarget(m)
	}))
	h.set(nil, instance("svc", u.addr()), instance("slow", slow.addr()))
	c.send("GET /slow/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	recv(t, slowHit, "the slow request upstream")
	time.Sleep(2 * watchAfter) // let the proxy start watching (the outcome must be the same without)
	c.send("GET /svc/next HTTP/1.1\r\nHost: x\r\n\r\n")
	close(release)
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "GET /1" {
		t.Fatalf("slow answer: %d %q", resp.StatusCode, body)
	}
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "/next " {
		t.Fatalf("answer to the request pipelined during a wait: %d %q", resp.StatusCode, body)
	}
}

func TestEngine_HTTP10(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, func(m *rawMsg) string {
		if strings.HasSuffix(m.target(), "/chunked") {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
		}
		return echoTarget(m)
	}))
	h.set(nil, instance("svc", u.addr()))

	// Without keep-alive the connection closes after the answer.
	c := h.dial()
	c.send("GET /svc/a HTTP/1.0\r\n\r\n")
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "GET /a" || !resp.Close {
		t.Fatalf("HTTP/1.0: %d %q close %v", resp.StatusCode, body, resp.Close)
	}
	c.closed()

	// With keep-alive it stays open, and the answer says so.
	c = h.dial()
	for _, path := range []string{"/svc/1", "/svc/2"} {
		c.send("GET " + path + " HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := c.answer("GET")
		if resp.StatusCode != 200 || body != "GET /"+path[5:] || resp.Close || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("HTTP/1.0 keep-alive: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	// The proxy's own answers say so too.
	c.send("GET /nothing/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 404 || resp.Close || resp.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive, proxy's answer: %d %v", resp.StatusCode, resp.Header)
	}

	// A chunked answer reaches an HTTP/1.0 caller de-chunked, delimited by the connection's end.
	c.send("GET /svc/chunked HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	raw, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatal(err)
	}
	head, body, _ := strings.Cut(string(raw), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || body != "hello world" || strings.Contains(strings.ToLower(head), "transfer-encoding") ||
		strings.Contains(strings.ToLower(head), "content-length") || !strings.Contains(head, "\r\nConnection: close") {
		t.Fatalf("chunked answer to an HTTP/1.0 caller:\n%s", raw)
	}
}

func TestEngine_RequestBodies(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	heads := make(chan *rawMsg, 10)
	u := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		for {
			m, err := readRawHead(br)
			if err != nil {
				return
			}
			heads <- m
			if err := m.readBody(br); err != nil {
				return
			}
			seen <- m
			if _, err := io.WriteString(c, ok(fmt.Sprintf("got %d", len(m.body)))); err != nil {
				return
			}
		}
	})
	h.set(nil, instance("svc", u.addr()))
	c := h.dial()

	// Content-Length, the body in the same write as the head.
	c.send("POST /svc/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "got 5" {
		t.Fatalf("body with the head: %d %q", resp.StatusCode, body)
	}
	<-heads
	if m := <-seen; string(m.body) != "hello" || m.hdr.Get("Content-Length") != "5" {
		t.Fatalf("upstream got %q %v", m.body, m.hdr)
	}

	// Content-Length, the body sent only once the head has reached the upstream.
	c.send("PUT /svc/b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
	recv(t, heads, "the head upstream")
	c.send("hello ")
	c.send("world")
	if resp, body := c.answer("PUT"); resp.StatusCode != 200 || body != "got 11" {
		t.Fatalf("slow body: %d %q", resp.StatusCode, body)
	}
	if m := <-seen; string(m.body) != "hello world" {
		t.Fatalf("upstream got %q", m.body)
	}

	// A chunked body goes through as it came: extensions and trailers included.
	chunked := "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n"
	c.send("POST /svc/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "got 11" {
		t.Fatalf("chunked body: %d %q", resp.StatusCode, body)
	}
	<-heads
	if m := <-seen; string(m.wire) != chunked || m.trailer.Get("X-Checksum") != "42" || m.hdr.Get("Transfer-Encoding") != "chunked" {
		t.Fatalf("upstream got chunked body %q, trailers %v, head %v", m.wire, m.trailer, m.hdr)
	}

	// Expect: 100-continue: the caller waits for the go-ahead before it sends the body.
	c.send("POST /svc/d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("expected 100 Continue: %v %v", resp, err)
	}
	c.send("data")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "got 4" {
		t.Fatalf("after 100 Continue: %d %q", resp.StatusCode, body)
	}
	<-heads
	if m := <-seen; string(m.body) != "data" || m.hasLine("Expect") {
		t.Fatalf("upstream got %q %v (the proxy answers the expectation itself)", m.body, m.lines)
	}

	// An HTTP/1.0 caller's expectation is ignored (RFC 9110, 10.1.1): no 100 for it.
	c10 := h.dial()
	c10.send("POST /svc/e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\ndata")
	if resp, body := c10.answer("POST"); resp.StatusCode != 200 || body != "got 4" {
		t.Fatalf("HTTP/1.0 with Expect: %d %q", resp.StatusCode, body)
	}
	<-heads
	<-seen

	// A caller that goes away in the middle of its body: 499 with DC.
	c2 := h.dial()
	c2.send("POST /svc/gone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	recv(t, heads, "the head upstream")
	c2.Close()
	if rec := h.record("/svc/gone"); rec.Status != 499 || rec.ResponseFlags != FlagDownstream {
		t.Fatalf("caller gone mid-body: %d %q", rec.Status, rec.ResponseFlags)
	}

	// A malformed chunk from the caller: 400, and the connection closes.
	c3 := h.dial()
	c3.send("POST /svc/badchunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
	if resp, _ := c3.answer("POST"); resp.StatusCode != 400 || !resp.Close {
		t.Fatalf("malformed chunk: %d close %v", resp.StatusCode, resp.Close)
	}
	c3.closed()
}

func TestEngine_Answers(t *testing.T) {
	h := newHarness(t)
	upHit := make(chan *rawMsg, 100)
	keep := newRawUpstream(t, keepAlive(upHit, func(m *rawMsg) string {
		switch strings.TrimPrefix(m.target(), "/") {
		case "head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" // no body: the request was HEAD
		case "204":
			return "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
		case "304":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 99\r\n\r\n"
		case "chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
				"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"
		case "early":
			return "HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + ok("after hints")
		}
		return ok("plain")
	}))
	h.set(nil, instance("svc", keep.addr()))

	c := h.dial()
	c.send("HEAD /svc/head HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.answer("HEAD"); resp.StatusCode != 200 || resp.ContentLength != 5 || body != "" {
		t.Fatalf("HEAD: %d %d %q", resp.StatusCode, resp.ContentLength, body)
	}
	for _, path := range []string{"/svc/204", "/svc/304"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := c.answer("GET"); strconv.Itoa(resp.StatusCode) != path[5:] || body != "" || resp.Close {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
	// Nothing was relayed past those answers: the next one on the connection is whole.
	c.send("GET /svc/plain HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "plain" {
		t.Fatalf("after HEAD, 204 and 304: %d %q", resp.StatusCode, body)
	}
	if got := keep.accepts.Load(); got != 1 {
		t.Fatalf("the upstream connection must carry them all: %d connections", got)
	}

	// A chunked answer passes through as it came, extensions and trailers included.
	c.send("GET /svc/chunked HTTP/1.1\r\nHost: x\r\n\r\n")
	m, err := readRawHead(c.br)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.readBody(c.br); err != nil {
		t.Fatal(err)
	}
	if m.first != "HTTP/1.1 200 OK" || string(m.wire) != "5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n" {
		t.Fatalf("chunked answer: %q %v %q", m.first, m.lines, m.wire)
	}

	// 1xx answers other than 100 go on to an HTTP/1.1 caller, never to an HTTP/1.0 one.
	c.send("GET /svc/early HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 103 || resp.Header.Get("Link") != "</style.css>" {
		t.Fatalf("103 to an HTTP/1.1 caller: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "after hints" {
		t.Fatalf("after 103: %d %q", resp.StatusCode, body)
	}
	c10 := h.dial()
	c10.send("GET /svc/early HTTP/1.0\r\n\r\n")
	if resp, body := c10.answer("GET"); resp.StatusCode != 200 || body != "after hints" {
		t.Fatalf("an HTTP/1.0 caller got %d %q", resp.StatusCode, body)
	}

	// A close-delimited answer (HTTP/1.0 upstream, no length) reaches the caller whole, and the
	// caller's connection closes after it.
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	eof := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
		for i := 0; i < len(big); i += 64 << 10 {
			io.WriteString(c, big[i:i+64<<10])
		}
	})
	h.set(nil, instance("svc", keep.addr()), instance("eof", eof.addr()))
	c = h.dial()
	c.send("GET /eof/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != big || !resp.Close {
		t.Fatalf("close-delimited answer: %d, %d bytes, close %v", resp.StatusCode, len(body), resp.Close)
	}
	c.closed()
	if rec := h.record("/eof/x"); rec.Status != 200 || rec.ResponseFlags != "-" {
		t.Fatalf("close-delimited answer's record: %d %q", rec.Status, rec.ResponseFlags)
	}

	// An upstream that cuts its answer mid-body: the caller's connection closes; the record says UC.
	cut := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		m, err := readRawRequest(br)
		if err != nil {
			return
		}
		if strings.HasSuffix(m.target(), "/chunked") {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\npartial")
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
	})
	h.set(nil, instance("cut", cut.addr()))
	for _, path := range []string{"/cut/length", "/cut/chunked"} {
		c = h.dial()
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if data, err := io.ReadAll(resp.Body); resp.StatusCode != 200 || err == nil {
			t.Fatalf("%s: a cut answer must end in an error, got %d %q", path, resp.StatusCode, data)
		}
		c.closed()
		if rec := h.record(path); rec.Status != 200 || rec.ResponseFlags != FlagReset {
			t.Fatalf("%s: record %d %q", path, rec.Status, rec.ResponseFlags)
		}
	}
}

func TestEngine_LargeStreamedAnswers(t *testing.T) {
	h := newHarness(t)
	const size = 8 << 20
	piece := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB
	want := sha256.Sum256(bytes.Repeat(piece, size/len(piece)))
	u := newUpstream(t, "u")
	u.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/length" {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		for range size / len(piece) {
			if _, err := w.Write(piece); err != nil {
				return
			}
		}
	}
	h.set(nil, instance("svc", u.addr()))
	for _, path := range []string{"/svc/length", "/svc/chunked"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		hash := sha256.New()
		n, err := io.Copy(hash, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || [32]byte(hash.Sum(nil)) != want {
			t.Fatalf("%s: %d bytes (%v), intact %v", path, n, err, [32]byte(hash.Sum(nil)) == want)
		}
	}
}

func TestEngine_HopByHop(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	u := newRawUpstream(t, keepAlive(seen, func(m *rawMsg) string {
		if strings.HasSuffix(m.target(), "/framing") {
			return "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
		}
		return "HTTP/1.1 200 OK\r\nConnection: X-Secret, Keep-Alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Authenticate: Basic\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-End-To-End: e\r\nContent-Length: 2\r\n\r\nok"
	}))
	h.set(nil, instance("svc", u.addr()))
	c := h.dial()
	c.send("GET /svc/a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Custom, x-other\r\nKeep-Alive: timeout=5\r\nX-Custom: 1\r\nX-Other: 2\r\n" +
		"TE: gzip\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nX-Keep: yes\r\n\r\n")
	resp, body := c.answer("GET")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	m := <-seen
	for _, name := range []string{"Connection", "Keep-Alive", "X-Custom", "X-Other", "TE", "Upgrade", "Proxy-Connection", "Proxy-Authorization"} {
		if m.hasLine(name) {
			t.Errorf("hop-by-hop request header %s forwarded: %v", name, m.lines)
		}
	}
	if m.hdr.Get("X-Keep") != "yes" {
		t.Errorf("X-Keep lost: %v", m.lines)
	}
	// "TE: trailers" alone is passed on, on purpose: chunked trailers go through the proxy as they
	// came, so the caller's acceptance of them holds upstream (gRPC needs it).
	c.send("GET /svc/te HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
	c.answer("GET")
	if m := <-seen; m.hdr.Get("TE") != "trailers" {
		t.Errorf("TE: trailers not passed on: %v", m.lines)
	}
	for _, name := range []string{"X-Secret", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Upgrade"} {
		if resp.Header.Get(name) != "" {
			t.Errorf("hop-by-hop answer header %s forwarded: %v", name, resp.Header)
		}
	}
	if resp.Header.Get("X-End-To-End") != "e" || resp.Header.Get("Connection") != "" {
		t.Errorf("answer headers %v", resp.Header)
	}

	// Connection cannot take the framing away: a body goes on with its length, both ways (else
	// the upstream would read the body as the next request: request smuggling).
	c.send("POST /svc/framing HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello")
	resp, body = c.answer("POST")
	if resp.StatusCode != 200 || body != "hello" || resp.ContentLength != 5 {
		t.Fatalf("answer with Connection: Content-Length: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if m := <-seen; m.hdr.Get("Content-Length") != "5" || string(m.body) != "hello" {
		t.Fatalf("request with Connection: Content-Length reached the upstream as %v %q", m.lines, m.body)
	}
	c.send("GET /svc/after HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.answer("GET"); resp.StatusCode != 200 {
		t.Fatalf("the next request: %d", resp.StatusCode)
	}
	if m := <-seen; m.target() != "/after" {
		t.Fatalf("the upstream's next request is %q", m.first)
	}
}

func TestEngine_RequestHeaders(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	u := newRawUpstream(t, keepAlive(seen, echoTarget))
	h.set(nil, instance("svc", u.addr()))
	c := h.dial()
	get := func(req string) (*http.Response, *rawMsg) {
		t.Helper()
		c.send(req)
		resp, _ := c.answer("GET")
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d", req, resp.StatusCode)
		}
		return resp, recv(t, seen, "the request upstream")
	}

	// X-Forwarded-For: the caller's address appended to what came, lines joined.
	_, m := get("GET /svc/a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n\r\n")
	if xff := m.hdr.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1" {
		t.Fatalf("X-Forwarded-For: %q", xff)
	}
	_, m = get("GET /svc/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if xff := m.hdr.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Fatalf("X-Forwarded-For: %q", xff)
	}

	// X-Request-Id: made when absent, passed on when present.
	id := m.hdr.Get("X-Request-Id")
	if len(id) != 36 || h.record("/svc/a").RequestID != id {
		t.Fatalf("generated X-Request-Id %q", id)
	}
	_, m = get("GET /svc/b HTTP/1.1\r\nHost: x\r\nX-Request-Id: mine\r\n\r\n")
	if ids := m.hdr.Values("X-Request-Id"); len(ids) != 1 || ids[0] != "mine" {
		t.Fatalf("X-Request-Id passed on as %q", ids)
	}

	// Host is kept for an IP endpoint; the query string is kept as it came.
	_, m = get("GET /svc/p/q?x=1&y=%20z&&w HTTP/1.1\r\nHost: example.com:1234\r\n\r\n")
	if hosts := m.hdr.Values("Host"); len(hosts) != 1 || hosts[0] != "example.com:1234" || m.target() != "/p/q?x=1&y=%20z&&w" {
		t.Fatalf("Host %q, target %q", hosts, m.target())
	}
	// An HTTP/1.0 caller without a Host: the instance's address.
	c10 := h.dial()
	c10.send("GET /svc/nohost HTTP/1.0\r\n\r\n")
	c10.answer("GET")
	if m := recv(t, seen, "the request upstream"); m.hdr.Get("Host") != u.addr() {
		t.Fatalf("Host for a caller without one: %q", m.hdr.Get("Host"))
	}

	// Routing by the Host header: the path is untouched.
	_, m = get("GET /x/y?z HTTP/1.1\r\nHost: svc:6379\r\n\r\n")
	if m.target() != "/x/y?z" {
		t.Fatalf("Host routing: %q", m.target())
	}
	// Absolute form: the path and query of the target, routed as any other.
	_, m = get("GET " + h.url + "/svc/abs?q=1 HTTP/1.1\r\nHost: " + strings.TrimPrefix(h.url, "http://") + "\r\n\r\n")
	if m.target() != "/abs?q=1" {
		t.Fatalf("absolute form by path: %q", m.target())
	}
	_, m = get("GET http://svc/x?y HTTP/1.1\r\nHost: svc\r\n\r\n")
	if m.target() != "/x?y" {
		t.Fatalf("absolute form to a destination: %q", m.target())
	}
	// The target's authority is the request's host (RFC 9112, 3.2.2), whatever Host says.
	_, m = get("GET http://svc:80/x?y HTTP/1.1\r\nHost: elsewhere\r\n\r\n")
	if m.target() != "/x?y" || m.hdr.Get("Host") != "svc:80" {
		t.Fatalf("absolute form with another Host: %q, Host %q", m.target(), m.hdr.Get("Host"))
	}
	_, m = get("GET http://svc?y HTTP/1.1\r\nHost: svc\r\n\r\n")
	if m.target() != "/?y" {
		t.Fatalf("absolute form without a path: %q", m.target())
	}
}

func TestEngine_MalformedRequests(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, echoTarget))
	h.set(nil, instance("svc", u.addr()))
	cases := []struct {
		name, req string
		status    int
	}{
		{"garbage request line", "HELLO\r\n\r\n", 400},
		{"no version", "GET /svc/x\r\nHost: x\r\n\r\n", 400},
		{"space in target", "GET /svc/a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"control byte in target", "GET /svc/a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"target not a path", "GET svc/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bad method", "G(T /svc/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"header without colon", "GET /svc/x HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400},
		{"space before colon", "GET /svc/x HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", 400},
		{"obs-fold", "GET /svc/x HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n", 400},
		{"bare CR in a value", "GET /svc/x HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-B: 2\r\n\r\n", 400},
		{"NUL in a value", "GET /svc/x HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", 400},
		{"TE and CL", "POST /svc/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
		{"CL and TE", "POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", "POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"signed Content-Length", "POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400},
		{"Content-Length list", "POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello", 400},
		{"unsupported Transfer-Encoding", "POST /svc/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
		{"coding before chunked", "POST /svc/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405},
		{"HTTP/2.0", "GET /svc/x HTTP/2.0\r\nHost: x\r\n\r\n", 400},
		{"HTTP/0.9-ish", "GET /svc/x HTTP/0.9\r\n\r\n", 400},
		{"lower-case version", "GET /svc/x http/1.1\r\nHost: x\r\n\r\n", 400},
		{"head over 64 KiB", "GET /svc/x HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := h.dial()
			c.t = t
			go io.WriteString(c, tc.req) // a large head may not be read whole
			resp, body := c.answer("GET")
			if resp.StatusCode != tc.status || !resp.Close {
				t.Fatalf("%d %q (close %v), want %d and close", resp.StatusCode, body, resp.Close, tc.status)
			}
			c.closed()
		})
	}
	if got := u.accepts.Load(); got != 0 {
		t.Fatalf("a malformed request reached the upstream (%d connections)", got)
	}
	// A well-formed one still goes through.
	if r := h.get("/svc/x"); r.code != 200 || r.body != "GET /x" {
		t.Fatalf("%d %q", r.code, r.body)
	}
}

func TestEngine_MalformedAnswers(t *testing.T) {
	h := newHarness(t)
	answers := map[string]string{
		"good":       ok("good"),
		"status":     "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"short":      "HTTP/1.1 20\r\n\r\n",
		"longcode":   "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
		"lowcode":    "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
		"garbage":    "hello there\r\n\r\n",
		"version":    "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"nocolon":    "HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n",
		"framing":    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"length":     "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
		"bare-cr":    "HTTP/1.1 200 OK\r\nX-A: 1\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n",
		"reason-cr":  "HTTP/1.1 200 OK\rSet-Cookie: x=1\r\nContent-Length: 0\r\n\r\n",
		"upgrade101": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"huge":       "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 70<<10) + "\r\nContent-Length: 0\r\n\r\n",
	}
	u := newRawUpstream(t, keepAlive(nil, func(m *rawMsg) string { return answers[strings.TrimPrefix(m.target(), "/")] }))
	h.set(nil, instance("svc", u.addr()))
	for name := range answers {
		if name == "good" {
			continue
		}
		t.Run(name, func(t *testing.T) {
			// A good exchange first, so that the malformed answer comes on a reused connection:
			// it must not be taken for a stale connection and sent again.
			if r := h.get("/svc/good"); r.code != 200 {
				t.Fatalf("good: %d", r.code)
			}
			before := u.accepts.Load()
			c := h.dial()
			c.t = t
			c.send("GET /svc/" + name + " HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := c.answer("GET")
			want := "upstream sent a malformed answer"
			switch name {
			case "upgrade101":
				want = "101 Switching Protocols to a request that asked for no upgrade"
			case "huge":
				want = "answer head larger than 64 KiB"
			}
			if resp.StatusCode != 502 || !strings.Contains(body, want) || resp.Header.Get(ResponseFlagsHeader) != FlagProtocolError {
				t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
			}
			hh := *h
			hh.t = t
			if rec := hh.record("/svc/" + name); rec.Status != 502 || rec.Attempts != 1 || rec.ResponseFlags != FlagProtocolError {
				t.Fatalf("record: %d, %d attempts, %q", rec.Status, rec.Attempts, rec.ResponseFlags)
			}
			if got := u.accepts.Load(); got != before {
				t.Fatalf("the request was sent again on a new connection (%d -> %d)", before, got)
			}
		})
	}
}

func TestEngine_UpstreamReuse(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, func(m *rawMsg) string { return ok(m.target() + string(m.body)) }))
	h.set(nil, instance("svc", u.addr()))
	for i := range 5 {
		if r := h.get("/svc/" + strconv.Itoa(i)); r.code != 200 {
			t.Fatal(r.code)
		}
	}
	c := h.dial()
	for i := range 5 {
		c.send("POST /svc/c" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb")
		if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "/c"+strconv.Itoa(i)+"b" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	if got := u.accepts.Load(); got != 1 {
		t.Fatalf("sequential requests used %d upstream connections, want 1", got)
	}
}

// resilience.max_requests_per_connection: a connection to the instance carries that many requests,
// then a new one is made.
func TestEngine_MaxRequestsPerConnection(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, func(m *rawMsg) string { return ok(m.target()) }))
	h.set([]api.Rule{{ID: "r", Destination: "svc", Priority: 1, Route: &api.Route{Backends: []api.Backend{
		{Tags: []string{"v1"}, Resilience: &api.Resilience{MaxRequestsPerConnection: 2}}}}}},
		instance("svc", u.addr(), "v1"))
	for i := range 6 {
		if r := h.get("/svc/" + strconv.Itoa(i)); r.code != 200 {
			t.Fatal(r.code)
		}
	}
	if got := u.accepts.Load(); got != 3 {
		t.Fatalf("6 requests with max_requests_per_connection 2 used %d upstream connections, want 3", got)
	}
}

func TestEngine_StaleConnectionRetried(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 100)
	var closedIdle atomic.Int64
	hold := make(chan struct{}) // closed to let held requests be answered
	// Each connection serves one request, keeps alive by its answer, and then closes while idle.
	u := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		m, err := readRawRequest(br)
		if err != nil {
			return
		}
		seen <- m
		if strings.HasPrefix(m.target(), "/held") {
			select {
			case <-hold:
			case <-u.done:
				return
			}
		}
		io.WriteString(c, ok(m.target()+" "+string(m.body)))
		c.Close()
		closedIdle.Add(1)
	})
	h.set(nil, instance("svc", u.addr()))
	if r := h.get("/svc/first"); r.code != 200 {
		t.Fatal(r.code)
	}
	<-seen
	waitUntil(t, "the upstream to close its idle connection", func() bool { return closedIdle.Load() == 1 })

	if r := h.get("/svc/again"); r.code != 200 || r.body != "/again " {
		t.Fatalf("GET on a connection the upstream closed: %d %q", r.code, r.body)
	}
	<-seen
	if rec := h.record("/svc/again"); rec.Attempts != 1 || rec.ResponseFlags != "-" || rec.Status != 200 {
		t.Fatalf("record: %d attempts, %q", rec.Attempts, rec.ResponseFlags)
	}
	waitUntil(t, "the upstream to close its idle connection", func() bool { return closedIdle.Load() == 2 })
	// The head and the small body in one write: the body is in hand, and can be sent again.
	pc := h.dial()
	pc.send("POST /svc/post HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nsmall body")
	if resp, body := pc.answer("POST"); resp.StatusCode != 200 || body != "/post small body" {
		t.Fatalf("small POST on a connection the upstream closed: %d %q", resp.StatusCode, body)
	}
	<-seen
	if rec := h.record("/svc/post"); rec.Attempts != 1 || rec.ResponseFlags != "-" {
		t.Fatalf("record: %d attempts, %q", rec.Attempts, rec.ResponseFlags)
	}
	if got := u.accepts.Load(); got != 3 {
		t.Fatalf("%d upstream connections, want 3", got)
	}

	// Several pooled connections, all closed by the upstream (it restarted, say): the request is
	// sent again on a new connection, not on the next stale one.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := h.get("/svc/held" + strconv.Itoa(i)); r.code != 200 {
				t.Errorf("held request: %d", r.code)
			}
		}()
	}
	for range 3 {
		recv(t, seen, "a held request")
	}
	close(hold)
	wg.Wait()
	waitUntil(t, "the upstream to close its idle connections", func() bool { return closedIdle.Load() == 6 })
	if r := h.get("/svc/afterall"); r.code != 200 || r.body != "/afterall " {
		t.Fatalf("GET with a pool of stale connections: %d %q", r.code, r.body)
	}
	<-seen
	if rec := h.record("/svc/afterall"); rec.Attempts != 1 || rec.ResponseFlags != "-" {
		t.Fatalf("record: %d attempts, %q", rec.Attempts, rec.ResponseFlags)
	}

	// An instance that sent part of an answer on a reused connection and then closed it had the
	// request: it is not sent again (a POST would be done twice).
	waitUntil(t, "the upstream to close its idle connection", func() bool { return closedIdle.Load() == 7 })
	cut := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		m, err := readRawRequest(br)
		if err != nil {
			return
		}
		if m.target() == "/first" {
			io.WriteString(c, ok("first"))
			m, err = readRawRequest(br)
			if err != nil {
				return
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Le") // and close
	})
	h.set(nil, instance("svc", u.addr()), instance("cut", cut.addr()))
	if r := h.get("/cut/first"); r.code != 200 {
		t.Fatal(r.code)
	}
	pc = h.dial()
	pc.send("POST /cut/again HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
	if resp, _ := pc.answer("POST"); resp.StatusCode != 502 || cut.accepts.Load() != 1 {
		t.Fatalf("a partial answer on a reused connection: %d, %d connections", resp.StatusCode, cut.accepts.Load())
	}

	// A streamed (chunked) body cannot be sent again: no retry, 502.
	accepts := u.accepts.Load()
	c := h.dial()
	c.send("POST /svc/streamed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	resp, body := c.answer("POST")
	if resp.StatusCode != 502 || resp.Header.Get(ResponseFlagsHeader) != FlagReset {
		t.Fatalf("streamed body on a stale connection: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := u.accepts.Load(); got != accepts {
		t.Fatalf("a streamed body was sent again (%d -> %d connections)", accepts, got)
	}
	if rec := h.record("/svc/streamed"); rec.Attempts != 1 || rec.Status != 502 {
		t.Fatalf("record: %d attempts, %d", rec.Attempts, rec.Status)
	}
}

func TestEngine_Upgrade(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	slow101 := make(chan struct{})
	u := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		m, err := readRawHead(br)
		if err != nil {
			return
		}
		seen <- m
		if strings.HasSuffix(m.target(), "/slow") {
			select {
			case <-slow101:
			case <-u.done:
				return
			}
		}
		if strings.HasSuffix(m.target(), "/refused") {
			io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno")
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: abc\r\n\r\nhi!")
		if strings.HasSuffix(m.target(), "/upclose") {
			return // the upstream ends the tunnel
		}
		// Echo what comes (bytes already buffered first) until the caller's side ends.
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			c.Write(b)
			br.Discard(n)
		}
		io.Copy(c, br)
	})
	h.set(nil, instance("svc", u.addr()))
	upgrade := func(c *conn, path, early string) {
		t.Helper()
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n" + early)
		m := recv(t, seen, "the upgrade request upstream")
		if m.hdr.Get("Upgrade") != "websocket" || !strings.EqualFold(m.hdr.Get("Connection"), "Upgrade") || m.hdr.Get("Sec-WebSocket-Key") != "k" {
			t.Fatalf("upgrade request upstream: %v", m.lines)
		}
	}
	read := func(c *conn, want string) {
		t.Helper()
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(c.br, buf); err != nil || string(buf) != want {
			t.Fatalf("read %q (%v), want %q", buf, err, want)
		}
	}

	c := h.dial()
	upgrade(c, "/svc/ws", "")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get("Connection") != "Upgrade" ||
		resp.Header.Get("Sec-WebSocket-Accept") != "abc" {
		t.Fatalf("101: %v %v", resp, err)
	}
	read(c, "hi!")
	for _, msg := range []string{"ping", strings.Repeat("x", 1<<20), "pong"} {
		go io.WriteString(c, msg) // the echo comes back while it is sent
		read(c, msg)
	}
	c.Conn.(*net.TCPConn).CloseWrite() // the caller ends: the upstream sees the end, and closes
	c.closed()
	if rec := h.record("/svc/ws"); rec.Status != 101 {
		t.Fatalf("record: %d", rec.Status)
	}

	// The upstream ends the tunnel: the caller's connection closes.
	c = h.dial()
	upgrade(c, "/svc/upclose", "")
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("101: %v %v", resp, err)
	}
	read(c, "hi!")
	c.closed()

	// Bytes the caller sends right after its request, before the 101 arrives (after the proxy
	// began watching the connection), reach the upstream.
	c = h.dial()
	upgrade(c, "/svc/slow", "")
	time.Sleep(2 * watchAfter) // the proxy watches the caller by now (the outcome must be the same without)
	c.send("early")
	close(slow101)
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("101: %v %v", resp, err)
	}
	read(c, "hi!early")

	// An upgrade the upstream refuses is an ordinary answer.
	c = h.dial()
	upgrade(c, "/svc/refused", "")
	if resp, body := c.answer("GET"); resp.StatusCode != 400 || body != "no" {
		t.Fatalf("refused upgrade: %d %q", resp.StatusCode, body)
	}
}

// newServedHarness is newHarness with the Server at hand.
func newServedHarness(t *testing.T) (*harness, *Server) {
	ring := records.NewRing(10000)
	reg := prometheus.NewRegistry()
	p := New(Config{Self: self, Ring: ring, Metrics: NewMetrics(reg, "productpage")})
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
	return &harness{t: t, proxy: p, url: "http://" + ln.Addr().String(), ring: ring, reg: reg, pool: table.NewPool()}, srv
}

func TestEngine_Shutdown(t *testing.T) {
	h, srv := newServedHarness(t)
	seen := make(chan *rawMsg, 10)
	release := make(chan struct{})
	u := newRawUpstream(t, keepAlive(seen, func(m *rawMsg) string {
		if strings.HasSuffix(m.target(), "/slow") {
			select {
			case <-release:
			case <-time.After(waitFor):
			}
		}
		return echoTarget(m)
	}))
	h.set(nil, instance("svc", u.addr()))

	idle := h.dial()
	idle.send("GET /svc/a HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := idle.answer("GET"); resp.StatusCode != 200 || resp.Close {
		t.Fatal(resp.StatusCode)
	}
	busy := h.dial()
	busy.send("GET /svc/slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-seen
	<-seen

	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	idle.closed() // the idle connection is closed at once
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in progress", err)
	default:
	}
	close(release)
	resp, body := busy.answer("GET")
	if resp.StatusCode != 200 || body != "GET /slow" || !resp.Close {
		t.Fatalf("the request in progress: %d %q, close %v", resp.StatusCode, body, resp.Close)
	}
	busy.closed()
	if err := recv(t, shut, "Shutdown to return"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// A proxy-made answer during Shutdown says Connection: close too.
func TestEngine_ShutdownOwnAnswer(t *testing.T) {
	h, srv := newServedHarness(t)
	started := make(chan struct{}, 1)
	h.proxy.cfg.OnTraceStart = func(*records.Record) { started <- struct{}{} }
	h.set([]api.Rule{{ID: "slow-abort", Destination: "svc", Actions: []api.Action{
		{Action: "trace", LogKey: "k", LogValue: "v"}, {Action: "delay", Duration: 0.3}, {Action: "abort", ReturnCode: n(418)}}}},
		instance("svc", deadAddr(t)))
	c := h.dial()
	c.send("GET /svc/x HTTP/1.1\r\nHost: x\r\n\r\n")
	recv(t, started, "the request to start")
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	waitUntil(t, "Shutdown to begin", srv.closing.Load)
	if resp, _ := c.answer("GET"); resp.StatusCode != 418 || !resp.Close {
		t.Fatalf("answer during Shutdown: %d close %v", resp.StatusCode, resp.Close)
	}
	c.closed()
	if err := recv(t, shut, "Shutdown to return"); err != nil {
		t.Fatal(err)
	}
}

func TestEngine_CloseEndsStuckRequests(t *testing.T) {
	h, srv := newServedHarness(t)
	seen := make(chan *rawMsg, 10)
	never := make(chan struct{}) // closed only when the test ends
	u := newRawUpstream(t, keepAlive(seen, func(m *rawMsg) string {
		if strings.HasSuffix(m.target(), "/stuck") {
			<-never
		}
		return echoTarget(m)
	}))
	t.Cleanup(func() { close(never) }) // runs before the upstream's cleanup
	h.set(nil, instance("svc", u.addr()))
	// The stuck request goes on a reused upstream connection: its breaking by Close must not be
	// taken for a stale connection (sent again, and waited for again).
	c := h.dial()
	c.send("GET /svc/first HTTP/1.1\r\nHost: x\r\n\r\n")
	c.answer("GET")
	<-seen
	c.send("GET /svc/stuck HTTP/1.1\r\nHost: x\r\n\r\n")
	<-seen
	start := time.Now()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	recv(t, closed, "Close to return")
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %v", took)
	}
	c.closed()
	if got := u.accepts.Load(); got != 1 {
		t.Fatalf("the request was sent again after Close (%d connections)", got)
	}
}

func TestEngine_CallerGone(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	upClosed := make(chan string, 10)
	u := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		for {
			m, err := readRawRequest(br)
			if err != nil {
				return
			}
			seen <- m
			if strings.HasPrefix(m.target(), "/slow") {
				// Wait for the proxy to close the connection.
				_, err := br.ReadByte()
				if err != nil {
					upClosed <- m.target()
				}
				return
			}
			io.WriteString(c, ok("fine"))
		}
	})
	h.set(nil, instance("svc", u.addr()))
	for _, tc := range []struct{ path, req string }{
		{"/svc/slow/get", "GET /svc/slow/get HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"/svc/slow/post", "POST /svc/slow/post HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"/svc/slow/chunked", "POST /svc/slow/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	} {
		c := h.dial()
		c.send(tc.req)
		recv(t, seen, "the request upstream")
		c.Close()
		if rec := h.record(tc.path); rec.Status != 499 || rec.ResponseFlags != FlagDownstream {
			t.Fatalf("%s: record %d %q", tc.path, rec.Status, rec.ResponseFlags)
		}
		if got := recv(t, upClosed, "the upstream connection to close"); got != strings.TrimPrefix(tc.path, "/svc") {
			t.Fatalf("closed %s", got)
		}
	}
	accepts := u.accepts.Load()
	if r := h.get("/svc/next"); r.code != 200 || r.body != "fine" {
		t.Fatalf("%d %q", r.code, r.body)
	}
	<-seen
	if got := u.accepts.Load(); got != accepts+1 {
		t.Fatalf("the next request must use a new upstream connection: %d -> %d", accepts, got)
	}

	// During a delay fault.
	h.set([]api.Rule{{ID: "delay", Destination: "svc", Actions: []api.Action{{Action: "delay", Duration: 5}}}}, instance("svc", u.addr()))
	c := h.dial()
	c.send("GET /svc/delayed HTTP/1.1\r\nHost: x\r\n\r\n")
	c.Close()
	rec := h.record("/svc/delayed")
	if rec.Status != 499 || rec.ResponseFlags != FlagFaultDelay+","+FlagDownstream || rec.RequestTime >= 5000 {
		t.Fatalf("caller gone during a delay: %d %q after %v ms", rec.Status, rec.ResponseFlags, rec.RequestTime)
	}
}

// A body that arrives while a delay fault holds the request reaches the upstream whole.
func TestEngine_DelayWithBodyArriving(t *testing.T) {
	h := newHarness(t)
	seen := make(chan *rawMsg, 10)
	u := newRawUpstream(t, keepAlive(seen, func(m *rawMsg) string { return ok("got " + string(m.body)) }))
	started := make(chan struct{}, 10)
	h.proxy.cfg.OnTraceStart = func(*records.Record) { started <- struct{}{} }
	h.set([]api.Rule{{ID: "delay", Destination: "svc", Actions: []api.Action{
		{Action: "trace", LogKey: "k", LogValue: "v"}, {Action: "delay", Duration: 0.2}}}}, instance("svc", u.addr()))
	c := h.dial()
	c.send("POST /svc/x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
	recv(t, started, "the request to start")
	c.send("hello world")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "got hello world" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	// And a request pipelined behind it is answered next.
	c.send("POST /svc/y HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
	recv(t, started, "the request to start")
	c.send("abcGET /svc/z HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != "got abc" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp, body := c.answer("GET"); resp.StatusCode != 200 || body != "got " {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if rec := h.record("/svc/x"); rec.Status != 200 || rec.ResponseFlags != FlagFaultDelay {
		t.Fatalf("record %d %q", rec.Status, rec.ResponseFlags)
	}
}

// Answers the proxy makes without forwarding say Connection: close when the caller's body is left
// unread, and an unforwarded Expect: 100-continue request gets no 100.
func TestEngine_OwnAnswersAndUnreadBodies(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, echoTarget))
	h.set([]api.Rule{{ID: "abort", Destination: "svc", Match: &api.Match{Headers: map[string]string{"X-Abort": "yes"}},
		Actions: []api.Action{{Action: "abort", ReturnCode: n(418)}}}}, instance("svc", u.addr()))

	// A small body in hand is skipped; the connection carries on.
	c := h.dial()
	c.send("POST /nothing/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if resp, _ := c.answer("POST"); resp.StatusCode != 404 || resp.Close {
		t.Fatalf("404 with a small body: %d close %v", resp.StatusCode, resp.Close)
	}
	c.send("POST /svc/x HTTP/1.1\r\nHost: x\r\nX-Abort: yes\r\nContent-Length: 5\r\n\r\nhello")
	if resp, _ := c.answer("POST"); resp.StatusCode != 418 || resp.Close {
		t.Fatalf("abort with a small body: %d close %v", resp.StatusCode, resp.Close)
	}
	// A chunked body is not read: the answer says the connection closes.
	c.send("POST /nothing/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp, _ := c.answer("POST"); resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("404 with a chunked body: %d close %v", resp.StatusCode, resp.Close)
	}
	c.closed()
	// A large body too, while the caller is still sending it.
	c = h.dial()
	go io.WriteString(c, "POST /svc/x HTTP/1.1\r\nHost: x\r\nX-Abort: yes\r\nContent-Length: 1048576\r\n\r\n"+strings.Repeat("z", 1<<20))
	if resp, _ := c.answer("POST"); resp.StatusCode != 418 || !resp.Close {
		t.Fatalf("abort with a large body: %d close %v", resp.StatusCode, resp.Close)
	}
	c.closed()
	// Expect: 100-continue to no destination: no 100, the answer, and the body is never sent.
	c = h.dial()
	c.send("POST /nothing/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	if resp, _ := c.answer("POST"); resp.StatusCode != 404 || !resp.Close {
		t.Fatalf("Expect: 100-continue to no destination: %d close %v", resp.StatusCode, resp.Close)
	}
	c.closed()
}

func TestEngine_Timeouts(t *testing.T) {
	h := newHarness(t)
	// An upstream that reads requests and never answers.
	hold := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) { io.Copy(io.Discard, br) })
	for _, timeout := range []float64{0.2, 0.01} {
		h.set(timeoutRule("svc", timeout, 0), instance("svc", hold.addr(), "v1"))
		path := fmt.Sprintf("/svc/hang%v", timeout)
		start := time.Now()
		c := h.dial()
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := c.answer("GET")
		if resp.StatusCode != 504 || resp.Header.Get(ResponseFlagsHeader) != FlagTimeout || time.Since(start) > 3*time.Second {
			t.Fatalf("timeout %vs: %d %q after %v", timeout, resp.StatusCode, body, time.Since(start))
		}
		if rec := h.record(path); rec.Status != 504 || rec.ResponseFlags != FlagTimeout {
			t.Fatalf("record: %d %q", rec.Status, rec.ResponseFlags)
		}
	}

	// The route's timeout passing in the middle of an answer's body: the caller's connection
	// closes (the answer is incomplete), and the record says UT.
	stall := newRawUpstream(t, func(u *rawUpstream, c net.Conn, br *bufio.Reader) {
		if _, err := readRawRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		<-u.done
	})
	h.set(timeoutRule("stall", 0.3, 0), instance("stall", stall.addr(), "v1"))
	c := h.dial()
	c.send("GET /stall/x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if data, err := io.ReadAll(resp.Body); err == nil || string(data) != "partial" {
		t.Fatalf("an answer cut by the timeout must end in an error: %q %v", data, err)
	}
	c.closed()
	if rec := h.record("/stall/x"); rec.Status != 200 || rec.ResponseFlags != FlagTimeout {
		t.Fatalf("record: %d %q", rec.Status, rec.ResponseFlags)
	}

	// A large body streamed slowly, within the deadline but well past the 20 ms the proxy waits
	// before watching the caller, is not cut, either way.
	const size, pieces = 1 << 20, 16
	slow := newUpstream(t, "slow")
	slow.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			data, err := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %d %v", len(data), err)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		for range pieces {
			time.Sleep(15 * time.Millisecond)
			w.Write(bytes.Repeat([]byte("s"), size/pieces))
			w.(http.Flusher).Flush()
		}
	}
	h.set(timeoutRule("slow", 5, 0), instance("slow", slow.addr(), "v1"))
	if r := h.get("/slow/down"); r.code != 200 || len(r.body) != size || r.err != nil {
		t.Fatalf("slow answer: %d, %d bytes, %v", r.code, len(r.body), r.err)
	}
	c = h.dial()
	c.send("POST /slow/up HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n")
	for range pieces {
		time.Sleep(15 * time.Millisecond)
		c.send(strings.Repeat("u", size/pieces))
	}
	if resp, body := c.answer("POST"); resp.StatusCode != 200 || body != fmt.Sprintf("got %d <nil>", size) {
		t.Fatalf("slow upload: %d %q", resp.StatusCode, body)
	}
}

// A 5xx answer after which no retry fits in the route's timeout is relayed as it is, not turned
// into a 504 the upstream never caused.
func TestEngine_LastFailedAnswerRelayed(t *testing.T) {
	h := newHarness(t)
	u := newRawUpstream(t, keepAlive(nil, func(m *rawMsg) string {
		return "HTTP/1.1 503 Service Unavailable\r\nX-From: upstream\r\nContent-Length: 4\r\n\r\nbusy"
	}))
	h.set(timeoutRule("svc", 0.3, 100), instance("svc", u.addr(), "v1"))
	r := h.get("/svc/x")
	if r.code != 503 || r.body != "busy" || r.header.Get("X-From") != "upstream" {
		t.Fatalf("%d %q %v", r.code, r.body, r.header)
	}
	if rec := h.record("/svc/x"); rec.Attempts < 2 || rec.Status != 503 {
		t.Fatalf("record: %d attempts, %d", rec.Attempts, rec.Status)
	}
}

// The wait between attempts stays within bounds however many retries a route allows (up to 100):
// 25 ms << 39 overflows.
func TestEngine_BackoffBounded(t *testing.T) {
	far := time.Now().Add(time.Hour)
	for attempt := range 101 {
		for range 20 {
			if d, ok := backoffWait(attempt, far); !ok || d < 12*time.Millisecond || d > 250*time.Millisecond {
				t.Fatalf("attempt %d: wait %v (%v)", attempt, d, ok)
			}
		}
	}
	if _, ok := backoffWait(0, time.Now().Add(5*time.Millisecond)); ok {
		t.Fatal("a wait past the deadline must be refused")
	}
}
