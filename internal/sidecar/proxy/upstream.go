package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a8fabric/a8/internal/sidecar/table"
)

// upConn is a connection to an instance, pooled for keep-alive.
type upConn struct {
	c      net.Conn
	r      connReader
	w      connWriter
	pool   *upstreamPool
	idleAt time.Time
	reused bool // it carried a request before the current one
	served int  // answers it carried
}

func (uc *upConn) close() { _ = uc.c.Close() }

// upstreamPool keeps an instance's idle connections, the most recently used on top.
type upstreamPool struct {
	mu   sync.Mutex
	idle []*upConn
	dead atomic.Bool // dropped by sweep: its instance left the table
}

func (p *Proxy) pool(ep *table.Endpoint) *upstreamPool {
	if v, ok := ep.State.Conns.Load().(*upstreamPool); ok && !v.dead.Load() {
		return v
	}
	v, _ := p.pools.LoadOrStore(ep.State, &upstreamPool{})
	pl := v.(*upstreamPool)
	ep.State.Conns.Store(pl)
	return pl
}

// getConn returns an idle connection to ep, or dials one (by the deadline at the latest); always
// a new one when fresh (the idle one tried last was found closed: the rest may be too).
func (p *Proxy) getConn(ep *table.Endpoint, deadline time.Time, fresh bool) (*upConn, error) {
	pl := p.pool(ep)
	now := time.Now()
	pl.mu.Lock()
	for n := len(pl.idle); n > 0 && !fresh; n = len(pl.idle) {
		uc := pl.idle[n-1]
		pl.idle[n-1] = nil
		pl.idle = pl.idle[:n-1]
		if now.Sub(uc.idleAt) < p.cfg.UpstreamIdleTimeout {
			pl.mu.Unlock()
			uc.reused = true
			return uc, nil
		}
		uc.close()
	}
	pl.mu.Unlock()
	d := p.dialer
	if d.Deadline.IsZero() || deadline.Before(d.Deadline) {
		d.Deadline = deadline
	}
	c, err := d.Dial("tcp", ep.Addr)
	if err != nil {
		return nil, err
	}
	if ep.Scheme == "https" {
		tc := tls.Client(c, &tls.Config{ServerName: ep.Host, MinVersion: tls.VersionTLS12})
		_ = tc.SetDeadline(time.Now().Add(p.cfg.ConnectTimeout + 4*time.Second))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	uc := &upConn{c: c, pool: pl}
	uc.r.reset(c)
	uc.w.reset(c)
	return uc, nil
}

// putConn returns a connection whose exchange ended cleanly to its pool.
//
// limit is the cluster's max_requests_per_connection (0: none): a connection that has carried that
// many requests is closed rather than kept.
func (p *Proxy) putConn(uc *upConn, limit int) {
	uc.served++
	// An instance that sent more than its answer cannot be trusted with another request.
	if uc.r.buffered() > 0 || (limit > 0 && uc.served >= limit) {
		uc.close()
		return
	}
	uc.idleAt = time.Now()
	pl := uc.pool
	pl.mu.Lock()
	if len(pl.idle) < p.cfg.MaxIdleConnsPerInstance && !pl.dead.Load() {
		pl.idle = append(pl.idle, uc)
		uc = nil
	}
	pl.mu.Unlock()
	if uc != nil {
		uc.close()
	}
}

// sweep closes connections idle past UpstreamIdleTimeout and drops pools of instances the table
// no longer has.
func (p *Proxy) sweep() {
	live := map[*table.EndpointState]bool{}
	for _, c := range p.Table().Clusters() {
		for _, ep := range c.Endpoints {
			live[ep.State] = true
		}
	}
	now := time.Now()
	p.pools.Range(func(k, v any) bool {
		pl := v.(*upstreamPool)
		pl.mu.Lock()
		keep := pl.idle[:0]
		for _, uc := range pl.idle {
			if live[k.(*table.EndpointState)] && now.Sub(uc.idleAt) < p.cfg.UpstreamIdleTimeout {
				keep = append(keep, uc)
			} else {
				uc.close()
			}
		}
		clear(pl.idle[len(keep):])
		pl.idle = keep
		empty := len(keep) == 0
		pl.mu.Unlock()
		if empty && !live[k.(*table.EndpointState)] {
			pl.dead.Store(true)
			p.pools.Delete(k)
		}
		return true
	})
}

// Close closes every idle upstream connection and stops the proxy's background work.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() { close(p.done) })
	p.pools.Range(func(k, v any) bool {
		pl := v.(*upstreamPool)
		pl.mu.Lock()
		for _, uc := range pl.idle {
			uc.close()
		}
		pl.idle = nil
		pl.mu.Unlock()
		p.pools.Delete(k)
		return true
	})
}

