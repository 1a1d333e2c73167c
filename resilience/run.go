package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
)

// Run is a recipe running on a live system, for Go tests: Start it, send the test's requests
// (with the recipe's header), Check, and Stop.
//
//	ctl, _ := client.NewController(client.ControllerConfig{URL: "http://localhost:8080"})
//	run, err := resilience.Start(ctx, ctl, api.RecipeRequest{Topology: topo, Scenarios: scenarios})
//	if err != nil { ... }
//	defer run.Stop(context.Background())
//	// ... send requests carrying X-Request-ID through the gateway ...
//	results, err := run.Check(ctx, 30*time.Second, resilience.BoundedResponseTime("gateway", "productpage", 7*time.Second))
//	if !resilience.Passed(results) { t.Fatal(resilience.Summary(results)) }
type Run struct {
	ID  string
	ctl *client.Controller
}

// Start validates the recipe locally (so a mistake is reported before anything changes), then
// has the controller turn it into tagged action rules.
func Start(ctx context.Context, ctl *client.Controller, req api.RecipeRequest) (*Run, error) {
	if ctl == nil {
		return nil, errors.New("resilience: no controller client")
	}
	if _, err := Rules("check", req); err != nil {
		return nil, fmt.Errorf("resilience: %w", err)
	}
	id, err := ctl.CreateRecipe(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("resilience: starting the recipe: %w", err)
	}
	return &Run{ID: id, ctl: ctl}, nil
}

// Check evaluates checks on the records of the test's requests. The controller first waits, at
// most wait (0: 30s), until every request in flight has its record.
func (r *Run) Check(ctx context.Context, wait time.Duration, checks ...api.Check) ([]api.CheckResult, error) {
	if err := ValidateChecks(checks); err != nil {
		return nil, fmt.Errorf("resilience: %w", err)
	}
	res, err := r.ctl.CheckRecipe(ctx, r.ID, checks, wait)
	if err != nil {
		return nil, fmt.Errorf("resilience: checking recipe %s: %w", r.ID, err)
	}
	return res, nil
}

// Records returns the records of the test's requests so far.
func (r *Run) Records(ctx context.Context) (api.RecordList, error) {
	l, err := r.ctl.RecipeRecords(ctx, r.ID)
	if err != nil {
		return l, fmt.Errorf("resilience: records of recipe %s: %w", r.ID, err)
	}
	return l, nil
}

// Stop ends the recipe: its rules, and its records, are removed. Stopping twice is harmless.
func (r *Run) Stop(ctx context.Context) error {
	err := r.ctl.DeleteRecipe(ctx, r.ID)
	var se *client.StatusError
	if errors.As(err, &se) && se.Code == 404 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resilience: stopping recipe %s (its rules are tagged %s: a8ctl rule-delete -t %s removes them): %w", r.ID, r.ID, r.ID, err)
	}
	return nil
}
