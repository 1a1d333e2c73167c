package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
)

const indexHeader = api.IndexHeader

// ErrInstanceGone is what Heartbeat and Deregister return for an instance the registry does not
// hold (unknown, deregistered or expired: HTTP 410). After it, register again.
var ErrInstanceGone = errors.New("instance is not registered")

// Registry is a client of the registry API (Amalgam8's, plus blocking queries).
type Registry struct {
	b base
}

// RegistryConfig configures a Registry client.
type RegistryConfig struct {
	// URL of the registry, e.g. http://localhost:8080.
	URL string
	// Token is the bearer token (the namespace in trusted mode, a JWT in jwt mode); empty for none.
	Token string
	// HTTPClient to use; nil means one on http.DefaultTransport. Set no Timeout on it: each call is
	// bounded by its context, and blocking queries by their wait.
	HTTPClient *http.Client
}

// NewRegistry returns a client for cfg.
func NewRegistry(cfg RegistryConfig) (*Registry, error) {
	b, err := newBase(cfg.URL, cfg.Token, cfg.HTTPClient, "Error")
	if err != nil {
		return nil, fmt.Errorf("registry %w", err)
	}
	return &Registry{b: b}, nil
}

// Register registers an instance, or re-registers it (same service and endpoint: same id).
func (c *Registry) Register(ctx context.Context, reg api.InstanceRegistration) (*api.RegistrationResponse, error) {
	var out api.RegistrationResponse
	if _, err := c.b.do(ctx, http.MethodPost, "/api/v1/instances", nil, nil, reg, &out); err != nil {
		return nil, err
	}
	if out.ID == "" || out.TTL <= 0 {
		return nil, fmt.Errorf("registry answered a registration without id or ttl: %+v", out)
	}
	return &out, nil
}

// Heartbeat renews an instance's lease. ErrInstanceGone means it must be registered again.
func (c *Registry) Heartbeat(ctx context.Context, id string) error {
	seg, err := pathSegment("instance id", id)
	if err != nil {
		return err
	}
	_, err = c.b.do(ctx, http.MethodPut, "/api/v1/instances/"+seg+"/heartbeat", nil, nil, nil, nil)
	if isStatus(err, http.StatusGone) {
		return fmt.Errorf("%w: %w", ErrInstanceGone, err)
	}
	return err
}

// Deregister removes an instance. ErrInstanceGone means it was not registered (any more).
func (c *Registry) Deregister(ctx context.Context, id string) error {
	seg, err := pathSegment("instance id", id)
	if err != nil {
		return err
	}
	_, err = c.b.do(ctx, http.MethodDelete, "/api/v1/instances/"+seg, nil, nil, nil, nil)
	if isStatus(err, http.StatusGone) {
		return fmt.Errorf("%w: %w", ErrInstanceGone, err)
	}
	return err
}

// InstanceQuery filters a list of instances. Zero fields do not filter; with no Status only
// routable instances (not STARTING, not OUT_OF_SERVICE) are listed; Status "ALL" lists every one.
type InstanceQuery struct {
	ServiceName string
	Tags        []string // all of them
	Status      string
	Fields      []string // projection; id and endpoint always come
}

