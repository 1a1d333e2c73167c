package client_test

// WatchInstances with changes watches: a restarted registry, a projection.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store/memory"
)

type watched struct {
	mu    sync.Mutex
	list  []api.Instance
	index uint64
}

func (w *watched) set(list []api.Instance, m client.QueryMeta) {
	w.mu.Lock()
	w.list, w.index = list, m.Index
	w.mu.Unlock()
}

func (w *watched) get() ([]api.Instance, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.list, w.index
}

func endpoints(list []api.Instance) string {
	var out []string
	for _, in := range list {
		out = append(out, in.Endpoint.Value)
	}
	return strings.Join(out, " ")
}

// The registry restarts (memory store: its index starts again from 0) while a sidecar watches its
// tenant with WatchInstances, and re-registrations take the new store past the watch's old index
// (12) within its wait. The new registry's change log has another epoch, so the watch gets the whole
// new list: the instances that did not come back (a:*) go, and every b:* is there.
func TestRegistry_WatchInstancesAfterRegistryRestart(t *testing.T) {
	newReg := func() (*registry.Server, http.Handler) {
		reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil), DefaultTTL: time.Minute, MinTTL: time.Second, ReapInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { _ = reg.Run(ctx) }()
		t.Cleanup(func() { cancel(); reg.Close() })
		return reg, reg.Handler()
	}
	_, hA := newReg()
	_, hB := newReg()
	var cur atomic.Pointer[http.Handler]
	cur.Store(&hA)
	var onB atomic.Bool
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := *cur.Load()
		if onB.Load() && r.URL.Query().Get("changes") == "true" {
			select {
			case arrived <- struct{}{}:
			default:
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	srvB := httptest.NewServer(hB) // to prepare the new registry directly
	t.Cleanup(srvB.Close)
	c, err := client.NewRegistry(client.RegistryConfig{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	cB, err := client.NewRegistry(client.RegistryConfig{URL: srvB.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bg := context.Background()

	// The old registry: 12 instances, index 12.
	for i := range 12 {
		if _, err := c.Register(bg, hello("a:"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	var w watched
	done := make(chan error, 1)
	go func() {
		done <- c.WatchInstances(ctx, client.InstanceQuery{}, client.WatchOptions{Wait: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond}, w.set)
	}()
	eventually(t, "the old registry's 12 instances at index 12", func() bool {
		l, idx := w.get()
		return len(l) == 12 && idx == 12
	})

	// The new registry: 3 instances re-registered so far; its change log is running.
	for i := range 3 {
		if _, err := cB.Register(bg, hello("b:"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Get(srvB.URL + "/api/v1/instances?changes=true&index=3&wait=100ms")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The restart: the watch's next query goes to the new registry, with index 12.
	onB.Store(true)
	cur.Store(&hB)
	<-arrived
	time.Sleep(200 * time.Millisecond) // let that query reach the log (the failure does not depend on it)
	for i := 3; i < 13; i++ {
		if _, err := cB.Register(bg, hello("b:"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	want, wantMeta, err := cB.Instances(bg, client.InstanceQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second) // many 300 ms watch rounds
	for {
		l, idx := w.get()
		if endpoints(l) == endpoints(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the registry restart the watch holds, at index %d, %d instances [%s]; the registry has, at index %d, %d [%s]",
				idx, len(l), endpoints(l), wantMeta.Index, len(want), endpoints(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// With a fields projection that leaves out service_name, changes could not be merged in the
// registry's order (service name, then id): the watch asks for whole lists, in the registry's order.
func TestRegistry_WatchInstancesProjectionOrder(t *testing.T) {
	// Endpoints such that, by id: ay < az and bx < az, with ay, az in service a and bx in b. The
	// registry's order is then ay, az, bx; a merge by id alone gives ay, bx, az.
	id := func(svc, ep string) string { return registry.InstanceID(svc, "http", ep) }
	var ay, bx, az string
	for i := 0; ay == ""; i++ {
		y, x, z := fmt.Sprintf("y:%d", i), fmt.Sprintf("x:%d", i), fmt.Sprintf("z:%d", i)
		if id("a", y) < id("a", z) && id("b", x) < id("a", z) {
			ay, bx, az = y, x, z
		}
	}
	c, _ := newRegistry(t, nil)
	bg := context.Background()
	regIn := func(svc, ep string) {
		t.Helper()
		if _, err := c.Register(bg, api.InstanceRegistration{ServiceName: svc, Endpoint: &api.Endpoint{Type: "http", Value: ep}, TTL: 60}); err != nil {
			t.Fatal(err)
		}
	}
	regIn("a", ay)
	regIn("b", bx)
	q := client.InstanceQuery{Fields: []string{"tags"}}
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	var w watched
	done := make(chan error, 1)
	go func() {
		done <- c.WatchInstances(ctx, q, client.WatchOptions{Wait: 300 * time.Millisecond, MinBackoff: 10 * time.Millisecond}, w.set)
	}()
	eventually(t, "two instances", func() bool { l, _ := w.get(); return len(l) == 2 })
	time.Sleep(100 * time.Millisecond) // let the watch's changes query start (either way it gets az)
	regIn("a", az)
	eventually(t, "three instances", func() bool { l, _ := w.get(); return len(l) == 3 })
	want, _, err := c.Instances(bg, q, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := w.get()
	if endpoints(got) != endpoints(want) {
		t.Errorf("watch list order [%s], registry order [%s]", endpoints(got), endpoints(want))
	}
	cancel()
	<-done
}
