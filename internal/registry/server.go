package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/eureka"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/store"
)

// Server serves the registry API. Create it with New, serve Handler (or Mount it beside other APIs),
// and run Run for as long as it serves, so that expired instances are reaped.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   store.Instances
	started time.Time
	eureka  *eureka.Server // the Eureka API over the same store

	draining context.Context // done once Drain is called
	drain    context.CancelFunc

	changes     *changeLogs // the logs of changes watches (changes.go)
	stopChanges context.CancelFunc
}

// New returns a registry server for cfg, with defaults filled in.
func New(cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, started: time.Now()}
	s.draining, s.drain = context.WithCancel(context.Background())
	var cctx context.Context
	cctx, s.stopChanges = context.WithCancel(context.Background())
	s.changes = newChangeLogs(cctx, cfg.Store)
	var err error
	s.eureka, err = eureka.New(eureka.Config{
		Store:             cfg.Store,
		Auth:              cfg.Auth,
		NamespaceCapacity: cfg.NamespaceCapacity,
		MinTTL:            cfg.MinTTL,
		MaxTTL:            cfg.MaxTTL,
		Logger:            cfg.Logger.With("api", "eureka"),
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close stops the goroutines of the Eureka API (Run's end stops them too) and of changes watches.
func (s *Server) Close() {
	s.eureka.Close()
	s.stopChanges()
	s.changes.close()
}

// Drain ends every blocking query now, each answering with the current state, and makes new ones
// answer at once. Call it before http.Server.Shutdown, which would otherwise wait for them.
func (s *Server) Drain() { s.drain() }

// writeError writes the registry's error body, {"Error": "..."} (Amalgam8's registry has no ids).
func writeError(w http.ResponseWriter, _ *http.Request, status int, _, msg string) {
	httpapi.WriteJSON(w, status, api.RegistryError{Error: msg})
}

// WriteError is the registry's httpapi.ErrorWriter, for servers that mount the registry.
var WriteError httpapi.ErrorWriter = writeError

// Handler returns the registry API as a complete handler: its routes, a JSON 404 for the rest,
// panic recovery, debug access logs and, if configured, the HTTPS redirect.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Mount(mux)
	mux.Handle("/", httpapi.NotFound(writeError))
	return s.Wrap(mux)
}

// Wrap adds the registry's outer middleware to h.
func (s *Server) Wrap(h http.Handler) http.Handler {
	h = httpapi.Recover(s.log, writeError, httpapi.CleanPath(writeError, h))
	h = httpapi.AccessLog(s.log, h)
	if s.cfg.RequireHTTPS {
		h = httpapi.RequireHTTPS(h)
	}
	return h
}

// Mount registers the registry's routes on mux, so that one listener can serve it beside the
// controller (a8 up): the Amalgam8 API and the Eureka API (/eureka/, /api/eureka/).
func (s *Server) Mount(mux *http.ServeMux) {
	s.eureka.Mount(mux)
	api := func(methods map[string]http.Handler) http.Handler {
		return httpapi.RequireJSON(writeError, auth.Middleware(s.cfg.Auth, writeError, httpapi.Methods(writeError, methods)))
	}
	mux.Handle("/api/v1/instances", api(map[string]http.Handler{
		http.MethodGet:  http.HandlerFunc(s.listInstances),
		http.MethodPost: http.HandlerFunc(s.register),
	}))
	mux.Handle("/api/v1/instances/{id}", api(map[string]http.Handler{
		http.MethodDelete: http.HandlerFunc(s.deregister),
	}))
	mux.Handle("/api/v1/instances/{id}/heartbeat", api(map[string]http.Handler{
		http.MethodPut: http.HandlerFunc(s.heartbeat),
	}))
	mux.Handle("/api/v1/services", api(map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(s.listServices),
	}))
	mux.Handle("/api/v1/services/{name}", api(map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(s.getService),
	}))
	mux.Handle("/uptime", httpapi.Methods(writeError, map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(s.uptime),
	}))
	mux.Handle("/{$}", httpapi.Methods(writeError, map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }),
	}))
}

