// Package eureka serves the Netflix Eureka REST API (v2) over a8's registry, so that Eureka clients
// (the Java client and Spring Cloud, fargo, eureka-js-client, Ribbon) register, renew and discover
// in the same registry as Amalgam8 clients and sidecars: an instance registered through Eureka is an
// a8 instance that sidecars route to, and an instance registered through the Amalgam8 API shows to
// Eureka clients.
//
// Paths: /api/eureka/{token}/v2/... for every tenant (Amalgam8's), and /eureka/v2/... and
// /eureka/... (Spring Cloud's) for the tenant of the Authorization header (the default tenant when
// authentication is off). Under each: apps, apps/delta, apps/{APP}, apps/{APP}/{id},
// apps/{APP}/{id}/status, apps/{APP}/{id}/metadata, instances/{id}, vips/{vip}, svips/{svip}.
//
// A Eureka instance is stored as an a8 instance (see toA8) whose metadata keeps the Eureka data
// under "eureka", so that every store backend holds it unchanged. Reads are served from a view per
// namespace (view.go) that also builds the delta queue; see view.go for how replicas stay correct.
package eureka

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/store"
)

const maxBodyBytes = 64 << 10

// Config configures the Eureka API.
type Config struct {
	// Store holds the instances: the registry's store. Required.
	Store store.Instances
	// Auth maps tokens to namespaces; nil means one tenant, "default".
	Auth auth.Authenticator
	// NamespaceCapacity caps the instances of a namespace; -1 (or 0) is unlimited.
	NamespaceCapacity int
	// MinTTL and MaxTTL clamp a lease's durationInSecs (default 90 s). Defaults: 10s and 10m.
	MinTTL, MaxTTL time.Duration
	// DeltaRetention is how long a change stays in apps/delta. Default 3m (Eureka's).
	DeltaRetention time.Duration
	// IdleTimeout is how long a namespace is followed (its changes listed and queued for deltas)
	// after its last Eureka request. Default 10m.
	IdleTimeout time.Duration
	// PruneInterval is how often expired changes and idle namespaces are dropped. Default 30s.
	PruneInterval time.Duration
	// Logger receives the API's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source of Eureka's timestamps and of the delta queue; nil is time.Now.
	Clock store.Clock
}

func (c *Config) setDefaults() error {
	if c.Store == nil {
		return errors.New("eureka: no store configured")
	}
	if c.Auth == nil {
		c.Auth = auth.Default()
	}
	if c.NamespaceCapacity == 0 {
		c.NamespaceCapacity = -1
	}
	if c.MinTTL <= 0 {
		c.MinTTL = 10 * time.Second
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = 10 * time.Minute
	}
	if c.MinTTL > c.MaxTTL {
		return fmt.Errorf("eureka: MinTTL %v is above MaxTTL %v", c.MinTTL, c.MaxTTL)
	}
	if c.DeltaRetention <= 0 {
		c.DeltaRetention = 3 * time.Minute
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// Server serves the Eureka API. Create it with New, Mount it (or serve it as a handler for
// /eureka/ and /api/eureka/), run Run while it serves, and Close it (Run's end closes it too).
type Server struct {
	cfg Config
	log *slog.Logger

	base context.Context // parent of every view's goroutine
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu     sync.Mutex
	views  map[string]*view
	closed bool
}

// New returns a Eureka API server for cfg, with defaults filled in. It starts no goroutine until a
// namespace gets its first Eureka request.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, views: make(map[string]*view)}
	s.base, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Mount registers the Eureka API on mux: /eureka/ and /api/eureka/.
func (s *Server) Mount(mux *http.ServeMux) {
	mux.Handle("/eureka/", s)
	mux.Handle("/api/eureka/", s)
}

// Run drops expired delta entries and stops following idle namespaces, every PruneInterval, until
// ctx ends; then it closes the server.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.prune()
		}
	}
}

// Close stops every goroutine of the server and waits for them. Requests still work afterwards, but
// views no longer follow changes made through other replicas.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
}

