package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
)

// fabric is a8 up, helloworld instances behind registering sidecars, and a gateway sidecar.
type fabric struct {
	t       *testing.T
	up      *process
	reg     *client.Registry
	ctl     *client.Controller
	gateway string   // the gateway's proxy URL
	admin   string   // the gateway's admin URL
	gw      *process // the gateway sidecar
}

func (f *fabric) sidecarArgs(extra ...string) []string {
	return append([]string{"sidecar", "--registry_url", f.up.URL, "--controller_url", f.up.URL,
		"--registry_poll", "1s", "--controller_poll", "1s", "--admin_port", "0", "--log_level", "warn"}, extra...)
}

// app starts helloworld version at a free port behind a registering sidecar that supervises it.
func (f *fabric) app(version string) {
	port := freePort(f.t)
	startProcess(f.t, nil, a8Bin, f.sidecarArgs("--register", "--service", "helloworld:version="+version,
		"--endpoint_host", "127.0.0.1", "--endpoint_port", fmt.Sprint(port), "--registry_ttl", "3s",
		"--healthchecks", fmt.Sprintf("http://127.0.0.1:%d/health", port),
		"--", helloBin, "--port", fmt.Sprint(port), "--version", version)...)
}

type answer struct {
	code int
	body string
	took time.Duration
}

// call sends one request through the gateway.
func (f *fabric) call(path string, header ...string) answer {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.gateway+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("GET %s through the gateway: %v (%s)", path, err, f.gatewayState())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(data), time.Since(start)}
}

// gatewayState says, for a failed call, whether the gateway process still runs and whether its
// proxy port takes connections now.
func (f *fabric) gatewayState() string {
	state := "gateway process running"
	if f.gw != nil {
		select {
		case err := <-f.gw.done:
			f.gw.done <- err
			state = fmt.Sprintf("gateway process exited: %v", err)
		default:
		}
	}
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(f.gateway, "http://"), time.Second)
	if err != nil {
		return state + "; a new dial fails too: " + err.Error()
	}
	c.Close()
	return state + "; a new dial succeeds"
}

