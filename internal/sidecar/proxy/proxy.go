// Package proxy is the sidecar's HTTP proxy: it routes http://localhost:6379/<destination>/<path>
// (or a request whose Host is a destination) by the current routing table, applies the first
// matching action rule's faults, and forwards with the route's timeout and retries under the
// cluster's circuit breakers, streaming bodies both ways. Every request yields one record.
//
// It has its own HTTP/1.x engine (server.go, upstream.go, wire.go) rather than net/http's server
// and Transport: a request is read, routed, sent upstream and answered in its connection's own
// goroutine, heads are parsed in place and passed on line by line, and upstream connections are
// pooled per instance. That is most of what a sidecar costs per request.
package proxy

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// Response flags, Envoy's, in records and in the A8-Response-Flags header of answers the proxy makes.
const (
	FlagNoRoute         = "NR"  // no service of that name
	FlagNoHealthy       = "UH"  // no (healthy) instance to send to
	FlagConnectFailure  = "UF"  // the connection to the instance failed
	FlagOverflow        = "UO"  // a circuit breaker limit was reached
	FlagRetryExhausted  = "URX" // every attempt failed
	FlagTimeout         = "UT"  // the route's timeout passed
	FlagReset           = "UC"  // the instance closed the connection mid-answer
	FlagProtocolError   = "UPE" // the instance's answer was not valid HTTP/1.x
	FlagFaultAbort      = "FI"  // an abort action answered
	FlagFaultDelay      = "DI"  // a delay action delayed the request
	FlagDownstream      = "DC"  // the caller went away
	FlagDownstreamError = "DPE" // the caller's request body was not valid HTTP/1.x
	ResponseFlagsHeader = "A8-Response-Flags"
)

// Config configures a Proxy.
type Config struct {
	// Self is this sidecar's service: the source of every request it proxies.
	Self rules.Caller
	// Ring keeps recent records; Writer, if set, writes every record; OnRecord, if set, is given
	// every record once it is complete.
	Ring     *records.Ring
	Writer   *records.Writer
	OnRecord func(*records.Record)
	// OnTraceStart, if set, is told of a request as soon as a trace action applies to it, before it
	// is sent on (the record's ID, source, destination and trace are set; the rest is not yet):
	// the controller counts it in flight until its record arrives.
	OnTraceStart func(*records.Record)
	// Metrics, if set, counts requests.
	Metrics *Metrics
	// ConnectTimeout bounds a connection attempt to an instance (default 1 s, Envoy's).
	ConnectTimeout time.Duration
	// MaxIdleConnsPerInstance bounds the keep-alive connections kept open to one instance
	// (default 256).
	MaxIdleConnsPerInstance int
	// IdleTimeout closes a caller's connection left idle that long (default 120 s), and an
	// upstream connection idle in the pool that long (default 60 s, below common server keep-alive
	// timeouts, so that the pool rarely holds a connection the instance has closed).
	IdleTimeout, UpstreamIdleTimeout time.Duration
	Logger                           *slog.Logger
}

// Proxy routes requests by its current table. Swap in a new table with SetTable; requests never
// wait for it.
type Proxy struct {
	cfg     Config
	selfKey string
	idBase  string        // this process's prefix of record ids
	idSeq   atomic.Uint64 // the sequence after it
	table   atomic.Pointer[table.Table]
	log     *slog.Logger
	pools   sync.Map // *table.EndpointState -> *upstreamPool
	dialer  net.Dialer

	done      chan struct{} // closed by Close: stops the janitor
	closeOnce sync.Once
}

// New returns a proxy with an empty table.
func New(cfg Config) *Proxy {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = time.Second
	}
	if cfg.MaxIdleConnsPerInstance <= 0 {
		cfg.MaxIdleConnsPerInstance = 256
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 120 * time.Second
	}
	if cfg.UpstreamIdleTimeout <= 0 {
		cfg.UpstreamIdleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, selfKey: cfg.Self.Name + ":" + strings.Join(cfg.Self.Tags, ","), log: cfg.Logger,
		idBase: strconv.FormatUint(rand.Uint64()>>16, 36) + "-",
		dialer: net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}, done: make(chan struct{})}
	p.table.Store(&table.Table{})
	go p.janitor()
	if cfg.Metrics != nil {
		cfg.Metrics.table = p.Table
	}
	return p
}