func (p *Proxy) janitor() {
	t := time.NewTicker(p.cfg.UpstreamIdleTimeout / 2)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.sweep()
		}
	}
}

func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// failure kinds of an attempt.
const (
	failConnect  = iota // no connection: nothing was sent
	failReset           // the connection broke before an answer
	failTimeout         // the route's timeout passed
	failCaller          // the caller went away
	failProtocol        // the answer was not valid HTTP/1.x
)

var errCallerGone = errors.New("the caller went away")

func classify(err error) int {
	var bh *badHead
	switch {
	case errors.Is(err, errCallerGone):
		return failCaller
	case errors.Is(err, os.ErrDeadlineExceeded):
		return failTimeout
	case errors.As(err, &bh):
		return failProtocol
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failConnect
	}
	return failReset
}

// noContext is the context of Begin when no connection limit applies (it is not consulted then).
var noContext = context.Background()

// forward sends the request to an endpoint of c (first, if not nil), retrying up to retries times
// (after a failed connection always, as nothing of the request was sent; after a broken connection,
// a malformed or a 5xx answer only for idempotent requests without a body), all within timeout,
// and streams the answer back. A kept-alive connection found closed by the instance is replaced by
// a new one once, without counting as an attempt, when the request can be sent again (its body, if
// any, is in hand).
func (p *Proxy) forward(q *request, c *table.Cluster, first *table.Endpoint, path string, timeout time.Duration, retries int) {
	cc := q.cc
	deadline := time.Now().Add(timeout)
	q.deadline = deadline
	q.takeBody() // a body that arrived during a delay
	canRetry := idempotent(q.rec.Method) && !q.hasBody()
	host := q.host
	cc.out = p.outboundHead(cc.out[:0], q, path)
	q.h = nil // from here on the head's bytes may be overwritten by the body

	var avoid, staleEp *table.Endpoint
	var lastErr string
	for attempt := 0; ; attempt++ {
		stale := staleEp != nil // a kept-alive connection was found closed: tried again once, not counted
		ep, err := first, error(nil)
		switch {
		case stale:
			ep, staleEp = staleEp, nil
		case ep == nil || attempt > 0:
			ep, err = c.PickEndpoint(avoid)
		}
		if err != nil {
			p.dropBody(q)
			if attempt == 0 {
				p.fail(q, 503, FlagNoHealthy, noEndpoint(c))
			} else {
				q.flag(FlagRetryExhausted)
				p.fail(q, 503, FlagNoHealthy, lastErr)
			}
			return
		}
		ctx := noContext
		if c.Limits.MaxConnections > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
			defer cancel()
		}
		end, err := c.Begin(ctx, ep)
		if err != nil {
			p.dropBody(q)
			if errors.Is(err, table.ErrOverflow) {
				p.fail(q, 503, FlagOverflow, "circuit breaker open: "+c.Key+" has reached its limits (max_connections "+
					strconv.Itoa(c.Limits.MaxConnections)+", max_pending_requests "+strconv.Itoa(c.Limits.MaxPendingRequests)+
					", max_requests "+strconv.Itoa(c.Limits.MaxRequests)+")")
			} else {
				p.fail(q, 504, FlagTimeout, "upstream timeout: no connection to "+c.Key+" became free within "+timeout.String())
			}
			return
		}
		if !stale {
			q.attempts++
		}
		q.rec.UpstreamHost = ep.Addr
		if len(c.Tags) == 0 {
			q.rec.Dst = ep.Key // the default route: name the version that answered
		}
		uc, err := p.getConn(ep, deadline, stale)
		if err != nil {
			end(true)
			if !time.Now().Before(deadline) {
				p.dropBody(q)
				p.fail(q, 504, FlagTimeout, "upstream timeout: "+c.Key+" did not answer within "+timeout.String()+" ("+strconv.Itoa(q.attempts)+" attempts)")
				return
			}
			lastErr = "upstream connect error: " + errText(err) + " (" + strconv.Itoa(q.attempts) + " attempts)"
			if attempt < retries && p.backoff(attempt, deadline) {
				avoid = ep
				continue
			}
			if attempt > 0 {
				q.flag(FlagRetryExhausted)
			}
			p.dropBody(q)
			p.fail(q, 503, FlagConnectFailure, lastErr)
			return
		}
		cc.up.Store(uc)
		if cc.shut() { // Close came after the connection was made, and may have missed it
			uc.close()
		}
		sent := time.Now()
		bodyConsumed, err := p.send(q, uc, ep, host)
		var resp *head
		if err == nil {
			resp, err = p.awaitAnswer(q, uc, deadline)
		}
		if err != nil {
			uc.close()
			cc.up.Store(nil)
			var ce *copyError
			if errors.As(err, &ce) && ce.read { // the caller's body: it stopped arriving, or is malformed
				end(false)
				if errors.Is(err, errBadChunk) || errors.Is(err, errLineTooLong) {
					p.fail(q, 400, FlagDownstreamError, "malformed request body: "+err.Error())
					return
				}
				q.flag(FlagDownstream)
				q.rec.Status = 499
				q.keep = false
				return
			}
			kind := classify(err)
			if cc.shut() { // Close ended the exchange: it is not tried again
				kind = failCaller
			}
			if kind == failReset && uc.reused && !stale && !bodyConsumed && uc.r.buffered() == 0 {
				// A kept-alive connection the instance had closed (nothing of an answer came: the
				// request was not being answered): send again on a new one.
				end(false)
				staleEp, attempt = ep, attempt-1
				continue
			}
			end(kind != failCaller)
			switch kind {
			case failCaller:
				q.flag(FlagDownstream)
				q.rec.Status = 499
				q.keep = false
				return
			case failTimeout:
				p.dropBody(q)
				p.fail(q, 504, FlagTimeout, "upstream timeout: "+c.Key+" did not answer within "+timeout.String()+" ("+strconv.Itoa(q.attempts)+" attempts)")
				return
			}
			flag := FlagReset
			if kind == failProtocol {
				flag = FlagProtocolError
				lastErr = "upstream sent a malformed answer: " + ep.Addr + ": " + err.Error() + " (" + strconv.Itoa(q.attempts) + " attempts)"
			} else {
				lastErr = "upstream reset: " + ep.Addr + " closed the connection before answering: " + errText(err) + " (" + strconv.Itoa(q.attempts) + " attempts)"
			}
			if !bodyConsumed && canRetry && attempt < retries && p.backoff(attempt, deadline) {
				avoid = ep
				continue
			}
			if attempt > 0 {
				q.flag(FlagRetryExhausted)
			}
			p.dropBody(q)
			p.fail(q, 502, flag, lastErr)
			return
		}
		q.rec.UpstreamResponseTime = float64(time.Since(sent).Microseconds()) / 1000
		if resp.status >= 500 && attempt < retries && canRetry {
			// Tried again after a pause, if one fits before the deadline; if not, this answer is the
			// answer.
			if wait, ok := backoffWait(attempt, deadline); ok {
				lastErr = "upstream answered " + strconv.Itoa(resp.status) + " (" + strconv.Itoa(q.attempts) + " attempts)"
				if p.drainAnswer(q, uc, resp) {
					p.putConn(uc, c.Limits.MaxRequestsPerConnection)
				} else {
					uc.close()
				}
				cc.up.Store(nil)
				end(true)
				time.Sleep(wait)
				avoid = ep
				continue
			}
		}
		reusable, ok := p.relay(q, uc, resp)
		cc.up.Store(nil)
		if reusable {
			p.putConn(uc, c.Limits.MaxRequestsPerConnection)
		} else {
			uc.close()
		}
		end(resp.status >= 500 || !ok)
		return
	}
}