// prune drops the delta entries older than the retention period and the views of namespaces without
// a Eureka request for IdleTimeout.
func (s *Server) prune() {
	now := s.cfg.Clock()
	var idle, active []*view
	s.mu.Lock()
	for ns, v := range s.views {
		if now.Sub(time.Unix(0, v.lastUsed.Load())) > s.cfg.IdleTimeout {
			delete(s.views, ns)
			idle = append(idle, v)
		} else {
			active = append(active, v)
		}
	}
	s.mu.Unlock()
	for _, v := range idle {
		v.stop()
		<-v.done
		s.log.Debug("eureka: namespace idle, no longer followed", "namespace", v.ns)
	}
	for _, v := range active {
		v.mu.Lock()
		v.pruneLocked(now)
		v.mu.Unlock()
	}
}

// view returns the namespace's view, creating it (and its goroutine) on first use.
func (s *Server) view(ns string) *view {
	now := s.cfg.Clock().UnixNano()
	s.mu.Lock()
	v := s.views[ns]
	if v == nil {
		ctx, cancel := context.WithCancel(s.base)
		v = &view{s: s, ns: ns, stop: cancel, done: make(chan struct{})}
		s.views[ns] = v
		if s.closed {
			close(v.done)
		} else {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				v.run(ctx)
			}()
		}
	}
	v.lastUsed.Store(now)
	s.mu.Unlock()
	return v
}

// Routing

type op int

const (
	opApps     op = iota // apps
	opDelta              // apps/delta
	opApp                // apps/{APP}
	opInstance           // apps/{APP}/{id}
	opStatus             // apps/{APP}/{id}/status
	opMetadata           // apps/{APP}/{id}/metadata
	opByID               // instances/{id}
	opVIP                // vips/{vip}
	opSVIP               // svips/{svip}
)

var allowed = map[op][]string{
	opApps:     {http.MethodGet, http.MethodHead},
	opDelta:    {http.MethodGet, http.MethodHead},
	opApp:      {http.MethodGet, http.MethodHead, http.MethodPost},
	opInstance: {http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodPut},
	opStatus:   {http.MethodDelete, http.MethodPut},
	opMetadata: {http.MethodPut},
	opByID:     {http.MethodGet, http.MethodHead},
	opVIP:      {http.MethodGet, http.MethodHead},
	opSVIP:     {http.MethodGet, http.MethodHead},
}

// route is a parsed request path.
type route struct {
	op    op
	token string // the path's tenant token
	// tokenInPath is true under /api/eureka/{token}/; under /eureka/ the token is the Authorization
	// header's.
	tokenInPath bool
	app, id     string // app upper-cased
	vip         string
}

func isResource(seg string) bool {
	switch seg {
	case "apps", "instances", "vips", "svips":
		return true
	}
	return false
}

// parseRoute reads /api/eureka/{token}[/{version}]/<resource> and /eureka[/{version}]/<resource>. The
// version segment is free, as in Eureka (any value means v2), and may be left out.
func parseRoute(escapedPath string) (route, bool) {
	var rt route
	parts := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if n := len(parts); n > 0 && parts[n-1] == "" {
		parts = parts[:n-1] // a trailing slash: apps/ is apps
	}
	switch {
	case len(parts) >= 3 && parts[0] == "api" && parts[1] == "eureka":
		tok, err := url.PathUnescape(parts[2])
		if err != nil {
			return rt, false
		}
		rt.token, rt.tokenInPath = tok, true
		parts = parts[3:]
	case len(parts) >= 1 && parts[0] == "eureka":
		parts = parts[1:]
	default:
		return rt, false
	}
	if len(parts) > 0 && !isResource(parts[0]) {
		parts = parts[1:]
	}
	segs := make([]string, len(parts))
	for i, p := range parts {
		s, err := url.PathUnescape(p)
		if err != nil || s == "" {
			return rt, false
		}
		segs[i] = s
	}
	n := len(segs)
	if n == 0 {
		return rt, false
	}
	switch segs[0] {
	case "apps":
		switch {
		case n == 1:
			rt.op = opApps
		case n == 2 && segs[1] == "delta":
			rt.op = opDelta
		case n == 2:
			rt.op, rt.app = opApp, strings.ToUpper(segs[1])
		case n == 3:
			rt.op, rt.app, rt.id = opInstance, strings.ToUpper(segs[1]), segs[2]
		case n == 4 && segs[3] == "status":
			rt.op, rt.app, rt.id = opStatus, strings.ToUpper(segs[1]), segs[2]
		case n == 4 && segs[3] == "metadata":
			rt.op, rt.app, rt.id = opMetadata, strings.ToUpper(segs[1]), segs[2]
		default:
			return rt, false
		}
	case "instances":
		if n != 2 {
			return rt, false
		}
		rt.op, rt.id = opByID, segs[1]
	case "vips", "svips":
		if n != 2 {
			return rt, false
		}
		rt.op, rt.vip = opVIP, segs[1]
		if segs[0] == "svips" {
			rt.op = opSVIP
		}
	default:
		return rt, false
	}
	return rt, true
}