// Run reaps expired instances every ReapInterval until ctx ends, so that watchers see them go, and
// runs the Eureka API's housekeeping.
func (s *Server) Run(ctx context.Context) error {
	defer func() { s.stopChanges(); s.changes.close() }() // the changes watches' logs
	eurekaDone := make(chan struct{})
	go func() {
		defer close(eurekaDone)
		_ = s.eureka.Run(ctx)
	}()
	defer func() { <-eurekaDone }()
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.store.Reap(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			if !failing {
				s.log.Warn("cannot reap expired instances; retrying every interval", "error", err)
			}
			failing = true
		default:
			if failing {
				s.log.Info("reaping expired instances works again")
			}
			failing = false
			if n > 0 {
				s.log.Info("expired instances removed", "count", n)
			}
		}
	}
}

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case r.Context().Err() != nil:
		// The client went away; nobody reads an answer.
	case errors.Is(err, store.ErrReadOnly):
		// 409, not 403: the instance exists but a catalog owns it, a state that retrying does not
		// change (clients treat 403 as capacity, to retry later).
		writeError(w, r, http.StatusConflict, "error_read_only", fmt.Sprintf("%s refused: %v", op, err))
	case errors.Is(err, store.ErrCapacity):
		writeError(w, r, http.StatusForbidden, "error_capacity", fmt.Sprintf("%s refused: %v (--namespace_capacity %d)", op, err, s.cfg.NamespaceCapacity))
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("registry store unavailable", "op", op, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, httpapi.CodeUnavailable, fmt.Sprintf("%s failed: the registry's store is unavailable, retry later (%v)", op, err))
	default:
		s.log.Error("registry store failed", "op", op, "error", err)
		writeError(w, r, http.StatusInternalServerError, httpapi.CodeInternal, fmt.Sprintf("%s failed: %v", op, err))
	}
}

func gone(w http.ResponseWriter, r *http.Request, id string) {
	writeError(w, r, http.StatusGone, "error_instance_gone", fmt.Sprintf("instance %q is not registered (unknown, deregistered or its lease expired): register it again", id))
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req api.InstanceRegistration
	if err := httpapi.DecodeJSON(w, r, &req, maxBodyBytes); err != nil {
		var be *httpapi.BodyError
		errors.As(err, &be)
		writeError(w, r, be.Status, be.Code(), be.Msg)
		return
	}
	in, err := s.cfg.toInstance(&req)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "error_invalid_request", err.Error())
		return
	}
	ns := auth.Namespace(r.Context())
	stored, err := s.store.Register(r.Context(), ns, in, s.cfg.NamespaceCapacity)
	if err != nil {
		s.storeError(w, r, "registration", err)
		return
	}
	s.log.Debug("instance registered", "namespace", ns, "id", stored.ID, "service", stored.ServiceName, "endpoint", stored.Endpoint.Value, "ttl", stored.TTL)
	self := baseURL(r) + "/api/v1/instances/" + stored.ID
	w.Header().Set("Location", self)
	httpapi.WriteJSON(w, http.StatusCreated, api.RegistrationResponse{
		ID:    stored.ID,
		TTL:   int64(stored.TTL / time.Second),
		Links: api.Links{Self: self, Heartbeat: self + "/heartbeat"},
	})
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.store.Renew(r.Context(), auth.Namespace(r.Context()), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			gone(w, r, id)
			return
		}
		s.storeError(w, r, "heartbeat", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ns := auth.Namespace(r.Context())
	if err := s.store.Deregister(r.Context(), ns, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			gone(w, r, id)
			return
		}
		s.storeError(w, r, "deregistration", err)
		return
	}
	s.log.Debug("instance deregistered", "namespace", ns, "id", id)
	w.WriteHeader(http.StatusOK)
}

// list answers a read, first blocking until the tenant's index moves past the client's if the query
// asks to, and sets the index header. ok is false when an error was already written.
func (s *Server) list(w http.ResponseWriter, r *http.Request, wt httpapi.Watch, service string) (l store.InstanceList, ok bool) {
	ctx := r.Context()
	ns := auth.Namespace(ctx)
	if wt.Blocking {
		wctx, cancel := context.WithTimeout(ctx, httpapi.Jitter(wt.Wait, s.cfg.MaxWait))
		stop := context.AfterFunc(s.draining, cancel)
		_, err := s.store.Wait(wctx, ns, wt.Index)
		stop()
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			s.storeError(w, r, "watch", err)
			return l, false
		}
		// Answer with the current state even when the wait ended because the server is shutting
		// down, so the watcher reconnects at once with its index intact.
		var cancelList context.CancelFunc
		ctx, cancelList = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancelList()
	}
	l, err := s.store.List(ctx, ns, service)
	if err != nil {
		s.storeError(w, r, "list", err)
		return l, false
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(l.Index, 10))
	return l, true
}

func (s *Server) listInstances(w http.ResponseWriter, r *http.Request) {
	lq, err := s.cfg.parseListQuery(r.URL.Query())
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "error_invalid_request", err.Error())
		return
	}
	if lq.changes && s.listChanges(w, r, lq) {
		return
	}
	l, ok := s.list(w, r, lq.Watch, lq.service())
	if !ok {
		return
	}
	matched := l.Instances[:0]
	for i := range l.Instances {
		if lq.match(&l.Instances[i]) {
			matched = append(matched, l.Instances[i])
		}
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], '{')
	b = appendInstances(b, "instances", matched, lq.fields)
	b = append(b, '}')
	*buf = b
	writeRaw(w, http.StatusOK, b)
}

