package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/rules"
)

// traceLogKey is the log_key of action-add's trace actions, Gremlin's: the records of the traced
// requests get gremlin_recipe_id=<value>.
const traceLogKey = "gremlin_recipe_id"

// parseActionSpec reads an action-add --action as the Python a8ctl did:
// "{version}({probability}->{action}={value})", such as v1(0.5->delay=5) (delay half the requests
// to v1 by 5 s) or version=v2(1->abort=400); and a trace, "{version}(trace)" or
// "{version}(trace=value)", which tags the records of the requests with gremlin_recipe_id=value
// (without a value, LogValue is left empty for action-add to fill with the rule's id). The version
// is the tags the action is limited to.
func parseActionSpec(s string) (api.Action, error) {
	invalid := func(why string) (api.Action, error) {
		return api.Action{}, fmt.Errorf("Invalid --action value: %s (%s; want version(probability->delay=seconds), version(probability->abort=code) or version(trace), e.g. v1(0.5->delay=5))", s, why)
	}
	open := strings.Index(s, "(")
	if open < 0 || !strings.HasSuffix(s, ")") {
		return invalid("no version(...)")
	}
	version := strings.TrimSpace(s[:open])
	if version == "" {
		return invalid("no version before the parenthesis")
	}
	tags := versionTags(version)
	if len(tags) == 0 {
		return invalid(fmt.Sprintf("version %q has no tags", version))
	}
	inner := s[open+1 : len(s)-1]
	if kind, value, _ := strings.Cut(inner, "="); strings.TrimSpace(kind) == api.ActionTrace {
		return api.Action{Action: api.ActionTrace, Tags: tags, LogKey: traceLogKey, LogValue: strings.TrimSpace(value)}, nil
	}
	prob, rest, ok := strings.Cut(inner, "->")
	if !ok {
		return invalid("no ->")
	}
	kind, value, ok := strings.Cut(rest, "=")
	kind = strings.TrimSpace(kind)
	if kind == api.ActionTrace {
		return invalid("a trace has no probability: write version(trace) or version(trace=value)")
	}
	if !ok {
		return invalid("no =value after the action")
	}
	value = strings.TrimSpace(value)
	p, err := strconv.ParseFloat(strings.TrimSpace(prob), 64)
	if err != nil {
		return invalid(fmt.Sprintf("probability %q is not a number", strings.TrimSpace(prob)))
	}
	if !(p > 0 && p <= 1) { // NaN too
		return invalid(fmt.Sprintf("probability %s must be in (0, 1]", formatFloat(p)))
	}
	a := api.Action{Probability: &p, Tags: tags}
	switch kind {
	case api.ActionDelay:
		d, err := strconv.ParseFloat(value, 64)
		if err != nil || !(d > 0 && d <= rules.MaxSeconds) { // NaN and Inf too
			return invalid(fmt.Sprintf("delay %q is not a positive number of seconds, at most %d", value, rules.MaxSeconds))
		}
		a.Action, a.Duration = api.ActionDelay, d
	case api.ActionAbort:
		code, err := strconv.Atoi(value)
		if err != nil {
			return invalid(fmt.Sprintf("abort code %q is not a whole number", value))
		}
		a.Action, a.ReturnCode = api.ActionAbort, &code
	default:
		return api.Action{}, fmt.Errorf("Invalid --action type: %s (%q: want delay, abort or trace)", s, kind)
	}
	return a, nil
}

// traceRuleIDs gives r an id of its own, if a trace action of r has no value, and makes that id the
// value: the records of the traced requests then name the rule.
func traceRuleIDs(r api.Rule, newID func() string) api.Rule {
	copied := false
	for i, a := range r.Actions {
		if a.Action != api.ActionTrace || a.LogValue != "" {
			continue
		}
		if r.ID == "" {
			r.ID = newID()
		}
		if !copied {
			r.Actions, copied = append([]api.Action(nil), r.Actions...), true
		}
		r.Actions[i].LogValue = r.ID
	}
	return r
}

