package rules

import (
	"cmp"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
)

// DefaultTimeout is a route's request timeout when its rule gives none (Envoy's default, which
// Amalgam8 1.x inherited).
const DefaultTimeout = 15 * time.Second

// Set is one tenant's rules compiled for the proxy: per destination, route rules and action rules
// each ordered by descending priority, ties broken by id so that the order never depends on storage.
// A Set is immutable once compiled and safe for concurrent use.
type Set struct {
	byDest map[string]*Destination
}

// Destination holds the compiled rules of one destination service.
type Destination struct {
	Name    string
	Routes  []*RouteRule
	Actions []*ActionRule
}

// Caller identifies the service a request comes from: the sidecar's own service.
type Caller struct {
	Name string
	Tags []string
}

// Matcher is a compiled Match.
type Matcher struct {
	cond          condition
	all, any, nne []condition
}

type condition struct {
	source  *api.Source
	headers []headerMatch
}

type headerMatch struct {
	name string // canonical
	re   *regexp.Regexp
}

// RouteRule is a compiled route rule.
type RouteRule struct {
	ID       string
	Priority int
	Match    Matcher
	Backends []Backend
	Timeout  time.Duration // whole request, retries included
	Retries  int
	URI      *api.URI
	cum      []float64 // cumulative weights, last is 1
}

// Backend is a compiled backend: the service and tags to route to, and its effective weight.
type Backend struct {
	Service    string
	Tags       []string // sorted
	Key        string   // "service:tag1,tag2", the cluster name Amalgam8 used; tags sorted
	Weight     float64  // effective share in (0, 1]
	LBType     string   // round_robin, least_request or random
	Resilience *api.Resilience
	URI        *api.URI
	Timeout    time.Duration // 0: the route's
	Retries    int           // -1: the route's
}

// ActionRule is a compiled action rule.
type ActionRule struct {
	ID       string
	Priority int
	Match    Matcher
	Actions  []Action
}

// Action is a compiled action.
type Action struct {
	Kind        string // delay, abort or trace
	Delay       time.Duration
	Probability float64 // effective, default 1
	ReturnCode  int     // an HTTP status when Reset is false
	// Reset is an abort that closes the connection without an answer: a return code below 100
	// (Gremlin's -1 for a reset and 0 for a partition or crash).
	Reset    bool
	LogKey   string // default "trace"
	LogValue string
	Tags     []string // the action applies only to backends carrying all of these
}

// Compile validates rules and compiles them. A rule set that does not validate is not compiled.
func Compile(rs []api.Rule) (*Set, error) {
	// The header regexes that validation compiled are the ones the rules get: each distinct pattern
	// is compiled once per call, and rules with the same pattern share its *regexp.Regexp (which is
	// safe for concurrent use).
	v := validator{regexes: regexes{}}
	if err := v.all(rs); err != nil {
		return nil, err
	}
	s := &Set{byDest: map[string]*Destination{}}
	for i := range rs {
		r := &rs[i]
		d := s.byDest[r.Destination]
		if d == nil {
			d = &Destination{Name: r.Destination}
			s.byDest[r.Destination] = d
		}
		m := compileMatch(r.Match, v.regexes)
		if r.Route != nil {
			d.Routes = append(d.Routes, compileRoute(r, m))
		} else {
			d.Actions = append(d.Actions, compileActions(r, m))
		}
	}
	for _, d := range s.byDest {
		slices.SortStableFunc(d.Routes, func(a, b *RouteRule) int { return order(a.Priority, b.Priority, a.ID, b.ID) })
		slices.SortStableFunc(d.Actions, func(a, b *ActionRule) int { return order(a.Priority, b.Priority, a.ID, b.ID) })
	}
	return s, nil
}

func order(pa, pb int, ida, idb string) int {
	if c := cmp.Compare(pb, pa); c != 0 {
		return c
	}
	return cmp.Compare(ida, idb)
}