// outboundHead appends the request line and the header lines to send upstream: the caller's,
// without the hop-by-hop ones and Host (written per instance), with X-Forwarded-For extended and
// X-Request-Id set.
func (p *Proxy) outboundHead(b []byte, q *request, path string) []byte {
	h := q.h
	b = append(b, h.method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, q.query...)
	b = append(b, " HTTP/1.1\r\n"...)
	xff := false
	for i := range h.lines {
		l := &h.lines[i]
		switch {
		case l.hop && !(h.upgrade && equalFold(l.name, "Upgrade")):
			continue
		case equalFold(l.name, "Host"):
			continue
		case equalFold(l.name, "X-Forwarded-For"):
			xff = true
			continue
		}
		b = append(b, l.name...)
		b = append(b, ": "...)
		b = append(b, l.value...)
		b = append(b, "\r\n"...)
	}
	// One X-Forwarded-For line: the caller's, joined, then the caller's address.
	b = append(b, "X-Forwarded-For: "...)
	if xff {
		for i := range h.lines {
			if l := &h.lines[i]; !l.hop && equalFold(l.name, "X-Forwarded-For") {
				b = append(b, l.value...)
				b = append(b, ", "...)
			}
		}
	}
	b = append(b, q.cc.remoteIP...)
	b = append(b, "\r\n"...)
	if q.genID {
		b = append(b, "X-Request-Id: "...)
		b = append(b, q.requestID...)
		b = append(b, "\r\n"...)
	}
	if h.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	if h.upgrade {
		b = append(b, "Connection: Upgrade\r\n"...)
	}
	return b
}