// ServeHTTP serves the Eureka API's paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, ok := parseRoute(r.URL.EscapedPath())
	if !ok {
		writeError(w, http.StatusNotFound, "Resource not found: Eureka paths are apps, apps/delta, apps/{APP}, apps/{APP}/{id}[/status|/metadata], instances/{id}, vips/{vip}, svips/{svip} under /eureka/v2/, /eureka/ or /api/eureka/{token}/v2/")
		return
	}
	methods := allowed[rt.op]
	if !contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, "Method not allowed")
		return
	}
	ns, status, msg := s.authenticate(r, rt)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	v := s.view(ns)
	switch rt.op {
	case opApps:
		s.getApps(w, r, v)
	case opDelta:
		s.getDelta(w, r, v)
	case opApp:
		if r.Method == http.MethodPost {
			s.register(w, r, v, rt)
		} else {
			s.getApp(w, r, v, rt)
		}
	case opInstance:
		switch r.Method {
		case http.MethodPut:
			s.renew(w, r, v, rt)
		case http.MethodDelete:
			s.cancel(w, r, v, rt)
		default:
			s.getInstance(w, r, v, rt)
		}
	case opStatus:
		s.setStatus(w, r, v, rt)
	case opMetadata:
		s.setMetadata(w, r, v, rt)
	case opByID:
		s.getInstance(w, r, v, rt)
	case opVIP, opSVIP:
		s.getVIP(w, r, v, rt)
	}
}

// authenticate maps the request's token to a namespace: the path's token under /api/eureka/{token}/,
// else the Authorization header's (Bearer <token>, or Basic with the token as password, or as user
// name when the password is empty, for clients whose service URL is http://token@host/eureka/).
// status is 0 on success.
func (s *Server) authenticate(r *http.Request, rt route) (ns string, status int, msg string) {
	token := rt.token
	if !rt.tokenInPath {
		var err error
		if token, err = headerToken(r); err != nil {
			return "", http.StatusUnauthorized, err.Error()
		}
	}
	ns, err := s.cfg.Auth.Authenticate(r.Context(), token)
	switch {
	case err == nil:
		return ns, 0, ""
	case errors.Is(err, auth.ErrEmptyToken):
		if rt.tokenInPath {
			return "", http.StatusUnauthorized, "no token in the path /api/eureka/{token}/v2/"
		}
		return "", http.StatusUnauthorized, "no token: send Authorization: Bearer <token>, or use /api/eureka/{token}/v2/"
	case errors.Is(err, auth.ErrUnauthorized) || errors.Is(err, auth.ErrUnrecognized):
		return "", http.StatusUnauthorized, err.Error()
	}
	return "", http.StatusServiceUnavailable, "authentication failed: " + err.Error()
}

func headerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		return rest, nil
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			break
		}
		user, pass, _ := strings.Cut(string(raw), ":")
		if pass == "" {
			return user, nil
		}
		return pass, nil
	}
	return "", errors.New("malformed Authorization header: expected \"Bearer <token>\" or Basic with the token as password")
}

// Answers

func writeError(w http.ResponseWriter, status int, msg string) {
	httpapi.WriteJSON(w, status, api.RegistryError{Error: msg})
}