// Destination returns the compiled rules of a destination, or nil if it has none.
func (s *Set) Destination(name string) *Destination { return s.byDest[name] }

// Destinations returns the names of the destinations with rules, sorted.
func (s *Set) Destinations() []string {
	names := make([]string, 0, len(s.byDest))
	for n := range s.byDest {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func compileCondition(src *api.Source, headers map[string]string, res regexes) condition {
	c := condition{source: src}
	for name, pattern := range headers {
		re, err := res.compile(HeaderPattern(pattern))
		if err != nil { // validation rejects it first
			re = regexp.MustCompile(HeaderPattern(pattern))
		}
		c.headers = append(c.headers, headerMatch{textproto.CanonicalMIMEHeaderKey(name), re})
	}
	slices.SortFunc(c.headers, func(a, b headerMatch) int { return cmp.Compare(a.name, b.name) })
	return c
}

func compileMatch(m *api.Match, res regexes) Matcher {
	if m == nil {
		return Matcher{}
	}
	out := Matcher{cond: compileCondition(m.Source, m.Headers, res)}
	for _, c := range m.All {
		out.all = append(out.all, compileCondition(c.Source, c.Headers, res))
	}
	for _, c := range m.Any {
		out.any = append(out.any, compileCondition(c.Source, c.Headers, res))
	}
	for _, c := range m.None {
		out.nne = append(out.nne, compileCondition(c.Source, c.Headers, res))
	}
	return out
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func compileRoute(r *api.Rule, m Matcher) *RouteRule {
	rt := &RouteRule{ID: r.ID, Priority: r.Priority, Match: m, Timeout: DefaultTimeout, URI: r.Route.URI}
	if r.Route.HTTPReqTimeout != nil {
		rt.Timeout = seconds(*r.Route.HTTPReqTimeout)
	}
	if r.Route.HTTPReqRetries != nil {
		rt.Retries = *r.Route.HTTPReqRetries
	}
	weighted, unweighted := 0.0, 0
	for _, b := range r.Route.Backends {
		if b.Weight != nil {
			weighted += *b.Weight
		} else {
			unweighted++
		}
	}
	// Unweighted backends share what the weighted ones leave; if all are weighted and leave some,
	// the weights are scaled up so that they cover all the traffic.
	share, scale := 0.0, 1.0
	if unweighted > 0 {
		share = max(1-weighted, 0) / float64(unweighted)
	} else if weighted > 0 {
		scale = 1 / weighted
	}
	acc := 0.0
	for _, b := range r.Route.Backends {
		cb := Backend{Service: cmp.Or(b.Name, r.Destination), Tags: slices.Sorted(slices.Values(b.Tags)),
			LBType: cmp.Or(b.LBType, "round_robin"), Resilience: b.Resilience, URI: b.URI, Retries: -1}
		cb.Key = cb.Service + ":" + strings.Join(cb.Tags, ",")
		if b.Weight != nil {
			cb.Weight = *b.Weight * scale
		} else {
			cb.Weight = share
		}
		if b.Timeout != nil {
			cb.Timeout = seconds(*b.Timeout)
		}
		if b.Retries != nil {
			cb.Retries = *b.Retries
		}
		acc += cb.Weight
		rt.Backends = append(rt.Backends, cb)
		rt.cum = append(rt.cum, acc)
	}
	if n := len(rt.cum); n > 0 {
		rt.cum[n-1] = 1 // absorb rounding
	}
	return rt
}

func compileActions(r *api.Rule, m Matcher) *ActionRule {
	ar := &ActionRule{ID: r.ID, Priority: r.Priority, Match: m}
	for _, a := range r.Actions {
		ca := Action{Kind: a.Action, Probability: 1, LogKey: cmp.Or(a.LogKey, "trace"), LogValue: a.LogValue, Tags: a.Tags}
		if a.Probability != nil {
			ca.Probability = *a.Probability
		}
		if a.ReturnCode != nil {
			ca.ReturnCode = *a.ReturnCode
			ca.Reset = a.Action == api.ActionAbort && ca.ReturnCode < 100
		}
		ca.Delay = seconds(a.Duration)
		ar.Actions = append(ar.Actions, ca)
	}
	return ar
}

// Match reports whether a request from caller with headers h passes the matcher: the top-level
// source and headers, every "all" condition, at least one "any" condition (if there are any), and no
// "none" condition. Header patterns are searched for anywhere in the value (add ^ and $ to anchor),
// which accepts both Amalgam8 1.x's anchored patterns and 0.x's ".*?user=jason".
func (m *Matcher) Match(caller Caller, h Headers) bool {
	if !m.cond.match(caller, h) {
		return false
	}
	for i := range m.all {
		if !m.all[i].match(caller, h) {
			return false
		}
	}
	if len(m.any) > 0 {
		ok := false
		for i := range m.any {
			if m.any[i].match(caller, h) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for i := range m.nne {
		if m.nne[i].match(caller, h) {
			return false
		}
	}
	return true
}

// MatchesCaller reports whether the matcher's top-level source admits caller; a sidecar can drop
// the rules that never apply to it once, when it compiles.
func (m *Matcher) MatchesCaller(caller Caller) bool {
	return m.cond.source == nil || sourceMatches(m.cond.source, caller)
}

func sourceMatches(src *api.Source, caller Caller) bool {
	if src.Name != caller.Name {
		return false
	}
	for _, t := range src.Tags {
		if !slices.Contains(caller.Tags, t) {
			return false
		}
	}
	return true
}

func (c *condition) match(caller Caller, h Headers) bool {
	if c.source != nil && !sourceMatches(c.source, caller) {
		return false
	}
	if len(c.headers) > 0 && h == nil {
		return false
	}
	for i := range c.headers {
		hm := &c.headers[i]
		v, ok := h.Lookup(hm.name)
		if !ok || !hm.re.Match(v) {
			return false
		}
	}
	return true
}

// Headers are a request's headers as rules match them.
type Headers interface {
	// Lookup returns the value of the header named name (in canonical form, such as "X-Request-Id")
	// and whether the request has it. A header sent on several lines is one value: the lines
	// joined with ", ", or with "; " for Cookie. The value may be read only until the next call.
	Lookup(name string) ([]byte, bool)
}

// HTTPHeader adapts an http.Header to Headers.
type HTTPHeader http.Header

// Lookup implements Headers.
func (h HTTPHeader) Lookup(name string) ([]byte, bool) {
	vals := h[name]
	switch len(vals) {
	case 0:
		return nil, false
	case 1:
		return []byte(vals[0]), true
	}
	sep := ", "
	if name == "Cookie" {
		sep = "; "
	}
	return []byte(strings.Join(vals, sep)), true
}

// Pick returns the backend for a uniform random u in [0, 1).
func (r *RouteRule) Pick(u float64) *Backend { return &r.Backends[r.PickIndex(u)] }

// PickIndex returns the index of the backend for a uniform random u in [0, 1).
func (r *RouteRule) PickIndex(u float64) int {
	for i, c := range r.cum {
		if u < c {
			return i
		}
	}
	return len(r.Backends) - 1
}

// Route returns the first route rule of d that matches the request, or nil.
func (d *Destination) Route(caller Caller, h Headers) *RouteRule {
	for _, r := range d.Routes {
		if r.Match.Match(caller, h) {
			return r
		}
	}
	return nil
}

// Action returns the first action rule of d that matches the request, or nil.
func (d *Destination) Action(caller Caller, h Headers) *ActionRule {
	for _, a := range d.Actions {
		if a.Match.Match(caller, h) {
			return a
		}
	}
	return nil
}

// AppliesTo reports whether the action applies to a request routed to a backend with tags.
func (a *Action) AppliesTo(backendTags []string) bool {
	for _, t := range a.Tags {
		if !slices.Contains(backendTags, t) {
			return false
		}
	}
	return true
}
