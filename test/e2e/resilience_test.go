package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/resilience"
)

// Amalgam8's bookinfo recipe through a8ctl recipe-run against a8 demo: a 7 s delay from reviews v2
// to ratings v1, for jason's requests, gives Amalgam8's expected results (testing/test-scripts/
// recipe-run-results.json), and ending the recipe leaves no rule behind.
func TestResilience_BookinfoRecipe(t *testing.T) {
	d := startDemo(t)
	d.ctl("rule-delete", "-a", "-f")
	d.ctl("rule-create", "-f", "examples/rules/bookinfo-default-route-rules.yaml")
	d.ctl("rule-create", "-f", "examples/rules/bookinfo-jason-reviews-v2-route-rules.yaml")
	d.until("jason's reviews from v2", func() bool { p, _ := d.product("jason"); return reviewsVersion(p) == "v2" })
	before := len(d.rules())
	ctl := newController(t, d.api)

	cmd := exec.Command(ctlBin, "recipe-run", "-t", "examples/recipes/bookinfo-topology.json", "-s", "examples/recipes/bookinfo-gremlins.json",
		"-c", "examples/recipes/bookinfo-checks.json", "-H", "Cookie", "-p", "^(.*?;)?(user=jason)(;.*)?$", "-w", "60s", "-o", "json")
	cmd.Env = append(cmd.Environ(), "A8_CONTROLLER_URL="+d.api, "A8_REGISTRY_URL="+d.api)
	cmd.Dir = "../.."
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var id string
	waitFor(t, "recipe-run to start the recipe", func() bool {
		rs, err := ctl.Recipes(context.Background())
		if err == nil && len(rs) == 1 {
			id = rs[0].ID
		}
		return id != ""
	})
	// The test's load, as Amalgam8's load-productpage.sh: jason's page loads, which now wait for
	// productpage's two 3 s attempts at reviews; and someone else's, which the recipe leaves alone.
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, took := d.product("jason"); p.Reviews != nil || took < 5*time.Second {
				t.Errorf("jason during the recipe: %+v after %v; want no reviews after the two 3 s attempts", p, took)
			}
		}()
	}
	if p, took := d.product("shriram"); reviewsVersion(p) != "v1" || took > 5*time.Second {
		t.Errorf("shriram during the recipe: %+v after %v", p, took)
	}
	wg.Wait()
	if _, err := io.WriteString(stdin, "\n"); err != nil { // "press Enter to continue to validation"
		t.Fatal(err)
	}
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("recipe-run exit %d (%v), want 1 (one check fails, as in Amalgam8's expected results)\nstdout: %s\nstderr: %s", code, err, out.String(), errOut.String())
	}
	want, err := os.ReadFile("../../resilience/testdata/recipe-run-results.json")
	if err != nil {
		t.Fatal(err)
	}
	var got, exp any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("recipe-run -o json printed %q: %v\nstderr: %s", out.String(), err, errOut.String())
	}
	_ = json.Unmarshal(want, &exp)
	if fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Fatalf("results:\n%s\nwant Amalgam8's:\n%s\nstderr: %s", out.String(), want, errOut.String())
	}
	t.Logf("recipe-run:\n%s%s", errOut.String(), out.String())

	// recipe-run ended the recipe: its rules are gone and only the bookinfo rules are left.
	if rs := d.rules("-t", id); len(rs) != 0 {
		t.Fatalf("%d rules of the recipe left behind", len(rs))
	}
	if n := len(d.rules()); n != before {
		t.Fatalf("%d rules after the recipe, %d before", n, before)
	}
	if _, err := ctl.Recipe(context.Background(), id); !isStatus(err, 404) {
		t.Fatalf("the recipe after recipe-run: %v", err)
	}
	d.until("jason fast again", func() bool { _, took := d.product("jason"); return took < 2*time.Second })
}

func isStatus(err error, code int) bool {
	se, ok := err.(*client.StatusError)
	return ok && se.Code == code
}

