package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var syscallEMFILE = syscall.EMFILE

// Server serves the proxy on a listener: one goroutine per caller connection, which reads each
// request, routes and forwards it, and answers, in turn (HTTP/1.1 keep-alive; pipelined requests
// are answered in order).
type Server struct {
	p       *Proxy
	closing atomic.Bool // Shutdown or Close was called
	closed  atomic.Bool // Close was called: requests in progress end, none is sent again

	mu    sync.Mutex
	ln    net.Listener
	conns map[*clientConn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns a server of p.
func NewServer(p *Proxy) *Server {
	return &Server{p: p, conns: map[*clientConn]struct{}{}}
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Serve accepts connections on ln until Shutdown or Close, and serves them.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	if s.closing.Load() {
		ln.Close()
		return ErrServerClosed
	}
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.p.log.Warn("proxy: accept failed; retrying", "error", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		cc := newClientConn(s, c)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go cc.serve()
	}
}

// Shutdown stops accepting, closes idle connections, lets each request in progress finish (its
// answer says Connection: close), and returns when all are done or ctx ends (then with its error;
// Close ends the rest).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	// Idle connections are closed now and again until all are done: one that was between its
	// check of closing and its wait for a next request when it was looked at is caught next time.
	wait := 5 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			s.closeIdle()
			t.Reset(wait)
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
}

// closeIdle ends the wait for a next request of every idle connection.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cc := range s.conns {
		if cc.state.Load() == stateIdle {
			_ = cc.c.SetReadDeadline(aLongTimeAgo)
		}
	}
}

// Close closes the listener and every connection, ending the requests in progress.
func (s *Server) Close() error {
	s.closed.Store(true) // before the connections are closed: see forward
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for cc := range s.conns {
		cc.c.Close()
		if uc := cc.up.Load(); uc != nil {
			uc.close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

const (
	stateIdle = iota
	stateActive
)

// clientConn is a caller's connection.
type clientConn struct {
	srv      *Server
	c        net.Conn
	r        connReader
	w        connWriter
	h        head    // the request being served
	req      request // its state
	resp     head    // the answer being relayed
	out      []byte
	remoteIP string
	armed    time.Time // the read deadline set on c (zero: none)
	state    atomic.Int32
	up       atomic.Pointer[upConn] // the upstream connection in use, for Close

	// The watch of the connection while a request waits (see startWatch).
	gone      atomic.Bool
	watchDone chan struct{}
	extra     []byte // what the watch read: body bytes, the next request, tunnel data
	scratch   []byte

	linger bool // input may be left unread when the connection closes (see lingerClose)
}

var clientConnPool sync.Pool

func newClientConn(s *Server, c net.Conn) *clientConn {
	cc, _ := clientConnPool.Get().(*clientConn)
	if cc == nil {
		cc = &clientConn{}
	}
	cc.srv, cc.c = s, c
	cc.r.reset(c)
	cc.w.reset(c)
	cc.remoteIP = ""
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		cc.remoteIP = a.IP.String()
	} else if host, _, err := net.SplitHostPort(c.RemoteAddr().String()); err == nil {
		cc.remoteIP = host
	}
	cc.extra = cc.extra[:0]
	cc.armed = time.Time{}
	cc.linger = false
	cc.state.Store(stateIdle)
	return cc
}

// shut reports whether the server was closed (Close): the request in progress ends.
func (cc *clientConn) shut() bool { return cc.srv != nil && cc.srv.closed.Load() }

func (cc *clientConn) serve() {
	s, p := cc.srv, cc.srv.p
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("proxy: panic serving a connection", "panic", v, "remote", cc.c.RemoteAddr().String())
		}
		if cc.linger {
			cc.lingerClose()
		}
		cc.c.Close()
		s.mu.Lock()
		delete(s.conns, cc)
		s.mu.Unlock()
		s.wg.Done()
		cc.c, cc.srv = nil, nil
		cc.r.reset(nil) // no reference to the closed connection stays in the pool
		cc.w.reset(nil)
		if cap(cc.r.buf) == readBufSize { // a grown buffer goes with the connection
			clientConnPool.Put(cc)
		}
	}()
	for {
		cc.state.Store(stateIdle)
		// The idle timeout is armed again only once a quarter of it has passed: a timer change per
		// request is measurable, and an idle connection closes between 3/4 and all of it anyway.
		if cc.armed.IsZero() || time.Until(cc.armed) < p.cfg.IdleTimeout*3/4 {
			cc.armed = time.Now().Add(p.cfg.IdleTimeout)
			_ = cc.c.SetReadDeadline(cc.armed)
		}
		// After arming: a Shutdown that saw this connection idle before the deadline was set here
		// (and so had its own deadline replaced) is seen now.
		if s.closing.Load() {
			return
		}
		raw, err := cc.r.readHead()
		if err != nil {
			if errors.Is(err, errHeadTooLarge) {
				cc.reject(431, "request head larger than 64 KiB")
			} else if cc.r.buffered() > 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				cc.reject(400, "incomplete request head")
			}
			return
		}
		cc.state.Store(stateActive)
		if err := cc.h.parseRequest(raw); err != nil {
			cc.reject(400, err.Error())
			return
		}
		if string(cc.h.method) == "CONNECT" {
			cc.reject(405, "CONNECT is not proxied: call http://localhost:<port>/<service>/<path>")
			return
		}
		if !p.serve(cc, &cc.h) {
			return
		}
	}
}

