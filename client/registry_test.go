package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
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

// newRegistry serves a real registry (memory store, 1s TTLs) behind wrap, and returns a client.
func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) (*client.Registry, *httptest.Server) {
	t.Helper()
	reg, err := registry.New(registry.Config{Store: memory.NewInstances(nil), DefaultTTL: time.Second, MinTTL: time.Second, ReapInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = reg.Run(ctx) }()
	var h http.Handler = reg.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.NewRegistry(client.RegistryConfig{URL: srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	return c, srv
}

func hello(addr string, tags ...string) api.InstanceRegistration {
	return api.InstanceRegistration{ServiceName: "helloworld", Endpoint: &api.Endpoint{Type: "http", Value: addr}, Tags: tags, TTL: 30}
}

// eventually polls cond until it holds or the deadline passes.
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

func TestNewRegistry_BadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.NewRegistry(client.RegistryConfig{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestRegistry_Lifecycle(t *testing.T) {
	c, srv := newRegistry(t, nil)
	ctx := context.Background()
	resp, err := c.Register(ctx, hello("10.0.0.1:80", "version=v1"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.TTL != 30 || resp.Links.Heartbeat != srv.URL+"/api/v1/instances/"+resp.ID+"/heartbeat" {
		t.Fatalf("registration = %+v", resp)
	}
	if err := c.Heartbeat(ctx, resp.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Deregister(ctx, resp.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, resp.ID); !errors.Is(err, client.ErrInstanceGone) {
		t.Fatalf("heartbeat after deregistration = %v, want ErrInstanceGone", err)
	}
	if err := c.Deregister(ctx, resp.ID); !errors.Is(err, client.ErrInstanceGone) {
		t.Fatalf("second deregistration = %v, want ErrInstanceGone", err)
	}
	_, err = c.Register(ctx, api.InstanceRegistration{ServiceName: "x"})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Message, "endpoint: required") {
		t.Fatalf("bad registration = %v, want a 400 StatusError with the server's message", err)
	}
}

func TestRegistry_Reads(t *testing.T) {
	c, _ := newRegistry(t, nil)
	ctx := context.Background()
	for _, r := range []api.InstanceRegistration{hello("h:1", "version=v1"), hello("h:2", "version=v2"),
		{ServiceName: "details", Endpoint: &api.Endpoint{Type: "http", Value: "h:3"}, Status: "STARTING"}} {
		if _, err := c.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	list, meta, err := c.Instances(ctx, client.InstanceQuery{Tags: []string{"version=v2"}}, nil)
	if err != nil || len(list) != 1 || list[0].Endpoint.Value != "h:2" || !meta.Indexed || meta.Index != 3 {
		t.Fatalf("Instances(tags) = %+v, %+v, %v", list, meta, err)
	}
	list, _, _ = c.Instances(ctx, client.InstanceQuery{Status: "ALL", Fields: []string{"status"}}, nil)
	if len(list) != 3 || list[0].Status != "STARTING" || list[0].ServiceName != "" {
		t.Fatalf("Instances(ALL, fields=status) = %+v", list)
	}
	names, _, err := c.Services(ctx, nil)
	if err != nil || strings.Join(names, ",") != "details,helloworld" {
		t.Fatalf("Services = %v, %v", names, err)
	}
	insts, _, err := c.Service(ctx, "helloworld", nil)
	if err != nil || len(insts) != 2 {
		t.Fatalf("Service(helloworld) = %v, %v", insts, err)
	}
	insts, _, err = c.Service(ctx, "nothing", nil)
	if err != nil || insts == nil || len(insts) != 0 {
		t.Fatalf("Service(nothing) = %v, %v; want an empty list", insts, err)
	}
}

func TestRegistry_BlockingQuery(t *testing.T) {
	c, _ := newRegistry(t, nil)
	ctx := context.Background()
	if _, err := c.Register(ctx, hello("h:1")); err != nil {
		t.Fatal(err)
	}
	done := make(chan client.QueryMeta, 1)
	go func() {
		_, meta, _ := c.Instances(ctx, client.InstanceQuery{}, &client.QueryOptions{WaitIndex: 1, WaitTime: time.Minute})
		done <- meta
	}()
	select {
	case m := <-done:
		t.Fatalf("blocking query returned %+v without a change", m)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := c.Register(ctx, hello("h:2")); err != nil {
		t.Fatal(err)
	}
	if m := <-done; m.Index != 2 {
		t.Fatalf("woke at index %d, want 2", m.Index)
	}
}

func TestRegistry_WatchInstances(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	c, _ := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" && r.URL.Query().Get("index") != "" && failures.Add(-1) >= 0 {
				http.Error(w, `{"Error":"try later"}`, 503) // the first two blocking queries fail
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var seen [][]string
	var errs atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- c.WatchInstances(ctx, client.InstanceQuery{ServiceName: "helloworld"},
			client.WatchOptions{MinBackoff: 10 * time.Millisecond, OnError: func(error) { errs.Add(1) }},
			func(list []api.Instance, _ client.QueryMeta) {
				var addrs []string
				for _, in := range list {
					addrs = append(addrs, in.Endpoint.Value)
				}
				mu.Lock()
				seen = append(seen, addrs)
				mu.Unlock()
			})
	}()
	got := func() string {
		mu.Lock()
		defer mu.Unlock()
		var parts []string
		for _, s := range seen {
			parts = append(parts, "["+strings.Join(s, ",")+"]")
		}
		return strings.Join(parts, " ")
	}
	eventually(t, "the initial (empty) list", func() bool { return got() == "[]" })
	if _, err := c.Register(context.Background(), hello("h:1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the registration, past two failed queries", func() bool { return got() == "[] [h:1]" })
	if errs.Load() != 2 {
		t.Fatalf("OnError called %d times, want 2", errs.Load())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchInstances returned %v after cancel", err)
	}
}

// Against an Amalgam8 registry, which has no index, the watch polls and reports only real changes.
func TestRegistry_WatchInstancesPollsWithoutIndex(t *testing.T) {
	var gets atomic.Int32
	c, _ := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" {
				gets.Add(1)
				if r.URL.Query().Has("index") {
					t.Errorf("a blocking query was sent to a registry that never gave an index: %s", r.URL)
				}
			}
			h.ServeHTTP(&noIndex{ResponseWriter: w}, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	go func() {
		_ = c.WatchInstances(ctx, client.InstanceQuery{}, client.WatchOptions{Poll: 10 * time.Millisecond},
			func([]api.Instance, client.QueryMeta) { calls.Add(1) })
	}()
	eventually(t, "several polls", func() bool { return gets.Load() >= 5 })
	if calls.Load() != 1 {
		t.Fatalf("fn called %d times for an unchanged list, want 1", calls.Load())
	}
	if _, err := c.Register(context.Background(), hello("h:1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the change seen by polling", func() bool { return calls.Load() == 2 })
}

type noIndex struct{ http.ResponseWriter }

func (n *noIndex) WriteHeader(code int) {
	n.Header().Del(api.IndexHeader)
	n.ResponseWriter.WriteHeader(code)
}

func (n *noIndex) Write(b []byte) (int, error) {
	n.Header().Del(api.IndexHeader)
	return n.ResponseWriter.Write(b)
}

func TestRegistry_KeepRegistered(t *testing.T) {
	var posts, puts atomic.Int32
	var refuse atomic.Int32
	refuse.Store(2) // the registry is "down" for the first two registration attempts
	c, _ := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.Method {
			case "POST":
				if refuse.Add(-1) >= 0 {
					http.Error(w, `{"Error":"down"}`, 503)
					return
				}
				posts.Add(1)
			case "PUT":
				puts.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	var registered atomic.Int32
	var lastID atomic.Value
	done := make(chan error, 1)
	go func() {
		done <- c.KeepRegistered(ctx, api.InstanceRegistration{ServiceName: "kept", Endpoint: &api.Endpoint{Type: "http", Value: "h:9"}, TTL: 1},
			client.KeepOptions{MinBackoff: 10 * time.Millisecond, OnRegistered: func(r api.RegistrationResponse) {
				lastID.Store(r.ID)
				registered.Add(1)
			}})
	}()
	present := func() bool {
		l, _, err := c.Instances(context.Background(), client.InstanceQuery{ServiceName: "kept"}, nil)
		return err == nil && len(l) == 1
	}
	eventually(t, "registration after the registry came back", func() bool { return registered.Load() == 1 && present() })
	eventually(t, "three heartbeats", func() bool { return puts.Load() >= 3 })
	if !present() {
		t.Fatal("instance expired although heartbeats were sent")
	}

	// The registry forgets the instance (as after a registry restart): the keeper registers again.
	if err := c.Deregister(context.Background(), lastID.Load().(string)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-registration after 410", func() bool { return registered.Load() == 2 && present() })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("KeepRegistered = %v", err)
	}
	if present() {
		t.Fatal("instance still registered after the keeper stopped")
	}
}

func TestRegistry_KeepRegisteredStopsOnPermanentErrors(t *testing.T) {
	c, _ := newRegistry(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := c.KeepRegistered(ctx, api.InstanceRegistration{ServiceName: "x"}, client.KeepOptions{MinBackoff: time.Millisecond})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 400 || ctx.Err() != nil {
		t.Fatalf("KeepRegistered with an invalid registration = %v; want the 400 at once", err)
	}
}

func TestRegistry_ServiceWrongURL(t *testing.T) {
	_, srv := newRegistry(t, nil)
	c, _ := client.NewRegistry(client.RegistryConfig{URL: srv.URL + "/not-the-registry"})
	if _, _, err := c.Service(context.Background(), "x", nil); err == nil {
		t.Fatal("Service against a wrong base URL returned no error")
	}
}

// Against an a8 registry the watch asks for changes only, and the lists it reports stay whole and
// equal to the registry's: instances added, changed, deregistered and expired.
func TestRegistry_WatchInstancesByChanges(t *testing.T) {
	var changeQueries, changeAnswers atomic.Int32
	c, _ := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("changes") == "true" {
				changeQueries.Add(1)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				if strings.HasPrefix(rec.Body.String(), `{"changes":true`) {
					changeAnswers.Add(1)
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var last []api.Instance
	done := make(chan error, 1)
	go func() {
		done <- c.WatchInstances(ctx, client.InstanceQuery{}, client.WatchOptions{MinBackoff: 10 * time.Millisecond},
			func(list []api.Instance, _ client.QueryMeta) {
				mu.Lock()
				last = list
				mu.Unlock()
			})
	}()
	describe := func(list []api.Instance) string {
		var out []string
		for _, in := range list {
			out = append(out, in.ServiceName+"/"+in.Endpoint.Value+"/"+strings.Join(in.Tags, "+"))
		}
		slices.Sort(out) // the list is sorted by service and id; ids are not the addresses
		return strings.Join(out, " ")
	}
	matches := func(want string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return describe(last) == want
		}
	}
	eventually(t, "the initial (empty) list", matches(""))
	ctxb := context.Background()
	var ids []string
	for _, addr := range []string{"h:1", "h:2", "h:3"} {
		r, err := c.Register(ctxb, hello(addr, "v1"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	eventually(t, "three instances", matches("helloworld/h:1/v1 helloworld/h:2/v1 helloworld/h:3/v1"))
	if err := c.Deregister(ctxb, ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctxb, hello("h:3", "v2")); err != nil {
		t.Fatal(err)
	}
	other := api.InstanceRegistration{ServiceName: "details", Endpoint: &api.Endpoint{Type: "http", Value: "d:1"}, TTL: 1}
	if _, err := c.Register(ctxb, other); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a deregistration, a change and another service", matches("details/d:1/ helloworld/h:1/v1 helloworld/h:3/v2"))
	// The details instance is not renewed: it expires (TTL 1 s).
	eventually(t, "the expiry", matches("helloworld/h:1/v1 helloworld/h:3/v2"))
	// In the registry's order too.
	want, _, err := c.Instances(ctxb, client.InstanceQuery{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for i := range want {
		if i >= len(last) || last[i].ID != want[i].ID {
			t.Errorf("the watch's list %v is not the registry's %v", describe(last), describe(want))
			break
		}
	}
	mu.Unlock()
	if changeAnswers.Load() == 0 {
		t.Fatalf("none of %d changes queries was answered with changes", changeQueries.Load())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchInstances returned %v after cancel", err)
	}
}
