// Package httpapi holds the HTTP plumbing a8's JSON APIs share: method dispatch with JSON 404 and
// 405 answers, the JSON content-type check, strict body decoding with errors that name the field,
// HTTPS redirects, the refusal of non-canonical paths that would be redirected, and panic recovery. Each API passes its own ErrorWriter, since Amalgam8's registry
// and controller spell errors differently.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"runtime/debug"
	"slices"
	"strings"
	"time"
)

// ErrorWriter writes an error response in an API's own error format. code is a stable machine id
// (the controller's "error" field, Amalgam8's ids such as error_invalid_json); msg is for people.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, code, msg string)

// Error ids shared by a8's APIs. The controller sends them; the registry's format has no id.
const (
	CodeInvalidJSON      = "error_invalid_json"
	CodeNotFound         = "error_not_found"
	CodeMethodNotAllowed = "error_method_not_allowed"
	CodeContentType      = "error_invalid_content_type"
	CodeTooLarge         = "error_request_too_large"
	CodeInternal         = "error_internal"
	CodeUnavailable      = "error_unavailable"
	CodeInvalidQuery     = "error_invalid_query"
	CodeInvalidPath      = "error_invalid_path"
)

// WriteJSON writes v as a JSON response with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"Error":"encoding the response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}

// Methods dispatches a path's requests by method. Other methods get 405 with an Allow header; a
// GET handler also answers HEAD.
func Methods(writeErr ErrorWriter, handlers map[string]http.Handler) http.Handler {
	if g, ok := handlers[http.MethodGet]; ok {
		if _, ok := handlers[http.MethodHead]; !ok {
			handlers[http.MethodHead] = g
		}
	}
	allowed := make([]string, 0, len(handlers))
	for m := range handlers {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := handlers[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			writeErr(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "Method not allowed")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NotFound answers every request with a JSON 404. Mount it at "/" as the catch-all.
func NotFound(writeErr ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, r, http.StatusNotFound, CodeNotFound, "Resource not found")
	})
}

// RequireJSON answers 415 to a request that has a body whose Content-Type is not application/json
// (with, if any, charset UTF-8), as Amalgam8's servers do.
func RequireJSON(writeErr ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && !isJSON(r.Header.Get("Content-Type")) {
			writeErr(w, r, http.StatusUnsupportedMediaType, CodeContentType, "Bad Content-Type or charset, expected 'application/json'")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// BodyError is a request body that could not be used: Status is 400 or 413, Msg says why.
type BodyError struct {
	Status int
	Msg    string
}

// Code is the error id of the body error.
func (e *BodyError) Code() string {
	if e.Status == http.StatusRequestEntityTooLarge {
		return CodeTooLarge
	}
	return CodeInvalidJSON
}

// ReadBody reads the whole body of r, at most limit bytes; a body cut off before its end or over the
// limit is a *BodyError.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &BodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit)}
		}
		return nil, &BodyError{http.StatusBadRequest, "request body could not be read to its end: " + err.Error()}
	}
	return data, nil
}

func (e *BodyError) Error() string { return e.Msg }

// DecodeJSON reads the whole body of r (at most limit bytes) and decodes it into v. A body cut off
// before its end, an empty or oversized body, malformed JSON, a wrongly typed field, and data after
// the JSON value are each a *BodyError that says what and where, and v is then not to be used.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	data, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return DecodeJSONBytes(data, v)
}

// DecodeJSONBytes is DecodeJSON for a body already read.
func DecodeJSONBytes(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return &BodyError{http.StatusBadRequest, "request body is empty: expected a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return &BodyError{http.StatusBadRequest, fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, err)}
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				field = "body"
			}
			return &BodyError{http.StatusBadRequest, fmt.Sprintf("%s: expected %s, got JSON %s", field, jsonType(typ.Type.String()), typ.Value)}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return &BodyError{http.StatusBadRequest, "malformed JSON: the body ends before the JSON value does"}
		default:
			return &BodyError{http.StatusBadRequest, "malformed JSON: " + err.Error()}
		}
	}
	if dec.More() {
		return &BodyError{http.StatusBadRequest, fmt.Sprintf("malformed JSON: unexpected data after the JSON value at byte %d", dec.InputOffset())}
	}
	return nil
}

// jsonType names a Go type the way a JSON user would.
func jsonType(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map[") || strings.Contains(goType, "."):
		return "an object"
	}
	return goType
}

// RequireHTTPS redirects plain-HTTP requests (neither TLS nor X-Forwarded-Proto: https) to HTTPS.
func RequireHTTPS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// CleanPath answers 400 to a request other than GET and HEAD whose path is not canonical: one
// with an empty, "." or ".." segment, such as DELETE /v1/rules/actions/.. . http.ServeMux would
// redirect it (307) to the cleaned path, /v1/rules, and an HTTP client that follows redirects with
// the same method, as Go's does, would then act on that other resource: delete every rule. GET and
// HEAD are passed on, to be redirected as before. The check is ServeMux's own: the escaped path
// against its path.Clean, a trailing slash kept. Wrap the ServeMux with it.
func CleanPath(writeErr ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodConnect: // CONNECT: ServeMux does not clean its path
			next.ServeHTTP(w, r)
			return
		}
		p := r.URL.EscapedPath()
		if clean := cleanPath(p); clean != p {
			writeErr(w, r, http.StatusBadRequest, CodeInvalidPath,
				fmt.Sprintf("path %q is not canonical (it has an empty, \".\" or \"..\" segment; cleaned it is %q): a %s is not redirected, since it would act on another resource", p, clean, r.Method))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is http.ServeMux's canonical form of a path: path.Clean with a leading slash, and the
// trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// Recover turns a handler panic into a 500 in the API's error format and logs it with its stack,
// instead of dropping the connection.
func Recover(log *slog.Logger, writeErr ErrorWriter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeErr(w, r, http.StatusInternalServerError, CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// AccessLog logs each request at debug level. When debug is off it returns next unchanged, so the
// hot path pays nothing.
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration", time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
