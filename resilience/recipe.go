package resilience

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/strictjson"
)

// RulePriority is the priority of a recipe's action rules: above the 10 that a8ctl gives action
// rules by default, so that test requests (those carrying the recipe's header) get the recipe's
// faults and traces rather than an everyday rule's. A rule whose source is a more specific version
// of another rule's source for the same destination gets one more per such rule (see Rules).
const RulePriority = 100

// Recipe limits.
const (
	// MaxFaultDuration is the longest delay a gremlin may inject.
	MaxFaultDuration = 24 * time.Hour
	// MaxRecipeIDBytes is the longest recipe id: rule ids are "<recipe id>-<n>".
	MaxRecipeIDBytes = rules.MaxIDBytes - 8
)

// Scenario defaults, as Amalgam8's failure generator had them.
const (
	DefaultDelay               = time.Second
	DefaultOverloadDelay       = 10 * time.Second
	DefaultOverloadProbability = 0.5
	DefaultOverloadErrorCode   = 503
	DefaultAbortErrorCode      = -1 // reset the connection
	DefaultCrashErrorCode      = 0  // reset the connection (crash_service, partition_services)
)

// service is a service of a topology: "name" or "name:tag1,tag2".
type service struct {
	given string
	name  string
	tags  []string // as given
	key   string   // name, or name:tags with the tags sorted: the identity of the service
}

func parseService(s string) (service, error) {
	if err := api.CheckService(s); err != nil {
		return service{}, err
	}
	name, tags := api.SplitService(s)
	sv := service{given: s, name: name, tags: tags, key: name}
	if len(tags) > 0 {
		sv.key = name + ":" + strings.Join(slices.Sorted(slices.Values(tags)), ",")
	}
	return sv, nil
}

// covers reports whether a request from or to a service with tags has is one of s: same name,
// and every tag of s among has.
func (s service) covers(name string, has []string) bool {
	if s.name != name {
		return false
	}
	for _, t := range s.tags {
		if !slices.Contains(has, t) {
			return false
		}
	}
	return true
}

// topo is an indexed topology.
type topo struct {
	services   []service
	byKey      map[string]int
	deps       [][]int // by service: the services it calls, in the order given
	dependents [][]int // by service: the services that call it, in the order of services
}

// indexTopology checks t and indexes it; problems are reported under prefix.
func indexTopology(ps *problems, prefix string, t api.Topology) *topo {
	tp := &topo{byKey: map[string]int{}}
	if len(t.Services) == 0 {
		ps.add(strictjson.JoinPath(prefix, "services"), `required: at least one service, such as {"name": "reviews:version=v2"}`)
	}
	for i, s := range t.Services {
		path := strictjson.JoinPath(prefix, fmt.Sprintf("services[%d].name", i))
		sv, err := parseService(s.Name)
		if err != nil {
			ps.add(path, "%v", err)
			continue
		}
		if j, dup := tp.byKey[sv.key]; dup {
			ps.add(path, "%q is also services[%d]", s.Name, j)
			continue
		}
		tp.byKey[sv.key] = len(tp.services)
		tp.services = append(tp.services, sv)
	}
	tp.deps = make([][]int, len(tp.services))
	tp.dependents = make([][]int, len(tp.services))
	// Dependencies are visited in the order of the services (a JSON object has none).
	type depList struct {
		given string
		from  int
	}
	var lists []depList
	for _, k := range slices.Sorted(maps.Keys(t.Dependencies)) {
		path := strictjson.JoinPath(prefix, "dependencies."+k)
		i, ok := tp.lookup(k)
		if !ok {
			ps.add(path, "%q is not a service of the topology; list it in services", k)
			continue
		}
		lists = append(lists, depList{k, i})
	}
	slices.SortStableFunc(lists, func(a, b depList) int { return a.from - b.from })
	for _, l := range lists {
		for j, d := range t.Dependencies[l.given] {
			path := strictjson.JoinPath(prefix, fmt.Sprintf("dependencies.%s[%d]", l.given, j))
			to, ok := tp.lookup(d)
			if !ok {
				ps.add(path, "%q is not a service of the topology; list it in services", d)
				continue
			}
			if !slices.Contains(tp.deps[l.from], to) {
				tp.deps[l.from] = append(tp.deps[l.from], to)
			}
		}
	}
	for from := range tp.services {
		for _, to := range tp.deps[from] {
			tp.dependents[to] = append(tp.dependents[to], from)
		}
	}
	return tp
}

