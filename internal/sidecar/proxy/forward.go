package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/a8fabric/a8/internal/sidecar/table"
)

// Hop-by-hop headers, which concern one connection and are not forwarded (RFC 9110, 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		if name == "Te" && h.Get("Te") == "trailers" {
			continue // the one TE value a proxy forwards
		}
		h.Del(name)
	}
}

// trackedBody passes the request body upstream and remembers whether any of it was read: a body
// not yet read can go to another instance on a retry. Close does not close the inbound body, which
// the server owns, so that a retry can still send it.
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	return n, err
}

func (b *trackedBody) Close() error { return nil }

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// failure kinds of an attempt.
const (
	failConnect = iota // no connection: nothing was sent
	failReset          // the connection broke before an answer
	failTimeout        // the route's timeout passed
	failCaller         // the caller went away
)

func classify(err error, r *http.Request, ctx context.Context) int {
	switch {
	case r.Context().Err() != nil:
		return failCaller
	case ctx.Err() != nil:
		return failTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return failConnect
	}
	return failReset
}

// forward sends the request to an endpoint of c (first, if not nil), retrying up to retries times
// (after a failed connection always, as nothing of the request was sent; after a broken connection
// or a 5xx answer only for idempotent requests without a body, since a body being read by one attempt
// cannot be sent again by another), all within timeout, and streams the answer back.
func (p *Proxy) forward(q *request, c *table.Cluster, first *table.Endpoint, path string, timeout time.Duration, retries int) {
	r := q.r
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	removeHopHeaders(r.Header)
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		r.Header.Set("X-Forwarded-For", ip)
	}
	var body *trackedBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = &trackedBody{rc: r.Body}
	}
	bodySent := func() bool { return body != nil && body.read.Load() }
	canRetry := idempotent(r.Method) && body == nil

	var avoid *table.Endpoint
	var lastErr string
	for attempt := 0; ; attempt++ {
		ep, err := first, error(nil)
		if ep == nil || attempt > 0 {
			ep, err = c.PickEndpoint(avoid)
		}
		if err != nil {
			if attempt == 0 {
				p.fail(q, http.StatusServiceUnavailable, FlagNoHealthy, noEndpoint(c))
			} else {
				q.flag(FlagRetryExhausted)
				p.fail(q, http.StatusServiceUnavailable, FlagNoHealthy, lastErr)
			}
			return
		}
		end, err := c.Begin(ctx, ep)
		if err != nil {
			switch {
			case errors.Is(err, table.ErrOverflow):
				p.fail(q, http.StatusServiceUnavailable, FlagOverflow, fmt.Sprintf("circuit breaker open: %s has reached its limits (max_connections %d, max_pending_requests %d, max_requests %d)",
					c.Key, c.Limits.MaxConnections, c.Limits.MaxPendingRequests, c.Limits.MaxRequests))
			case r.Context().Err() != nil:
				q.flag(FlagDownstream)
				q.rec.Status = 499
			default:
				p.fail(q, http.StatusGatewayTimeout, FlagTimeout, fmt.Sprintf("upstream timeout: no connection to %s became free within %v", c.Key, timeout))
			}
			return
		}
		q.attempts++
		q.rec.UpstreamHost = ep.Addr
		if len(c.Tags) == 0 {
			q.rec.Dst = ep.Key // the default route: name the version that answered
		}
		out := outbound(ctx, r, ep, path, body)
		sent := time.Now()
		resp, err := p.cfg.Transport.RoundTrip(out)
		if err != nil {
			kind := classify(err, r, ctx)
			end(kind == failConnect || kind == failReset || kind == failTimeout)
			switch kind {
			case failCaller:
				q.flag(FlagDownstream)
				q.rec.Status = 499
				return
			case failTimeout:
				p.fail(q, http.StatusGatewayTimeout, FlagTimeout, fmt.Sprintf("upstream timeout: %s did not answer within %v (%d attempts)", c.Key, timeout, q.attempts))
				return
			}
			retriable := !bodySent() && (kind == failConnect || canRetry)
			if kind == failConnect {
				lastErr = fmt.Sprintf("upstream connect error: %s (%d attempts)", errText(err), q.attempts)
			} else {
				lastErr = fmt.Sprintf("upstream reset: %s closed the connection before answering: %s (%d attempts)", ep.Addr, errText(err), q.attempts)
			}
			if retriable && attempt < retries && p.backoff(ctx, attempt) {
				avoid = ep
				continue
			}
			if attempt > 0 {
				q.flag(FlagRetryExhausted)
			}
			if kind == failConnect {
				p.fail(q, http.StatusServiceUnavailable, FlagConnectFailure, lastErr)
			} else {
				p.fail(q, http.StatusBadGateway, FlagReset, lastErr)
			}
			return
		}
		q.rec.UpstreamResponseTime = float64(time.Since(sent).Microseconds()) / 1000
		if resp.StatusCode >= 500 && attempt < retries && canRetry {
			lastErr = fmt.Sprintf("upstream answered %d (%d attempts)", resp.StatusCode, q.attempts)
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10) // let the connection be reused
			resp.Body.Close()
			end(true)
			if p.backoff(ctx, attempt) {
				avoid = ep
				continue
			}
			p.fail(q, http.StatusGatewayTimeout, FlagTimeout, fmt.Sprintf("upstream timeout: %s did not answer within %v (%d attempts)", c.Key, timeout, q.attempts))
			return
		}
		failed := true // until the answer got through; also if copying it panics to abort
		defer func() { end(resp.StatusCode >= 500 || failed) }()
		failed = !p.copyResponse(q, resp)
		return
	}
}