// newRuleID returns a random (version 4) UUID, the form of the ids the controller generates.
func newRuleID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// matchHeaders builds the header conditions of action-add: --header Name:pattern and
// --cookie key=value (the Cookie pattern .*?key=value, as the Python a8ctl wrote it).
func matchHeaders(headers, cookies []string) (map[string]string, error) {
	if len(headers) == 0 && len(cookies) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, h := range headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--header %q: want Name:pattern", h)
		}
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("--header %q: the pattern after the colon is empty (want Name:pattern, a regular expression)", h)
		}
		k = strings.TrimSpace(k)
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--header %s given twice: a rule has one pattern per header", k)
		}
		m[k] = v
	}
	switch {
	case len(cookies) > 1:
		return nil, fmt.Errorf("--cookie given %d times: a rule has one Cookie pattern; write one regular expression with --header 'Cookie:...'", len(cookies))
	case len(cookies) == 1:
		if _, dup := m["Cookie"]; dup {
			return nil, fmt.Errorf("--cookie and --header Cookie:... both set the Cookie pattern: give one")
		}
		if k, _, ok := strings.Cut(cookies[0], "="); !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--cookie %q: want key=value", cookies[0])
		}
		m["Cookie"] = ".*?" + cookies[0]
	}
	return m, nil
}

// nextActionPriority is action-add's default priority: 10 above the highest of the destination's
// action rules, and at least 10, as the Python a8ctl computed it.
func nextActionPriority(existing []api.Rule) int {
	p := 10
	for _, r := range sortByPriority(existing) {
		if r.Priority >= p {
			p = r.Priority + 10
		}
	}
	return p
}

// buildActionRule builds action-add's rule.
func buildActionRule(destination, source string, headers map[string]string, priority int, actions []api.Action) api.Rule {
	return api.Rule{
		Destination: destination,
		Priority:    priority,
		Match:       &api.Match{Source: sourceOf(source), Headers: headers},
		Actions:     actions,
	}
}

// actionEntry is one row of action-list.
type actionEntry struct {
	Destination string   `json:"destination"`
	Source      string   `json:"source,omitempty"`
	Headers     []string `json:"headers,omitempty"`
	Priority    int      `json:"priority"`
	Actions     []string `json:"actions"`
	ID          string   `json:"id"`
}

// formatAction writes an action as the a8ctls did: tags(probability->delay=seconds),
// tags(probability->abort=code), tags(trace). An unset probability is 1, its default.
func formatAction(a api.Action) string {
	tags := strings.Join(a.Tags, ",")
	p := 1.0
	if a.Probability != nil {
		p = *a.Probability
	}
	switch a.Action {
	case api.ActionDelay:
		return fmt.Sprintf("%s(%s->delay=%s)", tags, formatFloat(p), formatFloat(a.Duration))
	case api.ActionAbort:
		code := 0
		if a.ReturnCode != nil {
			code = *a.ReturnCode
		}
		return fmt.Sprintf("%s(%s->abort=%d)", tags, formatFloat(p), code)
	case api.ActionTrace:
		return fmt.Sprintf("%s(trace)", tags)
	}
	return fmt.Sprintf("%s(%s)", tags, a.Action)
}

// actionEntries computes action-list's rows from the action rules by destination: by destination,
// then priority (highest first), then id.
func actionEntries(byDest map[string][]api.Rule) []actionEntry {
	dests := make([]string, 0, len(byDest))
	for d := range byDest {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	entries := []actionEntry{}
	for _, d := range dests {
		for _, r := range sortByPriority(byDest[d]) {
			e := actionEntry{Destination: r.Destination, Priority: r.Priority, ID: r.ID, Actions: []string{}}
			if e.Destination == "" {
				e.Destination = d
			}
			if m := r.Match; m != nil {
				if m.Source != nil {
					e.Source = m.Source.Name
					if len(m.Source.Tags) > 0 {
						e.Source += ":" + strings.Join(m.Source.Tags, ",")
					}
				}
				for _, k := range sortedMapKeys(m.Headers) {
					e.Headers = append(e.Headers, k+":"+m.Headers[k])
				}
			}
			for _, a := range r.Actions {
				e.Actions = append(e.Actions, formatAction(a))
			}
			entries = append(entries, e)
		}
	}
	return entries
}

var actionHeader = []string{"Destination", "Source", "Headers", "Priority", "Actions", "Rule ID"}

// actionRows renders action-list entries as table rows.
func actionRows(entries []actionEntry) [][]string {
	rows := make([][]string, len(entries))
	for i, e := range entries {
		rows[i] = []string{e.Destination, e.Source, strings.Join(e.Headers, ", "), strconv.Itoa(e.Priority), strings.Join(e.Actions, ", "), e.ID}
	}
	return rows
}

// actionListCommand is action-list (both generations): GET /v1/rules/actions.
func actionListCommand() *command {
	return &command{
		name:    "action-list",
		usage:   "[-s service]... [-i id]... [-t tag]... [-d destination]... [-o table|json|yaml]",
		summary: "List the action (fault injection, trace) rules.",
		help: `Actions read version(probability->delay=seconds), version(probability->abort=code) and
version(trace), the version being the tags of the backends the action is limited to.`,
		group: groupRules,
		setup: func(f *cmdFlags) runFunc {
			var ff filterFlags
			var services []string
			var output string
			f.List(&services, "service,s", "service", "list only the action rules of this destination (as -d)")
			ff.register(f, "list")
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
				filter := ff.filter()
				filter.Destinations = append(filter.Destinations, services...)
				byDest, err := ctl.Actions(ctx, filter)
				if err != nil {
					return e.ctlErr("listing the action rules", err)
				}
				entries := actionEntries(byDest)
				if output != formatTable {
					return writeStructured(e.stdout, output, entries)
				}
				renderTable(e.stdout, actionHeader, actionRows(entries))
				return nil
			}
		},
	}
}