func (tp *topo) lookup(s string) (int, bool) {
	sv, err := parseService(s)
	if err != nil {
		return 0, false
	}
	i, ok := tp.byKey[sv.key]
	return i, ok
}

func (tp *topo) calls(from, to int) bool { return slices.Contains(tp.deps[from], to) }

// scenarioParams lists the parameters each scenario takes, besides scenario.
var scenarioParams = map[string][]string{
	api.ScenarioDelayRequests:     {"source", "dest", "delaytime", "delayprobability"},
	api.ScenarioDelayResponses:    {"source", "dest", "delaytime", "delayprobability"},
	api.ScenarioAbortRequests:     {"source", "dest", "errorcode", "abortprobability"},
	api.ScenarioAbortResponses:    {"source", "dest", "errorcode", "abortprobability"},
	api.ScenarioPartitionServices: {"source", "dest", "errorcode", "srcprobability", "dstprobability"},
	api.ScenarioCrashService:      {"dest", "errorcode", "abortprobability"},
	api.ScenarioOverloadService:   {"source", "dest", "delaytime", "delayprobability", "errorcode", "abortprobability"},
}

// ScenarioNames returns the names of the scenarios, sorted.
func ScenarioNames() []string {
	names := make([]string, 0, len(scenarioParams))
	for n := range scenarioParams {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// gremlinFields returns the parameters a gremlin sets.
func gremlinFields(g *api.Gremlin) []string {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"source", g.Source != ""}, {"dest", g.Dest != ""}, {"delaytime", g.DelayTime != ""},
		{"delayprobability", g.DelayProbability != nil}, {"errorcode", g.ErrorCode != nil},
		{"abortprobability", g.AbortProbability != nil}, {"srcprobability", g.SrcProbability != nil},
		{"dstprobability", g.DstProbability != nil},
	} {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// checkGremlin checks what a gremlin says on its own, without the topology.
func checkGremlin(ps *problems, path string, g *api.Gremlin) {
	params, ok := scenarioParams[g.Scenario]
	if !ok {
		if g.Scenario == "" {
			ps.add(strictjson.JoinPath(path, "scenario"), "required: one of %s", strings.Join(ScenarioNames(), ", "))
		} else {
			ps.add(strictjson.JoinPath(path, "scenario"), "unknown scenario %q; known: %s", g.Scenario, strings.Join(ScenarioNames(), ", "))
		}
		return
	}
	for _, f := range gremlinFields(g) {
		if !slices.Contains(params, f) {
			ps.add(strictjson.JoinPath(path, f), "not a parameter of %s, which takes %s", g.Scenario, strings.Join(params, ", "))
		}
	}
	for _, s := range []struct{ name, value string }{{"source", g.Source}, {"dest", g.Dest}} {
		if s.value != "" {
			if err := api.CheckService(s.value); err != nil {
				ps.add(strictjson.JoinPath(path, s.name), "%v", err)
			}
		}
	}
	switch g.Scenario {
	case api.ScenarioPartitionServices:
		for _, s := range []struct{ name, value string }{{"source", g.Source}, {"dest", g.Dest}} {
			if s.value == "" {
				ps.add(strictjson.JoinPath(path, s.name), "required: partition_services cuts the connection between source and dest")
			}
		}
		if g.Source != "" && g.Source == g.Dest {
			ps.add(strictjson.JoinPath(path, "dest"), "is the source: a service cannot be partitioned from itself")
		}
	case api.ScenarioCrashService:
		if g.Dest == "" {
			ps.add(strictjson.JoinPath(path, "dest"), "required: the service that crashes (for every caller)")
		}
	case api.ScenarioOverloadService:
		if g.Dest == "" {
			ps.add(strictjson.JoinPath(path, "dest"), "required: the overloaded service")
		}
	default:
		if g.Source == "" && g.Dest == "" {
			ps.add(path, "give source, dest or both: %s applies to the requests from source to dest (without source: from every caller of dest; without dest: to every service source calls)", g.Scenario)
		}
	}
	if g.DelayTime != "" {
		if _, err := parseDelay(g.DelayTime); err != nil {
			ps.add(strictjson.JoinPath(path, "delaytime"), "%v", err)
		}
	}
	for _, p := range []struct {
		name  string
		value *float64
	}{
		{"delayprobability", g.DelayProbability}, {"abortprobability", g.AbortProbability},
		{"srcprobability", g.SrcProbability}, {"dstprobability", g.DstProbability},
	} {
		if p.value != nil && !(*p.value > 0 && *p.value <= 1) {
			ps.add(strictjson.JoinPath(path, p.name), "must be a probability in (0, 1], got %v", *p.value)
		}
	}
	if g.ErrorCode != nil {
		if c := *g.ErrorCode; c < rules.MinReturnCode || c > rules.MaxReturnCode {
			ps.add(strictjson.JoinPath(path, "errorcode"), "must be an HTTP status (up to %d), or from %d to 99 to reset the connection; got %d", rules.MaxReturnCode, rules.MinReturnCode, c)
		}
	}
}

// parseDelay reads a delaytime: a Go duration, more than 0 and at most a day.
func parseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration: give a Go duration such as \"7s\", \"1s500ms\" or \"250ms\"", s)
	case d <= 0:
		return 0, fmt.Errorf("%q: the delay must be more than 0", s)
	case d > MaxFaultDuration:
		return 0, fmt.Errorf("%q: the delay must be at most %s", s, MaxFaultDuration)
	}
	return d, nil
}

