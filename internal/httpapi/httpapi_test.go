package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// testError is an ErrorWriter in the controller's shape.
func testError(w http.ResponseWriter, _ *http.Request, status int, code, msg string) {
	WriteJSON(w, status, map[string]string{"error": code, "description": msg})
}

func TestCleanPath(t *testing.T) {
	var mu sync.Mutex
	var hits []string
	mux := http.NewServeMux()
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits = append(hits, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/v1/rules", record)
	mux.Handle("/v1/rules/actions/{destination}", record)
	mux.Handle("/dir/", record)
	h := CleanPath(testError, mux)

	tests := []struct {
		method, target string
		status         int
		location       string // for a redirect
	}{
		// The bug: ServeMux redirects DELETE .../.. to /v1/rules, which Go's client follows as a DELETE.
		{method: http.MethodDelete, target: "/v1/rules/actions/..", status: http.StatusBadRequest},
		{method: http.MethodPut, target: "/v1/rules/actions/.", status: http.StatusBadRequest},
		{method: http.MethodPost, target: "/v1//rules", status: http.StatusBadRequest},
		{method: http.MethodDelete, target: "/v1/rules/x/../actions/y", status: http.StatusBadRequest},
		{method: http.MethodPatch, target: "/v1/rules/./", status: http.StatusBadRequest},
		// Canonical paths pass, a trailing slash included.
		{method: http.MethodDelete, target: "/v1/rules/actions/ratings", status: http.StatusNoContent},
		{method: http.MethodDelete, target: "/v1/rules?destination=a", status: http.StatusNoContent},
		{method: http.MethodPost, target: "/dir/", status: http.StatusNoContent},
		{method: http.MethodDelete, target: "/v1/rules/actions/%2E%2E", status: http.StatusNoContent}, // escaped: a destination named ".."
		// GET and HEAD are still redirected by the mux.
		{method: http.MethodGet, target: "/v1/rules/actions/..", status: http.StatusTemporaryRedirect, location: "/v1/rules"},
		{method: http.MethodHead, target: "/v1//rules", status: http.StatusTemporaryRedirect, location: "/v1/rules"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			mu.Lock()
			hits = nil
			mu.Unlock()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if loc := rec.Header().Get("Location"); loc != tt.location {
				t.Errorf("Location %q, want %q", loc, tt.location)
			}
			mu.Lock()
			defer mu.Unlock()
			if tt.status == http.StatusBadRequest {
				if len(hits) != 0 {
					t.Errorf("the handlers saw %v", hits)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				var body map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("body %q: %v", rec.Body, err)
				}
				if body["error"] != CodeInvalidPath || !strings.Contains(body["description"], "is not canonical") || !strings.Contains(body["description"], tt.method) {
					t.Errorf("body %v", body)
				}
			}
		})
	}
}

// TestCleanPathAgainstGoClient is the bug end to end: Go's client follows a 307 with the same method.
func TestCleanPathAgainstGoClient(t *testing.T) {
	var mu sync.Mutex
	var deleted []string
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/rules", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		deleted = append(deleted, "every rule")
		mu.Unlock()
	})
	mux.HandleFunc("DELETE /v1/rules/actions/{destination}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		deleted = append(deleted, "the actions of "+r.PathValue("destination"))
		mu.Unlock()
	})
	srv := httptest.NewServer(CleanPath(testError, mux))
	defer srv.Close()
	req, err := http.NewRequest(http.MethodDelete, srv.URL+"/v1/rules/actions/..", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusBadRequest || len(deleted) != 0 {
		t.Errorf("status %d, deleted %v; want 400 and nothing deleted", resp.StatusCode, deleted)
	}
}
