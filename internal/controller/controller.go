// Package controller is a8's multi-tenant rules API: Amalgam8's controller REST API (both the 1.x
// endpoints and the 0.x per-destination bulk PUTs) over a store.Rules, with validation that names
// every problem, a per-tenant revision, and blocking queries so that sidecars learn of a change at
// once instead of polling.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/strictjson"
)

// Error ids of the controller API, Amalgam8's and a8's own.
const (
	ErrInvalidJSON      = httpapi.CodeInvalidJSON // the body is not JSON
	ErrInvalidRule      = "error_invalid_rule"    // a rule breaks the schema or a8's checks
	ErrNoRulesProvided  = "error_no_rules_provided"
	ErrRuleNotFound     = "error_rule_not_found"    // a8: Amalgam8 answered 500 here
	ErrNamespaceMissing = "error_namespace_missing" // admin token without A8-Namespace
	ErrInvalidNamespace = "error_namespace_invalid" // A8-Namespace is not a valid namespace
	ErrInternal         = httpapi.CodeInternal      // a bug: the description says more
	ErrUnavailable      = httpapi.CodeUnavailable   // the store cannot be reached: retry
	ErrInvalidQuery     = httpapi.CodeInvalidQuery  // an unknown or malformed query parameter
	AdminNamespace      = "admin"                   // the namespace that may act for any other
	NamespaceHeader     = "A8-Namespace"            // the tenant an admin request is for
	RequestIDHeader     = "A8-Request-Id"           // set on every answer, echoed if the request had one
	maxBodyBytes        = 1 << 20                   // 1 MiB
	defaultWait         = 30 * time.Second
	maxWait             = 5 * time.Minute
	healthTimeout       = 2 * time.Second
	listAfterWaitLimit  = 10 * time.Second
	maxRulesPerRequest  = 10000
)

// Config configures a controller Server.
type Config struct {
	// Store holds the rules. Required.
	Store store.Rules
	// Recipes holds resilience recipes and the records of traced requests; nil disables the
	// recipes and records API (501).
	Recipes store.Recipes
	// Auth maps bearer tokens to namespaces; nil means one tenant, "default". A token of the
	// namespace "admin" acts for the namespace in the A8-Namespace header.
	Auth auth.Authenticator
	// DefaultWait and MaxWait bound a blocking query's ?wait= (defaults 30s and 5m).
	DefaultWait, MaxWait time.Duration
	// RequireHTTPS redirects plain-HTTP requests to HTTPS.
	RequireHTTPS bool
	// Logger receives the controller's logs; nil discards them.
	Logger *slog.Logger
	// Version is reported by /health.
	Version string
}

// Server serves the controller API.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Rules
	draining context.Context
	drain    context.CancelFunc
	checks   chan struct{} // a slot per recipe check waiting for records
}

// New returns a controller server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("controller: no store configured")
	}
	if cfg.Auth == nil {
		cfg.Auth = auth.Default()
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = maxWait
	}
	if cfg.DefaultWait <= 0 {
		cfg.DefaultWait = defaultWait
	}
	cfg.DefaultWait = min(cfg.DefaultWait, cfg.MaxWait)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, checks: make(chan struct{}, maxConcurrentChecks)}
	s.draining, s.drain = context.WithCancel(context.Background())
	return s, nil
}

// Drain ends every blocking query now, each answering with the current rules; call it before
// http.Server.Shutdown.
func (s *Server) Drain() { s.drain() }

// errorBody is the controller's error body: Amalgam8's {"error", "description"} and, for invalid
// rules, every problem with its path, for tools. For the errors Amalgam8's HTTP framework answered
// itself (404, 405, 415), the framework's {"Error": "..."} is there too, so clients of either shape
// read them.
type errorBody struct {
	api.ControllerError
	Problems  []problem `json:"problems,omitempty"`
	Framework string    `json:"Error,omitempty"`
}

type problem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
	RuleID string `json:"rule_id,omitempty"`
}

func writeError(w http.ResponseWriter, _ *http.Request, status int, code, msg string) {
	body := errorBody{ControllerError: api.ControllerError{Error: code, Description: msg}}
	switch code {
	case httpapi.CodeNotFound, httpapi.CodeMethodNotAllowed, httpapi.CodeContentType:
		body.Framework = msg
	}
	httpapi.WriteJSON(w, status, body)
}

// WriteError is the controller's httpapi.ErrorWriter, for servers that mount the controller.
var WriteError httpapi.ErrorWriter = writeError

// Handler returns the controller API as a complete handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Mount(mux)
	mux.Handle("/", requestID(httpapi.NotFound(writeError)))
	return s.Wrap(mux)
}

// Wrap adds the controller's outer middleware to h.
func (s *Server) Wrap(h http.Handler) http.Handler {
	h = httpapi.Recover(s.log, writeError, httpapi.CleanPath(writeError, h))
	h = httpapi.AccessLog(s.log, h)
	if s.cfg.RequireHTTPS {
		h = httpapi.RequireHTTPS(h)
	}
	return h
}