// routes returns the gateway's routing table dump.
func (f *fabric) routes() map[string]any {
	resp, err := http.Get(f.admin + "/routes")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// waitRevision waits until the gateway's table is at rules revision rev or later.
func (f *fabric) waitRevision(rev int64) {
	f.t.Helper()
	waitFor(f.t, fmt.Sprintf("the gateway at rules revision %d", rev), func() bool {
		r, _ := dig(f.routes(), "table", "revision").(float64)
		return int64(r) >= rev
	})
}

// endpoints is how many helloworld instances the gateway routes to.
func (f *fabric) endpoints() int {
	eps, _ := dig(f.routes(), "table", "destinations", "helloworld", "default", "endpoints").([]any)
	return len(eps)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fabric) setRules(rs ...api.Rule) int64 {
	f.t.Helper()
	ctx := context.Background()
	if err := f.ctl.DeleteRules(ctx, client.RuleFilter{}); err != nil {
		f.t.Fatal(err)
	}
	if len(rs) > 0 {
		if _, err := f.ctl.CreateRules(ctx, rs); err != nil {
			f.t.Fatal(err)
		}
	}
	l, _, err := f.ctl.GetRules(ctx, client.RuleFilter{}, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.waitRevision(l.Revision)
	return l.Revision
}

func versions(t *testing.T, f *fabric, n int, header ...string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		a := f.call("/helloworld/hello", header...)
		switch {
		case a.code != 200:
			out[fmt.Sprint(a.code)]++
		case strings.Contains(a.body, "version=v1"):
			out["v1"]++
		case strings.Contains(a.body, "version=v2"):
			out["v2"]++
		default:
			t.Fatalf("unexpected answer %q", a.body)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func route(id string, priority int, match *api.Match, retries *int, backends ...api.Backend) api.Rule {
	return api.Rule{ID: id, Priority: priority, Destination: "helloworld", Match: match, Route: &api.Route{Backends: backends, HTTPReqRetries: retries}}
}

func backend(version string, weight *float64) api.Backend {
	return api.Backend{Tags: []string{"version=" + version}, Weight: weight}
}

// The sidecar issue's acceptance scenario, on real processes: a8 up, helloworld v1 (two instances)
// and v2 behind registering sidecars that supervise them, and a gateway sidecar.
func TestSidecar_Fabric(t *testing.T) {
	f := &fabric{t: t}
	f.up = startA8(t, nil, "/health", "up", "--data_dir", t.TempDir(), "--min_ttl", "1s", "--reap_interval", "200ms")
	f.reg, f.ctl = newClient(t, f.up.URL, ""), newController(t, f.up.URL)
	f.app("v1")
	f.app("v2")
	// The second v1 instance runs on its own, so that the test can crash it and its sidecar.
	crashPort := freePort(t)
	crashApp := startProcess(t, nil, helloBin, "--port", fmt.Sprint(crashPort), "--version", "v1")
	crashSidecar := startProcess(t, nil, a8Bin, f.sidecarArgs("--register", "--service", "helloworld:version=v1",
		"--endpoint_host", "127.0.0.1", "--endpoint_port", fmt.Sprint(crashPort), "--registry_ttl", "3s",
		"--healthchecks", fmt.Sprintf("http://127.0.0.1:%d/health", crashPort))...)
	gwPort, gwAdmin := freePort(t), freePort(t)
	f.gw = startProcess(t, nil, a8Bin, f.sidecarArgs("--proxy", "--service", "gateway:version=none",
		"--proxy_port", fmt.Sprint(gwPort), "--admin_port", fmt.Sprint(gwAdmin))...)
	f.gateway, f.admin = fmt.Sprintf("http://127.0.0.1:%d", gwPort), fmt.Sprintf("http://127.0.0.1:%d", gwAdmin)
	waitFor(t, "three helloworld instances in the gateway's table", func() bool { return f.endpoints() == 3 })

	// No rules: every instance serves.
	if got := versions(t, f, 60); got["v1"] == 0 || got["v2"] == 0 || len(got) != 2 {
		t.Fatalf("without rules: %v", got)
	}

	t.Run("default route 100% to v1", func(t *testing.T) {
		f.setRules(route("helloworld-default-route", 1, nil, nil, backend("v1", nil)))
		if got := versions(t, f, 100); got["v1"] != 100 {
			t.Fatalf("default rule to v1: %v", got)
		}
	})

	t.Run("75/25 split", func(t *testing.T) {
		f.setRules(route("helloworld-default-route", 1, nil, nil, backend("v2", ptr(0.25)), backend("v1", nil)))
		got := versions(t, f, 2000)
		if pct := float64(got["v2"]) * 100 / 2000; pct < 20 || pct > 30 || got["v1"]+got["v2"] != 2000 {
			t.Fatalf("25%% to v2 over 2000 requests: %v (%.1f%%)", got, pct)
		}
		t.Logf("split over 2000 requests: %v", got)
	})

	t.Run("cookie rule picks v2", func(t *testing.T) {
		f.setRules(
			route("helloworld-default-route", 1, nil, nil, backend("v1", nil)),
			route("helloworld-jason", 2, &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}}, nil, backend("v2", nil)),
		)
		if got := versions(t, f, 50, "Cookie", "foo=bar;user=jason;x"); got["v2"] != 50 {
			t.Fatalf("jason: %v", got)
		}
		if got := versions(t, f, 50, "Cookie", "foo=bar;user=shriram;x"); got["v1"] != 50 {
			t.Fatalf("shriram: %v", got)
		}
	})

	t.Run("delay action", func(t *testing.T) {
		f.setRules(
			route("helloworld-default-route", 1, nil, nil, backend("v1", nil)),
			api.Rule{ID: "delay", Destination: "helloworld", Match: &api.Match{Source: &api.Source{Name: "gateway"}, Headers: map[string]string{"X-Test": "delay"}},
				Actions: []api.Action{{Action: "delay", Duration: 0.5}}},
		)
		for range 5 {
			if a := f.call("/helloworld/hello", "X-Test", "delay"); a.code != 200 || a.took < 500*time.Millisecond {
				t.Fatalf("delayed call: %d after %v", a.code, a.took)
			}
			if a := f.call("/helloworld/hello"); a.code != 200 || a.took >= 500*time.Millisecond {
				t.Fatalf("call without the header: %d after %v", a.code, a.took)
			}
		}
	})

	t.Run("abort action at its probability", func(t *testing.T) {
		f.setRules(
			route("helloworld-default-route", 1, nil, nil, backend("v1", nil)),
			api.Rule{ID: "abort", Destination: "helloworld", Match: &api.Match{Headers: map[string]string{"X-Test": "abort"}},
				Actions: []api.Action{{Action: "abort", ReturnCode: ptr(503), Probability: ptr(0.5)}}},
		)
		got := versions(t, f, 200, "X-Test", "abort")
		if got["503"] < 70 || got["503"] > 130 || got["503"]+got["v1"] != 200 {
			t.Fatalf("abort with probability 0.5 over 200 requests: %v", got)
		}
		if got := versions(t, f, 50); got["v1"] != 50 {
			t.Fatalf("without the header: %v", got)
		}
	})

	t.Run("retries hide a failing instance", func(t *testing.T) {
		// An instance that is registered but does not answer (its port is closed).
		dead := freePort(t)
		if _, err := f.reg.Register(context.Background(), api.InstanceRegistration{ServiceName: "helloworld", Tags: []string{"version=v1"},
			Endpoint: &api.Endpoint{Type: "http", Value: fmt.Sprintf("127.0.0.1:%d", dead)}, TTL: 600}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the dead instance in the gateway's table", func() bool { return f.endpoints() == 4 })
		f.setRules(route("helloworld-default-route", 1, nil, ptr(0), backend("v1", nil)))
		if got := versions(t, f, 60); got["503"] == 0 {
			t.Fatalf("without retries the dead instance must show: %v", got)
		}
		f.setRules(route("helloworld-default-route", 1, nil, ptr(2), backend("v1", nil)))
		if got := versions(t, f, 200); got["v1"] != 200 {
			t.Fatalf("with 2 retries: %v", got)
		}
	})

	t.Run("a crashed instance leaves the registry after its TTL, routed around meanwhile", func(t *testing.T) {
		crashSidecar.kill()
		crashApp.kill()
		crashed := time.Now()
		for time.Since(crashed) < 2*time.Second { // inside the TTL: still registered, retries route around it
			if got := versions(t, f, 20); got["v1"] != 20 {
				t.Fatalf("while the crashed instance is still registered: %v", got)
			}
		}
		waitFor(t, "the crashed instance to expire from the registry", func() bool {
			l, _, err := f.reg.Instances(context.Background(), client.InstanceQuery{ServiceName: "helloworld"}, nil)
			if err != nil {
				return false
			}
			for _, in := range l {
				if in.Endpoint.Value == fmt.Sprintf("127.0.0.1:%d", crashPort) {
					return false
				}
			}
			return true
		})
		t.Logf("the crashed instance expired %v after the crash (ttl 3s)", time.Since(crashed).Round(100*time.Millisecond))
		waitFor(t, "the gateway to drop it", func() bool { return f.endpoints() == 3 })
		if got := versions(t, f, 50); got["v1"] != 50 {
			t.Fatalf("after expiry: %v", got)
		}
	})

	t.Run("routing goes on while the control plane is down", func(t *testing.T) {
		f.up.kill()
		waitFor(t, "the gateway to notice", func() bool {
			failing, _ := dig(f.routes(), "sources", "controller", "failing").(bool)
			return failing
		})
		if got := versions(t, f, 100); got["v1"] != 100 {
			t.Fatalf("with the controller and registry stopped: %v", got)
		}
	})
}
