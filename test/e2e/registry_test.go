package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

func newClient(t *testing.T, url, token string) *client.Registry {
	t.Helper()
	c, err := client.NewRegistry(client.RegistryConfig{URL: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The README's walk-through: start the registry on the embedded store, register with curl-like
// requests, see the instance, watch it expire.
func TestRegistry_RegisterWatchExpire(t *testing.T) {
	// Configured through the environment, as in a container.
	p := startRegistry(t, []string{"A8_MIN_TTL=1s", "A8_DEFAULT_TTL=2s", "A8_REAP_INTERVAL=100ms"})
	body := `{"service_name":"helloworld","endpoint":{"type":"http","value":"127.0.0.1:9080"},"tags":["version=v1"],"ttl":1}`
	resp, err := http.Post(p.URL+"/api/v1/instances", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var reg api.RegistrationResponse
	if err := json.NewDecoder(resp.Body).Decode(&reg); err != nil || resp.StatusCode != 201 || reg.TTL != 1 {
		t.Fatalf("register: %d %+v %v", resp.StatusCode, reg, err)
	}
	resp.Body.Close()

	c := newClient(t, p.URL, "")
	ctx := ctxTimeout(t, 30*time.Second)
	list, meta, err := c.Instances(ctx, client.InstanceQuery{ServiceName: "helloworld"}, nil)
	if err != nil || len(list) != 1 || list[0].ID != reg.ID {
		t.Fatalf("list: %+v %v", list, err)
	}
	// Block until the lease runs out: no heartbeat is sent.
	start := time.Now()
	list, _, err = c.Instances(ctx, client.InstanceQuery{ServiceName: "helloworld"}, &client.QueryOptions{WaitIndex: meta.Index, WaitTime: 20 * time.Second})
	if err != nil || len(list) != 0 {
		t.Fatalf("after expiry: %+v %v", list, err)
	}
	if waited := time.Since(start); waited > 15*time.Second {
		t.Fatalf("the watch returned after %v, at its timeout rather than on the expiry", waited)
	}
	if err := c.Heartbeat(ctx, reg.ID); !errors.Is(err, client.ErrInstanceGone) {
		t.Fatalf("heartbeat of the expired instance: %v", err)
	}
}

// SIGTERM ends the process promptly even while a blocking query is open; the watcher gets an answer.
func TestRegistry_GracefulShutdownReleasesWatchers(t *testing.T) {
	p := startRegistry(t, nil)
	got := make(chan int, 1)
	go func() {
		resp, err := http.Get(p.URL + "/api/v1/instances?index=0&wait=5m")
		if err != nil {
			got <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(200 * time.Millisecond) // let the watch block (it would block for 5 minutes)
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("shutdown took %v with a watcher open", d)
	}
	if code := <-got; code != 200 {
		t.Fatalf("the open watch got %d on shutdown, want 200 with the current state", code)
	}
}

// Two registries on one Redis are one registry: each sees the other's instances, a change through one
// wakes watchers on the other, and expiry is seen by both.
func TestRegistry_TwoReplicasOnOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	args := []string{"--store", "redis", "--store_address", rs.Addr, "--min_ttl", "1s", "--reap_interval", "100ms", "--auth_mode", "trusted"}
	a := startRegistry(t, nil, args...)
	b := startRegistry(t, nil, args...)
	ca, cb := newClient(t, a.URL, "team-a"), newClient(t, b.URL, "team-a")
	other := newClient(t, b.URL, "team-b")
	ctx := ctxTimeout(t, 60*time.Second)

	_, meta, err := cb.Instances(ctx, client.InstanceQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		list []api.Instance
		err  error
		took time.Duration
	}
	woke := make(chan result, 1)
	go func() {
		start := time.Now()
		l, _, err := cb.Instances(ctx, client.InstanceQuery{}, &client.QueryOptions{WaitIndex: meta.Index, WaitTime: time.Minute})
		woke <- result{l, err, time.Since(start)}
	}()
	time.Sleep(200 * time.Millisecond)
	reg, err := ca.Register(ctx, api.InstanceRegistration{ServiceName: "reviews", Endpoint: &api.Endpoint{Type: "http", Value: "10.1.1.1:9080"}, TTL: 1, Tags: []string{"version=v2"}})
	if err != nil {
		t.Fatal(err)
	}
	r := <-woke
	if r.err != nil || len(r.list) != 1 || r.list[0].ID != reg.ID {
		t.Fatalf("watch on replica b after a registration on a: %+v %v", r.list, r.err)
	}
	t.Logf("cross-replica watch woke %v after it was opened", r.took)
	// 200ms of that is the pause before the registration. Well under the 5s index recheck: the wake
	// came through pub/sub.
	if r.took > 3*time.Second {
		t.Fatalf("the watch on replica b woke %v after it was opened: not by pub/sub", r.took)
	}
	if l, _, _ := other.Instances(ctx, client.InstanceQuery{}, nil); len(l) != 0 {
		t.Fatalf("tenant team-b sees team-a's instances through replica b: %+v", l)
	}

	// Heartbeats through b keep a's registration alive; then expiry is seen through a.
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		if err := cb.Heartbeat(ctx, reg.ID); err != nil {
			t.Fatalf("heartbeat through replica b: %v", err)
		}
	}
	l, meta, err := ca.Instances(ctx, client.InstanceQuery{}, nil)
	if err != nil || len(l) != 1 {
		t.Fatalf("after heartbeats: %+v %v", l, err)
	}
	l, _, err = ca.Instances(ctx, client.InstanceQuery{}, &client.QueryOptions{WaitIndex: meta.Index, WaitTime: 30 * time.Second})
	if err != nil || len(l) != 0 {
		t.Fatalf("replica a after the lease ran out: %+v %v", l, err)
	}
}

// A registry started while Redis is down answers 503, and serves once Redis is up, without a restart.
func TestRegistry_StartsBeforeRedis(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop()
	p := startRegistryNoWait(t, "--store", "redis", "--store_address", rs.Addr)
	c := newClient(t, p.URL, "")
	ctx := ctxTimeout(t, 60*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		_, _, err = c.Instances(ctx, client.InstanceQuery{}, nil)
		var se *client.StatusError
		if errors.As(err, &se) && se.Code == 503 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("with Redis down: %v, want 503 saying the store is unavailable", err)
	}
	rs.Restart(t)
	for {
		if _, err = c.Register(ctx, api.InstanceRegistration{ServiceName: "s", Endpoint: &api.Endpoint{Type: "tcp", Value: "h:1"}}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("registry did not recover when Redis came up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRegistryNoWait starts a registry without waiting for /uptime to be healthy (it is not, while
// its store is down); it waits until the port answers at all.
func startRegistryNoWait(t *testing.T, args ...string) *process {
	t.Helper()
	p := startRegistryWith(t, nil, args)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + "/")
		if err == nil {
			resp.Body.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("a8 registry not answering after 30s:\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