// wantsJSON is Eureka's content negotiation: JSON only if Accept mentions json; XML otherwise,
// including when there is no Accept header.
func wantsJSON(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Accept")), "json")
}

// wantsGzip reports whether Accept-Encoding allows gzip.
func wantsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.TrimSpace(params)
		if v, ok := strings.CutPrefix(q, "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
				return false
			}
		}
		return true
	}
	return false
}

var gzPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b)/4 + 64)
	zw := gzPool.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	gzPool.Put(zw)
	return buf.Bytes()
}

// writeDoc writes a Eureka document; body is already gzipped when gzipped is true.
func writeDoc(w http.ResponseWriter, body []byte, asJSON, gzipped bool) {
	h := w.Header()
	if asJSON {
		h.Set("Content-Type", "application/json")
	} else {
		h.Set("Content-Type", "application/xml")
	}
	h.Set("Vary", "Accept, Accept-Encoding")
	if gzipped {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// serve writes a freshly rendered document, gzipped if the client asks.
func serve(w http.ResponseWriter, r *http.Request, body []byte, asJSON bool) {
	gz := wantsGzip(r)
	if gz {
		body = gzipBytes(body)
	}
	writeDoc(w, body, asJSON, gz)
}

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case r.Context().Err() != nil:
	case errors.Is(err, store.ErrReadOnly):
		writeError(w, http.StatusConflict, fmt.Sprintf("%s refused: %v", op, err))
	case errors.Is(err, store.ErrCapacity):
		writeError(w, http.StatusForbidden, fmt.Sprintf("%s refused: %v", op, err))
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("eureka: registry store unavailable", "op", op, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s failed: the registry's store is unavailable, retry later (%v)", op, err))
	default:
		s.log.Error("eureka: registry store failed", "op", op, "error", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("%s failed: %v", op, err))
	}
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request, v *view) (*snapshot, bool) {
	sn, err := v.load(r.Context())
	if err != nil {
		s.storeError(w, r, "list", err)
		return nil, false
	}
	return sn, true
}

func notRegistered(w http.ResponseWriter, rt route) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("instance %q of application %q is not registered (unknown, cancelled or its lease expired): register it again", rt.id, rt.app))
}

// Reads

func (s *Server) getApps(w http.ResponseWriter, r *http.Request, v *view) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	asJSON, gz := wantsJSON(r), wantsGzip(r)
	j, z := b2i(asJSON), b2i(gz)
	if p := sn.rendered[j][z].Load(); p != nil {
		writeDoc(w, *p, asJSON, gz)
		return
	}
	body := sn.render(asJSON)
	if gz {
		body = gzipBytes(body)
	}
	sn.rendered[j][z].Store(&body)
	writeDoc(w, body, asJSON, gz)
}

// render writes the snapshot as GET apps answers it.
func (sn *snapshot) render(asJSON bool) []byte {
	b := make([]byte, 0, sizeHint(sn.groups))
	if asJSON {
		return appendAppsJSON(b, sn.version, sn.hash, sn.groups)
	}
	return appendAppsXML(b, sn.version, sn.hash, sn.groups)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *Server) getDelta(w http.ResponseWriter, r *http.Request, v *view) {
	if _, ok := s.snapshot(w, r, v); !ok {
		return
	}
	groups, sn := v.delta()
	body := make([]byte, 0, sizeHint(groups))
	if wantsJSON(r) {
		body = appendAppsJSON(body, sn.version, sn.hash, groups)
	} else {
		body = appendAppsXML(body, sn.version, sn.hash, groups)
	}
	serve(w, r, body, wantsJSON(r))
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	i, ok := sn.byApp[rt.app]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("application %q has no instances", rt.app))
		return
	}
	var body []byte
	if wantsJSON(r) {
		body = append(body, `{"application":`...)
		body = appendGroupJSON(body, &sn.groups[i])
		body = append(body, '}')
	} else {
		body = appendGroupXML(body, &sn.groups[i])
	}
	serve(w, r, body, wantsJSON(r))
}

