package table

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
)

func inst(service, addr string, tags ...string) api.Instance {
	return api.Instance{ID: service + "@" + addr, ServiceName: service, Endpoint: &api.Endpoint{Type: "http", Value: addr}, Tags: tags}
}

func f(v float64) *float64 { return &v }

var bookinfo = []api.Instance{
	inst("reviews", "10.0.0.1:9080", "version=v1"),
	inst("reviews", "10.0.0.2:9080", "version=v2"),
	inst("reviews", "10.0.0.3:9080", "version=v2"),
	inst("reviews", "10.0.0.4:9080", "version=v3"),
	inst("ratings", "10.0.1.1:9080", "version=v1"),
	inst("details", "10.0.2.1:9080", "version=v1"),
}

var productpage = rules.Caller{Name: "productpage", Tags: []string{"version=v1"}}

func build(t testing.TB, rs []api.Rule, instances []api.Instance, pool *Pool) *Table {
	t.Helper()
	set, err := rules.Compile(rs)
	if err != nil {
		t.Fatal(err)
	}
	if pool == nil {
		pool = NewPool()
	}
	return Build(set, 7, instances, 3, Options{Self: productpage, Pool: pool})
}

func TestBuild(t *testing.T) {
	tbl := build(t, []api.Rule{
		{ID: "jason", Priority: 2, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"Cookie": "user=jason"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
		{ID: "split", Priority: 1, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{
			{Tags: []string{"version=v1"}, Weight: f(0.25)}, {Tags: []string{"version=v3"}}}}},
		{ID: "not-for-me", Priority: 9, Destination: "reviews", Match: &api.Match{Source: &api.Source{Name: "gateway"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}}}}},
		{ID: "delay", Destination: "ratings", Match: &api.Match{Source: &api.Source{Name: "productpage"}}, Actions: []api.Action{{Action: "delay", Duration: 7}}},
		{ID: "other-delay", Destination: "ratings", Match: &api.Match{Source: &api.Source{Name: "reviews"}}, Actions: []api.Action{{Action: "delay", Duration: 7}}},
		{ID: "orphan", Destination: "ghost", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}}}}},
	}, bookinfo, nil)
	if got := strings.Join(tbl.Destinations(), ","); got != "details,ghost,ratings,reviews" {
		t.Fatalf("destinations %s", got)
	}
	if tbl.Lookup("nothing") != nil || tbl.Revision != 7 || tbl.Index != 3 {
		t.Fatal("lookup of an unknown destination, or revision/index")
	}
	rv := tbl.Lookup("reviews")
	if len(rv.Routes) != 2 || rv.Routes[0].Rule.ID != "jason" {
		t.Fatalf("reviews routes: a rule for another source must be dropped: %d routes", len(rv.Routes))
	}
	if n := len(rv.All.Endpoints); n != 4 {
		t.Fatalf("all reviews endpoints: %d", n)
	}
	r, _, c := rv.Pick(productpage, rules.HTTPHeader{"Cookie": {"user=jason"}}, "/", 0.9)
	if r.Rule.ID != "jason" || c.Key != "reviews:version=v2" || len(c.Endpoints) != 2 {
		t.Fatalf("jason: rule %v cluster %+v", r.Rule.ID, c)
	}
	r, _, c = rv.Pick(productpage, rules.HTTPHeader{}, "/", 0.1)
	if r.Rule.ID != "split" || c.Key != "reviews:version=v1" {
		t.Fatalf("split at 0.1: %s %s", r.Rule.ID, c.Key)
	}
	if _, _, c = rv.Pick(productpage, rules.HTTPHeader{}, "/", 0.3); c.Key != "reviews:version=v3" {
		t.Fatalf("split at 0.3: %s", c.Key)
	}
	// Without rules, every instance.
	if r, _, c := tbl.Lookup("details").Pick(productpage, nil, "/", 0.5); r != nil || c.Key != "details:" || len(c.Endpoints) != 1 {
		t.Fatalf("details default: %v %+v", r, c)
	}
	// A destination with rules but no instances is known; its clusters are empty.
	if _, _, c := tbl.Lookup("ghost").Pick(productpage, nil, "/", 0.5); len(c.Endpoints) != 0 {
		t.Fatalf("ghost: %+v", c)
	}
	if a := tbl.Lookup("ratings").Action(productpage, nil); a == nil || a.ID != "delay" || len(tbl.Lookup("ratings").Actions) != 1 {
		t.Fatalf("ratings actions: only the one for productpage must be kept")
	}
}