// SetTable swaps in a new routing table; requests in flight finish on the one they started with.
func (p *Proxy) SetTable(t *table.Table) { p.table.Store(t) }

// Table returns the current routing table.
func (p *Proxy) Table() *table.Table { return p.table.Load() }

// request is one proxied request's state.
type request struct {
	cc       *clientConn
	h        *head // valid until the request's body is read
	rec      *records.Record
	flags    []string
	flagBuf  [4]string
	cluster  *table.Cluster
	attempts int

	// What the rest of the exchange needs of the head, kept apart from it.
	head      bool // a HEAD request: the answer has no body
	minor     int  // the caller's HTTP/1.minor
	upgrade   bool // the request asks for a protocol upgrade
	keep      bool // the caller's connection may serve another request
	answered  bool // the answer's head went to the caller
	requestID string
	genID     bool      // requestID was made here: send it upstream
	deadline  time.Time // the route's timeout, from when forwarding began

	// The request's host (its target's authority in absolute form, else its Host) and query: slices
	// of the head, valid while the read buffer keeps it (it does until the body is read).
	host, query []byte

	// The request body.
	clen    int64  // its Content-Length (-1: none)
	chunked bool   // it is chunked
	body    []byte // the whole body when it is in hand (in the read buffer, already consumed): it can be sent again
	pending bool   // a body still to be read from the connection, none of it read yet
	waiting bool   // the caller waits for 100 Continue before it sends its body
}

// hasBody reports whether the request has a body.
func (q *request) hasBody() bool { return q.chunked || q.clen > 0 }

// takeBody takes a Content-Length body that is wholly in the read buffer: it is consumed there,
// and kept as q.body, to be sent (again, on a retry) from the buffer. Nothing moves the buffer's
// data while the request lasts, only reading the body itself does.
func (q *request) takeBody() {
	r := &q.cc.r
	if q.pending && !q.chunked && int64(r.buffered()) >= q.clen {
		q.body = r.buf[r.r : r.r+int(q.clen)]
		r.r += int(q.clen)
		q.pending, q.waiting = false, false
	}
}

func (q *request) flag(f string) { q.flags = append(q.flags, f) }

// serve handles one request whose head cc has parsed, and reports whether the connection may
// carry another. The request's record and metrics are complete before the end of its answer is
// sent, so that a caller that got its answer finds them.
func (p *Proxy) serve(cc *clientConn, h *head) bool {
	start := time.Now()
	q := &cc.req // one per connection, reset for each request: no allocation
	*q = request{cc: cc, h: h}
	p.handle(q, start)
	p.finish(q, start)
	if err := cc.w.flush(); err != nil {
		return false
	}
	return q.keep
}