// getInstance serves apps/{APP}/{id} and instances/{id}.
func (s *Server) getInstance(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	e := sn.byInstanceID[rt.id]
	if e == nil || (rt.op == opInstance && e.in.App != rt.app) {
		if rt.op == opByID {
			writeError(w, http.StatusNotFound, fmt.Sprintf("instance %q is not registered", rt.id))
		} else {
			notRegistered(w, rt)
		}
		return
	}
	var body []byte
	if wantsJSON(r) {
		body = append(body, `{"instance":`...)
		body = append(body, e.rendered(true)...)
		body = append(body, '}')
	} else {
		body = append(body, e.rendered(false)...)
	}
	serve(w, r, body, wantsJSON(r))
}

func (s *Server) getVIP(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	entries := sn.vips[rt.vip]
	if rt.op == opSVIP {
		entries = sn.svips[rt.vip]
	}
	if len(entries) == 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no instance has the VIP address %q (VIP addresses are case-sensitive)", rt.vip))
		return
	}
	var groups []group
	counts := make(map[string]int)
	for _, e := range entries { // sorted by app then instanceId
		if n := len(groups); n == 0 || groups[n-1].name != e.in.App {
			groups = append(groups, group{name: e.in.App})
		}
		g := &groups[len(groups)-1]
		g.items = append(g.items, item{in: e.in, e: e})
		counts[e.in.EffectiveStatus()]++
	}
	body := make([]byte, 0, sizeHint(groups))
	if wantsJSON(r) {
		body = appendAppsJSON(body, sn.version, hashcode(counts), groups)
	} else {
		body = appendAppsXML(body, sn.version, hashcode(counts), groups)
	}
	serve(w, r, body, wantsJSON(r))
}

// Writes