// send writes the request to uc: the head, the Host line for ep, and the body. It reports whether
// body bytes were consumed from the caller's connection (the request cannot be sent again then).
// A body that does not arrive whole, or cannot be sent whole, leaves the rest of it unread: the
// caller's connection then closes.
func (p *Proxy) send(q *request, uc *upConn, ep *table.Endpoint, host []byte) (consumed bool, err error) {
	cc := q.cc
	w := &uc.w
	if err := w.write(cc.out); err != nil {
		return false, err
	}
	w.writeString("Host: ")
	switch {
	case ep.Named:
		w.writeString(ep.Host)
	case len(host) > 0:
		_ = w.write(host)
	default:
		w.writeString(ep.Addr)
	}
	w.writeString("\r\n\r\n")
	if !q.pending {
		if q.body != nil {
			if err := w.write(q.body); err != nil {
				return false, err
			}
		}
		return false, w.flush()
	}
	// The body arrives as it is sent: both sides get deadlines, cleared afterwards.
	if q.waiting {
		// The caller waits for a go-ahead before it sends the body; the proxy gives it once it has
		// a connection to send it on.
		q.waiting = false
		cc.w.writeString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := cc.w.flush(); err != nil {
			q.keep = false
			return false, &copyError{read: true, err: err}
		}
	}
	q.pending = false
	_ = uc.c.SetWriteDeadline(q.deadline)
	defer uc.c.SetWriteDeadline(time.Time{})
	cc.armed = time.Now().Add(p.cfg.IdleTimeout)
	_ = cc.c.SetReadDeadline(cc.armed)
	if q.chunked {
		err = cc.r.copyChunked(w, true)
	} else {
		err = cc.r.copyN(w, q.clen)
	}
	if err != nil {
		q.keep = false
		cc.linger = true
		return true, err
	}
	return true, w.flush()
}

