package cli

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
)

// The gradual rollout of the Python a8ctl works on a service's default route rule (its route rule
// without a match): traffic-start puts a weighted backend of the new version before the default
// one, traffic-step raises its weight, and at 100% (or traffic-abort) one backend is left.

// defaultAmount is the share traffic-start sends to the new version, and traffic-step adds.
const defaultAmount = 10

// stateError is a transfer a8ctl refuses in the state the rules are in.
type stateError struct{ msg string }

func (e *stateError) Error() string { return e.msg }

// defaultRouteRule finds service's single route rule without a match among its route rules.
func defaultRouteRule(service string, rs []api.Rule) (api.Rule, error) {
	var found []api.Rule
	for _, r := range rs {
		if r.Route != nil && r.Match == nil {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return api.Rule{}, &stateError{fmt.Sprintf("No default route rule for %s: a transfer changes the route rule without a match, and %s has none (set one with a8ctl route-set %s --default <version>)", service, service, service)}
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.ID
	}
	return api.Rule{}, &stateError{fmt.Sprintf("%s has %d route rules without a match (%s): a transfer needs exactly one; delete the others (a8ctl rule-delete -i <id>) or use a8ctl route-set", service, len(found), strings.Join(ids, ", "))}
}

// cloneRule copies r deeply enough to change its backends.
func cloneRule(r api.Rule) api.Rule {
	route := *r.Route
	route.Backends = make([]api.Backend, len(r.Route.Backends))
	for i, b := range r.Route.Backends {
		b.Tags = append([]string(nil), b.Tags...)
		if b.Weight != nil {
			w := *b.Weight
			b.Weight = &w
		}
		route.Backends[i] = b
	}
	r.Route = &route
	return r
}

// checkAmount refuses an --amount outside 1..100.
func checkAmount(amount int) error {
	if amount < 1 || amount > 100 {
		return usagef("--amount must be between 1 and 100, got %d", amount)
	}
	return nil
}

// startTransfer is traffic-start's change: the rule's single unweighted backend (the current
// version) keeps 100-amount percent and a backend of version gets amount percent, placed first;
// at 100 the backend's tags become version's. from is the current version.
func startTransfer(service string, rule api.Rule, version string, amount int) (out api.Rule, from string, err error) {
	if err := checkAmount(amount); err != nil {
		return api.Rule{}, "", err
	}
	bs := rule.Route.Backends
	if len(bs) != 1 || bs[0].Weight != nil {
		return api.Rule{}, "", &stateError{fmt.Sprintf("Invalid state for start operation: service %q traffic is already being split (continue with a8ctl traffic-step %s, or a8ctl traffic-abort %s)", service, service, service)}
	}
	from = versionOf(bs[0].Tags)
	tags := versionTags(version)
	if versionOf(tags) == from {
		return api.Rule{}, "", &stateError{fmt.Sprintf("Invalid state for start operation: service %q already sends all its traffic to %s", service, from)}
	}
	out = cloneRule(rule)
	if amount == 100 {
		out.Route.Backends[0].Tags = tags
		return out, from, nil
	}
	w := float64(amount) / 100
	out.Route.Backends = append([]api.Backend{{Tags: tags, Weight: &w}}, out.Route.Backends...)
	return out, from, nil
}

// transferState reads a transfer in progress from the rule: a weighted backend (the new version)
// then an unweighted one (the old), nothing else.
func transferState(service, op string, rule api.Rule) (to, from string, percent int, err error) {
	bs := rule.Route.Backends
	if len(bs) != 2 || bs[0].Weight == nil || bs[1].Weight != nil {
		return "", "", 0, &stateError{fmt.Sprintf("Invalid state for %s operation: no traffic transfer in progress for %s (start one with a8ctl traffic-start %s <version>)", op, service, service)}
	}
	return versionOf(bs[0].Tags), versionOf(bs[1].Tags), int(math.Round(*bs[0].Weight * 100)), nil
}

// stepTransfer is traffic-step's change: the new version's share becomes amount percent, or 10
// more than now when amount is 0. At 100 or more the transfer completes: the new version's
// backend, unweighted, is the only one left. It returns the new share (at most 100).
func stepTransfer(service string, rule api.Rule, amount int) (out api.Rule, percent int, to, from string, err error) {
	to, from, current, err := transferState(service, "step", rule)
	if err != nil {
		return api.Rule{}, 0, "", "", err
	}
	if amount == 0 {
		percent = current + defaultAmount
	} else {
		if err := checkAmount(amount); err != nil {
			return api.Rule{}, 0, "", "", err
		}
		percent = amount
	}
	out = cloneRule(rule)
	if percent >= 100 {
		b := out.Route.Backends[0]
		b.Weight = nil
		out.Route.Backends = []api.Backend{b}
		return out, 100, to, from, nil
	}
	w := float64(percent) / 100
	out.Route.Backends[0].Weight = &w
	return out, percent, to, from, nil
}

// abortTransfer is traffic-abort's change: the new version's backend is removed, the old one gets
// all the traffic again.
func abortTransfer(service string, rule api.Rule) (out api.Rule, from string, err error) {
	_, from, _, err = transferState(service, "abort", rule)
	if err != nil {
		return api.Rule{}, "", err
	}
	out = cloneRule(rule)
	out.Route.Backends = out.Route.Backends[1:]
	return out, from, nil
}

// trafficArgs reads the service (and version) of traffic-*: positional as in the Python a8ctl,
// or -s/-v as in the 1.0 Go a8ctl.
func trafficArgs(args []string, service, version *string, wantVersion bool) error {
	want := 1
	if wantVersion {
		want = 2
	}
	if len(args) > want {
		return usagef("too many arguments: %q", args)
	}
	if len(args) > 0 {
		if *service != "" {
			return usagef("the service is given twice (argument and -s)")
		}
		*service = args[0]
	}
	if len(args) > 1 {
		if *version != "" {
			return usagef("the version is given twice (argument and -v)")
		}
		*version = args[1]
	}
	if *service == "" {
		return usagef("missing the service")
	}
	if wantVersion && *version == "" {
		return usagef("missing the version to transfer traffic to")
	}
	if wantVersion {
		if _, err := parseVersion("the version", *version); err != nil {
			return err
		}
	}
	return nil
}

// loadDefaultRoute reads service's route rules and returns its default route rule.
func loadDefaultRoute(ctx context.Context, e *env, ctl *client.Controller, service string) (api.Rule, error) {
	byDest, err := ctl.Routes(ctx, client.RuleFilter{Destinations: []string{service}})
	if err != nil {
		return api.Rule{}, e.ctlErr("reading the route rules of "+service, err)
	}
	return defaultRouteRule(service, byDest[service])
}

// hasInstances reports whether service has routable instances carrying every tag of version.
func hasInstances(ctx context.Context, e *env, reg *client.Registry, service, version string) (bool, error) {
	insts, _, err := reg.Instances(ctx, client.InstanceQuery{ServiceName: service, Tags: versionTags(version)}, nil)
	if err != nil {
		return false, e.regErr("listing the instances of "+service, err)
	}
	return len(insts) > 0, nil
}

// saveRule writes the changed default route rule back.
func saveRule(ctx context.Context, e *env, ctl *client.Controller, service string, r api.Rule) error {
	return e.ctlErr("updating the default route rule of "+service, ctl.UpdateRules(ctx, []api.Rule{r}))
}

func trafficStartCommand() *command {
	return &command{
		name:    "traffic-start",
		usage:   "<service> <version> [--amount percent]",
		summary: "Start moving a service's traffic to a new version: --amount percent (10) of it.",
		help: `The service's default route rule (its route rule without a match) must send all its traffic to
one version, which must have instances, as must the new version. The rule then sends --amount
percent to the new version and the rest to the current one; traffic-step moves more,
traffic-abort goes back. With --amount 100 the transfer completes at once.`,
		group: groupRollout,
		setup: func(f *cmdFlags) runFunc {
			var service, version string
			var amount int
			f.String(&service, "service,s", "", "service", "the service (or the first argument)")
			f.String(&version, "version,v", "", "version", "the new version (or the second argument)")
			f.Int(&amount, nil, "amount,a", defaultAmount, "percent", "the percentage of the traffic to send to the new version, 1-100")
			return func(ctx context.Context, e *env, args []string) error {
				if err := trafficArgs(args, &service, &version, true); err != nil {
					return err
				}
				if err := checkAmount(amount); err != nil {
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
				rule, err := loadDefaultRoute(ctx, e, ctl, service)
				if err != nil {
					return err
				}
				out, from, err := startTransfer(service, rule, version, amount)
				if err != nil {
					return err
				}
				if ok, err := hasInstances(ctx, e, reg, service, from); err != nil {
					return err
				} else if !ok {
					return &stateError{fmt.Sprintf("Invalid state for start operation: service %q is not currently receiving traffic (no instance of %s has the tags %s)", service, service, from)}
				}
				if ok, err := hasInstances(ctx, e, reg, service, version); err != nil {
					return err
				} else if !ok {
					return &stateError{fmt.Sprintf("Invalid state for start operation: service %q does not have active instances of version %q", service, version)}
				}
				if err := saveRule(ctx, e, ctl, service, out); err != nil {
					return err
				}
				if amount == 100 {
					fmt.Fprintf(e.stdout, "Transfer complete for %s: sending %d%% of traffic to %s\n", service, amount, version)
				} else {
					fmt.Fprintf(e.stdout, "Transfer starting for %s: diverting %d%% of traffic from %s to %s\n", service, amount, from, version)
				}
				return nil
			}
		},
	}
}

func trafficStepCommand() *command {
	return &command{
		name:    "traffic-step",
		usage:   "<service> [--amount percent]",
		summary: "Move more of a service's traffic to the new version: 10% more, or --amount percent in all.",
		help:    "At 100% the transfer completes: the default route rule sends everything to the new version.",
		group:   groupRollout,
		setup: func(f *cmdFlags) runFunc {
			var service, none string
			var amount int
			var amountSet bool
			f.String(&service, "service,s", "", "service", "the service (or the argument)")
			f.Int(&amount, &amountSet, "amount,a", 0, "percent", "the percentage of the traffic the new version gets, 1-100 (default: 10 more than now)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := trafficArgs(args, &service, &none, false); err != nil {
					return err
				}
				if amountSet {
					if err := checkAmount(amount); err != nil {
						return err
					}
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				rule, err := loadDefaultRoute(ctx, e, ctl, service)
				if err != nil {
					return err
				}
				out, percent, to, from, err := stepTransfer(service, rule, amount)
				if err != nil {
					return err
				}
				if err := saveRule(ctx, e, ctl, service, out); err != nil {
					return err
				}
				if percent == 100 {
					fmt.Fprintf(e.stdout, "Transfer complete for %s: sending %d%% of traffic to %s\n", service, percent, to)
				} else {
					fmt.Fprintf(e.stdout, "Transfer step for %s: diverting %d%% of traffic from %s to %s\n", service, percent, from, to)
				}
				return nil
			}
		},
	}
}

func trafficAbortCommand() *command {
	return &command{
		name:    "traffic-abort",
		usage:   "<service>",
		summary: "Abort a traffic transfer: all of the service's traffic back to the old version.",
		group:   groupRollout,
		setup: func(f *cmdFlags) runFunc {
			var service, none string
			f.String(&service, "service,s", "", "service", "the service (or the argument)")
			return func(ctx context.Context, e *env, args []string) error {
				if err := trafficArgs(args, &service, &none, false); err != nil {
					return err
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				rule, err := loadDefaultRoute(ctx, e, ctl, service)
				if err != nil {
					return err
				}
				out, from, err := abortTransfer(service, rule)
				if err != nil {
					return err
				}
				if err := saveRule(ctx, e, ctl, service, out); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Transfer aborted for %s: all traffic reverted to %s\n", service, from)
				return nil
			}
		},
	}
}