// Mount registers the controller's routes on mux.
func (s *Server) Mount(mux *http.ServeMux) {
	route := func(methods map[string]http.Handler) http.Handler {
		h := httpapi.Methods(writeError, methods)
		h = s.namespace(h)
		h = auth.Middleware(s.cfg.Auth, writeError, h)
		h = httpapi.RequireJSON(writeError, h)
		return requestID(h)
	}
	mux.Handle("/v1/rules", route(map[string]http.Handler{
		http.MethodGet:    http.HandlerFunc(s.getRules),
		http.MethodPost:   http.HandlerFunc(s.addRules),
		http.MethodPut:    http.HandlerFunc(s.updateRules),
		http.MethodDelete: http.HandlerFunc(s.deleteRules),
	}))
	for _, kind := range []ruleKind{kindRoute, kindAction} {
		mux.Handle("/v1/rules/"+kind.path, route(map[string]http.Handler{
			http.MethodGet: s.byDestination(kind),
		}))
		mux.Handle("/v1/rules/"+kind.path+"/{destination}", route(map[string]http.Handler{
			http.MethodGet:    s.getDestination(kind),
			http.MethodPut:    s.setDestination(kind),
			http.MethodDelete: s.deleteDestination(kind),
		}))
	}
	s.mountRecipes(mux, route)
	mux.Handle("/health", requestID(httpapi.Methods(writeError, map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(s.health),
	})))
}

// RequestID sets A8-Request-Id on the answer: the request's own, or a new one. Servers that mount the
// controller wrap their catch-all with it.
func RequestID(next http.Handler) http.Handler { return requestID(next) }

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if id == "" || len(id) > 128 {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

// namespace lets the admin namespace act for the tenant named in A8-Namespace.
func (s *Server) namespace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.Namespace(r.Context()) != AdminNamespace {
			next.ServeHTTP(w, r)
			return
		}
		target := r.Header.Get(NamespaceHeader)
		if target == "" {
			writeError(w, r, http.StatusBadRequest, ErrNamespaceMissing, "the admin token acts for a tenant: name it in the "+NamespaceHeader+" header")
			return
		}
		if err := auth.ValidNamespace(target); err != nil {
			writeError(w, r, http.StatusBadRequest, ErrInvalidNamespace, NamespaceHeader+": "+err.Error())
			return
		}
		next.ServeHTTP(w, r.WithContext(auth.WithNamespace(r.Context(), target)))
	})
}

// storeError answers a failed store operation.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	var missing *store.MissingRulesError
	switch {
	case r.Context().Err() != nil:
	case errors.As(err, &missing):
		writeError(w, r, http.StatusNotFound, ErrRuleNotFound, fmt.Sprintf("%s: %v; nothing was changed", op, err))
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("rules store unavailable", "op", op, "error", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, ErrUnavailable, fmt.Sprintf("%s failed: the controller's store is unavailable, retry later (%v)", op, err))
	default:
		s.log.Error("rules store failed", "op", op, "error", err)
		writeError(w, r, http.StatusInternalServerError, ErrInternal, fmt.Sprintf("%s failed: %v", op, err))
	}
}

// readRules reads a body of {"rules": [...]}, strictly: malformed JSON, a wrongly typed or unknown
// field, and a body over 1 MiB are answered here and ok is false.
func (s *Server) readRules(w http.ResponseWriter, r *http.Request, allowEmpty bool) ([]api.Rule, bool) {
	data, err := httpapi.ReadBody(w, r, maxBodyBytes)
	if err != nil {
		var be *httpapi.BodyError
		errors.As(err, &be)
		writeError(w, r, be.Status, be.Code(), be.Msg)
		return nil, false
	}
	var body api.RuleList
	if err := strictjson.Unmarshal(data, &body, ""); err != nil {
		// Like Amalgam8: JSON that does not decode (malformed, or a value of the wrong type) is
		// error_invalid_json; a field the schema does not have is error_invalid_rule.
		var se *strictjson.Error
		if errors.As(err, &se) && se.Unknown {
			writeError(w, r, http.StatusBadRequest, ErrInvalidRule, err.Error())
		} else {
			writeError(w, r, http.StatusBadRequest, ErrInvalidJSON, err.Error())
		}
		return nil, false
	}
	if len(body.Rules) == 0 && !allowEmpty {
		writeError(w, r, http.StatusBadRequest, ErrNoRulesProvided, `no rules provided: send {"rules": [...]}`)
		return nil, false
	}
	if len(body.Rules) > maxRulesPerRequest {
		writeError(w, r, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, fmt.Sprintf("%d rules in one request; send at most %d", len(body.Rules), maxRulesPerRequest))
		return nil, false
	}
	return body.Rules, true
}

// invalid answers 400 with every problem of a rule set.
func invalid(w http.ResponseWriter, err error) {
	body := errorBody{ControllerError: api.ControllerError{Error: ErrInvalidRule, Description: "invalid rules: " + err.Error()}}
	var ve *rules.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			body.Problems = append(body.Problems, problem{Path: p.Path, Reason: p.Reason, RuleID: p.RuleID})
		}
	}
	httpapi.WriteJSON(w, http.StatusBadRequest, body)
}

// newID returns a random (version 4) UUID, Amalgam8's form for generated rule ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func setIndex(w http.ResponseWriter, revision int64) {
	w.Header().Set(httpapi.IndexHeader, strconv.FormatInt(revision, 10))
}