// watchAfter is how long an exchange waits for an answer before it also watches the caller's
// connection, so that a caller that gives up is noticed (a fast exchange pays nothing for it).
const watchAfter = 20 * time.Millisecond

// awaitAnswer reads the answer's head from uc; 1xx heads other than 101 are passed on (103) to an
// HTTP/1.1 caller or dropped (100, and all to an HTTP/1.0 caller). While it waits it notices the
// caller going away.
func (p *Proxy) awaitAnswer(q *request, uc *upConn, deadline time.Time) (*head, error) {
	cc := q.cc
	watching, widened := false, false
	if early := time.Now().Add(watchAfter); early.Before(deadline) {
		_ = uc.c.SetReadDeadline(early)
	} else {
		_ = uc.c.SetReadDeadline(deadline)
		widened = true
	}
	fail := func(err error) (*head, error) {
		if watching && cc.stopWatch() {
			return nil, errCallerGone
		}
		return nil, err
	}
	resp := &cc.resp
	for {
		raw, err := uc.r.readHead()
		if err != nil {
			if !widened && errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(deadline) {
				widened = true
				// The full deadline first: the watch's wake, which may come at once, must not be
				// overwritten by it.
				_ = uc.c.SetReadDeadline(deadline)
				watching = cc.startWatch(func() { _ = uc.c.SetReadDeadline(time.Now()) })
				continue
			}
			switch {
			case errors.Is(err, io.EOF):
				err = io.ErrUnexpectedEOF
			case errors.Is(err, errHeadTooLarge):
				err = malformed("answer head larger than 64 KiB")
			}
			return fail(err)
		}
		if err := resp.parseResponse(raw); err != nil {
			return fail(err)
		}
		switch {
		case resp.status == 100:
			continue
		case resp.status == 101 && !q.upgrade:
			return fail(malformed("101 Switching Protocols to a request that asked for no upgrade"))
		case resp.status >= 102 && resp.status < 200:
			if q.minor == 0 {
				continue
			}
			w := &cc.w
			_ = w.write(raw)
			if err := w.flush(); err != nil {
				if watching {
					cc.stopWatch()
				}
				return nil, errCallerGone
			}
			continue
		}
		if watching {
			if cc.stopWatch() {
				return nil, errCallerGone
			}
			_ = uc.c.SetReadDeadline(deadline) // the watch's wake may have moved it
		} else if !widened && (resp.chunked || resp.contentLength < 0 || int64(uc.r.buffered()) < resp.contentLength) {
			_ = uc.c.SetReadDeadline(deadline) // the body takes more reads: the full deadline applies
		}
		return resp, nil
	}
}

// drainAnswer reads a small answer's body so that its connection can be used again; it reports
// whether it did.
func (p *Proxy) drainAnswer(q *request, uc *upConn, resp *head) bool {
	if q.head || resp.status == 204 || resp.status == 304 {
		return !resp.close
	}
	if resp.chunked || resp.contentLength < 0 || resp.contentLength > 64<<10 {
		return false
	}
	return uc.r.discardN(resp.contentLength) == nil && !resp.close
}