// listChanges answers a query with changes=true from the namespace's change log (see changes.go):
// with what changed since the query's index when the log can tell, else with the log's whole list.
// It reports false, having written nothing, when the log cannot answer (the registry is closing, or
// the log has no list yet when the request ends): the caller then answers from the store.
func (s *Server) listChanges(w http.ResponseWriter, r *http.Request, lq *listQuery) bool {
	ctx := r.Context()
	log := s.changes.get(auth.Namespace(ctx))
	if log == nil {
		return false
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], `{"changes":`...)
	if lq.Blocking && lq.epoch != "" {
		wctx, cancel := context.WithTimeout(ctx, httpapi.Jitter(lq.Wait, s.cfg.MaxWait))
		stop := context.AfterFunc(s.draining, cancel)
		set, removed, index, err := log.since(wctx, lq.epoch, lq.Index, lq.match)
		stop()
		cancel()
		if err == nil {
			w.Header().Set(api.IndexHeader, strconv.FormatUint(index, 10))
			b = append(b, `true,"epoch":`...)
			b = appendString(b, lq.epoch) // the epoch since checked
			b = append(b, ',')
			b = appendInstances(b, "instances", set, lq.fields)
			b = append(b, `,"removed":[`...)
			for i, id := range removed {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendString(b, id)
			}
			b = append(b, "]}"...)
			*buf = b
			writeRaw(w, http.StatusOK, b)
			return true
		}
	}
	// The whole list, as the log has it, at once.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	snap, index, epoch, err := log.whole(wctx)
	if err != nil {
		return false
	}
	matched := make([]store.Instance, 0, len(snap))
	for i := range snap {
		if lq.match(&snap[i]) {
			matched = append(matched, snap[i])
		}
	}
	w.Header().Set(api.IndexHeader, strconv.FormatUint(index, 10))
	b = append(b, `false,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, ',')
	b = appendInstances(b, "instances", matched, lq.fields)
	b = append(b, '}')
	*buf = b
	writeRaw(w, http.StatusOK, b)
	return true
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	wt, err := httpapi.ParseWatch(r.URL.Query(), s.cfg.DefaultWait, s.cfg.MaxWait)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "error_invalid_request", err.Error())
		return
	}
	l, ok := s.list(w, r, wt, "")
	if !ok {
		return
	}
	names := []string{}
	for i, in := range l.Instances { // sorted by service name
		if i == 0 || in.ServiceName != l.Instances[i-1].ServiceName {
			names = append(names, in.ServiceName)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, api.ServiceList{Services: names})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	wt, err := httpapi.ParseWatch(r.URL.Query(), s.cfg.DefaultWait, s.cfg.MaxWait)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "error_invalid_request", err.Error())
		return
	}
	l, ok := s.list(w, r, wt, name)
	if !ok {
		return
	}
	if len(l.Instances) == 0 {
		writeError(w, r, http.StatusNotFound, httpapi.CodeNotFound, fmt.Sprintf("service %q has no instances", name))
		return
	}
	buf := getBuf()
	defer putBuf(buf)
	b := append((*buf)[:0], `{"service_name":`...)
	b = appendString(b, name)
	b = append(b, ',')
	b = appendInstances(b, "instances", l.Instances, fAll)
	b = append(b, '}')
	*buf = b
	writeRaw(w, http.StatusOK, b)
}

func writeRaw(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) uptime(w http.ResponseWriter, r *http.Request) {
	props := map[string]any{
		"uptime":          time.Since(s.started).Round(time.Second).String(),
		"build_version":   s.cfg.Version,
		"build_goversion": runtime.Version(),
	}
	if l1, l5, l15, ok := loadAverage(); ok {
		props["load_1m"], props["load_5m"], props["load_15m"] = l1, l5, l15
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	healthy, status := true, http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		healthy, status = false, http.StatusServiceUnavailable
		props["error"] = err.Error()
	}
	if len(s.cfg.Catalogs) > 0 {
		// A catalog out of step is reported, not made unhealthy: the registry serves on with the
		// catalog's last good content, and a restart would not mend the catalog's source.
		cats := make(map[string]catalog.Status, len(s.cfg.Catalogs))
		for _, c := range s.cfg.Catalogs {
			cats[c.Name()] = c.Status()
		}
		props["catalogs"] = cats
	}
	httpapi.WriteJSON(w, status, map[string]any{"UPTIME": map[string]any{"healthy": healthy, "properties": props}})
}

// loadAverage reads the 1, 5 and 15 minute load averages (Linux only).
func loadAverage() (l1, l5, l15 float64, ok bool) {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return 0, 0, 0, false
	}
	var errs [3]error
	l1, errs[0] = strconv.ParseFloat(f[0], 64)
	l5, errs[1] = strconv.ParseFloat(f[1], 64)
	l15, errs[2] = strconv.ParseFloat(f[2], 64)
	return l1, l5, l15, errors.Join(errs[:]...) == nil
}
