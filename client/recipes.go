package client

import (
	"context"
	"net/http"
	"time"

	"github.com/a8fabric/a8/api"
)

// CreateRecipe starts a resilience recipe (POST /api/v1/recipes): the controller turns it into
// action rules tagged with the returned recipe id.
func (c *Controller) CreateRecipe(ctx context.Context, req api.RecipeRequest) (string, error) {
	var out api.RecipeCreated
	_, err := c.b.do(ctx, http.MethodPost, "/api/v1/recipes", nil, nil, req, &out)
	return out.RecipeID, err
}

// Recipe returns a running recipe (GET /api/v1/recipes/{id}).
func (c *Controller) Recipe(ctx context.Context, id string) (api.Recipe, error) {
	var out api.Recipe
	seg, err := pathSegment("recipe id", id)
	if err != nil {
		return out, err
	}
	_, err = c.b.do(ctx, http.MethodGet, "/api/v1/recipes/"+seg, nil, nil, nil, &out)
	return out, err
}

// Recipes lists the tenant's running recipes (GET /api/v1/recipes).
func (c *Controller) Recipes(ctx context.Context) ([]api.Recipe, error) {
	var out api.RecipeList
	_, err := c.b.do(ctx, http.MethodGet, "/api/v1/recipes", nil, nil, nil, &out)
	return out.Recipes, err
}

// CheckRecipe evaluates checks on the records of a recipe's test requests (POST
// /api/v1/recipes/{id}). The controller first waits, up to wait (0: its default, 30s), until the
// records of every request in flight have arrived.
func (c *Controller) CheckRecipe(ctx context.Context, id string, checks []api.Check, wait time.Duration) ([]api.CheckResult, error) {
	seg, err := pathSegment("recipe id", id)
	if err != nil {
		return nil, err
	}
	req := api.ChecksRequest{Checklist: api.Checklist{Checks: checks}}
	if req.Checklist.Checks == nil {
		req.Checklist.Checks = []api.Check{}
	}
	timeout := 30*time.Second + DefaultTimeout
	if wait > 0 {
		req.Wait = wait.String()
		timeout = wait + DefaultTimeout
	}
	var out api.CheckResults
	_, err = c.b.do(withCallTimeout(ctx, timeout), http.MethodPost, "/api/v1/recipes/"+seg, nil, nil, req, &out)
	return out.Results, err
}

// RecipeRecords returns the records of a recipe's test requests (GET
// /api/v1/recipes/{id}/records).
func (c *Controller) RecipeRecords(ctx context.Context, id string) (api.RecordList, error) {
	var out api.RecordList
	seg, err := pathSegment("recipe id", id)
	if err != nil {
		return out, err
	}
	_, err = c.b.do(ctx, http.MethodGet, "/api/v1/recipes/"+seg+"/records", nil, nil, nil, &out)
	return out, err
}

// DeleteRecipe ends a recipe (DELETE /api/v1/recipes/{id}): its rules, the recipe and its
// records are removed.
func (c *Controller) DeleteRecipe(ctx context.Context, id string) error {
	seg, err := pathSegment("recipe id", id)
	if err != nil {
		return err
	}
	_, err = c.b.do(ctx, http.MethodDelete, "/api/v1/recipes/"+seg, nil, nil, nil, nil)
	return err
}
