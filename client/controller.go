package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/a8fabric/a8/api"
)

// Controller is a client of the controller's rules API.
type Controller struct {
	b base
}

// ControllerConfig configures a Controller client.
type ControllerConfig struct {
	// URL of the controller, e.g. http://localhost:8080.
	URL string
	// Token is the bearer token; empty for none.
	Token string
	// Namespace, with the admin token, names the tenant to act for (the A8-Namespace header).
	Namespace string
	// HTTPClient to use; nil means one on http.DefaultTransport, without a Timeout.
	HTTPClient *http.Client
}

// NewController returns a client for cfg.
func NewController(cfg ControllerConfig) (*Controller, error) {
	b, err := newBase(cfg.URL, cfg.Token, cfg.HTTPClient, "error")
	if err != nil {
		return nil, fmt.Errorf("controller %w", err)
	}
	if cfg.Namespace != "" {
		b.header = http.Header{"A8-Namespace": {cfg.Namespace}}
	}
	return &Controller{b: b}, nil
}

// RuleFilter selects rules: any of IDs, any of Destinations, and all of Tags. The zero filter
// selects every rule.
type RuleFilter struct {
	IDs, Tags, Destinations []string
}

func (f RuleFilter) values() url.Values {
	v := url.Values{}
	for _, id := range f.IDs {
		v.Add("id", id)
	}
	for _, t := range f.Tags {
		v.Add("tag", t)
	}
	for _, d := range f.Destinations {
		v.Add("destination", d)
	}
	return v
}

// CreateRules adds rules (a rule with an existing id replaces it) and returns their ids in order;
// rules without an id get a generated one.
func (c *Controller) CreateRules(ctx context.Context, rules []api.Rule) ([]string, error) {
	var out api.RuleIDs
	_, err := c.b.do(ctx, http.MethodPost, "/v1/rules", nil, nil, api.RuleList{Rules: rules}, &out)
	return out.IDs, err
}

// UpdateRules replaces existing rules, named by id; if any id is unknown, nothing changes (404).
func (c *Controller) UpdateRules(ctx context.Context, rules []api.Rule) error {
	_, err := c.b.do(ctx, http.MethodPut, "/v1/rules", nil, nil, api.RuleList{Rules: rules}, nil)
	return err
}

// GetRules returns the rules f selects and the revision; opts (may be nil) make it a blocking query.
func (c *Controller) GetRules(ctx context.Context, f RuleFilter, opts *QueryOptions) (api.RuleList, QueryMeta, error) {
	var out api.RuleList
	meta, err := c.b.do(ctx, http.MethodGet, "/v1/rules", f.values(), opts, nil, &out)
	return out, meta, err
}

// DeleteRules deletes the rules f selects. The zero filter deletes every rule of the tenant.
func (c *Controller) DeleteRules(ctx context.Context, f RuleFilter) error {
	_, err := c.b.do(ctx, http.MethodDelete, "/v1/rules", f.values(), nil, nil, nil)
	return err
}

// Routes returns the route rules f selects, by destination.
func (c *Controller) Routes(ctx context.Context, f RuleFilter) (map[string][]api.Rule, error) {
	return c.byDestination(ctx, "routes", f)
}

// Actions returns the action rules f selects, by destination.
func (c *Controller) Actions(ctx context.Context, f RuleFilter) (map[string][]api.Rule, error) {
	return c.byDestination(ctx, "actions", f)
}

func (c *Controller) byDestination(ctx context.Context, kind string, f RuleFilter) (map[string][]api.Rule, error) {
	var out api.RulesByDestination
	_, err := c.b.do(ctx, http.MethodGet, "/v1/rules/"+kind, f.values(), nil, nil, &out)
	return out.Services, err
}

// SetRoutes replaces every route rule of destination with rules (Amalgam8 0.x's bulk PUT).
func (c *Controller) SetRoutes(ctx context.Context, destination string, rules []api.Rule) ([]string, error) {
	return c.set(ctx, "routes", destination, rules)
}

// SetActions replaces every action rule of destination with rules.
func (c *Controller) SetActions(ctx context.Context, destination string, rules []api.Rule) ([]string, error) {
	return c.set(ctx, "actions", destination, rules)
}

func (c *Controller) set(ctx context.Context, kind, destination string, rules []api.Rule) ([]string, error) {
	seg, err := pathSegment("destination", destination)
	if err != nil {
		return nil, err
	}
	if rules == nil {
		rules = []api.Rule{}
	}
	var out api.RuleIDs
	_, err = c.b.do(ctx, http.MethodPut, "/v1/rules/"+kind+"/"+seg, nil, nil, api.RuleList{Rules: rules}, &out)
	return out.IDs, err
}

// DeleteRoutes deletes every route rule of destination.
func (c *Controller) DeleteRoutes(ctx context.Context, destination string) error {
	return c.deleteDestination(ctx, "routes", destination)
}

// DeleteActions deletes every action rule of destination.
func (c *Controller) DeleteActions(ctx context.Context, destination string) error {
	return c.deleteDestination(ctx, "actions", destination)
}

func (c *Controller) deleteDestination(ctx context.Context, kind, destination string) error {
	seg, err := pathSegment("destination", destination)
	if err != nil {
		return err
	}
	_, err = c.b.do(ctx, http.MethodDelete, "/v1/rules/"+kind+"/"+seg, nil, nil, nil, nil)
	return err
}

// ErrPathSegment is a name that cannot be sent as one segment of a URL path: "", "." or "..".
// Such a path names another resource once cleaned (DELETE /v1/rules/actions/.. is DELETE
// /v1/rules, every rule), so the clients refuse it before sending anything.
var ErrPathSegment = errors.New(`cannot be a URL path segment: an empty name, "." and ".." would name another resource`)

// pathSegment escapes name (a destination, a service, an instance id) as one URL path segment, or
// refuses it with ErrPathSegment.
func pathSegment(what, name string) (string, error) {
	switch name {
	case "", ".", "..":
		return "", fmt.Errorf("%s %q %w", what, name, ErrPathSegment)
	}
	return url.PathEscape(name), nil
}

// WatchRules calls fn with the rules f selects now and after every change of the tenant's rules,
// until ctx ends (it then returns ctx's error). Against an Amalgam8 controller, which has no blocking
// queries, it polls and reports a new revision.
func (c *Controller) WatchRules(ctx context.Context, f RuleFilter, opts WatchOptions, fn func(api.RuleList, QueryMeta)) error {
	return watch(ctx, opts, func(ctx context.Context, qo *QueryOptions) (api.RuleList, QueryMeta, error) {
		return c.GetRules(ctx, f, qo)
	}, func(a, b api.RuleList) bool { return a.Revision == b.Revision }, fn)
}