// fault is a fault action of one edge: its action (without tags) and the destination it targets.
type fault struct {
	action api.Action
	dst    int
}

// group is the rule of one (source service, destination name) pair.
type group struct {
	src      int
	dstName  string
	versions []int // destination services involved, in order of appearance
	faults   []fault
	rank     int // how many other groups' sources this group's source is a strict refinement of
}

// recipe builds the groups of a recipe.
type recipe struct {
	tp     *topo
	groups []*group
	index  map[[2]string]*group
}

func (r *recipe) group(src, dst int) *group {
	k := [2]string{r.tp.services[src].key, r.tp.services[dst].name}
	g := r.index[k]
	if g == nil {
		g = &group{src: src, dstName: r.tp.services[dst].name}
		r.index[k] = g
		r.groups = append(r.groups, g)
	}
	if !slices.Contains(g.versions, dst) {
		g.versions = append(g.versions, dst)
	}
	return g
}

func (r *recipe) edge(src, dst int, actions ...api.Action) {
	g := r.group(src, dst)
	for _, a := range actions {
		g.faults = append(g.faults, fault{a, dst})
	}
}

func probability(p *float64, def float64) *float64 {
	v := def
	if p != nil {
		v = *p
	}
	return &v
}

func code(c *int, def int) *int {
	v := def
	if c != nil {
		v = *c
	}
	return &v
}

func delayAction(delaytime string, def time.Duration, p *float64, defP float64) api.Action {
	d := def
	if delaytime != "" {
		d, _ = parseDelay(delaytime) // checked before
	}
	return api.Action{Action: api.ActionDelay, Duration: d.Seconds(), Probability: probability(p, defP)}
}

func abortAction(c *int, defCode int, p *float64) api.Action {
	return api.Action{Action: api.ActionAbort, ReturnCode: code(c, defCode), Probability: probability(p, 1)}
}