func TestRoute_URI(t *testing.T) {
	tbl := build(t, []api.Rule{
		{ID: "exact", Priority: 3, Destination: "reviews", Route: &api.Route{URI: &api.URI{Path: "/health"}, Backends: []api.Backend{{Tags: []string{"version=v3"}}}}},
		{ID: "api", Priority: 2, Destination: "reviews", Route: &api.Route{URI: &api.URI{Prefix: "/api/", PrefixRewrite: "/v2/"}, Backends: []api.Backend{
			{Tags: []string{"version=v2"}, Weight: f(0.5)}, {Tags: []string{"version=v1"}, URI: &api.URI{PrefixRewrite: "/legacy/"}}}}},
		{ID: "root", Priority: 1, Destination: "reviews", Route: &api.Route{URI: &api.URI{PrefixRewrite: "/app/"}, Backends: []api.Backend{{Tags: []string{"version=v1"}}}}},
	}, bookinfo, nil)
	d := tbl.Lookup("reviews")
	tests := []struct {
		path     string
		u        float64
		rule     string
		upstream string
	}{
		{"/health", 0, "exact", "/health"},
		{"/healthz", 0, "root", "/app/healthz"},
		{"/api/books/1", 0.1, "api", "/v2/books/1"},
		{"/api/books/1", 0.9, "api", "/legacy/books/1"},
		{"/other", 0, "root", "/app/other"},
	}
	for _, tc := range tests {
		r, i, _ := d.Pick(productpage, nil, tc.path, tc.u)
		if r == nil || r.Rule.ID != tc.rule || r.Rewrite(tc.path, i) != tc.upstream {
			t.Errorf("%s at %v: rule %v, upstream %q; want %s, %s", tc.path, tc.u, r.Rule.ID, r.Rewrite(tc.path, i), tc.rule, tc.upstream)
		}
	}
}

func TestBuild_Endpoints(t *testing.T) {
	tbl := build(t, nil, []api.Instance{
		{ServiceName: "s", Endpoint: &api.Endpoint{Type: "https", Value: "secure.example"}},
		{ServiceName: "s", Endpoint: &api.Endpoint{Type: "http", Value: "http://10.0.0.9:8080/"}},
		{ServiceName: "s", Endpoint: &api.Endpoint{Type: "tcp", Value: "[::1]:81"}},
		{ServiceName: "s", Endpoint: &api.Endpoint{Type: "udp", Value: "10.0.0.9:53"}},
		{ServiceName: "s", Endpoint: &api.Endpoint{Type: "http", Value: "host:notaport"}},
	}, nil)
	var got []string
	for _, e := range tbl.Lookup("s").All.Endpoints {
		got = append(got, e.Scheme+"://"+e.Addr+"("+e.Host+")")
	}
	if want := "http://10.0.0.9:8080(10.0.0.9),http://[::1]:81(::1),https://secure.example:443(secure.example)"; strings.Join(got, ",") != want {
		t.Fatalf("endpoints %s, want %s", strings.Join(got, ","), want)
	}
}

// State outlives rebuilds: an endpoint ejected in one table is ejected in the next.
func TestPool_StateSurvivesRebuild(t *testing.T) {
	pool := NewPool()
	rs := []api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"},
		Resilience: &api.Resilience{ConsecutiveErrors: 2, SleepWindow: 60}}}}}}
	t1 := build(t, rs, bookinfo, pool)
	_, _, c := t1.Lookup("reviews").Pick(productpage, nil, "/", 0)
	e := c.Endpoints[0]
	for range 2 {
		end, err := c.Begin(context.Background(), e)
		if err != nil {
			t.Fatal(err)
		}
		end(true)
	}
	if !e.State.Ejected(time.Now().UnixNano()) {
		t.Fatal("two failures in a row did not eject with consecutive_errors 2")
	}
	t2 := build(t, rs, bookinfo, pool)
	_, _, c2 := t2.Lookup("reviews").Pick(productpage, nil, "/", 0)
	if c2.Endpoints[0].State != e.State || c2.Ejected() != 1 {
		t.Fatal("the ejection did not survive the rebuild")
	}
	for range 20 {
		if got, err := c2.PickEndpoint(nil); err != nil || got.Addr == e.Addr {
			t.Fatalf("picked %v, %v: the ejected endpoint must be passed over", got, err)
		}
	}
	// An endpoint that left the registry leaves the pool.
	t3 := build(t, rs, bookinfo[:1], pool)
	_ = t3
	if _, ok := pool.endpoints["http://"+e.Addr]; ok {
		t.Fatal("state of a departed endpoint kept")
	}
}

