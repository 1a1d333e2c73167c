package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

func exampleRules(t *testing.T, name string) []api.Rule {
	t.Helper()
	data, err := os.ReadFile("../../examples/rules/" + name)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.ParseFile(data)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func newController(t *testing.T, url string) *client.Controller {
	t.Helper()
	c, err := client.NewController(client.ControllerConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// "a8 up" serves the registry and the controller on one port, and a kill -9 loses no rule whose
// write was acknowledged.
func TestUp_KilledAndRestartedKeepsEveryAcknowledgedRule(t *testing.T) {
	dir := t.TempDir()
	p := startA8(t, nil, "/health", "up", "--data_dir", dir)
	ctx := ctxTimeout(t, 60*time.Second)
	reg, ctl := newClient(t, p.URL, ""), newController(t, p.URL)
	if _, err := reg.Register(ctx, api.InstanceRegistration{ServiceName: "helloworld", Endpoint: &api.Endpoint{Type: "http", Value: "127.0.0.1:9080"}}); err != nil {
		t.Fatalf("registry on a8 up: %v", err)
	}
	for _, f := range []string{"bookinfo-default-route-rules.yaml", "bookinfo-jason-reviews-v2-route-rules.yaml", "bookinfo-jason-7s-delay.yaml"} {
		if _, err := ctl.CreateRules(ctx, exampleRules(t, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	// Writers hammer the controller; every write that got its 201 must survive the kill.
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := "w" + string(rune('a'+w)) + "-" + strings.Repeat("x", i%3) + time.Now().Format("150405.000000000")
				rule := api.Rule{ID: id, Destination: "load", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}}}}}
				if _, err := ctl.CreateRules(context.Background(), []api.Rule{rule}); err != nil {
					return // the kill came
				}
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	p.kill()
	close(stop)
	wg.Wait()

	p2 := startOnPort(t, nil, p.port, []string{"up", "--data_dir", dir})
	p2.waitHealthy("/health")
	l, _, err := ctl.GetRules(ctx, client.RuleFilter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range l.Rules {
		have[r.ID] = true
	}
	for _, want := range []string{"reviews-default", "reviews-test-v2", "bookinfo-jason-7s-delay"} {
		if !have[want] {
			t.Fatalf("rule %s lost in the kill", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for id := range acked {
		if !have[id] {
			lost++
		}
	}
	if lost > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged writes lost in the kill", lost, len(acked))
	}
	if l.Revision < int64(3+len(acked)) {
		t.Fatalf("revision %d after the restart, below the %d acknowledged changes", l.Revision, 3+len(acked))
	}
	t.Logf("%d acknowledged writes, all kept; revision %d", len(acked), l.Revision)
	// Instances are leases: gone after the restart, and clients register again on 410.
	if list, _, _ := reg.Instances(ctx, client.InstanceQuery{}, nil); len(list) != 0 {
		t.Fatalf("instances after restart: %+v", list)
	}
}

// Unknown paths on "a8 up" answer in the format of the API they look like.
func TestUp_NotFoundFormats(t *testing.T) {
	p := startA8(t, nil, "/health", "up", "--data_dir", t.TempDir())
	for path, key := range map[string]string{"/v1/nothing": "error", "/api/v1/nothing": "Error", "/nothing": "Error"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 404 || body[key] == nil {
			t.Errorf("GET %s: %d %v, want 404 with %q", path, resp.StatusCode, body, key)
		}
	}
}

// Two controllers on one Redis are one controller: a rule written through one wakes a watch on the
// other at once, and concurrent writes through both are all kept.
func TestController_TwoReplicasOnOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	args := []string{"controller", "--database_type", "redis", "--database_host", "redis://" + rs.Addr}
	a := startA8(t, nil, "/health", args...)
	b := startA8(t, nil, "/health", args...)
	ca, cb := newController(t, a.URL), newController(t, b.URL)
	ctx := ctxTimeout(t, 60*time.Second)
	l, meta, err := cb.GetRules(ctx, client.RuleFilter{}, nil)
	if err != nil || l.Revision != 0 {
		t.Fatalf("initial: %+v %v", l, err)
	}
	type result struct {
		l    api.RuleList
		err  error
		took time.Duration
	}
	woke := make(chan result, 1)
	go func() {
		start := time.Now()
		l, _, err := cb.GetRules(ctx, client.RuleFilter{}, &client.QueryOptions{WaitIndex: meta.Index, WaitTime: time.Minute})
		woke <- result{l, err, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond)
	if _, err := ca.CreateRules(ctx, exampleRules(t, "helloworld-default-route-rules.json")); err != nil {
		t.Fatal(err)
	}
	r := <-woke
	if r.err != nil || r.l.Revision != 1 || len(r.l.Rules) != 1 {
		t.Fatalf("watch on b: %+v %v", r.l, r.err)
	}
	if r.took > 3*time.Second {
		t.Fatalf("the watch on b woke %v after it was opened: not by pub/sub", r.took)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		for _, c := range []*client.Controller{ca, cb} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "r" + string(rune('a'+i))
				if c == cb {
					id += "-b"
				}
				if _, err := c.CreateRules(ctx, []api.Rule{{ID: id, Destination: "x", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}}}}}}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if l, _, err := ca.GetRules(ctx, client.RuleFilter{}, nil); err != nil || len(l.Rules) != 21 || l.Revision != 21 {
		t.Fatalf("after 20 concurrent writes through two controllers: %d rules at revision %d, %v", len(l.Rules), l.Revision, err)
	}
}

// A second a8 on the same data directory is refused at start, with advice, instead of overwriting
// the first one's rules.
func TestUp_DataDirInUse(t *testing.T) {
	dir := t.TempDir()
	startA8(t, nil, "/health", "up", "--data_dir", dir)
	p := startA8NoWait(t, nil, []string{"up", "--data_dir", dir})
	select {
	case err := <-p.done:
		p.done <- err
		if err == nil || !strings.Contains(p.out.String(), "in use by another a8 process") {
			t.Fatalf("second a8 up on %s: %v\n%s", dir, err, p.out.String())
		}
		p.killed = true // its exit status is the point of the test
	case <-time.After(30 * time.Second):
		t.Fatal("a second a8 up on the same data directory kept running")
	}
}