// expand adds the edges of gremlin g (checked on its own before) to r.
func (r *recipe) expand(ps *problems, path string, g *api.Gremlin) {
	tp := r.tp
	src, dst := -1, -1
	unknown := false
	for _, s := range []struct {
		name, value string
		index       *int
	}{{"source", g.Source, &src}, {"dest", g.Dest, &dst}} {
		if s.value == "" {
			continue
		}
		i, ok := tp.lookup(s.value)
		if !ok {
			ps.add(strictjson.JoinPath(path, s.name), "%q is not a service of the topology", s.value)
			unknown = true
		}
		*s.index = i
	}
	if unknown {
		return
	}
	name := func(i int) string { return tp.services[i].given }
	// pairs returns the edges from src to dst, expanding a missing end through the topology.
	pairs := func() [][2]int {
		switch {
		case src >= 0 && dst >= 0:
			if !tp.calls(src, dst) {
				ps.add(path, "%s does not call %s in the topology (add it to dependencies.%s)", name(src), name(dst), name(src))
				return nil
			}
			return [][2]int{{src, dst}}
		case src >= 0:
			var out [][2]int
			for _, d := range tp.deps[src] {
				out = append(out, [2]int{src, d})
			}
			if len(out) == 0 {
				ps.add(path, "applies to no request: without dest it applies to every service that %s calls, and the topology lists none", name(src))
			}
			return out
		default:
			var out [][2]int
			for _, s := range tp.dependents[dst] {
				out = append(out, [2]int{s, dst})
			}
			if len(out) == 0 {
				ps.add(path, "applies to no request: without source it applies to every caller of %s, and the topology lists none", name(dst))
			}
			return out
		}
	}
	switch g.Scenario {
	case api.ScenarioDelayRequests, api.ScenarioDelayResponses:
		a := delayAction(g.DelayTime, DefaultDelay, g.DelayProbability, 1)
		for _, e := range pairs() {
			r.edge(e[0], e[1], a)
		}
	case api.ScenarioAbortRequests, api.ScenarioAbortResponses:
		a := abortAction(g.ErrorCode, DefaultAbortErrorCode, g.AbortProbability)
		for _, e := range pairs() {
			r.edge(e[0], e[1], a)
		}
	case api.ScenarioPartitionServices:
		if !tp.calls(src, dst) && !tp.calls(dst, src) {
			ps.add(path, "%s and %s are not connected: neither calls the other in the topology", name(src), name(dst))
			return
		}
		r.edge(src, dst, abortAction(g.ErrorCode, DefaultCrashErrorCode, g.SrcProbability))
		r.edge(dst, src, abortAction(g.ErrorCode, DefaultCrashErrorCode, g.DstProbability))
	case api.ScenarioCrashService:
		a := abortAction(g.ErrorCode, DefaultCrashErrorCode, g.AbortProbability)
		for _, e := range pairs() {
			r.edge(e[0], e[1], a)
		}
	case api.ScenarioOverloadService:
		delay := delayAction(g.DelayTime, DefaultOverloadDelay, g.DelayProbability, DefaultOverloadProbability)
		abort := api.Action{Action: api.ActionAbort, ReturnCode: code(g.ErrorCode, DefaultOverloadErrorCode),
			Probability: probability(g.AbortProbability, DefaultOverloadProbability)}
		for _, e := range pairs() {
			r.edge(e[0], e[1], delay, abort)
		}
	}
}