// current returns the live stored instance id, listing the services it may be in (the one given and
// the one the view last saw it in); nil if it is not there.
func (s *Server) current(ctx context.Context, v *view, ns, id, service string) (*store.Instance, error) {
	services := []string{service}
	if sn := v.snap.Load(); sn != nil {
		if e := sn.byA8[id]; e != nil && e.a8.ServiceName != service {
			services = append(services, e.a8.ServiceName)
		}
	}
	for _, svc := range services {
		l, err := s.cfg.Store.List(ctx, ns, svc)
		if err != nil {
			return nil, err
		}
		for i := range l.Instances {
			if l.Instances[i].ID == id {
				return &l.Instances[i], nil
			}
		}
	}
	return nil, nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	data, err := httpapi.ReadBody(w, r, maxBodyBytes)
	if err != nil {
		var be *httpapi.BodyError
		errors.As(err, &be)
		writeError(w, be.Status, be.Msg)
		return
	}
	in, err := DecodeInstance(data, r.Header.Get("Content-Type"))
	if err == nil {
		err = validate(in)
	}
	if err == nil && in.App != rt.app {
		err = fieldErr("app", "%q in the body is not the application %q of the path", in.App, rt.app)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ttl := leaseTTL(in.LeaseInfo.DurationInSecs, s.cfg.MinTTL, s.cfg.MaxTTL)
	in.LeaseInfo = LeaseInfo{RenewalIntervalInSecs: in.LeaseInfo.RenewalIntervalInSecs, DurationInSecs: int(ttl / time.Second)}
	if in.LeaseInfo.RenewalIntervalInSecs <= 0 {
		in.LeaseInfo.RenewalIntervalInSecs = defaultRenewal
	}
	in.DataCenterInfo.Class = in.DataCenterInfo.class()
	in.CountryID = countryID(in)
	in.ActionType = ""
	clientDirty := in.LastDirtyTimestamp
	svc, err := serviceName(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	ctx := r.Context()
	ns := v.ns
	id := ID(in.InstanceID)
	if _, err := v.load(ctx); err != nil {
		s.storeError(w, r, "registration", err)
		return
	}
	old, err := s.current(ctx, v, ns, id, svc)
	if err != nil {
		s.storeError(w, r, "registration", err)
		return
	}
	now := s.cfg.Clock().UnixMilli()
	var inst store.Instance
	if rec := recordOf(old); rec != nil {
		// A registration again: an override survives it (until DELETE .../status or a cancel), and
		// the same content keeps its timestamps, so that it only renews the lease.
		if rec.OverriddenStatus != "" && rec.OverriddenStatus != StatusUnknown {
			in.OverriddenStatus = rec.OverriddenStatus
		}
		in.LeaseInfo.RegistrationTimestamp = rec.LeaseInfo.RegistrationTimestamp
		in.LeaseInfo.ServiceUpTimestamp = rec.LeaseInfo.ServiceUpTimestamp
		in.LastUpdatedTimestamp = rec.LastUpdatedTimestamp
		if clientDirty == 0 {
			in.LastDirtyTimestamp = rec.LastDirtyTimestamp
		}
		if inst, err = toA8(in, ttl); err == nil && !inst.Equal(old) {
			in.LeaseInfo.RegistrationTimestamp, in.LastUpdatedTimestamp = now, now
			if clientDirty == 0 {
				in.LastDirtyTimestamp = now
			}
			if in.LeaseInfo.ServiceUpTimestamp == 0 && in.EffectiveStatus() == StatusUp {
				in.LeaseInfo.ServiceUpTimestamp = now
			}
			inst, err = toA8(in, ttl)
		}
	} else {
		in.LeaseInfo.RegistrationTimestamp, in.LastUpdatedTimestamp = now, now
		if clientDirty == 0 {
			in.LastDirtyTimestamp = now
		}
		if in.EffectiveStatus() == StatusUp {
			in.LeaseInfo.ServiceUpTimestamp = now
		}
		inst, err = toA8(in, ttl)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := s.cfg.Store.Register(ctx, ns, inst, s.cfg.NamespaceCapacity); err != nil {
		s.storeError(w, r, "registration", err)
		return
	}
	v.wrote(ctx)
	s.log.Debug("eureka: instance registered", "namespace", ns, "app", in.App, "instanceId", in.InstanceID,
		"id", inst.ID, "service", inst.ServiceName, "endpoint", inst.Endpoint.Value, "status", in.EffectiveStatus())
	w.WriteHeader(http.StatusNoContent) // "204 to be backwards compatible"
}

func recordOf(a8 *store.Instance) *Instance {
	if a8 == nil {
		return nil
	}
	return record(a8)
}

// target returns the a8 id a renewal or cancel of rt acts on, and the entry the view holds for it;
// ok is false when the view shows the instance under another application.
func target(sn *snapshot, rt route) (id string, e *entry, ok bool) {
	if e = sn.byInstanceID[rt.id]; e != nil {
		return e.a8.ID, e, e.in.App == rt.app
	}
	return ID(rt.id), nil, true
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	id, e, ok := target(sn, rt)
	if !ok {
		notRegistered(w, rt)
		return
	}
	if err := s.cfg.Store.Renew(r.Context(), v.ns, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			notRegistered(w, rt)
			return
		}
		s.storeError(w, r, "renewal", err)
		return
	}
	// A client whose copy of its instance changed after the server's (lastDirtyTimestamp newer) is
	// told to register again, as Eureka does.
	if ts := r.URL.Query().Get("lastDirtyTimestamp"); ts != "" && e != nil && e.eureka {
		if n, err := strconv.ParseInt(ts, 10, 64); err == nil && n > e.in.LastDirtyTimestamp {
			writeError(w, http.StatusNotFound, fmt.Sprintf("instance %q changed on the client (lastDirtyTimestamp %d, the registry has %d): register it again", rt.id, n, e.in.LastDirtyTimestamp))
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return
	}
	id, _, ok := target(sn, rt)
	if !ok {
		notRegistered(w, rt)
		return
	}
	if err := s.cfg.Store.Deregister(r.Context(), v.ns, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			notRegistered(w, rt)
			return
		}
		s.storeError(w, r, "cancel", err)
		return
	}
	v.wrote(r.Context())
	s.log.Debug("eureka: instance cancelled", "namespace", v.ns, "app", rt.app, "instanceId", rt.id, "id", id)
	w.WriteHeader(http.StatusOK)
}

// locate returns the live stored instance of rt and its Eureka record for a change, or writes the
// answer (404, 409) and returns ok false.
func (s *Server) locate(w http.ResponseWriter, r *http.Request, v *view, rt route) (*store.Instance, *Instance, bool) {
	sn, ok := s.snapshot(w, r, v)
	if !ok {
		return nil, nil, false
	}
	e := sn.byInstanceID[rt.id]
	if e == nil { // registered through another replica a moment ago?
		var err error
		if sn, err = v.refreshNow(r.Context()); err != nil {
			s.storeError(w, r, "list", err)
			return nil, nil, false
		}
		e = sn.byInstanceID[rt.id]
	}
	if e == nil || e.in.App != rt.app {
		notRegistered(w, rt)
		return nil, nil, false
	}
	cur, err := s.current(r.Context(), v, v.ns, e.a8.ID, e.a8.ServiceName)
	if err != nil {
		s.storeError(w, r, "lookup", err)
		return nil, nil, false
	}
	if cur == nil {
		notRegistered(w, rt)
		return nil, nil, false
	}
	rec := record(cur)
	if rec == nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("instance %q was not registered through Eureka (it comes from the Amalgam8 API or a catalog): change its status and metadata where it was registered", rt.id))
		return nil, nil, false
	}
	return cur, rec, true
}