func (q InstanceQuery) values() url.Values {
	v := url.Values{}
	if q.ServiceName != "" {
		v.Set("service_name", q.ServiceName)
	}
	if len(q.Tags) > 0 {
		v.Set("tags", strings.Join(q.Tags, ","))
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Fields != nil {
		v.Set("fields", strings.Join(q.Fields, ","))
	}
	return v
}

// Instances lists the instances that match q; opts (may be nil) make it a blocking query.
func (c *Registry) Instances(ctx context.Context, q InstanceQuery, opts *QueryOptions) ([]api.Instance, QueryMeta, error) {
	var out api.InstanceList
	meta, err := c.b.do(ctx, http.MethodGet, "/api/v1/instances", q.values(), opts, nil, &out)
	return out.Instances, meta, err
}

// Services lists the names of the services that have instances, of any status.
func (c *Registry) Services(ctx context.Context, opts *QueryOptions) ([]string, QueryMeta, error) {
	var out api.ServiceList
	meta, err := c.b.do(ctx, http.MethodGet, "/api/v1/services", nil, opts, nil, &out)
	return out.Services, meta, err
}

// Service lists the instances of one service, of any status. A service without instances is an
// empty list, not an error, so that it can be watched until it appears.
func (c *Registry) Service(ctx context.Context, name string, opts *QueryOptions) ([]api.Instance, QueryMeta, error) {
	seg, err := pathSegment("service", name)
	if err != nil {
		return nil, QueryMeta{}, err
	}
	var out api.ServiceInstances
	meta, err := c.b.do(ctx, http.MethodGet, "/api/v1/services/"+seg, nil, opts, nil, &out)
	var se *StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound && se.Message != "Resource not found" {
		return []api.Instance{}, meta, nil // the service has no instances (not: the URL is wrong)
	}
	return out.Instances, meta, err
}

// WatchInstances calls fn with the instances matching q now and after every change, until ctx ends
// (it then returns ctx's error). It uses blocking queries and falls back to polling a registry that
// has none. Errors are retried with backoff; fn is never called with a failed result, so a caller that
// keeps the last list keeps working while the registry is away.
//
// Against an a8 registry it asks for changes only (changes=true): after the first list, each answer
// holds what changed since the last, and the watch applies it to the list it holds, so a change in
// a tenant of 100,000 instances costs a few hundred bytes rather than the whole list. The lists fn
// gets are whole either way (sorted by service name, then id); in them, an instance's
// last_heartbeat is as of its last change.
func (c *Registry) WatchInstances(ctx context.Context, q InstanceQuery, opts WatchOptions, fn func([]api.Instance, QueryMeta)) error {
	var held []api.Instance // the list of the last answer, sorted: what changes apply to
	epoch := ""             // the registry's change log the list comes from
	// A watch of one service asks for whole lists: the service's list is cheap for the registry,
	// cheaper than its log of the whole tenant's changes. So does a projection without
	// service_name, as changes are merged in the registry's order (service name, then id).
	noChanges := q.ServiceName != "" || (q.Fields != nil && !slices.Contains(q.Fields, "service_name"))
	return watch(ctx, opts, func(ctx context.Context, qo *QueryOptions) ([]api.Instance, QueryMeta, error) {
		if noChanges {
			return c.Instances(ctx, q, qo)
		}
		v := q.values()
		v.Set("changes", "true")
		if qo != nil && epoch != "" && held != nil {
			v.Set("epoch", epoch)
		} else {
			qo = nil // the log's whole list, at once
		}
		var out struct {
			Instances []api.Instance `json:"instances"`
			Removed   []string       `json:"removed"`
			Changes   bool           `json:"changes"`
			Epoch     string         `json:"epoch"`
		}
		meta, err := c.b.do(ctx, http.MethodGet, "/api/v1/instances", v, qo, nil, &out)
		var se *StatusError
		if errors.As(err, &se) && se.Code == http.StatusBadRequest && (strings.Contains(se.Message, "changes") || strings.Contains(se.Message, "epoch")) {
			noChanges = true // a registry without changes watches
			return c.Instances(ctx, q, qo)
		}
		if err != nil {
			return nil, meta, err
		}
		epoch = out.Epoch
		if !out.Changes { // a whole list
			held = out.Instances
			if held == nil {
				held = []api.Instance{}
			}
			return held, meta, nil
		}
		held = applyChanges(held, out.Instances, out.Removed)
		return held, meta, nil
	}, sameInstances, fn)
}

// applyChanges returns a new list: held (sorted by service name, then id) without the removed ids
// and with set (sorted the same way) put in, in one pass.
func applyChanges(held, set []api.Instance, removed []string) []api.Instance {
	if len(set) == 0 && len(removed) == 0 {
		return held
	}
	drop := make(map[string]bool, len(set)+len(removed))
	for _, id := range removed {
		drop[id] = true
	}
	for i := range set {
		drop[set[i].ID] = true // replaced: it may have moved
	}
	less := func(a, b *api.Instance) bool {
		return cmp.Or(cmp.Compare(a.ServiceName, b.ServiceName), cmp.Compare(a.ID, b.ID)) < 0
	}
	out := make([]api.Instance, 0, len(held)+len(set))
	i, j := 0, 0
	for i < len(held) || j < len(set) {
		switch {
		case i < len(held) && drop[held[i].ID]:
			i++
		case j == len(set) || (i < len(held) && less(&held[i], &set[j])):
			out = append(out, held[i])
			i++
		default:
			out = append(out, set[j])
			j++
		}
	}
	return out
}

// sameInstances compares two lists ignoring heartbeat times, which move without any real change.
func sameInstances(a, b []api.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.LastHeartbeat, y.LastHeartbeat = nil, nil
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// permanent reports whether a failed call will fail the same way if retried: a 4xx other than
// 403 (a namespace at capacity may have room later), 408, 410 and 429.
func permanent(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) || se.Code < 400 || se.Code > 499 {
		return false
	}
	switch se.Code {
	case http.StatusForbidden, http.StatusRequestTimeout, http.StatusGone, http.StatusTooManyRequests:
		return false
	}
	return true
}

// KeepOptions tune KeepRegistered.
type KeepOptions struct {
	// OnRegistered, if set, is called after every (re-)registration.
	OnRegistered func(api.RegistrationResponse)
	// Logger receives warnings about failed calls; nil discards them.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff space out retries while the registry is unreachable (default 1s, 30s).
	MinBackoff, MaxBackoff time.Duration
}

// KeepRegistered registers reg and keeps it registered until ctx ends, then deregisters it. It
// heartbeats at a third of the TTL the registry granted, registers again when the registry has
// forgotten the instance (410: it expired, or the registry restarted), and retries with backoff
// while the registry is unreachable or refuses for now (5xx, 403 capacity, 429). It returns nil
// after deregistering, the deregistration's error, or at once an error that retrying cannot fix: a
// registration the registry rejects (400), a refused token (401), a wrong URL (404).
//
// If ctx ends while a registration is in flight, the registry may hold the instance until its TTL
// runs out.
func (c *Registry) KeepRegistered(ctx context.Context, reg api.InstanceRegistration, opts KeepOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	bo := backoff{min: opts.MinBackoff, max: opts.MaxBackoff}
	var id string
	var interval, wait time.Duration // heartbeat interval; time to the next attempt
	for {
		if id == "" {
			// The registration runs to its end even if ctx ends meanwhile, so that an instance the
			// registry has accepted is then deregistered, not left to expire.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
			resp, err := c.Register(rctx, reg)
			cancel()
			if err == nil && ctx.Err() != nil {
				id = resp.ID
				break
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if permanent(err) {
					return fmt.Errorf("registering %s: %w", reg.ServiceName, err)
				}
				d := bo.next()
				log.Warn("registration failed; retrying", "service", reg.ServiceName, "retry_in", d, "error", err)
				if !sleep(ctx, d) {
					return nil
				}
				continue
			}
			bo.reset()
			id = resp.ID
			interval = max(time.Duration(resp.TTL)*time.Second/3, 100*time.Millisecond)
			wait = interval
			if opts.OnRegistered != nil {
				opts.OnRegistered(*resp)
			}
		}
		if !sleep(ctx, wait) {
			break
		}
		err := c.Heartbeat(ctx, id)
		switch {
		case err == nil:
			bo.reset()
			wait = interval
		case errors.Is(err, ErrInstanceGone):
			log.Info("registry no longer holds the instance; registering again", "service", reg.ServiceName, "id", id)
			id = ""
		case ctx.Err() != nil:
		default:
			// Keep the id: the lease may well outlive a short outage. Retry sooner than the interval.
			wait = min(bo.next(), interval)
			log.Warn("heartbeat failed; retrying", "service", reg.ServiceName, "id", id, "retry_in", wait, "error", err)
		}
	}
	if id == "" {
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := c.Deregister(dctx, id); err != nil && !errors.Is(err, ErrInstanceGone) {
		return fmt.Errorf("deregister %s: %w", id, err)
	}
	return nil
}
