// Package table is the sidecar's routing table: one tenant's compiled rules joined with the
// registry's instances, per destination, built when either changes and then only read. The request
// path looks a destination up, walks its route rules in priority order, picks a backend by weight and
// an endpoint by the backend's balancer, without a lock and without allocating. State that must
// outlive a rebuild (requests in flight per endpoint, ejections, circuit counters) lives in a Pool
// keyed by endpoint address and cluster, which each new table picks up.
package table

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
)

// Table is an immutable routing table.
type Table struct {
	// Revision is the rules' revision and Index the registry's change index it was built from.
	Revision int64
	Index    uint64
	Built    time.Time
	dests    map[string]*Destination
}

// Destination is what the proxy knows of one service it may call.
type Destination struct {
	Name string
	// Routes are the route rules that may apply to this sidecar (their source matches it), in
	// priority order.
	Routes []*Route
	// Actions are the action rules that may apply to this sidecar, in priority order.
	Actions []*rules.ActionRule
	// All is every instance of the service: the route when no rule matches.
	All *Cluster
}

// Route is a compiled route rule with a cluster per backend.
type Route struct {
	Rule     *rules.RouteRule
	Clusters []*Cluster // parallel to Rule.Backends
}

// Cluster is the set of endpoints of one backend (a service and tags) and how to pick among them.
type Cluster struct {
	Key       string   // "service:tag1,tag2" (tags sorted), Amalgam8's cluster name
	Service   string   // the service
	Tags      []string // sorted; every endpoint carries all of them
	Endpoints []*Endpoint
	LBType    string // round_robin, least_request or random
	Limits    Limits
	State     *ClusterState // survives rebuilds
	// OnEject, if set, is called when outlier detection ejects an endpoint (for metrics and logs).
	OnEject func(*Endpoint)
}

// Limits are a cluster's circuit breaker settings (0: unlimited), and outlier ejection settings.
type Limits struct {
	MaxConnections, MaxPendingRequests, MaxRequests, MaxRequestsPerConnection int
	ConsecutiveErrors                                                         int           // eject after this many failures in a row; 0: never
	SleepWindow                                                               time.Duration // how long an ejection lasts (grows with repeated ejections)
	DetectionInterval                                                         time.Duration
}

// Endpoint is one instance of a service.
type Endpoint struct {
	ID     string
	Key    string // "service:tag1,tag2" (tags sorted): the instance's version, for records
	Addr   string // host:port, ready to dial
	Host   string // the host part, for a Host header to a name rather than an IP
	Named  bool   // Host is a name, not an IP address: requests carry it as their Host
	Scheme string // http or https
	Tags   []string
	State  *EndpointState // survives rebuilds
}

// Lookup returns the destination named name, or nil when the sidecar knows neither rules nor
// instances for it.
func (t *Table) Lookup(name string) *Destination {
	if t == nil {
		return nil
	}
	return t.dests[name]
}