func TestPickEndpoint(t *testing.T) {
	for _, lb := range []string{"round_robin", "least_request", "random"} {
		t.Run(lb, func(t *testing.T) {
			rs := []api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, LBType: lb}}}}}
			_, _, c := build(t, rs, bookinfo, nil).Lookup("reviews").Pick(productpage, nil, "/", 0)
			counts := map[string]int{}
			for range 1000 {
				e, err := c.PickEndpoint(nil)
				if err != nil {
					t.Fatal(err)
				}
				counts[e.Addr]++
			}
			if len(counts) != 2 || counts["10.0.0.2:9080"] < 300 || counts["10.0.0.3:9080"] < 300 {
				t.Fatalf("distribution %v", counts)
			}
			avoid := c.Endpoints[0]
			for range 50 {
				if e, _ := c.PickEndpoint(avoid); e == avoid {
					t.Fatal("picked the endpoint to avoid although another is usable")
				}
			}
			one := &Cluster{Endpoints: c.Endpoints[:1], LBType: lb, State: newClusterState()}
			if e, err := one.PickEndpoint(avoid); err != nil || e != avoid {
				t.Fatal("the endpoint to avoid must still be used when it is the only one")
			}
			empty := &Cluster{LBType: lb, State: newClusterState()}
			if _, err := empty.PickEndpoint(nil); !errors.Is(err, ErrNoEndpoint) {
				t.Fatalf("empty cluster: %v", err)
			}
		})
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	rs := []api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, LBType: "least_request"}}}}}
	_, _, c := build(t, rs, bookinfo, nil).Lookup("reviews").Pick(productpage, nil, "/", 0)
	busy := c.Endpoints[0]
	for range 10 {
		if _, err := c.Begin(context.Background(), busy); err != nil {
			t.Fatal(err)
		}
	}
	idle := 0
	for range 1000 {
		if e, _ := c.PickEndpoint(nil); e != busy {
			idle++
		}
	}
	if idle < 700 { // two choices: the busy one only wins when both draws are it (1 in 4)
		t.Fatalf("the idle endpoint was picked %d times of 1000", idle)
	}
}

