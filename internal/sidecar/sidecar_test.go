package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/sidecar/health"
	"github.com/a8fabric/a8/internal/store/memory"
)

// controlPlane is a real registry and controller, served in process.
type controlPlane struct {
	*httptest.Server
	reg  *client.Registry
	ctl  *client.Controller
	down atomic.Bool // answer 503 to everything
}

func newControlPlane(t *testing.T) *controlPlane {
	rs, _ := memory.NewRules("")
	ctl, err := controller.New(controller.Config{Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil), MinTTL: time.Second, DefaultTTL: time.Second, ReapInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = reg.Run(ctx) }()
	mux := http.NewServeMux()
	ctl.Mount(mux)
	reg.Mount(mux)
	cp := &controlPlane{}
	cp.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cp.down.Load() {
			http.Error(w, `{"Error":"down"}`, 503)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { ctl.Drain(); reg.Drain(); cp.Close() })
	cp.reg, _ = client.NewRegistry(client.RegistryConfig{URL: cp.URL})
	cp.ctl, _ = client.NewController(client.ControllerConfig{URL: cp.URL})
	return cp
}

func (cp *controlPlane) instances(t *testing.T) []api.Instance {
	l, _, err := cp.reg.Instances(context.Background(), client.InstanceQuery{Status: "ALL"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// running is a sidecar started by start.
type running struct {
	s    *Sidecar
	code chan int
}

func start(t *testing.T, cfg config.Config) *running {
	t.Helper()
	if cfg.ProxyConfig.Records == 0 {
		cfg.ProxyConfig.Records = 100
	}
	cfg.ProxyConfig.AdminAddress = "127.0.0.1"
	cfg.ProxyConfig.ListenAddress = "127.0.0.1"
	if cfg.Registry.TTL == 0 {
		cfg.Registry.TTL = time.Second
	}
	cfg.Registry.Poll, cfg.Controller.Poll = time.Second, time.Second
	cfg.DiscoveryAdapter, cfg.RulesAdapter = "amalgam8", "amalgam8"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{s: s, code: make(chan int, 1)}
	go func() {
		code, err := s.Run(context.Background())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.code <- code
	}()
	t.Cleanup(func() {
		s.Stop(nil)
		select {
		case <-r.code:
		case <-time.After(30 * time.Second):
			t.Error("the sidecar did not stop")
		}
	})
	return r
}

func (r *running) admin(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get("http://" + r.s.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (r *running) call(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + r.s.ProxyAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func upstream(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) }))
	t.Cleanup(srv.Close)
	return srv
}

func TestSidecar_StaticConfig(t *testing.T) {
	v1, v2 := upstream(t, "v1"), upstream(t, "v2")
	file := filepath.Join(t.TempDir(), "routes.yaml")
	write := func(content string) {
		// A new size or time, so that the change is seen even within the same second.
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	instances := fmt.Sprintf("instances:\n- {service_name: svc, endpoint: {value: %q}, tags: [v1]}\n- {service_name: svc, endpoint: {value: %q}, tags: [v2]}\n",
		strings.TrimPrefix(v1.URL, "http://"), strings.TrimPrefix(v2.URL, "http://"))
	write(instances + "rules:\n- {destination: svc, route: {backends: [{tags: [v1]}]}}\n")
	r := start(t, config.Config{Proxy: true, StaticConfig: file, Service: config.Service{Name: "edge"}})
	eventually(t, "ready", func() bool { code, _ := r.admin(t, "/ready"); return code == 200 })
	if code, body := r.call(t, "/svc/x"); code != 200 || body != "v1" {
		t.Fatalf("routed to %d %q, want v1", code, body)
	}
	write(instances + "rules:\n- {destination: svc, route: {backends: [{tags: [v2]}]}}\n# now v2\n")
	eventually(t, "the reloaded rules", func() bool { _, body := r.call(t, "/svc/x"); return body == "v2" })
	// A broken file leaves the last good table in force, and says so.
	write(instances + "rules:\n- {destination: svc, route: {backends: [{tags: [v1], weight: 7}]}}\n")
	eventually(t, "the rejection to show", func() bool {
		_, m := r.admin(t, "/routes")
		rejected, _ := m["sources"].(map[string]any)["file"].(map[string]any)["rejected"].(string)
		return strings.Contains(rejected, "weight")
	})
	if _, body := r.call(t, "/svc/x"); body != "v2" {
		t.Fatalf("after a bad file, routed to %q; want the last good table (v2)", body)
	}
	// Records, with filters.
	_, m := r.admin(t, "/records?dst=svc&limit=2")
	recs, _ := m["records"].([]any)
	if len(recs) != 2 || recs[1].(map[string]any)["dst"] != "svc:v2" {
		t.Fatalf("records: %v", m)
	}
	if code, _ := r.admin(t, "/records?since=yesterday"); code != 400 {
		t.Fatalf("bad since: %d", code)
	}
	// Metrics show the rejection.
	resp, err := http.Get("http://" + r.s.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(data), `a8_sidecar_source_failing{source="file"} 1`) || !strings.Contains(string(data), `a8_proxy_requests_total{backend="v2",code="2xx",destination="svc",source="edge"}`) {
		t.Fatalf("metrics:\n%s", data)
	}
}

// Registration follows health: registered when the checks pass, deregistered when one fails,
// registered again on recovery, deregistered when the sidecar stops.
func TestSidecar_RegistrationFollowsHealth(t *testing.T) {
	cp := newControlPlane(t)
	var healthy atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(503)
		}
	}))
	defer app.Close()
	port := app.Listener.Addr().(*tcpAddr).Port
	r := start(t, config.Config{Register: true, Service: config.Service{Name: "app", Tags: []string{"version=v1"}},
		Endpoint:     config.Endpoint{Host: "127.0.0.1", Port: port, Type: "http"},
		Registry:     config.ControlPlane{URL: cp.URL},
		HealthChecks: []health.Check{{Type: "http", Value: app.URL, Interval: 50 * time.Millisecond}},
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(cp.instances(t)); n != 0 {
		t.Fatalf("registered %d instances while the health check fails", n)
	}
	if code, m := r.admin(t, "/ready"); code != 503 || !strings.Contains(fmt.Sprint(m["missing"]), "health checks not passing") {
		t.Fatalf("/ready while unhealthy: %d %v", code, m)
	}
	healthy.Store(true)
	eventually(t, "registration", func() bool { return len(cp.instances(t)) == 1 })
	in := cp.instances(t)[0]
	if in.ServiceName != "app" || in.Endpoint.Value != fmt.Sprintf("127.0.0.1:%d", port) || in.Tags[0] != "version=v1" {
		t.Fatalf("registered %+v", in)
	}
	eventually(t, "ready", func() bool { code, _ := r.admin(t, "/ready"); return code == 200 })
	healthy.Store(false)
	eventually(t, "deregistration on failure", func() bool { return len(cp.instances(t)) == 0 })
	healthy.Store(true)
	eventually(t, "registration on recovery", func() bool { return len(cp.instances(t)) == 1 })
	time.Sleep(1500 * time.Millisecond) // past the 1s TTL: heartbeats keep it
	if len(cp.instances(t)) != 1 {
		t.Fatal("the instance expired although heartbeats were sent")
	}
	r.s.Stop(nil)
	<-r.code
	r.code <- 0
	if n := len(cp.instances(t)); n != 0 {
		t.Fatalf("%d instances left after the sidecar stopped", n)
	}
}

type tcpAddr = netTCPAddr

// A supervised app that exits ends the sidecar with its exit code, after deregistering.
func TestSidecar_AppExitCode(t *testing.T) {
	cp := newControlPlane(t)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	marker := filepath.Join(t.TempDir(), "go")
	r := start(t, config.Config{Register: true, Service: config.Service{Name: "app"},
		Endpoint: config.Endpoint{Host: "127.0.0.1", Port: app.Listener.Addr().(*tcpAddr).Port, Type: "http"},
		Registry: config.ControlPlane{URL: cp.URL},
		Commands: []config.Command{{Cmd: []string{"sh", "-c", fmt.Sprintf("while [ ! -e %s ]; do sleep 0.02; done; exit 7", marker)}, OnExit: "terminate"}},
	})
	eventually(t, "registration", func() bool { return len(cp.instances(t)) == 1 })
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-r.code:
		r.code <- code
		if code != 7 {
			t.Fatalf("sidecar exit code %d, want the app's 7", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sidecar did not stop when its app exited")
	}
	if n := len(cp.instances(t)); n != 0 {
		t.Fatalf("%d instances left after the app exited", n)
	}
}

// Stopping on a signal deregisters, then passes that very signal to the app, whose exit code the
// sidecar ends with.
func TestSidecar_SignalPassedOn(t *testing.T) {
	cp := newControlPlane(t)
	app := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer app.Close()
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got")
	// The app writes which signal it got and whether the instance was still registered then.
	script := fmt.Sprintf(`trap 'curl -s "%s/api/v1/instances" > %s; echo INT >> %s; exit 42' INT; trap 'echo TERM > %s; exit 43' TERM; touch %s; while :; do sleep 0.05; done`,
		cp.URL, got, got, got, ready)
	r := start(t, config.Config{Register: true, Service: config.Service{Name: "app"},
		Endpoint: config.Endpoint{Host: "127.0.0.1", Port: app.Listener.Addr().(*tcpAddr).Port, Type: "http"},
		Registry: config.ControlPlane{URL: cp.URL},
		Commands: []config.Command{{Cmd: []string{"sh", "-c", script}}},
	})
	eventually(t, "registration and the app", func() bool {
		_, err := os.Stat(ready)
		return err == nil && len(cp.instances(t)) == 1
	})
	r.s.Stop(syscall.SIGINT)
	code := <-r.code
	r.code <- code
	data, _ := os.ReadFile(got)
	if code != 42 || !strings.Contains(string(data), "INT") || !strings.Contains(string(data), `{"instances":[]}`) {
		t.Fatalf("exit %d, app saw %q: want SIGINT passed on after the deregistration, and exit 42", code, data)
	}
}

// Before rules arrive there is no table; while the control plane is away the last table stays.
func TestSidecar_FailStatic(t *testing.T) {
	cp := newControlPlane(t)
	up := upstream(t, "v1")
	ctx := context.Background()
	if _, err := cp.reg.Register(ctx, api.InstanceRegistration{ServiceName: "svc", Tags: []string{"v1"}, TTL: 600,
		Endpoint: &api.Endpoint{Type: "http", Value: strings.TrimPrefix(up.URL, "http://")}}); err != nil {
		t.Fatal(err)
	}
	cp.down.Store(true)
	r := start(t, config.Config{Proxy: true, Service: config.Service{Name: "gateway"},
		Registry: config.ControlPlane{URL: cp.URL}, Controller: config.ControlPlane{URL: cp.URL}})
	time.Sleep(300 * time.Millisecond)
	if code, _ := r.call(t, "/svc/x"); code != 404 {
		t.Fatalf("routed (%d) before any rules were loaded", code)
	}
	if code, _ := r.admin(t, "/ready"); code != 503 {
		t.Fatalf("/ready before the table: %d", code)
	}
	cp.down.Store(false)
	eventually(t, "the table", func() bool { code, _ := r.call(t, "/svc/x"); return code == 200 })
	cp.down.Store(true)
	cp.CloseClientConnections() // as when the control plane's process dies: open watches break
	eventually(t, "the outage to show", func() bool {
		_, m := r.admin(t, "/routes")
		failing, _ := m["sources"].(map[string]any)["controller"].(map[string]any)["failing"].(bool)
		return failing
	})
	for range 20 {
		if code, body := r.call(t, "/svc/x"); code != 200 || body != "v1" {
			t.Fatalf("during the outage: %d %q", code, body)
		}
	}
}

type netTCPAddr = net.TCPAddr