// Clusters returns every distinct cluster of the table (by key), for metrics and dumps.
func (t *Table) Clusters() []*Cluster {
	if t == nil {
		return nil
	}
	seen := map[string]*Cluster{}
	for _, d := range t.dests {
		seen[d.All.Key] = d.All
		for _, r := range d.Routes {
			for _, c := range r.Clusters {
				if _, ok := seen[c.Key]; !ok {
					seen[c.Key] = c
				}
			}
		}
	}
	out := make([]*Cluster, 0, len(seen))
	for _, c := range seen {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Cluster) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Destinations returns the names the table routes, sorted.
func (t *Table) Destinations() []string {
	names := make([]string, 0, len(t.dests))
	for n := range t.dests {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Pick chooses where a request for path (the path after the destination) goes: the first route
// rule that matches, with the backend its weights pick for u in [0, 1), or, with no matching rule,
// every instance of the destination. It returns the rule (nil for the default), the index of the
// backend in the rule, and the cluster.
func (d *Destination) Pick(caller rules.Caller, h rules.Headers, path string, u float64) (*Route, int, *Cluster) {
	for _, r := range d.Routes {
		if r.matchesPath(path) && r.Rule.Match.Match(caller, h) {
			i := r.Rule.PickIndex(u)
			return r, i, r.Clusters[i]
		}
	}
	return nil, -1, d.All
}

// matchesPath applies the rule's uri: an exact path or a path prefix the request must have.
func (r *Route) matchesPath(path string) bool {
	u := r.Rule.URI
	switch {
	case u == nil:
		return true
	case u.Path != "":
		return path == u.Path
	case u.Prefix != "":
		return strings.HasPrefix(path, u.Prefix)
	}
	return true
}

// Rewrite returns the path to send upstream for path, when backend i was picked: the route's (or
// the backend's) prefix_rewrite replaces the part of the path the route's uri matched (its path or
// prefix, "/" if it names neither).
func (r *Route) Rewrite(path string, i int) string {
	var rewrite string
	if u := r.Rule.URI; u != nil {
		rewrite = u.PrefixRewrite
	}
	if i >= 0 && i < len(r.Rule.Backends) {
		if u := r.Rule.Backends[i].URI; u != nil && u.PrefixRewrite != "" {
			rewrite = u.PrefixRewrite
		}
	}
	if rewrite == "" {
		return path
	}
	matched := "/"
	if u := r.Rule.URI; u != nil && u.Path != "" {
		matched = u.Path
	} else if u != nil && u.Prefix != "" {
		matched = u.Prefix
	}
	return rewrite + strings.TrimPrefix(path, matched)
}

// Action returns the first action rule that matches the request, or nil.
func (d *Destination) Action(caller rules.Caller, h rules.Headers) *rules.ActionRule {
	for _, a := range d.Actions {
		if a.Match.Match(caller, h) {
			return a
		}
	}
	return nil
}

// Options are what a table build needs besides rules and instances.
type Options struct {
	// Self is the sidecar's own service: only rules whose source admits it are kept, since the
	// source of a sidecar's requests never changes.
	Self rules.Caller
	// Pool carries endpoint and cluster state across builds. Required.
	Pool *Pool
	// OnEject is given to every cluster (see Cluster.OnEject).
	OnEject func(*Cluster, *Endpoint)
}

// Build joins a compiled rule set (nil: no rules) at revision with the registry's instances at index
// into a table.
func Build(set *rules.Set, revision int64, instances []api.Instance, index uint64, opts Options) *Table {
	self, pool := opts.Self, opts.Pool
	gen := pool.begin()
	byService := make(map[string][]*Endpoint, pool.dests)
	for i := range instances {
		in := &instances[i]
		ep := endpoint(in, gen)
		if ep == nil {
			continue
		}
		byService[in.ServiceName] = append(byService[in.ServiceName], ep)
	}
	for _, eps := range byService {
		slices.SortFunc(eps, func(a, b *Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	}
	// Clusters are shared by every backend with the same service, tags, balancer and resilience
	// settings. The key is a struct, so that a backend whose cluster exists costs no allocation.
	type clusterKey struct {
		key, lb string
		res     api.Resilience
		hasRes  bool
	}
	clusters := make(map[clusterKey]*Cluster, len(pool.clusters))
	// key is "service:tag1,tag2" (tags sorted), as rules.Backend.Key has it.
	cluster := func(key, service string, tags []string, b *rules.Backend) *Cluster {
		ck := clusterKey{key: key, lb: "round_robin"}
		var res *api.Resilience
		if b != nil {
			ck.lb, res = b.LBType, b.Resilience
		}
		if res != nil {
			ck.res, ck.hasRes = *res, true
		}
		if c, ok := clusters[ck]; ok {
			return c
		}
		c := &Cluster{Key: key, Service: service, Tags: tags, LBType: ck.lb, Limits: limits(res), State: gen.cluster(key)}
		if opts.OnEject != nil {
			c.OnEject = func(e *Endpoint) { opts.OnEject(c, e) }
		}
		for _, ep := range byService[service] {
			if hasAll(ep.Tags, tags) {
				c.Endpoints = append(c.Endpoints, ep)
			}
		}
		clusters[ck] = c
		return c
	}
	t := &Table{Revision: revision, Index: index, Built: time.Now(), dests: make(map[string]*Destination, pool.dests)}
	dest := func(name string) *Destination {
		d := t.dests[name]
		if d == nil {
			d = &Destination{Name: name, All: cluster(name+":", name, nil, nil)}
			t.dests[name] = d
		}
		return d
	}
	for name := range byService {
		dest(name)
	}
	if set != nil {
		for _, name := range set.Destinations() {
			rd := set.Destination(name)
			d := dest(name)
			for _, rr := range rd.Routes {
				if !rr.Match.MatchesCaller(self) {
					continue
				}
				r := &Route{Rule: rr, Clusters: make([]*Cluster, len(rr.Backends))}
				for i := range rr.Backends {
					b := &rr.Backends[i]
					key := b.Key
					if key == "" { // a Backend not made by rules.Compile
						key = b.Service + ":" + strings.Join(b.Tags, ",")
					}
					r.Clusters[i] = cluster(key, b.Service, b.Tags, b)
				}
				d.Routes = append(d.Routes, r)
			}
			for _, ar := range rd.Actions {
				if ar.Match.MatchesCaller(self) {
					d.Actions = append(d.Actions, ar)
				}
			}
		}
	}
	pool.dests = len(t.dests)
	pool.commit(gen)
	return t
}

func hasAll(have, want []string) bool {
	for _, t := range want {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// endpoint turns a registered instance into an endpoint the proxy can call, or nil if it cannot
// carry HTTP (udp).
func endpoint(in *api.Instance, gen *generation) *Endpoint {
	if in.Endpoint == nil || in.Endpoint.Value == "" || in.Status == api.StatusStarting || in.Status == api.StatusOutOfService {
		return nil
	}
	scheme := "http"
	switch in.Endpoint.Type {
	case api.EndpointUDP:
		return nil
	case api.EndpointHTTPS:
		scheme = "https"
	}
	value := strings.TrimPrefix(strings.TrimPrefix(in.Endpoint.Value, "http://"), "https://")
	value = strings.TrimSuffix(value, "/")
	host, port, err := net.SplitHostPort(value)
	if err != nil { // no port: the scheme's
		host, port = strings.Trim(value, "[]"), "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if _, err := strconv.Atoi(port); err != nil || host == "" {
		return nil
	}
	addr := net.JoinHostPort(host, port)
	tags := slices.Clone(in.Tags)
	slices.Sort(tags)
	return &Endpoint{ID: in.ID, Key: in.ServiceName + ":" + strings.Join(tags, ","), Addr: addr, Host: host, Named: net.ParseIP(host) == nil, Scheme: scheme,
		Tags: in.Tags, State: gen.endpoint(scheme + "://" + addr)}
}

// Resilience defaults: Envoy's, which Amalgam8 1.x inherited. max_connections and max_requests left
// at 0 are unlimited.
const (
	DefaultMaxPendingRequests = 1024
	DefaultConsecutiveErrors  = 5
	DefaultSleepWindow        = 30 * time.Second
	DefaultDetectionInterval  = 10 * time.Second
)

func limits(r *api.Resilience) Limits {
	if r == nil {
		return Limits{}
	}
	l := Limits{
		MaxConnections: r.MaxConnections, MaxPendingRequests: cmp.Or(r.MaxPendingRequests, DefaultMaxPendingRequests), MaxRequests: r.MaxRequests,
		MaxRequestsPerConnection: r.MaxRequestsPerConnection,
		ConsecutiveErrors:        cmp.Or(r.ConsecutiveErrors, DefaultConsecutiveErrors),
		SleepWindow:              cmp.Or(time.Duration(r.SleepWindow*float64(time.Second)), DefaultSleepWindow),
		DetectionInterval:        cmp.Or(time.Duration(r.DetectionInterval*float64(time.Second)), DefaultDetectionInterval),
	}
	return l
}

// Pool keeps per-endpoint and per-cluster state across table builds. Entries a build no longer uses
// are dropped when it commits.
type Pool struct {
	mu        sync.Mutex
	endpoints map[string]*EndpointState
	clusters  map[string]*ClusterState
	dests     int // destinations of the last build: a size hint for the next
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{endpoints: map[string]*EndpointState{}, clusters: map[string]*ClusterState{}}
}

type generation struct {
	pool      *Pool
	endpoints map[string]*EndpointState
	clusters  map[string]*ClusterState
}

func (p *Pool) begin() *generation {
	p.mu.Lock() // held until commit: builds are serialised
	// Sized as the last build's: a rebuild usually keeps most of what it had.
	return &generation{pool: p, endpoints: make(map[string]*EndpointState, len(p.endpoints)),
		clusters: make(map[string]*ClusterState, len(p.clusters))}
}

func (g *generation) endpoint(key string) *EndpointState {
	if s, ok := g.endpoints[key]; ok {
		return s
	}
	s := g.pool.endpoints[key]
	if s == nil {
		s = &EndpointState{}
	}
	g.endpoints[key] = s
	return s
}

func (g *generation) cluster(key string) *ClusterState {
	if s, ok := g.clusters[key]; ok {
		return s
	}
	s := g.pool.clusters[key]
	if s == nil {
		s = newClusterState()
	}
	g.clusters[key] = s
	return s
}

func (p *Pool) commit(g *generation) {
	p.endpoints, p.clusters = g.endpoints, g.clusters
	p.mu.Unlock()
}
