package resilience_test

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/resilience"
)

// A recipe driven from Go against a real controller: Start, records as sidecars deliver them,
// Check, Records, Stop.
func TestRun(t *testing.T) {
	rules, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	recipes := memory.NewRecipes(store.RecipesOptions{}, nil)
	defer recipes.Close()
	srv, err := controller.New(controller.Config{Store: rules, Recipes: recipes})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ctl, err := client.NewController(client.ControllerConfig{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data, err := os.ReadFile("testdata/bookinfo-topology.json")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := resilience.DecodeTopology(data)
	if err != nil {
		t.Fatal(err)
	}

	// A mistake is reported before anything is sent.
	if _, err := resilience.Start(ctx, ctl, api.RecipeRequest{Topology: topo, Scenarios: api.Scenarios{Gremlins: []api.Gremlin{
		resilience.DelayRequests("reviews:version=v2", "nowhere", time.Second, 1)}}}); err == nil {
		t.Fatal("a gremlin on an unknown service was accepted")
	}
	if set, _ := rules.Get(ctx, "default"); len(set.Rules) != 0 {
		t.Fatalf("a refused recipe left %d rules", len(set.Rules))
	}

	run, err := resilience.Start(ctx, ctl, api.RecipeRequest{Topology: topo, Scenarios: api.Scenarios{Gremlins: []api.Gremlin{
		resilience.DelayRequests("reviews:version=v2", "ratings:version=v1", 7*time.Second, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	if set, _ := rules.Get(ctx, "default"); len(set.Rules) != 4 {
		t.Fatalf("%d rules, want one per edge of the topology", len(set.Rules))
	}
	now := time.Now().UTC()
	rec := func(id, src, dst string, status int, took time.Duration) api.Record {
		return api.Record{ID: id, StartTime: now, RequestTime: float64(took.Milliseconds()), Status: status, Src: src, Dst: dst,
			RequestID: "q" + id, ResponseFlags: "-", Attempts: 1, TraceKey: api.RecipeTraceKey, TraceValue: run.ID}
	}
	if err := ctl.DeliverRecords(ctx, api.RecordBatch{Records: []api.Record{
		rec("1", "gateway:version=none", "productpage:version=v1", 200, 6*time.Second),
		rec("2", "productpage:version=v1", "reviews:version=v2", 499, 3*time.Second),
	}}); err != nil {
		t.Fatal(err)
	}
	res, err := run.Check(ctx, 10*time.Second,
		resilience.BoundedResponseTime("gateway:version=none", "productpage:version=v1", 7*time.Second),
		resilience.HTTPStatus("productpage:version=v1", "reviews:version=v2", 200))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Result || res[1].Result || res[1].ErrorMsg != "unexpected connection termination" || resilience.Passed(res) {
		t.Fatalf("results:\n%s", resilience.Summary(res))
	}
	if l, err := run.Records(ctx); err != nil || len(l.Records) != 2 {
		t.Fatalf("records: %+v, %v", l, err)
	}
	if err := run.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := run.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if set, _ := rules.Get(ctx, "default"); len(set.Rules) != 0 {
		t.Fatalf("Stop left %d rules", len(set.Rules))
	}
	if _, err := run.Check(ctx, time.Second, api.Check{Name: "no_such"}); err == nil {
		t.Fatal("an invalid check was sent")
	}
}
