package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
)

// noVersion names instances without tags, as the Python a8ctl did.
const noVersion = "-untagged-"

// versionOf is the version label of a set of tags: "v1", "version=v2,zone=a".
func versionOf(tags []string) string {
	if len(tags) == 0 {
		return noVersion
	}
	return strings.Join(tags, ",")
}

// parseVersion reads the version given by what (a flag) as its tags, refusing a version without
// any (",").
func parseVersion(what, version string) ([]string, error) {
	tags := versionTags(version)
	if len(tags) == 0 {
		return nil, usagef("%s %q has no tags: a version is one or more tags, comma-separated, such as v1 or version=v2,zone=a", what, version)
	}
	return tags, nil
}

// versionTags is the tags of a version label: "version=v2,zone=a" is two tags.
func versionTags(version string) []string {
	var tags []string
	for t := range strings.SplitSeq(version, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// splitService splits "reviews:version=v2" (a source, with optional tags after the last colon)
// into the name and the tags.
func splitService(s string) (name string, tags []string) {
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[:i], versionTags(s[i+1:])
	}
	return s, nil
}

// sourceOf is the match source of "name[:tags]", nil for "".
func sourceOf(s string) *api.Source {
	if s == "" {
		return nil
	}
	name, tags := splitService(s)
	return &api.Source{Name: name, Tags: tags}
}

// formatFloat writes a weight or a probability as Amalgam8 did: 0.25, 1, 7.5.
func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// Selector kinds of route-set --selector.
const (
	selectorWeight = "weight"
	selectorUser   = "user"
	selectorHeader = "header"
)

// selector is one --selector of route-set: version(weight=0.25), version(user="jason") or
// version(header="Foo:bar").
type selector struct {
	version string
	kind    string
	weight  float64
	header  string
	pattern string
}

// parseSelector reads a --selector as the Python a8ctl did: "{version}({kind}={value})", the
// version up to the first "(", the condition up to the last ")".
func parseSelector(s string) (selector, error) {
	invalid := func(why string) (selector, error) {
		return selector{}, fmt.Errorf("Invalid --selector value: %s (%s; want version(weight=0.25), version(user=\"name\") or version(header=\"Name:pattern\"))", s, why)
	}
	open := strings.Index(s, "(")
	if open < 0 || !strings.HasSuffix(s, ")") {
		return invalid("no version(condition)")
	}
	sel := selector{version: strings.TrimSpace(s[:open])}
	if sel.version == "" {
		return invalid("no version before the parenthesis")
	}
	if len(versionTags(sel.version)) == 0 {
		return invalid(fmt.Sprintf("version %q has no tags", sel.version))
	}
	rule := strings.TrimSpace(s[open+1 : len(s)-1])
	key, value, _ := strings.Cut(rule, "=")
	sel.kind = strings.TrimSpace(key)
	value = strings.TrimSpace(value)
	switch sel.kind {
	case selectorWeight:
		w, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return invalid(fmt.Sprintf("weight %q is not a number", value))
		}
		if !(w > 0 && w <= 1) { // NaN too
			return invalid(fmt.Sprintf("weight %s must be in (0, 1]", value))
		}
		sel.weight = w
	case selectorUser:
		user := strings.Trim(value, ` "`)
		if user == "" {
			return invalid("no user name")
		}
		sel.header, sel.pattern = "Cookie", userPrefix+user
	case selectorHeader:
		h, p, ok := strings.Cut(strings.Trim(value, ` "`), ":")
		if !ok || strings.TrimSpace(h) == "" {
			return invalid("want header=\"Name:pattern\"")
		}
		if strings.TrimSpace(p) == "" {
			return invalid("the header pattern is empty")
		}
		sel.header, sel.pattern = strings.TrimSpace(h), p
	default:
		return selector{}, fmt.Errorf("Unrecognized --selector key (%s) in selector: %s (want weight, user or header)", sel.kind, s)
	}
	return sel, nil
}

// userPrefix starts the Cookie pattern of a user selector: user="jason" is Cookie: .*?user=jason.
const userPrefix = ".*?user="