func TestBegin_CircuitBreakers(t *testing.T) {
	mk := func(r api.Resilience) *Cluster {
		rs := []api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Resilience: &r}}}}}
		_, _, c := build(t, rs, bookinfo, nil).Lookup("reviews").Pick(productpage, nil, "/", 0)
		return c
	}
	ctx := context.Background()
	c := mk(api.Resilience{MaxRequests: 2})
	e := c.Endpoints[0]
	end1, _ := c.Begin(ctx, e)
	end2, _ := c.Begin(ctx, e)
	if _, err := c.Begin(ctx, e); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request with max_requests 2: %v", err)
	}
	end1(false)
	end3, err := c.Begin(ctx, e)
	if err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	end2(false)
	end3(false)

	// One connection, one pending: the second waits for the first, the third is refused.
	c = mk(api.Resilience{MaxConnections: 1, MaxPendingRequests: 1})
	endA, err := c.Begin(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		end, err := c.Begin(ctx, e)
		if err == nil {
			end(false)
		}
		got <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for c.State.pending.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request did not queue")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := c.Begin(ctx, e); !errors.Is(err, ErrOverflow) {
		t.Fatalf("third request with 1 connection and 1 pending: %v", err)
	}
	endA(false)
	if err := <-got; err != nil {
		t.Fatalf("the queued request: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	endA, _ = c.Begin(ctx, e)
	cancel()
	if _, err := c.Begin(cctx, e); !errors.Is(err, context.Canceled) {
		t.Fatalf("a queued request whose client left: %v", err)
	}
	endA(false)
}

func TestOutlierEjection(t *testing.T) {
	rs := []api.Rule{{Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"},
		Resilience: &api.Resilience{ConsecutiveErrors: 3, SleepWindow: 0.05}}}}}}
	var ejected []string
	set, _ := rules.Compile(rs)
	tbl := Build(set, 1, bookinfo, 1, Options{Self: productpage, Pool: NewPool(), OnEject: func(c *Cluster, e *Endpoint) {
		ejected = append(ejected, c.Key+" "+e.Addr)
	}})
	_, _, c := tbl.Lookup("reviews").Pick(productpage, nil, "/", 0)
	e := c.Endpoints[0]
	fail := func(n int, failed bool) {
		for range n {
			end, err := c.Begin(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			end(failed)
		}
	}
	fail(2, true)
	fail(1, false) // a success resets the count
	fail(2, true)
	if e.State.Ejected(time.Now().UnixNano()) {
		t.Fatal("ejected without 3 failures in a row")
	}
	fail(1, true)
	if !e.State.Ejected(time.Now().UnixNano()) || fmt.Sprint(ejected) != "[reviews:version=v2 10.0.0.2:9080]" {
		t.Fatalf("not ejected after 3 failures in a row (%v)", ejected)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.State.Ejected(time.Now().UnixNano()) {
		if time.Now().After(deadline) {
			t.Fatal("the ejection did not end after its sleep window")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Both ejected: no healthy instance.
	for _, ep := range c.Endpoints {
		ep.State.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	}
	if _, err := c.PickEndpoint(nil); !errors.Is(err, ErrNoEndpoint) {
		t.Fatalf("all ejected: %v", err)
	}
}

// The routing decision (lookup, rule, backend, endpoint) allocates nothing.
func BenchmarkDecision(b *testing.B) {
	tbl := build(b, []api.Rule{
		{ID: "jason", Priority: 2, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"Cookie": "^(.*?;)?(user=jason)(;.*)?$"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
		{ID: "split", Priority: 1, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{
			{Tags: []string{"version=v1"}, Weight: f(0.25)}, {Tags: []string{"version=v3"}}}}},
	}, bookinfo, nil)
	h := rules.HTTPHeader{"Cookie": {"foo=bar; user=shriram"}, "X-Request-Id": {"abc"}}
	path := []byte("reviews")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		d := tbl.Lookup(string(path))
		_, _, c := d.Pick(productpage, h, "/reviews/0", float64(i%100)/100)
		if _, err := c.PickEndpoint(nil); err != nil {
			b.Fatal(err)
		}
		_ = d.Action(productpage, h)
	}
}

// Backends with the same service, tags, balancer and resilience share a cluster; any difference
// makes another cluster, with the same state (it is the same set of instances).
func TestBuild_ClusterSharing(t *testing.T) {
	res := func(n int) *api.Resilience { return &api.Resilience{MaxRequests: n} }
	tbl := build(t, []api.Rule{
		{ID: "a", Priority: 6, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-A": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Resilience: res(5)}}}},
		{ID: "b", Priority: 5, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-B": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Resilience: res(5)}}}},
		{ID: "c", Priority: 4, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-C": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Resilience: res(6)}}}},
		{ID: "d", Priority: 3, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-D": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, Resilience: &api.Resilience{}}}}},
		{ID: "e", Priority: 2, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-E": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}}}}},
		{ID: "f", Priority: 1, Destination: "reviews", Match: &api.Match{Headers: map[string]string{"X-F": "1"}},
			Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v2"}, LBType: "random"}}}},
		{ID: "g", Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Name: "ratings", Tags: []string{"version=v1"}}}}},
	}, bookinfo, nil)
	cs := map[string]*Cluster{}
	for _, r := range tbl.Lookup("reviews").Routes {
		cs[r.Rule.ID] = r.Clusters[0]
	}
	if cs["a"] != cs["b"] {
		t.Error("same backend settings: not one cluster")
	}
	for _, id := range []string{"c", "d", "e", "f"} {
		if cs[id] == cs["a"] {
			t.Errorf("rule %s: a backend with other settings shares a's cluster", id)
		}
		if cs[id].State != cs["a"].State || cs[id].Key != "reviews:version=v2" || len(cs[id].Endpoints) != 2 {
			t.Errorf("rule %s: cluster %+v", id, cs[id])
		}
	}
	if cs["d"].Limits.MaxPendingRequests != DefaultMaxPendingRequests || cs["e"].Limits.MaxPendingRequests != 0 {
		t.Error("an empty resilience (defaults) and none (no limits) must differ")
	}
	if g := cs["g"]; g.Key != "ratings:version=v1" || g.Service != "ratings" || len(g.Endpoints) != 1 {
		t.Errorf("backend of another service: %+v", g)
	}
}