func (p *Proxy) handle(q *request, start time.Time) {
	h := q.h
	t := p.table.Load()
	authority, rawPath, query := splitTarget(h.target)
	rec := &records.Record{
		StartTime: start.UTC(), Src: p.selfKey, Method: methodString(h.method), Path: string(rawPath),
		Protocol: protoString(h.minor), UpstreamResponseTime: -1,
	}
	if ua := h.get("User-Agent"); ua != nil {
		rec.UserAgent = string(ua)
	}
	if xff := h.get("X-Forwarded-For"); xff != nil {
		rec.XForwarded = string(xff)
	}
	q.rec, q.head, q.minor, q.keep, q.upgrade = rec, rec.Method == "HEAD", h.minor, !h.close, h.upgrade
	q.flags = q.flagBuf[:0]
	q.host, q.query = h.get("Host"), query
	if authority != nil { // RFC 9112, 3.2.2: the target's authority, whatever Host says
		q.host = authority
	}
	q.clen, q.chunked = h.contentLength, h.chunked
	q.pending = q.hasBody()
	// An HTTP/1.0 caller's expectation is ignored (RFC 9110, 10.1.1); it sends its body anyway.
	q.waiting = q.pending && h.expect100 && h.minor > 0
	q.takeBody()

	if rid := h.get("X-Request-Id"); len(rid) > 0 {
		q.requestID = string(rid)
	} else {
		q.requestID, q.genID = newRequestID(), true
	}
	rec.RequestID = q.requestID

	name, path := destination(q.host, rec.Path, t)
	d := t.Lookup(name)
	if d == nil {
		rec.Dst = name + ":"
		p.dropBody(q)
		p.fail(q, 404, FlagNoRoute, "no route: this sidecar knows no service \""+name+"\" (no rules and no registered instances); call http://localhost:<port>/<service>/<path>")
		return
	}
	route, backend, c := d.Pick(p.cfg.Self, h, path, rand.Float64())
	q.cluster = c
	rec.Dst = c.Key
	timeout, retries := rules.DefaultTimeout, 0
	if route != nil {
		path = route.Rewrite(path, backend)
		timeout, retries = route.Rule.Timeout, route.Rule.Retries
		if b := route.Rule.Backends[backend]; b.Timeout > 0 || b.Retries >= 0 { // Amalgam8 0.x per-backend forms
			if b.Timeout > 0 {
				timeout = b.Timeout
			}
			if b.Retries >= 0 {
				retries = b.Retries
			}
		}
	}
	var first *table.Endpoint
	if a := d.Action(p.cfg.Self, h); a != nil {
		// Action tags name the versions a fault applies to. A rule's backend says its tags; on the
		// default route they are the instance's, so it is picked now.
		tags := c.Tags
		if route == nil {
			if ep, err := c.PickEndpoint(nil); err == nil {
				first, tags = ep, ep.Tags
				rec.Dst = ep.Key
			}
		}
		if done := p.faults(q, a, tags); done {
			return
		}
	}
	p.forward(q, c, first, path, timeout, retries)
}

// maxSkip is the largest body the proxy reads and drops to keep a connection whose request it did
// not forward; a larger one closes the connection instead.
const maxSkip = 64 << 10

// dropBody settles the body of a request that is answered without it having been sent on, before
// the answer is made (so that the answer can say whether the connection closes): a small one is
// read and dropped, so that the connection can carry the next request; a large or chunked one, or
// one whose caller waits for 100 Continue (it may or may not send it), closes the connection.
func (p *Proxy) dropBody(q *request) {
	if !q.pending {
		return
	}
	q.pending = false
	if q.waiting || q.chunked || q.clen > maxSkip || q.cc.r.discardN(q.clen) != nil {
		q.keep = false
		q.cc.linger = true
	}
}

