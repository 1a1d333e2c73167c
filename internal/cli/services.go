package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/a8fabric/a8/api"
)

// serviceEntry is one row of service-list: a service and its instances by version, "v1(2)".
type serviceEntry struct {
	Service   string   `json:"service"`
	Instances []string `json:"instances"`
}

// serviceSummary counts a service's instances by version (their tags), as the Python a8ctl did:
// "version=v1(2)", versions sorted.
func serviceSummary(service string, insts []api.Instance) serviceEntry {
	counts := map[string]int{}
	for _, in := range insts {
		counts[versionOf(in.Tags)]++
	}
	versions := make([]string, 0, len(counts))
	for v := range counts {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	e := serviceEntry{Service: service, Instances: make([]string, len(versions))}
	for i, v := range versions {
		e.Instances[i] = fmt.Sprintf("%s(%d)", v, counts[v])
	}
	return e
}

// serviceRows renders service-list entries as table rows.
func serviceRows(entries []serviceEntry) [][]string {
	rows := make([][]string, len(entries))
	for i, e := range entries {
		rows[i] = []string{e.Service, strings.Join(e.Instances, ", ")}
	}
	return rows
}

// serviceListCommand is service-list: GET /api/v1/services and /api/v1/services/{name}.
func serviceListCommand() *command {
	return &command{
		name:    "service-list",
		usage:   "[-o table|json|yaml]",
		summary: "List the registered services and their instances by version.",
		group:   groupRouting,
		setup: func(f *cmdFlags) runFunc {
			var output string
			f.Output(&output, formatTable, formatJSON, formatYAML)
			f.JSONOutput(&output)
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				reg, err := e.registry()
				if err != nil {
					return err
				}
				names, _, err := reg.Services(ctx, nil)
				if err != nil {
					return e.regErr("listing the services", err)
				}
				sort.Strings(names)
				entries := make([]serviceEntry, 0, len(names))
				for _, n := range names {
					insts, _, err := reg.Service(ctx, n, nil)
					if err != nil {
						return e.regErr("listing the instances of "+n, err)
					}
					entries = append(entries, serviceSummary(n, insts))
				}
				if output != formatTable {
					return writeStructured(e.stdout, output, entries)
				}
				renderTable(e.stdout, []string{"Service", "Instances"}, serviceRows(entries))
				return nil
			}
		},
	}
}

// infoRows are the rows of info's table: each setting with its environment variable, tokens
// masked.
func infoRows(g *globals) [][]string {
	return [][]string{
		{"A8_REGISTRY_URL", g.registryURL},
		{"A8_REGISTRY_TOKEN", maskToken(g.registryToken)},
		{"A8_CONTROLLER_URL", g.controllerURL},
		{"A8_CONTROLLER_TOKEN", maskToken(g.controllerToken)},
		{"A8_NAMESPACE", g.namespace},
		{"A8_DEBUG", fmt.Sprint(g.debug)},
		{"A8_TIMEOUT", g.timeout.String()},
	}
}

// infoCommand is Amalgam8 1.x's info: the settings a8ctl runs with.
func infoCommand() *command {
	return &command{
		name:    "info",
		summary: "Print the settings a8ctl uses: the controller and registry URLs, tokens (masked), namespace.",
		help:    "Each setting comes from its flag, else its environment variable, else its default.",
		group:   groupOther,
		setup: func(f *cmdFlags) runFunc {
			return func(_ context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				renderTable(e.stdout, []string{"Env. Variable", "Value"}, infoRows(e.g))
				return nil
			}
		},
	}
}