func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

func noEndpoint(c *table.Cluster) string {
	if len(c.Endpoints) == 0 {
		return fmt.Sprintf("no healthy instance: no instance of %s is registered", c.Key)
	}
	return fmt.Sprintf("no healthy instance: all %d instances of %s are ejected after repeated failures", len(c.Endpoints), c.Key)
}

// backoff waits before retry number attempt+1 (25 ms, doubling, at most 250 ms, jittered) and reports
// whether there is still time.
func (p *Proxy) backoff(ctx context.Context, attempt int) bool {
	d := min(25*time.Millisecond<<attempt, 250*time.Millisecond)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// outbound is the request to send to ep: the inbound request's method, headers and body, the path
// after routing, and, for an endpoint named by host name rather than address, that name as Host.
func outbound(ctx context.Context, r *http.Request, ep *table.Endpoint, path string, body *trackedBody) *http.Request {
	u := &url.URL{Scheme: ep.Scheme, Host: ep.Addr, Path: path, RawQuery: r.URL.RawQuery}
	if r.URL.RawPath != "" && strings.HasSuffix(r.URL.Path, path) { // keep the caller's escaping
		u.RawPath = escapedSuffix(r.URL.EscapedPath(), path)
	}
	host := r.Host
	if net.ParseIP(ep.Host) == nil {
		host = ep.Host
	}
	out := &http.Request{
		Method: r.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.Header, Host: host, ContentLength: r.ContentLength, Body: http.NoBody,
	}
	if body != nil {
		out.Body = body
	}
	return out.WithContext(ctx)
}

// escapedSuffix returns the end of escaped that decodes to path, or "" if it cannot tell.
func escapedSuffix(escaped, path string) string {
	for i := len(escaped) - 1; i >= 0; i-- {
		if escaped[i] == '/' {
			if dec, err := url.PathUnescape(escaped[i:]); err == nil && dec == path {
				return escaped[i:]
			}
		}
	}
	return ""
}

// copyResponse streams the answer to the caller and reports whether all of it got through.
func (p *Proxy) copyResponse(q *request, resp *http.Response) bool {
	defer resp.Body.Close()
	h := q.w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopHeaders(h)
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	q.w.WriteHeader(resp.StatusCode)
	q.rec.Status = resp.StatusCode

	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	stream := resp.ContentLength < 0 // no length: flush as it comes (server-sent events, long polls)
	rc := http.NewResponseController(q.w)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := q.w.Write(buf[:n]); werr != nil {
				q.flag(FlagDownstream)
				return true // the caller left; the instance did nothing wrong
			}
			if stream {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if q.r.Context().Err() != nil {
				q.flag(FlagDownstream)
				return true
			}
			q.flag(FlagReset)
			p.log.Debug("upstream answer cut off", "cluster", q.rec.Dst, "upstream", q.rec.UpstreamHost, "error", rerr)
			panic(http.ErrAbortHandler) // tell the caller the answer is incomplete by closing the connection
		}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return true
}
