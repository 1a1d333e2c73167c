// Package proxy is the sidecar's HTTP proxy: it routes http://localhost:6379/<destination>/<path>
// (or a request whose Host is a destination) by the current routing table, applies the first
// matching action rule's faults, and forwards with the route's timeout and retries under the
// cluster's circuit breakers, streaming bodies both ways. Every request yields one record.
package proxy

import (
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
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
	FlagFaultAbort      = "FI"  // an abort action answered
	FlagFaultDelay      = "DI"  // a delay action delayed the request
	FlagDownstream      = "DC"  // the caller went away
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
	// Transport sends requests upstream; nil: a transport tuned for a sidecar (keep-alive pools of
	// 256 connections per instance, 1 s connect timeout, no compression, no proxy from the environment).
	Transport http.RoundTripper
	// ConnectTimeout bounds a connection attempt to an instance (default 1 s, Envoy's).
	ConnectTimeout time.Duration
	Logger         *slog.Logger
}

// Proxy is an http.Handler. Swap in a new table with SetTable; requests never wait for it.
type Proxy struct {
	cfg     Config
	selfKey string
	idBase  string        // this process's prefix of record ids
	idSeq   atomic.Uint64 // the sequence after it
	table   atomic.Pointer[table.Table]
	log     *slog.Logger
	bufs    sync.Pool
}

// New returns a proxy with an empty table.
func New(cfg Config) *Proxy {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = time.Second
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport(cfg.ConnectTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, selfKey: cfg.Self.Name + ":" + strings.Join(cfg.Self.Tags, ","), log: cfg.Logger,
		idBase: strconv.FormatUint(rand.Uint64()>>16, 36) + "-"}
	p.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	p.table.Store(&table.Table{})
	if cfg.Metrics != nil {
		cfg.Metrics.table = p.Table
	}
	return p
}

// NewTransport returns the upstream transport the proxy uses by default.
func NewTransport(connectTimeout time.Duration) *http.Transport {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never an HTTP_PROXY from the environment: the sidecar is the proxy
		DialContext:           d.DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		DisableCompression:    true, // pass bodies through as they are
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     false,
	}
}

// SetTable swaps in a new routing table; requests in flight finish on the one they started with.
func (p *Proxy) SetTable(t *table.Table) { p.table.Store(t) }

// Table returns the current routing table.
func (p *Proxy) Table() *table.Table { return p.table.Load() }

// request is one proxied request's state.
type request struct {
	w        http.ResponseWriter
	r        *http.Request
	rec      *records.Record
	flags    []string
	cluster  *table.Cluster
	attempts int
}

func (q *request) flag(f string) { q.flags = append(q.flags, f) }

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := p.table.Load()
	rec := &records.Record{
		StartTime: start.UTC(), Src: p.selfKey, Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
		UserAgent: r.UserAgent(), XForwarded: r.Header.Get("X-Forwarded-For"), UpstreamResponseTime: -1,
	}
	q := &request{w: w, r: r, rec: rec}
	defer p.finish(q, start)

	rid := r.Header.Get("X-Request-Id")
	if rid == "" {
		rid = newRequestID()
		r.Header.Set("X-Request-Id", rid)
	}
	rec.RequestID = rid

	name, path := destination(r, t)
	d := t.Lookup(name)
	if d == nil {
		p.fail(q, http.StatusNotFound, FlagNoRoute, fmt.Sprintf("no route: this sidecar knows no service %q (no rules and no registered instances); call http://localhost:<port>/<service>/<path>", name))
		rec.Dst = name + ":"
		return
	}
	route, backend, c := d.Pick(p.cfg.Self, rules.HTTPHeader(r.Header), path, rand.Float64())
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
	if a := d.Action(p.cfg.Self, rules.HTTPHeader(r.Header)); a != nil {
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

// destination finds where a request goes: its Host, if that names a destination the table knows;
// otherwise the first path segment, which is stripped.
func destination(r *http.Request, t *table.Table) (name, path string) {
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if host != "" && t.Lookup(host) != nil {
		return host, r.URL.Path
	}
	p := strings.TrimPrefix(r.URL.Path, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, "/"
}

// faults applies an action rule's actions that apply to a backend with tags, in order. It reports
// whether the request was answered (an abort).
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
			timer := time.NewTimer(act.Delay)
			select {
			case <-timer.C:
			case <-q.r.Context().Done():
				timer.Stop()
				q.flag(FlagDownstream)
				q.rec.Status = 499
				return true
			}
		case "abort":
			if rand.Float64() >= act.Probability {
				continue
			}
			q.flag(FlagFaultAbort)
			if act.Reset {
				q.rec.Status = 0
				panic(http.ErrAbortHandler) // closes the connection without an answer; finish still runs
			}
			p.answer(q, act.ReturnCode, fmt.Sprintf("fault injected: abort with %d (action rule %q)", act.ReturnCode, a.ID))
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

func (p *Proxy) answer(q *request, status int, msg string) {
	h := q.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(ResponseFlagsHeader, strings.Join(q.flags, ","))
	h.Set("X-Request-Id", q.rec.RequestID)
	q.w.WriteHeader(status)
	_, _ = io.WriteString(q.w, msg+"\n")
	q.rec.Status = status
}

// finish completes the record and the metrics of a request, however it ended.
func (p *Proxy) finish(q *request, start time.Time) {
	if v := recover(); v != nil {
		p.record(q, start)
		panic(v) // http.ErrAbortHandler: let the server close the connection
	}
	p.record(q, start)
}

func (p *Proxy) record(q *request, start time.Time) {
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
