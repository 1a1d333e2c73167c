package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// demoEnv is a running "a8 demo" and an a8ctl pointed at it.
type demoEnv struct {
	t       *testing.T
	proc    *process
	api     string
	gateway string
}

func startDemo(t *testing.T) *demoEnv {
	t.Helper()
	apiPort, gwPort := freePort(t), freePort(t)
	p := startProcess(t, nil, a8Bin, "demo", "--api_port", fmt.Sprint(apiPort), "--gateway_port", fmt.Sprint(gwPort), "--data_dir", t.TempDir())
	d := &demoEnv{t: t, proc: p, api: fmt.Sprintf("http://localhost:%d", apiPort), gateway: fmt.Sprintf("http://localhost:%d", gwPort)}
	waitFor(t, "the demo to start", func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("a8 demo exited: %v\n%s", err, p.out.String())
		default:
		}
		return strings.Contains(p.out.String(), "a8 demo is running")
	})
	return d
}

// ctl runs a8ctl with args and returns its stdout; it fails the test on a non-zero exit.
func (d *demoEnv) ctl(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.ctlCode(args...)
	if code != 0 {
		d.t.Fatalf("a8ctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (d *demoEnv) ctlCode(args ...string) (string, string, int) {
	d.t.Helper()
	cmd := exec.Command(ctlBin, args...)
	cmd.Env = append(cmd.Environ(), "A8_CONTROLLER_URL="+d.api, "A8_REGISTRY_URL="+d.api)
	cmd.Dir = "../.." // so that examples/rules/... paths work as in the README
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// rules returns the stored rules as a8ctl rule-get -o json prints them.
func (d *demoEnv) rules(args ...string) []map[string]any {
	d.t.Helper()
	if len(args) == 0 {
		args = []string{"-a"}
	}
	out := d.ctl(append([]string{"rule-get", "-o", "json"}, args...)...)
	var list struct {
		Rules []map[string]any `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		var arr []map[string]any
		if err2 := json.Unmarshal([]byte(out), &arr); err2 != nil {
			d.t.Fatalf("rule-get -o json printed %q: %v", out, err)
		}
		return arr
	}
	return list.Rules
}

func (d *demoEnv) get(path string, header ...string) (int, string, time.Duration) {
	d.t.Helper()
	req, _ := http.NewRequest("GET", d.gateway+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data), time.Since(start)
}

// hello counts which helloworld versions answer n requests.
func (d *demoEnv) hello(n int) map[string]int {
	d.t.Helper()
	out := map[string]int{}
	for range n {
		code, body, _ := d.get("/helloworld/hello")
		switch {
		case code != 200:
			out[fmt.Sprint(code)]++
		case strings.Contains(body, "Hello version: version=v1"):
			out["v1"]++
		case strings.Contains(body, "Hello version: version=v2"):
			out["v2"]++
		}
	}
	return out
}

// until polls cond with a deadline: how a8 waits for rule propagation, instead of Amalgam8's 15 s sleeps.
func (d *demoEnv) until(what string, cond func() bool) {
	d.t.Helper()
	waitFor(d.t, what, cond)
}

type product struct {
	Details map[string]any `json:"details"`
	Reviews *struct {
		Version string `json:"version"`
		Reviews []struct {
			Rating map[string]any `json:"rating"`
		} `json:"reviews"`
	} `json:"reviews"`
	Errors []string `json:"errors"`
}

func (d *demoEnv) product(user string) (product, time.Duration) {
	d.t.Helper()
	code, body, took := d.get("/productpage/api/v1/products/0", "Cookie", "foo=bar;user="+user+";x")
	var p product
	if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
		d.t.Fatalf("productpage for %s: %d %q", user, code, body)
	}
	return p, took
}

func reviewsVersion(p product) string {
	if p.Reviews == nil {
		return "none"
	}
	return p.Reviews.Version
}

// Amalgam8's helloworld test script (testing/test-scripts/helloworld.sh), through a8ctl.
func TestDemo_Helloworld(t *testing.T) {
	d := startDemo(t)
	if got := d.hello(40); got["v1"] == 0 || got["v2"] == 0 {
		t.Fatalf("no rules: every version serves: %v", got)
	}
	d.ctl("rule-delete", "-a", "-f")
	out := d.ctl("rule-create", "-f", "examples/rules/helloworld-default-route-rules.json")
	if !strings.Contains(out, `"ids"`) || !strings.Contains(out, `helloworld-default-route`) {
		t.Fatalf("rule-create printed %q", out)
	}
	rs := d.rules()
	if len(rs) != 1 || rs[0]["destination"] != "helloworld" || dig2(rs[0], "route", "backends", 0, "tags", 0) != "version=v1" {
		t.Fatalf("stored default route: %v", rs)
	}
	d.until("100% v1", func() bool { return d.hello(20)["v1"] == 20 })
	if got := d.hello(100); got["v1"] != 100 {
		t.Fatalf("default route: %v", got)
	}

	d.ctl("rule-create", "-f", "examples/rules/helloworld-v1-v2-route-rules.json")
	rs = d.rules()
	if w := dig2(rs[0], "route", "backends", 0, "weight"); w != 0.25 || dig2(rs[0], "route", "backends", 1, "weight") != nil {
		t.Fatalf("stored weights: v2 %v, v1 %v; want 0.25 and null", w, dig2(rs[0], "route", "backends", 1, "weight"))
	}
	d.until("v2 to get traffic", func() bool { return d.hello(40)["v2"] > 0 })
	got := d.hello(1000)
	if got["v1"] < 690 || got["v1"] > 810 {
		t.Fatalf("75/25 split: v1 got %d of 1000, want [690, 810]: %v", got["v1"], got)
	}
	t.Logf("75/25 split over 1000 requests: %v", got)

	// The gradual rollout, 0.x style.
	d.ctl("rule-delete", "-a", "-f")
	d.ctl("rule-create", "-f", "examples/rules/helloworld-default-route-rules.json")
	out = d.ctl("traffic-start", "helloworld", "version=v2")
	if !strings.Contains(out, "10%") {
		t.Fatalf("traffic-start printed %q", out)
	}
	if w := v2Weight(d); w != 0.1 {
		t.Fatalf("after traffic-start: v2 weight %v, want 0.1", w)
	}
	d.until("v2 to get some traffic", func() bool { return d.hello(100)["v2"] > 0 })
	d.ctl("traffic-step", "helloworld")
	if w := v2Weight(d); w != 0.2 {
		t.Fatalf("after traffic-step: v2 weight %v, want 0.2", w)
	}
	if _, errOut, code := d.ctlCode("traffic-start", "helloworld", "version=v2"); code == 0 {
		t.Fatalf("a second traffic-start during a transfer must be refused: %s", errOut)
	}
	d.ctl("traffic-abort", "helloworld")
	if w := v2Weight(d); w != 0 {
		t.Fatalf("after traffic-abort: v2 weight %v, want none", w)
	}
	d.until("100% v1 again", func() bool { return d.hello(50)["v1"] == 50 })
}

// v2Weight is the weight of the version=v2 backend of helloworld's default rule (0: none).
func v2Weight(d *demoEnv) float64 {
	for _, r := range d.rules("-d", "helloworld") {
		backends, _ := dig2(r, "route", "backends").([]any)
		for _, b := range backends {
			bm, _ := b.(map[string]any)
			if tags, _ := bm["tags"].([]any); len(tags) > 0 && tags[0] == "version=v2" {
				w, _ := bm["weight"].(float64)
				return w
			}
		}
	}
	return 0
}

func dig2(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// Amalgam8's bookinfo test script (testing/test-scripts/bookinfo.sh), through a8ctl.
func TestDemo_Bookinfo(t *testing.T) {
	d := startDemo(t)
	d.ctl("rule-delete", "-a", "-f")
	if code, _, _ := d.get("/productpage/productpage"); code != 200 {
		t.Fatalf("no rules: productpage answered %d", code)
	}
	d.ctl("rule-create", "-f", "examples/rules/bookinfo-default-route-rules.yaml")
	d.ctl("rule-create", "-f", "examples/rules/bookinfo-jason-reviews-v2-route-rules.yaml")
	d.until("jason's reviews from v2 and others' from v1", func() bool {
		j, _ := d.product("jason")
		s, _ := d.product("shriram")
		return reviewsVersion(j) == "v2" && reviewsVersion(s) == "v1"
	})
	for range 10 {
		if p, _ := d.product("shriram"); reviewsVersion(p) != "v1" || p.Details == nil {
			t.Fatalf("shriram: %+v", p)
		}
		if p, _ := d.product("jason"); reviewsVersion(p) != "v2" || len(p.Reviews.Reviews) == 0 || p.Reviews.Reviews[0].Rating["color"] != "black" {
			t.Fatalf("jason: %+v", p)
		}
	}

	out := d.ctl("rule-create", "-f", "examples/rules/bookinfo-jason-7s-delay.yaml")
	var created struct{ IDs []string }
	if err := json.Unmarshal([]byte(out), &created); err != nil || len(created.IDs) != 1 {
		t.Fatalf("rule-create printed %q", out)
	}
	if !strings.Contains(d.ctl("action-list"), "version=v1(1->delay=7)") {
		t.Fatalf("action-list does not show the delay:\n%s", d.ctl("action-list"))
	}
	d.until("the delay to apply", func() bool { _, took := d.product("jason"); return took > 5*time.Second })
	p, took := d.product("jason")
	if took < 5*time.Second || p.Reviews != nil || len(p.Errors) == 0 || !strings.Contains(strings.Join(p.Errors, " "), "reviews are currently unavailable") {
		t.Fatalf("jason with the 7s delay: %v, %+v; want over 5s and no reviews", took, p)
	}
	if p, took := d.product("shriram"); took > 5*time.Second || reviewsVersion(p) != "v1" {
		t.Fatalf("shriram with the delay rule in place: %v, %+v", took, p)
	}

	d.ctl("rule-delete", "-i", created.IDs[0])
	d.until("the delay to go", func() bool { _, took := d.product("jason"); return took < 2*time.Second })
	if p, took := d.product("jason"); took > 5*time.Second || reviewsVersion(p) != "v2" {
		t.Fatalf("jason after deleting the delay: %v, %+v", took, p)
	}

	// reviews: 25% to v1, the rest to v3.
	d.ctl("rule-delete", "-d", "reviews")
	d.ctl("rule-create", "-f", "examples/rules/bookinfo-reviews-routing.yaml")
	d.until("v3 to answer", func() bool { p, _ := d.product("shriram"); return reviewsVersion(p) == "v3" })
	counts := map[string]int{}
	for range 200 {
		p, _ := d.product("shriram")
		counts[reviewsVersion(p)]++
	}
	if counts["v1"] < 25 || counts["v1"] > 75 || counts["v1"]+counts["v3"] != 200 {
		t.Fatalf("25%% v1 / 75%% v3 over 200 page loads: %v", counts)
	}
}