// destination finds where a request goes: its host, if that names a destination the table knows;
// otherwise the first path segment, which is stripped.
func destination(host []byte, rawPath string, t *table.Table) (name, path string) {
	if len(host) > 0 {
		if i := lastColon(host); i >= 0 {
			host = host[:i]
		}
		if t.Lookup(string(host)) != nil {
			return string(host), rawPath
		}
	}
	p := strings.TrimPrefix(rawPath, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, "/"
}

// lastColon returns the index of a host's port separator, or -1 (an IPv6 literal's colons are not).
func lastColon(host []byte) int {
	for i := len(host) - 1; i >= 0; i-- {
		switch host[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}

// splitTarget returns the authority (absolute form only), the path and the query (with its '?')
// of a request target, in origin form ("/a/b?x") or absolute form ("http://host/a/b?x", as clients
// that use the sidecar as their HTTP proxy send it).
func splitTarget(target []byte) (authority, path, query []byte) {
	if len(target) > 0 && target[0] != '/' {
		if i := indexString(target, "://"); i >= 0 {
			rest := target[i+3:]
			j := 0
			for j < len(rest) && rest[j] != '/' && rest[j] != '?' {
				j++
			}
			authority, target = rest[:j], rest[j:]
			if k := bytes.LastIndexByte(authority, '@'); k >= 0 { // userinfo is not part of the host
				authority = authority[k+1:]
			}
			if len(target) == 0 || target[0] == '?' {
				target = append([]byte("/"), target...)
			}
		}
	}
	for i, c := range target {
		if c == '?' {
			return authority, target[:i], target[i:]
		}
	}
	return authority, target, nil
}

func indexString(b []byte, s string) int {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return i
		}
	}
	return -1
}

// faults applies an action rule's actions that apply to a backend with tags, in order. It reports
// whether the request was answered (an abort, or the caller gone during a delay).
func (p *Proxy) faults(q *request, a *rules.ActionRule, tags []string) bool {
	for i := range a.Actions {
		act := &a.Actions[i]
		if !act.AppliesTo(tags) {
			continue
		}
		switch act.Kind {
		case "trace":
			q.rec.TraceKey, q.rec.TraceValue = act.LogKey, act.LogValue
			if q.rec.ID == "" {
				q.rec.ID = p.idBase + strconv.FormatUint(p.idSeq.Add(1), 36)
				if p.cfg.OnTraceStart != nil {
					p.cfg.OnTraceStart(q.rec)
				}
			}
		case "delay":
			if rand.Float64() >= act.Probability {
				continue
			}
			q.flag(FlagFaultDelay)
			if gone := q.cc.sleep(act.Delay); gone {
				q.flag(FlagDownstream)
				q.rec.Status = 499
				q.keep = false
				return true
			}
		case "abort":
			if rand.Float64() >= act.Probability {
				continue
			}
			q.flag(FlagFaultAbort)
			if act.Reset {
				q.rec.Status = 0
				q.keep = false // closes the connection without an answer
				return true
			}
			p.dropBody(q)
			p.answer(q, act.ReturnCode, "fault injected: abort with "+strconv.Itoa(act.ReturnCode)+" (action rule \""+a.ID+"\")")
			return true
		}
	}
	return false
}

// fail answers with an error the proxy made.
func (p *Proxy) fail(q *request, status int, flag, msg string) {
	q.flag(flag)
	p.answer(q, status, msg)
}

// answer sends an answer the proxy made itself: a status and a one-line text body.
func (p *Proxy) answer(q *request, status int, msg string) {
	if q.cc.srv != nil && q.cc.srv.closing.Load() {
		q.keep = false // Shutdown: the connection closes after this answer
	}
	w := &q.cc.w
	w.writeString("HTTP/1.1 ")
	w.writeString(strconv.Itoa(status))
	w.writeString(" ")
	w.writeString(http.StatusText(status))
	w.writeString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n")
	w.writeString(ResponseFlagsHeader)
	w.writeString(": ")
	w.writeString(strings.Join(q.flags, ","))
	w.writeString("\r\nX-Request-Id: ")
	w.writeString(q.requestID)
	w.writeString("\r\nContent-Length: ")
	w.writeString(strconv.Itoa(len(msg) + 1))
	if !q.keep {
		w.writeString("\r\nConnection: close")
	} else if q.minor == 0 {
		w.writeString("\r\nConnection: keep-alive")
	}
	w.writeString("\r\n\r\n")
	if !q.head {
		w.writeString(msg)
		w.writeString("\n")
	}
	q.answered = true
	q.rec.Status = status
}

// finish completes the record and the metrics of a request, however it ended.
func (p *Proxy) finish(q *request, start time.Time) {
	rec := q.rec
	rec.RequestTime = float64(time.Since(start).Microseconds()) / 1000
	rec.Attempts = q.attempts
	if len(q.flags) == 0 {
		rec.ResponseFlags = "-"
	} else {
		rec.ResponseFlags = strings.Join(q.flags, ",")
	}
	if m := p.cfg.Metrics; m != nil {
		if q.cluster != nil {
			cm := m.cluster(q.cluster)
			cm.requests[classIndex(rec.Status)].Inc()
			cm.duration.Observe(time.Since(start).Seconds())
			if q.attempts > 1 {
				cm.retries.Add(float64(q.attempts - 1))
			}
		} else {
			m.requestsNoCluster(rec.Status)
		}
	}
	if p.cfg.Ring != nil {
		p.cfg.Ring.Add(rec)
	}
	if p.cfg.Writer != nil {
		p.cfg.Writer.Write(rec)
	}
	if p.cfg.OnRecord != nil {
		p.cfg.OnRecord(rec)
	}
}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return 0
	}
	return status / 100
}

// methodString returns the method as a string, without allocating for the common ones.
func methodString(m []byte) string {
	switch string(m) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "HEAD":
		return "HEAD"
	case "PATCH":
		return "PATCH"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(m)
}

func protoString(minor int) string {
	if minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// newRequestID returns a random id in UUID form. It needs no cryptographic strength: it correlates
// records, it does not authorise anything.
func newRequestID() string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