// buildRouteRules builds the route rules of `route-set service --default def [--source src]
// [--selector ...]...` exactly as the Python a8ctl did, in the order it sent them:
//   - the default rule, priority 1: the weighted versions, in the order given, then def unweighted;
//   - with a source, that rule gets priority 2 and matches the source, and a plain default rule
//     (def alone) is added at priority 1;
//   - each user or header selector is its own rule routing to its version, matching the header
//     (and the source), at priorities above those: the first selector highest.
func buildRouteRules(service, def, source string, sels []selector) []api.Rule {
	var weighted, matched []selector
	for _, s := range sels {
		if s.kind == selectorWeight {
			weighted = append(weighted, s)
		} else {
			matched = append(matched, s)
		}
	}
	weightRule := func(ws []selector, priority int, src string) api.Rule {
		r := api.Rule{Destination: service, Priority: priority, Route: &api.Route{}}
		for _, w := range ws {
			weight := w.weight
			r.Route.Backends = append(r.Route.Backends, api.Backend{Tags: versionTags(w.version), Weight: &weight})
		}
		r.Route.Backends = append(r.Route.Backends, api.Backend{Tags: versionTags(def)})
		if s := sourceOf(src); s != nil {
			r.Match = &api.Match{Source: s}
		}
		return r
	}
	var out []api.Rule // in reverse; reversed at the end
	priority := 1
	if source != "" {
		out = append(out, weightRule(nil, priority, ""))
		priority++
		out = append(out, weightRule(weighted, priority, source))
	} else {
		out = append(out, weightRule(weighted, priority, ""))
	}
	for i := len(matched) - 1; i >= 0; i-- {
		m := matched[i]
		priority++
		out = append(out, api.Rule{
			Destination: service,
			Priority:    priority,
			Match:       &api.Match{Source: sourceOf(source), Headers: map[string]string{m.header: m.pattern}},
			Route:       &api.Route{Backends: []api.Backend{{Tags: versionTags(m.version)}}},
		})
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// routeEntry is one row of route-list: a service, its default version and its version selectors.
type routeEntry struct {
	Service   string   `json:"service"`
	Default   string   `json:"default,omitempty"`
	Selectors []string `json:"selectors,omitempty"`
}

// sortByPriority sorts rules by priority, highest first, then by id (the controller's order).
func sortByPriority(rs []api.Rule) []api.Rule {
	out := append([]api.Rule(nil), rs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Priority != out[j].Priority {
			return out[i].Priority > out[j].Priority
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// routeSummary computes a service's route-list row from its route rules, as the a8ctls did: the
// default version is the unweighted backend of the (highest-priority) rule without a match; its
// weighted backends are selectors version(weight=w); a rule with a match gives selectors such as
// version(user="jason") or version(source=productpage:v1,header="Foo:bar",weight=0.5). Selectors
// come in priority order.
func routeSummary(service string, rs []api.Rule) routeEntry {
	e := routeEntry{Service: service}
	haveDefault := false
	for _, r := range sortByPriority(rs) {
		if r.Route == nil {
			continue
		}
		if r.Match == nil {
			var defaults []string
			for _, b := range r.Route.Backends {
				v := versionOf(b.Tags)
				if b.Weight != nil {
					e.Selectors = append(e.Selectors, fmt.Sprintf("%s(weight=%s)", v, formatFloat(*b.Weight)))
				} else {
					defaults = append(defaults, v)
				}
			}
			if !haveDefault && len(defaults) > 0 {
				e.Default, haveDefault = strings.Join(defaults, ", "), true
			}
			continue
		}
		bs := r.Route.Backends
		if len(bs) == 1 && bs[0].Weight == nil {
			e.Selectors = append(e.Selectors, matchSelector(versionOf(bs[0].Tags), r.Match, nil))
			continue
		}
		for _, b := range bs {
			e.Selectors = append(e.Selectors, matchSelector(versionOf(b.Tags), r.Match, b.Weight))
		}
	}
	return e
}

// matchSelector writes a rule's match as a selector: version(source=...,user="..."|header="K:V",
// weight=w), headers in name order.
func matchSelector(version string, m *api.Match, weight *float64) string {
	var parts []string
	if m.Source != nil {
		src := m.Source.Name
		if len(m.Source.Tags) > 0 {
			src += ":" + strings.Join(m.Source.Tags, ",")
		}
		parts = append(parts, "source="+src)
	}
	for _, k := range sortedMapKeys(m.Headers) {
		v := m.Headers[k]
		if user, ok := strings.CutPrefix(v, userPrefix); ok && k == "Cookie" {
			parts = append(parts, fmt.Sprintf("user=%q", user))
		} else {
			parts = append(parts, fmt.Sprintf(`header="%s:%s"`, k, v))
		}
	}
	if weight != nil {
		parts = append(parts, "weight="+formatFloat(*weight))
	}
	return version + "(" + strings.Join(parts, ",") + ")"
}

func sortedMapKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// routeEntries computes route-list's rows: every service with route rules and, as Amalgam8 did,
// every registered service without any (only those asked for when services is not empty).
// Rows are sorted by service.
func routeEntries(byDest map[string][]api.Rule, registered []string, services []string) []routeEntry {
	entries := []routeEntry{}
	seen := map[string]bool{}
	for svc, rs := range byDest {
		entries = append(entries, routeSummary(svc, rs))
		seen[svc] = true
	}
	for _, svc := range registered {
		if seen[svc] || (len(services) > 0 && !contains(services, svc)) {
			continue
		}
		seen[svc] = true
		entries = append(entries, routeEntry{Service: svc})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Service < entries[j].Service })
	return entries
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// routeRows renders route-list entries as table rows.
func routeRows(entries []routeEntry) [][]string {
	rows := make([][]string, len(entries))
	for i, e := range entries {
		rows[i] = []string{e.Service, e.Default, strings.Join(e.Selectors, ", ")}
	}
	return rows
}

var routeHeader = []string{"Service", "Default Version", "Version Selectors"}

// routeListCommand is route-list (both generations): GET /v1/rules/routes and the registry.
func routeListCommand() *command {
	return &command{
		name:    "route-list",
		usage:   "[-s service]... [-o table|json|yaml]",
		summary: "List the services with their default version and version selectors.",
		help: `Services come from the route rules and from the registry (registered services without rules have
empty cells). Default Version is the version of the route rule without a match; Version Selectors
are its weighted versions, version(weight=0.25), and the versions of the rules with a match,
version(user="jason") or version(header="Name:pattern"), highest priority first.`,
		group: groupRules,
		setup: func(f *cmdFlags) runFunc {
			var services []string
			var output string
			f.List(&services, "service,s", "service", "list only this service")
			f.Output(&output, formatTable, formatJSON, formatYAML)
			f.JSONOutput(&output)
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				reg, err := e.registry()
				if err != nil {
					return err
				}
				byDest, err := ctl.Routes(ctx, client.RuleFilter{Destinations: services})
				if err != nil {
					return e.ctlErr("listing the route rules", err)
				}
				registered, _, err := reg.Services(ctx, nil)
				if err != nil {
					return e.regErr("listing the registered services", err)
				}
				entries := routeEntries(byDest, registered, services)
				if output != formatTable {
					return writeStructured(e.stdout, output, entries)
				}
				renderTable(e.stdout, routeHeader, routeRows(entries))
				return nil
			}
		},
	}
}

// routeSetCommand is the Python a8ctl's route-set: PUT /v1/rules/routes/{service}.
func routeSetCommand() *command {
	return &command{
		name:    "route-set",
		usage:   "<service> --default <version> [--source name[:tags]] [--selector 'version(condition)']...",
		summary: "Replace a service's route rules: a default version, weighted versions, user and header selectors.",
		help: `A version is the tags of the instances that serve it, comma-separated: version=v1.
Selectors:
  --selector 'version=v2(weight=0.25)'          25% of the traffic to version=v2
  --selector 'version=v2(user="jason")'         requests whose Cookie has user=jason
  --selector 'version=v2(header="Foo:^bar")'    requests whose Foo header matches ^bar
With --source name[:tags], the rules apply to requests from that service only (and a rule sending
everyone else to the default version is added). Every route rule of the service is replaced, as
the Python a8ctl did: the default rule at priority 1, each user or header selector at 2, 3, ...`,
		group: groupRouting,
		setup: func(f *cmdFlags) runFunc {
			var def, source string
			var selectors []string
			f.String(&def, "default", "", "version", "the version that gets the traffic no selector takes (required)")
			f.String(&source, "source", "", "name[:tags]", "apply the rules only to requests from this service")
			f.List(&selectors, "selector", "'version(condition)'", "a version and when to use it: weight=w, user=\"name\" or header=\"Name:pattern\"")
			return func(ctx context.Context, e *env, args []string) error {
				service, err := oneArg(args, "service")
				if err != nil {
					return err
				}
				if def == "" {
					return usagef("You must specify --default (the version that gets the traffic no selector takes)")
				}
				if _, err := parseVersion("--default", def); err != nil {
					return err
				}
				sels := make([]selector, 0, len(selectors))
				for _, s := range selectors {
					sel, err := parseSelector(s)
					if err != nil {
						return asUsage(err)
					}
					sels = append(sels, sel)
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				if _, err := ctl.SetRoutes(ctx, service, buildRouteRules(service, def, source, sels)); err != nil {
					return e.ctlErr("setting the route rules of "+service, err)
				}
				fmt.Fprintln(e.stdout, "Set routing rules for microservice", service)
				return nil
			}
		},
	}
}

// routeDeleteCommand is the Python a8ctl's route-delete: DELETE /v1/rules/routes/{service}.
func routeDeleteCommand() *command {
	return &command{
		name:    "route-delete",
		usage:   "<service>",
		summary: "Delete every route rule of a service (its traffic then goes to all its instances).",
		group:   groupRouting,
		setup: func(f *cmdFlags) runFunc {
			return func(ctx context.Context, e *env, args []string) error {
				service, err := oneArg(args, "service")
				if err != nil {
					return err
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				if err := ctl.DeleteRoutes(ctx, service); err != nil {
					return e.ctlErr("deleting the route rules of "+service, err)
				}
				fmt.Fprintln(e.stdout, "Deleted routing rules for microservice", service)
				return nil
			}
		},
	}
}

// oneArg returns the single positional argument a command takes.
func oneArg(args []string, what string) (string, error) {
	switch {
	case len(args) == 0:
		return "", usagef("missing the %s", what)
	case len(args) > 1:
		return "", usagef("takes one %s, got %q", what, args)
	}
	switch args[0] {
	case "":
		return "", usagef("the %s is empty", what)
	case ".", "..":
		// Sent as a URL path segment, it would name another resource: /v1/rules/routes/.. is
		// /v1/rules. No service has this name.
		return "", usagef("%q is not a %s name", args[0], what)
	}
	return args[0], nil
}