// Rules validates a recipe and translates it into the action rules that inject its faults and
// trace its requests. id is the recipe's id: the rules' ids are "<id>-1", "<id>-2", ..., each is
// tagged id (DELETE /v1/rules?tag=<id> removes them), and their trace actions log
// gremlin_recipe_id=<id>, which is how the records of the recipe's requests are found.
//
// Amalgam8 made one rule per edge of the topology. A sidecar applies only the first action rule
// that matches a request, so two rules with the same source and destination name (for two
// versions of the destination) shadowed each other. Here there is one rule per (source service
// with its tags, destination name) pair, holding:
//
//   - a trace action per version of the destination involved, tagged with the version's tags (one
//     untagged trace when the topology names the destination without tags);
//   - the fault actions of the gremlins on that pair, in the order of the gremlins, each tagged
//     with the tags of the destination it targets (delay: duration in seconds and probability;
//     abort: return_code and probability).
//
// The match is the source (name and tags) and the recipe's header ({header: pattern}); the
// priority is RulePriority. Every dependency of the topology gets at least a trace, so that every
// request of the test is recorded. When two sources of the same destination name overlap, one a
// strict refinement of the other ("productpage" and "productpage:version=v1"), the refined one's
// rule also carries the other's actions and gets RulePriority plus the number of sources it
// refines, so it is tried first; sources that overlap otherwise ("reviews:a" and "reviews:b",
// for an instance with both tags) cannot be told apart here: the sidecar applies the first rule.
//
// Gremlins: a gremlin without source applies to every caller of dest (from the topology's
// dependencies), one without dest to every service source calls; with both, source must call dest.
// partition_services aborts source→dest (srcprobability) and dest→source (dstprobability) with
// errorcode (default 0: reset); crash_service aborts every caller→dest (default 0: reset);
// overload_service delays 10s with probability 0.5 then aborts with 503 with probability 0.5 (each
// overridable) from the given source or every caller. delay_responses and abort_responses act like
// their _requests forms: the sidecar injects faults before forwarding the request.
//
// Every problem of the recipe is returned at once in a *ValidationError with paths such as
// scenarios.gremlins[1].dest. The rules are checked with the controller's validator, so a recipe
// never yields rules the controller would refuse.
func Rules(id string, req api.RecipeRequest) ([]api.Rule, error) {
	req = req.WithDefaults()
	var ps problems
	switch {
	case id == "":
		ps.add("id", "the recipe id must not be empty")
	case len(id) > MaxRecipeIDBytes:
		ps.add("id", "the recipe id is longer than %d bytes (%d)", MaxRecipeIDBytes, len(id))
	case strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		ps.add("id", "the recipe id %q contains spaces or control characters", id)
	}
	if !validHeaderName(req.Header) {
		ps.add("header", "%q is not an HTTP header name", req.Header)
	}
	pattern := NormalizeHeaderPattern(req.HeaderPattern)
	if pattern != "*" {
		if _, err := regexp.Compile(pattern); err != nil {
			ps.add("header_pattern", "%q is not a regular expression (or \"*\" for any value): %v", req.HeaderPattern, err)
		}
	}
	tp := indexTopology(&ps, "topology", req.Topology)
	for i := range req.Scenarios.Gremlins {
		checkGremlin(&ps, fmt.Sprintf("scenarios.gremlins[%d]", i), &req.Scenarios.Gremlins[i])
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	r := &recipe{tp: tp, index: map[[2]string]*group{}}
	for i := range req.Scenarios.Gremlins {
		r.expand(&ps, fmt.Sprintf("scenarios.gremlins[%d]", i), &req.Scenarios.Gremlins[i])
	}
	if len(ps) > 0 {
		return nil, ps.err()
	}
	for from := range tp.services {
		for _, to := range tp.deps[from] {
			r.group(from, to)
		}
	}
	if len(r.groups) == 0 {
		return nil, &ValidationError{Problems: []Problem{{Path: "topology.dependencies", Reason: "the recipe has nothing to do: no gremlins and no dependencies to trace"}}}
	}
	out := r.rules(id, req.Header, pattern)
	if err := rules.Validate(out); err != nil {
		return nil, fmt.Errorf("recipe %s: the translated rules would be refused by the controller: %w", id, err)
	}
	return out, nil
}

// NormalizeHeaderPattern returns the header pattern a recipe's rules use: "" is "*" (any value),
// and ".*?*", which Amalgam8's a8ctl sent for -p '*' (it prefixed patterns with ".*?"), is "*" too;
// anything else is kept as it is (".*?" + a pattern is a valid regex that matches the same).
func NormalizeHeaderPattern(p string) string {
	if p == "" || p == ".*?*" {
		return "*"
	}
	return p
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// refines reports whether source a is a strict refinement of source b: same name, a's tags a
// strict superset of b's.
func refines(a, b service) bool {
	return a.name == b.name && len(a.tags) > len(b.tags) && b.covers(a.name, a.tags)
}

func (r *recipe) rules(id, header, pattern string) []api.Rule {
	tp := r.tp
	// Overlapping sources: a refined source's rule carries the actions of the sources it refines.
	type actions struct {
		versions []int
		faults   []fault
	}
	own := make([]actions, len(r.groups))
	for i, g := range r.groups {
		own[i] = actions{slices.Clone(g.versions), slices.Clone(g.faults)}
	}
	for i, g := range r.groups {
		for j, h := range r.groups {
			if i != j && g.dstName == h.dstName && refines(tp.services[g.src], tp.services[h.src]) {
				g.rank++
				for _, v := range own[j].versions {
					if !slices.Contains(g.versions, v) {
						g.versions = append(g.versions, v)
					}
				}
				g.faults = append(g.faults, own[j].faults...)
			}
		}
	}
	out := make([]api.Rule, 0, len(r.groups))
	for n, g := range r.groups {
		src := tp.services[g.src]
		rule := api.Rule{
			ID:          fmt.Sprintf("%s-%d", id, n+1),
			Priority:    RulePriority + g.rank,
			Tags:        []string{id},
			Destination: g.dstName,
			Match: &api.Match{
				Source:  &api.Source{Name: src.name, Tags: slices.Clone(src.tags)},
				Headers: map[string]string{header: pattern},
			},
		}
		untagged := slices.ContainsFunc(g.versions, func(v int) bool { return len(tp.services[v].tags) == 0 })
		trace := func(tags []string) api.Action {
			return api.Action{Action: api.ActionTrace, LogKey: api.RecipeTraceKey, LogValue: id, Tags: tags}
		}
		if untagged {
			rule.Actions = append(rule.Actions, trace(nil))
		} else {
			for _, v := range g.versions {
				rule.Actions = append(rule.Actions, trace(slices.Clone(tp.services[v].tags)))
			}
		}
		for _, f := range g.faults {
			a := f.action
			a.Tags = slices.Clone(tp.services[f.dst].tags)
			if a.Probability != nil {
				p := *a.Probability
				a.Probability = &p
			}
			if a.ReturnCode != nil {
				c := *a.ReturnCode
				a.ReturnCode = &c
			}
			rule.Actions = append(rule.Actions, a)
		}
		out = append(out, rule)
	}
	return out
}
