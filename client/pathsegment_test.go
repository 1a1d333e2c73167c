package client_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store/memory"
)

// TestPathSegments checks that a name that is not one URL path segment ("", ".", "..") is refused
// before anything is sent: DELETE /v1/rules/actions/.. would be DELETE /v1/rules once cleaned.
func TestPathSegments(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	ctl, err := client.NewController(client.ControllerConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.NewRegistry(client.RegistryConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rules := []api.Rule{{Destination: "x", Actions: []api.Action{{Action: api.ActionTrace}}}}
	calls := map[string]func(name string) error{
		"DeleteRoutes":  func(n string) error { return ctl.DeleteRoutes(ctx, n) },
		"DeleteActions": func(n string) error { return ctl.DeleteActions(ctx, n) },
		"SetRoutes":     func(n string) error { _, err := ctl.SetRoutes(ctx, n, nil); return err },
		"SetActions":    func(n string) error { _, err := ctl.SetActions(ctx, n, rules); return err },
		"Heartbeat":     func(n string) error { return reg.Heartbeat(ctx, n) },
		"Deregister":    func(n string) error { return reg.Deregister(ctx, n) },
		"Service":       func(n string) error { _, _, err := reg.Service(ctx, n, nil); return err },
	}
	for name, call := range calls {
		for _, bad := range []string{"", ".", ".."} {
			err := call(bad)
			if !errors.Is(err, client.ErrPathSegment) || !strings.Contains(err.Error(), `"`+bad+`" cannot be a URL path segment`) {
				t.Errorf("%s(%q) = %v, want ErrPathSegment", name, bad, err)
			}
		}
		if n := requests.Load(); n != 0 {
			t.Fatalf("%s sent %d requests for bad names", name, n)
		}
		// Names that merely contain dots or slashes are one escaped segment.
		for _, ok := range []string{"...", ".hidden", "a/..", "v1.2"} {
			if err := call(ok); err != nil {
				t.Errorf("%s(%q) = %v", name, ok, err)
			}
		}
		requests.Store(0)
	}
}

// TestServersRefuseDotSegments: a client that sends such a path anyway (an older one, curl) gets
// 400 from the servers for a change, not a redirect to the cleaned path that Go's client follows.
func TestServersRefuseDotSegments(t *testing.T) {
	rs, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := controller.New(controller.Config{Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		method  string
		path    string
		errKey  string
	}{
		{"controller", ctl.Handler(), http.MethodDelete, "/v1/rules/actions/..", `"error":"error_invalid_path"`},
		{"controller", ctl.Handler(), http.MethodPut, "/v1/rules/routes/.", `"error":"error_invalid_path"`},
		{"registry", reg.Handler(), http.MethodDelete, "/api/v1/instances/..", `{"error":"path`},
		{"registry", reg.Handler(), http.MethodPut, "/api/v1/instances/x/../heartbeat", `{"error":"path`},
	} {
		srv := httptest.NewServer(tc.handler)
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = io.Copy(&body, resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(strings.ToLower(body.String()), tc.errKey) {
			t.Errorf("%s: %s %s: %d %s, want 400 with %s", tc.name, tc.method, tc.path, resp.StatusCode, body.String(), tc.errKey)
		}
	}
}
