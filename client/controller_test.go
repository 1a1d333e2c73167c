package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store/memory"
)

func newController(t *testing.T, wrap func(http.Handler) http.Handler, cfg client.ControllerConfig) *client.Controller {
	t.Helper()
	s, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := auth.New("trusted", "")
	ctl, err := controller.New(controller.Config{Store: s, Auth: a})
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = ctl.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	if cfg.Token == "" {
		cfg.Token = "team-a"
	}
	c, err := client.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func routeTo(id, dest, tag string) api.Rule {
	return api.Rule{ID: id, Destination: dest, Route: &api.Route{Backends: []api.Backend{{Tags: []string{tag}}}}}
}

func TestController_Lifecycle(t *testing.T) {
	c := newController(t, nil, client.ControllerConfig{})
	ctx := context.Background()
	ids, err := c.CreateRules(ctx, []api.Rule{routeTo("r1", "reviews", "v1"), {Destination: "ratings", Tags: []string{"t"}, Actions: []api.Action{{Action: "trace"}}}})
	if err != nil || len(ids) != 2 || ids[0] != "r1" || ids[1] == "" {
		t.Fatalf("CreateRules = %v, %v", ids, err)
	}
	l, meta, err := c.GetRules(ctx, client.RuleFilter{Destinations: []string{"reviews"}}, nil)
	if err != nil || len(l.Rules) != 1 || l.Revision != 1 || meta.Index != 1 {
		t.Fatalf("GetRules = %+v %+v %v", l, meta, err)
	}
	if err := c.UpdateRules(ctx, []api.Rule{routeTo("r1", "reviews", "v2")}); err != nil {
		t.Fatal(err)
	}
	err = c.UpdateRules(ctx, []api.Rule{routeTo("nope", "reviews", "v2")})
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.ErrorID != "error_rule_not_found" || !strings.Contains(se.Message, `"nope"`) {
		t.Fatalf("UpdateRules(unknown) = %v", err)
	}
	_, err = c.CreateRules(ctx, []api.Rule{{Destination: "x", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v1"}, Weight: ptr(2.0)}}}}})
	if !errors.As(err, &se) || se.ErrorID != "error_invalid_rule" || !strings.Contains(se.Message, "rules[0].route.backends[0].weight") {
		t.Fatalf("CreateRules(invalid) = %v", err)
	}
	routes, err := c.Routes(ctx, client.RuleFilter{})
	if err != nil || routes["reviews"][0].Route.Backends[0].Tags[0] != "v2" {
		t.Fatalf("Routes = %v, %v", routes, err)
	}
	actions, err := c.Actions(ctx, client.RuleFilter{Tags: []string{"t"}})
	if err != nil || len(actions["ratings"]) != 1 {
		t.Fatalf("Actions = %v, %v", actions, err)
	}
	if _, err := c.SetRoutes(ctx, "reviews", []api.Rule{{Route: &api.Route{Backends: []api.Backend{{Tags: []string{"v3"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteActions(ctx, "ratings"); err != nil {
		t.Fatal(err)
	}
	l, _, _ = c.GetRules(ctx, client.RuleFilter{}, nil)
	if len(l.Rules) != 1 || l.Rules[0].Route.Backends[0].Tags[0] != "v3" {
		t.Fatalf("after SetRoutes and DeleteActions: %+v", l.Rules)
	}
	if err := c.DeleteRules(ctx, client.RuleFilter{}); err != nil {
		t.Fatal(err)
	}
	if l, _, _ = c.GetRules(ctx, client.RuleFilter{}, nil); len(l.Rules) != 0 || l.Revision != 5 {
		t.Fatalf("after deleting all: %+v", l)
	}
}

func ptr[T any](v T) *T { return &v }

func TestController_AdminNamespace(t *testing.T) {
	admin := newController(t, nil, client.ControllerConfig{Token: "admin", Namespace: "team-b"})
	if _, err := admin.CreateRules(context.Background(), []api.Rule{routeTo("r", "x", "v1")}); err != nil {
		t.Fatal(err)
	}
	l, _, err := admin.GetRules(context.Background(), client.RuleFilter{}, nil)
	if err != nil || len(l.Rules) != 1 {
		t.Fatalf("admin for team-b: %+v %v", l, err)
	}
}

func TestController_WatchRules(t *testing.T) {
	c := newController(t, nil, client.ControllerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	revs := make(chan int64, 10)
	go func() {
		_ = c.WatchRules(ctx, client.RuleFilter{}, client.WatchOptions{}, func(l api.RuleList, _ client.QueryMeta) { revs <- l.Revision })
	}()
	if rev := <-revs; rev != 0 {
		t.Fatalf("first report at revision %d", rev)
	}
	for want := int64(1); want <= 3; want++ {
		if _, err := c.CreateRules(context.Background(), []api.Rule{routeTo("r", "x", "v1")}); err != nil {
			t.Fatal(err)
		}
		select {
		case rev := <-revs:
			if rev != want {
				t.Fatalf("reported revision %d, want %d", rev, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no report of revision %d", want)
		}
	}
}

// Against an Amalgam8 controller (no index header), the watch polls and reports new revisions only.
func TestController_WatchRulesPolls(t *testing.T) {
	var gets atomic.Int32
	c := newController(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == "GET" {
				gets.Add(1)
			}
			h.ServeHTTP(&noIndex{ResponseWriter: w}, r)
		})
	}, client.ControllerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reports atomic.Int32
	go func() {
		_ = c.WatchRules(ctx, client.RuleFilter{}, client.WatchOptions{Poll: 10 * time.Millisecond}, func(api.RuleList, client.QueryMeta) { reports.Add(1) })
	}()
	eventually(t, "several polls", func() bool { return gets.Load() >= 5 })
	if reports.Load() != 1 {
		t.Fatalf("%d reports without a change", reports.Load())
	}
	if _, err := c.CreateRules(context.Background(), []api.Rule{routeTo("r", "x", "v1")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new revision", func() bool { return reports.Load() == 2 })
}