// relay passes the answer on to the caller. It reports whether uc may serve another request, and
// whether the whole answer got through from the instance.
func (p *Proxy) relay(q *request, uc *upConn, resp *head) (reusable, ok bool) {
	cc := q.cc
	w := &cc.w
	if cc.srv != nil && cc.srv.closing.Load() {
		q.keep = false
	}
	noBody := q.head || resp.status == 204 || resp.status == 304 || resp.status == 101
	chunked := !noBody && resp.chunked
	toEOF := !noBody && !resp.chunked && resp.contentLength < 0
	if toEOF || (chunked && q.minor == 0) {
		q.keep = false // the end of the body is the end of the connection
	}
	w.writeString("HTTP/1.1 ")
	w.writeString(strconv.Itoa(resp.status))
	w.writeString(" ")
	_ = w.write(resp.reason)
	w.writeString("\r\n")
	for i := range resp.lines {
		l := &resp.lines[i]
		if l.hop && !(resp.status == 101 && equalFold(l.name, "Upgrade")) {
			continue
		}
		_ = w.write(l.name)
		w.writeString(": ")
		_ = w.write(l.value)
		w.writeString("\r\n")
	}
	switch {
	case resp.status == 101:
		w.writeString("Connection: Upgrade\r\n")
	case chunked && q.minor > 0:
		w.writeString("Transfer-Encoding: chunked\r\n")
	}
	if resp.status != 101 {
		if !q.keep {
			w.writeString("Connection: close\r\n")
		} else if q.minor == 0 {
			w.writeString("Connection: keep-alive\r\n")
		}
	}
	w.writeString("\r\n")
	q.rec.Status = resp.status
	q.answered = true
	respClose := resp.close
	var err error
	switch {
	case resp.status == 101:
		q.keep = false
		if err := w.flush(); err != nil {
			q.flag(FlagDownstream)
			return false, true
		}
		p.tunnel(cc, uc)
		return false, true
	case noBody:
	case chunked:
		err = uc.r.copyChunked(w, q.minor > 0)
	case resp.contentLength >= 0:
		err = uc.r.copyN(w, resp.contentLength)
	default:
		err = uc.r.copyToEOF(w)
		respClose = true
	}
	if err != nil {
		var ce *copyError
		if errors.As(err, &ce) && ce.read {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				q.flag(FlagTimeout) // the route's timeout passed in the middle of the body
			} else {
				q.flag(FlagReset)
			}
			p.log.Debug("upstream answer cut off", "cluster", q.rec.Dst, "upstream", q.rec.UpstreamHost, "error", err)
			q.keep = false // the caller learns that the answer is incomplete by the connection closing
			return false, false
		}
		q.flag(FlagDownstream) // the caller left; the instance did nothing wrong
		q.keep = false
		return false, true
	}
	return !respClose, true
}

// tunnel joins the caller's and the instance's connections after a 101 Switching Protocols, until
// either side closes.
func (p *Proxy) tunnel(cc *clientConn, uc *upConn) {
	_ = cc.c.SetDeadline(time.Time{})
	_ = uc.c.SetDeadline(time.Time{})
	if n := cc.r.buffered(); n > 0 {
		if _, err := uc.c.Write(cc.r.buf[cc.r.r:cc.r.w]); err != nil {
			return
		}
		cc.r.r = cc.r.w
	}
	if n := uc.r.buffered(); n > 0 {
		if _, err := cc.c.Write(uc.r.buf[uc.r.r:uc.r.w]); err != nil {
			return
		}
		uc.r.r = uc.r.w
	}
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(uc.c, cc.c)
		if tc, ok := uc.c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		close(done)
	}()
	_, _ = io.Copy(cc.c, uc.c)
	if tc, ok := cc.c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	uc.close()
	_ = cc.c.SetReadDeadline(time.Now())
	<-done
}

func errText(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && op.Addr != nil {
		return op.Op + " " + op.Addr.String() + ": " + op.Err.Error()
	}
	return err.Error()
}

func noEndpoint(c *table.Cluster) string {
	if len(c.Endpoints) == 0 {
		return "no healthy instance: no instance of " + c.Key + " is registered"
	}
	return "no healthy instance: all " + strconv.Itoa(len(c.Endpoints)) + " instances of " + c.Key + " are ejected after repeated failures"
}

// backoff waits before retry number attempt+1 (25 ms, doubling, at most 250 ms, jittered) and reports
// whether there is still time.
func (p *Proxy) backoff(attempt int, deadline time.Time) bool {
	d, ok := backoffWait(attempt, deadline)
	if ok {
		time.Sleep(d)
	}
	return ok
}

// backoffWait returns the wait before retry number attempt+1, and whether it ends before deadline.
func backoffWait(attempt int, deadline time.Time) (time.Duration, bool) {
	d := min(25*time.Millisecond<<min(attempt, 8), 250*time.Millisecond)
	d = d/2 + rand.N(d/2+1)
	return d, !time.Now().Add(d).After(deadline)
}
