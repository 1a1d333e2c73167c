package bookinfo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// requestIDHeader is the header that ties together the calls of one request (Envoy's, and so the
// sidecars' request records').
const requestIDHeader = "X-Request-ID"

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notes collects what went wrong in a request's calls, for its log line.
type notes struct {
	mu   sync.Mutex
	list []string
}

type notesKey struct{}

// note adds a remark to the log line of the request that ctx belongs to.
func note(ctx context.Context, format string, args ...any) {
	if n, ok := ctx.Value(notesKey{}).(*notes); ok {
		n.mu.Lock()
		n.list = append(n.list, fmt.Sprintf(format, args...))
		n.mu.Unlock()
	}
}

// logRequests logs one line per request: method, path, status, duration, request id, and what went
// wrong in its calls. With generateID (productpage, the entry point) a request without an
// X-Request-ID gets one, which its calls then forward.
func (a *app) logRequests(next http.Handler, generateID bool) http.Handler {
	prefix := a.cfg.service + " " + a.cfg.version
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(requestIDHeader)
		if id == "" && generateID {
			id = newRequestID()
			r.Header.Set(requestIDHeader, id)
		}
		if id != "" {
			w.Header().Set(requestIDHeader, id)
		}
		n := &notes{}
		r = r.WithContext(context.WithValue(r.Context(), notesKey{}, n))
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		line := fmt.Sprintf("%s: %s %s %d %s request_id=%s", prefix, r.Method, r.URL.RequestURI(), sw.status,
			time.Since(start).Round(time.Microsecond), orDash(id))
		n.mu.Lock()
		if len(n.list) > 0 {
			line += " errors=" + strconv.Quote(strings.Join(n.list, "; "))
		}
		n.mu.Unlock()
		a.log.Print(line)
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newRequestID returns a random (version 4) UUID, the form Envoy gives X-Request-ID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// forwardHeaders are the headers of r that the calls it makes carry on: the whole Cookie header (the
// rules match it, e.g. user=jason) and X-Request-ID.
func forwardHeaders(r *http.Request) http.Header {
	h := http.Header{}
	for _, c := range r.Header.Values("Cookie") {
		h.Add("Cookie", c)
	}
	if id := r.Header.Get(requestIDHeader); id != "" {
		h.Set(requestIDHeader, id)
	}
	return h
}

// maxBody caps what a service reads of another's answer.
const maxBody = 1 << 20

// get calls GET <proxy>/<service>/<path> through the sidecar with the forwarded headers, up to
// attempts times, each within timeout, and decodes the JSON answer into v. Any failure (connection,
// timeout, status other than 200, bad JSON) counts as a failed attempt; the request's notes say why.
func (a *app) get(ctx context.Context, service, path string, h http.Header, timeout time.Duration, attempts int, v any) error {
	url := a.cfg.proxy + "/" + service + path
	var err error
	for i := 1; i <= attempts && ctx.Err() == nil; i++ {
		err = a.getOnce(ctx, url, h, timeout, v)
		if err == nil {
			return nil
		}
		note(ctx, "%s attempt %d/%d: %v", service, i, attempts, err)
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

func (a *app) getOnce(ctx context.Context, url string, h http.Header, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header = h.Clone()
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// writeJSON answers v as compact JSON (a8 demo greps "version":"v2" out of it).
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error string `json:"error"`
}

// productID parses the {id} of r's path; on failure it answers 400 with a JSON error and returns false.
func productID(w http.ResponseWriter, r *http.Request) (int, bool) {
	s := r.PathValue("id")
	id, err := strconv.Atoi(s)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("product id %q is not an integer", s)})
		return 0, false
	}
	return id, true
}