// callerService starts the caller example behind a proxying sidecar named name; it calls
// helloworld through the sidecar. It returns the caller's URL.
func (f *fabric) callerService(name string, args ...string) string {
	proxyPort, port := freePort(f.t), freePort(f.t)
	startProcess(f.t, nil, a8Bin, f.sidecarArgs("--proxy", "--service", name, "--proxy_port", fmt.Sprint(proxyPort))...)
	startProcess(f.t, nil, a8Bin, append([]string{"example", "caller", "--port", fmt.Sprint(port),
		"--target", fmt.Sprintf("http://127.0.0.1:%d/helloworld/hello", proxyPort), "--timeout", "2s"}, args...)...)
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitFor(f.t, name+" to reach helloworld", func() bool {
		resp, err := http.Get(u + "/call")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return u
}

func hit(t *testing.T, url, requestID string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Request-ID", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A recipe from Go (package resilience) against real sidecars: a caller that retries without
// backoff is caught by bounded_retries and circuit_breaker, one with a circuit breaker passes
// circuit_breaker, an overloaded service shows in the records, and stopping the recipe leaves no
// rule behind.
func TestResilience_RetriesBreakerOverload(t *testing.T) {
	f := &fabric{t: t}
	f.up = startA8(t, nil, "/health", "up", "--data_dir", t.TempDir(), "--min_ttl", "1s", "--reap_interval", "200ms")
	f.reg, f.ctl = newClient(t, f.up.URL, ""), newController(t, f.up.URL)
	f.app("v1")
	naive := f.callerService("naive", "--retries", "5", "--backoff", "0s")
	careful := f.callerService("careful", "--breaker_failures", "3", "--breaker_reset", "1s")
	plain := f.callerService("plain")

	ctx := ctxTimeout(t, 2*time.Minute)
	topology := api.Topology{
		Services: []api.TopologyService{{Name: "naive"}, {Name: "careful"}, {Name: "plain"}, {Name: "helloworld"}},
		Dependencies: map[string][]string{
			"naive": {"helloworld"}, "careful": {"helloworld"}, "plain": {"helloworld"},
		},
	}
	overload := resilience.OverloadService("plain", "helloworld")
	overload.DelayTime = "300ms"
	run, err := resilience.Start(ctx, f.ctl, api.RecipeRequest{Topology: topology, Scenarios: api.Scenarios{Gremlins: []api.Gremlin{
		resilience.AbortRequests("naive", "helloworld", 503, 1),
		resilience.AbortRequests("careful", "helloworld", 503, 1),
		overload,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop(context.Background())
	// The sidecars apply the recipe once the new rules reach them.
	waitFor(t, "the recipe's faults to apply", func() bool { return hit(t, naive+"/call", "probe") == 503 })

	for i := range 5 {
		hit(t, naive+"/call", fmt.Sprintf("naive-%d", i))
	}
	// The careful caller is called steadily for 3 s: its breaker opens after 3 failures and lets a
	// trial call through every second.
	for i := 0; i < 60; i++ {
		hit(t, careful+"/call", fmt.Sprintf("careful-%d", i))
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 30 {
		hit(t, plain+"/call", fmt.Sprintf("plain-%d", i))
	}

	results, err := run.Check(ctx, 30*time.Second,
		resilience.BoundedRetries("naive", "helloworld", 2, 0),
		resilience.CircuitBreaker("naive", "helloworld", 3, time.Second, 1),
		resilience.CircuitBreaker("careful", "helloworld", 3, time.Second, 1),
		resilience.BoundedRetries("careful", "helloworld", 0, 0),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("results:\n%s", resilience.Summary(results))
	wantPass := []bool{false, false, true, true}
	for i, r := range results {
		if r.Result != wantPass[i] {
			t.Errorf("check %d (%s %s -> %s): result %v, want %v: %s", i, r.Check.Name, r.Check.Source, r.Check.Dest, r.Result, wantPass[i], r.ErrorMsg)
		}
	}
	if msg := results[0].ErrorMsg; !strings.Contains(msg, "6 attempts") {
		t.Errorf("bounded_retries should say what it saw (6 attempts for one request): %q", msg)
	}

	// The overload: about half of plain's calls delayed 300 ms, about half aborted with 503.
	recs, err := run.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	delayed, aborted, plainCalls := 0, 0, 0
	for _, r := range recs.Records {
		if !strings.HasPrefix(r.Src, "plain:") {
			continue
		}
		plainCalls++
		if strings.Contains(r.ResponseFlags, "DI") && r.RequestTime >= 300 {
			delayed++
		}
		if r.Status == 503 && strings.Contains(r.ResponseFlags, "FI") {
			aborted++
		}
	}
	if plainCalls != 30 || delayed < 5 || aborted < 5 || delayed > 25 || aborted > 25 {
		t.Fatalf("overload over %d calls from plain: %d delayed, %d aborted; want about half each", plainCalls, delayed, aborted)
	}

	if err := run.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if l, _, err := f.ctl.GetRules(ctx, client.RuleFilter{}, nil); err != nil || len(l.Rules) != 0 {
		t.Fatalf("after Stop: %d rules left (%v)", len(l.Rules), err)
	}
	waitFor(t, "the faults to go", func() bool { return hit(t, naive+"/call", "after") == 200 })
}