// reject answers a request that cannot be served, and the connection closes.
func (cc *clientConn) reject(status int, msg string) {
	cc.linger = true // the caller may still be sending what cannot be read
	w := &cc.w
	w.writeString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(len(msg)+1) + "\r\n\r\n" + msg + "\n")
	_ = w.flush()
}

// lingerClose ends a connection that may have input left unread (a body not read, a head too
// large) without losing the answer: closing a socket with unread input resets it, and the reset
// can make the caller's system drop the answer before the caller read it. So the proxy's side is
// shut first, then what comes is read and dropped, for a short while, until the caller closes.
func (cc *clientConn) lingerClose() {
	tc, ok := cc.c.(*net.TCPConn)
	if !ok || tc.CloseWrite() != nil {
		return
	}
	_ = tc.SetReadDeadline(time.Now().Add(lingerTime))
	for n := 0; n < lingerBytes; {
		m, err := tc.Read(cc.r.buf)
		n += m
		if err != nil {
			return
		}
	}
}

const (
	lingerTime  = 500 * time.Millisecond
	lingerBytes = 4 << 20
)

// startWatch watches the connection for the caller going away while its request waits (for an
// answer, or a delay): a goroutine reads from it; an error or end of stream sets gone and calls
// wake. Bytes that arrive meanwhile (the body during a delay, a pipelined request, data for an
// upgraded connection) are put in the read buffer when the watch stops. It reports whether a
// watch started: none is needed when more of the caller's data is already buffered, which shows
// it is there.
func (cc *clientConn) startWatch(wake func()) bool {
	if cc.r.buffered() > 0 {
		return false
	}
	cc.gone.Store(false)
	cc.watchDone = make(chan struct{})
	if cc.scratch == nil {
		cc.scratch = make([]byte, 1024)
	}
	_ = cc.c.SetReadDeadline(time.Time{})
	cc.armed = time.Time{}
	go func(done chan struct{}) {
		defer close(done)
		n, err := cc.c.Read(cc.scratch)
		if n > 0 {
			cc.extra = append(cc.extra, cc.scratch[:n]...)
			return
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			cc.gone.Store(true)
			wake()
		}
	}(cc.watchDone)
	return true
}

// stopWatch ends the watch and reports whether the caller went away. What the watch read goes to
// the read buffer, after what is there (nothing there moves), and the idle deadline applies again.
func (cc *clientConn) stopWatch() bool {
	_ = cc.c.SetReadDeadline(aLongTimeAgo)
	<-cc.watchDone
	if len(cc.extra) > 0 {
		cc.r.inject(cc.extra)
		cc.extra = cc.extra[:0]
	}
	if cc.gone.Load() {
		return true
	}
	cc.armed = time.Now().Add(cc.srv.p.cfg.IdleTimeout)
	_ = cc.c.SetReadDeadline(cc.armed)
	return false
}

var aLongTimeAgo = time.Unix(1, 0)

// sleep waits d, and reports whether the caller went away meanwhile (the wait then ends early).
func (cc *clientConn) sleep(d time.Duration) (gone bool) {
	woke := make(chan struct{}, 1)
	watching := cc.startWatch(func() { woke <- struct{}{} })
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-woke:
	}
	if watching {
		return cc.stopWatch()
	}
	return false
}