// update stores a changed Eureka record in place of cur, keeping its lease.
func (s *Server) update(w http.ResponseWriter, r *http.Request, v *view, cur *store.Instance, rec *Instance, op string) {
	rec.LeaseInfo.LastRenewalTimestamp = 0
	rec.LastUpdatedTimestamp = s.cfg.Clock().UnixMilli()
	if rec.LeaseInfo.ServiceUpTimestamp == 0 && rec.EffectiveStatus() == StatusUp {
		rec.LeaseInfo.ServiceUpTimestamp = rec.LastUpdatedTimestamp
	}
	inst, err := toA8(rec, cur.TTL)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if _, err := s.cfg.Store.Register(r.Context(), v.ns, inst, s.cfg.NamespaceCapacity); err != nil {
		s.storeError(w, r, op, err)
		return
	}
	v.wrote(r.Context())
	w.WriteHeader(http.StatusOK)
}

// setStatus serves PUT .../status?value=X (set the override) and DELETE .../status[?value=X] (remove
// it; X, if given, becomes the instance's own status).
func (s *Server) setStatus(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	q := r.URL.Query()
	value := q.Get("value")
	st, valid := ParseStatus(value)
	switch {
	case r.Method == http.MethodPut && value == "":
		writeError(w, http.StatusBadRequest, "value: required, one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN")
		return
	case value != "" && !valid:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("value: %q is not one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN", value))
		return
	}
	var dirty int64
	if ts := q.Get("lastDirtyTimestamp"); ts != "" {
		n, err := strconv.ParseInt(ts, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("lastDirtyTimestamp: %q is not a number of milliseconds", ts))
			return
		}
		dirty = n
	}
	cur, rec, ok := s.locate(w, r, v, rt)
	if !ok {
		return
	}
	if r.Method == http.MethodPut {
		rec.OverriddenStatus = st
	} else {
		rec.OverriddenStatus = StatusUnknown
		if value != "" {
			rec.Status = st
		}
	}
	if dirty != 0 {
		rec.LastDirtyTimestamp = dirty
	}
	s.update(w, r, v, cur, rec, "status change")
}

// setMetadata serves PUT .../metadata?k1=v1&k2=v2: each parameter is merged into the metadata.
func (s *Server) setMetadata(w http.ResponseWriter, r *http.Request, v *view, rt route) {
	cur, rec, ok := s.locate(w, r, v, rt)
	if !ok {
		return
	}
	q := r.URL.Query()
	if len(q) == 0 {
		w.WriteHeader(http.StatusOK)
		return
	}
	md := make(map[string]string, len(rec.Metadata)+len(q))
	for k, val := range rec.Metadata {
		md[k] = val
	}
	for k, vals := range q {
		md[k] = vals[0]
	}
	rec.Metadata = md
	rec.LastDirtyTimestamp = s.cfg.Clock().UnixMilli()
	s.update(w, r, v, cur, rec, "metadata change")
}