// actionAddCommand is the Python a8ctl's action-add. The Python a8ctl read the destination's action
// rules and PUT them back with the new one, losing the rules another client added meanwhile; this
// one POSTs the new rule alone to /v1/rules (it reads the others only for the default priority).
func actionAddCommand() *command {
	return &command{
		name:    "action-add",
		usage:   "--destination <service> [--source name[:tags]] [--header Name:pattern]... [--cookie key=value] --action 'version(probability->delay=s|abort=code)|version(trace)'... [--priority n]",
		summary: "Add an action (fault injection, trace) rule to a destination, keeping its others.",
		help: `Examples:
  a8ctl action-add --source reviews:version=v2 --destination ratings --cookie user=jason \
      --action 'version=v1(1->delay=7)'
  a8ctl action-add --destination ratings --header 'X-Test:^yes$' --action 'v1(0.5->abort=503)'
  a8ctl action-add --destination ratings --source reviews --action 'v1(trace)'
The rule matches requests from --source and with every --header and --cookie given (at least one
of them is needed); its actions apply in order. A trace, version(trace) or version(trace=value),
tags the records of the requests with gremlin_recipe_id=value, the rule's id without a value. The
default priority is 10 above the highest of the destination's action rules (at least 10): the
newest rule wins.`,
		group: groupRouting,
		setup: func(f *cmdFlags) runFunc {
			var destination, source string
			var headers, cookies, actions []string
			var priority int
			var prioritySet bool
			f.String(&destination, "destination", "", "service", "the service whose requests the rule acts on (required)")
			f.String(&source, "source", "", "name[:tags]", "act only on requests from this service (with these tags)")
			f.List(&headers, "header", "Name:pattern", "act only on requests whose header matches the regular expression")
			f.List(&cookies, "cookie", "key=value", "act only on requests with this cookie")
			f.List(&actions, "action", "'version(p->delay=s)'", "the action: version(probability->delay=seconds), version(probability->abort=code) or version(trace[=value])")
			f.Int(&priority, &prioritySet, "priority", 0, "n", "the rule's priority (default: 10 above the destination's highest)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				if destination == "" || (source == "" && len(headers) == 0 && len(cookies) == 0) {
					return usagef("You must specify --destination, and at least one --source, --header, or --cookie parameter")
				}
				if len(actions) == 0 {
					return usagef("You must specify at least one --action parameter")
				}
				hdrs, err := matchHeaders(headers, cookies)
				if err != nil {
					return asUsage(err)
				}
				var acts []api.Action
				for _, s := range actions {
					a, err := parseActionSpec(s)
					if err != nil {
						return asUsage(err)
					}
					acts = append(acts, a)
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				if !prioritySet {
					byDest, err := ctl.Actions(ctx, client.RuleFilter{Destinations: []string{destination}})
					if err != nil {
						return e.ctlErr("reading the action rules of "+destination, err)
					}
					priority = nextActionPriority(byDest[destination])
				}
				// The new rule alone: the destination's other rules are not written back, so that
				// the rules others add meanwhile are kept.
				rule := traceRuleIDs(buildActionRule(destination, source, hdrs, priority, acts), newRuleID)
				if _, err := ctl.CreateRules(ctx, []api.Rule{rule}); err != nil {
					return e.ctlErr("adding an action rule to "+destination, err)
				}
				fmt.Fprintf(e.stdout, "Set action rule for destination %s\n", destination)
				return nil
			}
		},
	}
}

// actionClearCommand is action-clear: DELETE /v1/rules/actions/{service}.
func actionClearCommand() *command {
	return &command{
		name:    "action-clear",
		usage:   "<service>",
		summary: "Delete every action rule of a destination service.",
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
				if err := ctl.DeleteActions(ctx, service); err != nil {
					return e.ctlErr("deleting the action rules of "+service, err)
				}
				fmt.Fprintln(e.stdout, "Cleared action rules for microservice", service)
				return nil
			}
		},
	}
}
