package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/rules"
)

const rulesFileHelp = `The rules are {"rules": [...]} in JSON or YAML, as in examples/rules; a bare list of rules, or a
single rule, is taken too. Without -f, or with -f -, they are read from stdin (end with Ctrl-D,
or a line .json or .yaml). The controller checks every rule and refuses them all if one is wrong,
saying what and where (rules[2].route.backends[1].weight: ...).`

// ruleCreateCommand is Amalgam8 1.x's rule-create: POST /v1/rules.
func ruleCreateCommand() *command {
	return &command{
		name:    "rule-create",
		usage:   "[-f rules.yaml|rules.json|-] [-r]",
		summary: "Create routing or action rules from a JSON or YAML file (prints their ids).",
		help:    rulesFileHelp + "\n\nPrints the controller's answer, {\"ids\": [...]}, the ids in the order of the rules. A rule\nwith the id of an existing rule replaces it.",
		group:   groupRules,
		setup: func(f *cmdFlags) runFunc {
			var file string
			var quiet bool
			f.String(&file, "file,f", "", "file", "the rule file; - for stdin")
			f.Bool(&quiet, "redirection,r", "stdin is redirected: do not print the instructions for typing rules")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				rs, err := readRules(ctx, e, file, quiet)
				if err != nil {
					return err
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				ids, err := ctl.CreateRules(ctx, rs)
				if err != nil {
					return e.ctlErr("creating the rules", err)
				}
				if ids == nil {
					ids = []string{}
				}
				return writeJSON(e.stdout, api.RuleIDs{IDs: ids})
			}
		},
	}
}

// ruleUpdateCommand is Amalgam8 1.x's rule-update: PUT /v1/rules.
func ruleUpdateCommand() *command {
	return &command{
		name:    "rule-update",
		usage:   "[-f rules.yaml|rules.json|-] [-r]",
		summary: "Replace existing rules, named by their ids, from a JSON or YAML file.",
		help:    rulesFileHelp + "\n\nEvery rule must have the id of an existing rule; if one does not, nothing changes.",
		group:   groupRules,
		setup: func(f *cmdFlags) runFunc {
			var file string
			var quiet bool
			f.String(&file, "file,f", "", "file", "the rule file; - for stdin")
			f.Bool(&quiet, "redirection,r", "stdin is redirected: do not print the instructions for typing rules")
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				rs, err := readRules(ctx, e, file, quiet)
				if err != nil {
					return err
				}
				for i, r := range rs {
					if r.ID == "" {
						return fmt.Errorf("rules[%d]: no id: rule-update replaces rules named by their id (rule-create adds new ones)", i)
					}
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				if err := ctl.UpdateRules(ctx, rs); err != nil {
					return e.ctlErr("updating the rules", err)
				}
				fmt.Fprintln(e.stdout, requestCompleted)
				return nil
			}
		},
	}
}

// requestCompleted is what Amalgam8's rule-update and rule-delete print on success.
const requestCompleted = "Request Completed"

// readRules reads the rules of rule-create and rule-update from file, or stdin for "" and "-".
func readRules(ctx context.Context, e *env, file string, quiet bool) ([]api.Rule, error) {
	var data []byte
	name := file
	if file == "" || file == "-" {
		name = "stdin"
		if !quiet && isTerminal(e.stdin) {
			fmt.Fprint(e.stderr, "Enter the rules (JSON or YAML); end with Ctrl-D, or a line .json or .yaml:\n")
		}
		var err error
		if data, err = interruptible(ctx, func() ([]byte, error) { return readUntilTerminator(e.stdin) }); err != nil {
			return nil, fmt.Errorf("reading the rules from stdin: %w", err)
		}
	} else {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("reading the rules: %w", err)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if name == "stdin" {
			return nil, usagef("no rules on stdin: give a file with -f rules.yaml, or pipe the rules in")
		}
		return nil, fmt.Errorf("%s: the file is empty", name)
	}
	rs, err := parseRules(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("%s: no rules in the file", name)
	}
	return rs, nil
}

// parseRules reads {"rules": [...]} in JSON or YAML with rules.ParseFile, and, as Amalgam8's CLIs
// did, also a bare list of rules or a single rule.
func parseRules(data []byte) ([]api.Rule, error) {
	js, err := rules.ToJSON(data)
	if err != nil {
		return nil, err
	}
	var probe any
	if json.Unmarshal(js, &probe) == nil {
		switch v := probe.(type) {
		case []any:
			js = wrapRules(js, false)
		case map[string]any:
			if _, ok := v["rules"]; !ok {
				if _, ok := v["destination"]; ok {
					js = wrapRules(js, true)
				}
			}
		}
	}
	return rules.ParseFile(js)
}

func wrapRules(js []byte, single bool) []byte {
	if single {
		return []byte(`{"rules":[` + string(js) + `]}`)
	}
	return []byte(`{"rules":` + string(js) + `}`)
}

// readUntilTerminator reads r to its end or to a line ".json" or ".yaml" (Amalgam8's way to end
// typed rules).
func readUntilTerminator(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		switch strings.ToLower(strings.TrimSpace(line)) {
		case ".json", ".yaml", ".yml":
			return buf.Bytes(), nil
		}
		buf.WriteString(line)
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// interruptible runs read, which may block on stdin, and returns early with ctx's error when ctx
// ends (on Ctrl-C), leaving the read behind: the process is about to exit.
func interruptible[T any](ctx context.Context, read func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := read()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// isTerminal reports whether r is an interactive terminal. A character device is not enough:
// /dev/null is one too.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// filterFlags are the -i, -t and -d of rule-get, rule-delete and action-list.
type filterFlags struct {
	ids, tags, destinations []string
}

func (ff *filterFlags) register(f *cmdFlags, verb string) {
	f.List(&ff.ids, "id,i", "id", verb+" the rule with this id")
	f.List(&ff.tags, "tag,t", "tag", verb+" the rules with this tag (with several, rules with all of them)")
	f.List(&ff.destinations, "destination,d", "service", verb+" the rules of this destination")
}

func (ff *filterFlags) empty() bool {
	return len(ff.ids) == 0 && len(ff.tags) == 0 && len(ff.destinations) == 0
}

func (ff *filterFlags) filter() client.RuleFilter {
	return client.RuleFilter{IDs: ff.ids, Tags: ff.tags, Destinations: ff.destinations}
}

// ruleGetCommand is Amalgam8 1.x's rule-get: GET /v1/rules.
func ruleGetCommand() *command {
	return &command{
		name:    "rule-get",
		usage:   "(-a | [-i id]... [-t tag]... [-d destination]...) [-o yaml|json]",
		summary: "Print rules, all (-a) or those with the given ids, tags or destinations.",
		help: `Prints {"rules": [...]}, which rule-create -f and rule-update -f read back. Ids and
destinations select any of their values; tags select the rules with every tag given.`,
		group: groupRules,
		setup: func(f *cmdFlags) runFunc {
			var all bool
			var ff filterFlags
			var output string
			f.Bool(&all, "all,a", "print every rule")
			ff.register(f, "print")
			f.Output(&output, formatYAML, formatJSON)
			return func(ctx context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				filter := ff.filter()
				if all {
					filter = client.RuleFilter{}
				} else if ff.empty() {
					return usagef("which rules? give -a for all, or -i id, -t tag or -d destination")
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				list, _, err := ctl.GetRules(ctx, filter, nil)
				if err != nil {
					return e.ctlErr("getting the rules", err)
				}
				if list.Rules == nil {
					list.Rules = []api.Rule{}
				}
				return writeStructured(e.stdout, output, struct {
					Rules []api.Rule `json:"rules"`
				}{list.Rules})
			}
		},
	}
}

// ruleDeleteCommand is Amalgam8 1.x's rule-delete: DELETE /v1/rules.
func ruleDeleteCommand() *command {
	return &command{
		name:    "rule-delete",
		usage:   "(-a [-f] | [id]... [-i id]... [-t tag]... [-d destination]...)",
		summary: "Delete rules, all (-a, after a question unless -f) or those with the given ids, tags or destinations.",
		help:    "Ids may also be given as arguments, as the Python a8ctl took them: a8ctl rule-delete <id>... is -i <id>...",
		group:   groupRules,
		setup: func(f *cmdFlags) runFunc {
			var all, force bool
			var ff filterFlags
			f.Bool(&all, "all,a", "delete every rule of the tenant")
			f.Bool(&force, "force,f", "with -a: do not ask for confirmation")
			ff.register(f, "delete")
			return func(ctx context.Context, e *env, args []string) error {
				for _, id := range args {
					if id == "" {
						return usagef("an empty rule id")
					}
				}
				ff.ids = append(ff.ids, args...) // the Python a8ctl's rule-delete <id>
				filter := ff.filter()
				switch {
				case all && !ff.empty():
					return usagef("-a deletes every rule: give it alone, or filter with -i, -t or -d")
				case all:
					filter = client.RuleFilter{}
					if !force {
						ok, err := confirm(ctx, e, "Do you really want to delete all rules?")
						if err != nil {
							return err
						}
						if !ok {
							fmt.Fprintln(e.stderr, "Nothing deleted.")
							return nil
						}
					}
				case ff.empty():
					return usagef("which rules? give -i id, -t tag or -d destination, or -a for all")
				}
				ctl, err := e.controller()
				if err != nil {
					return err
				}
				if err := ctl.DeleteRules(ctx, filter); err != nil {
					return e.ctlErr("deleting the rules", err)
				}
				fmt.Fprintln(e.stdout, requestCompleted)
				return nil
			}
		},
	}
}

// confirm asks a yes/no question on stderr and reads the answer from stdin. No answer at all
// (stdin at its end) is an error, so that a script without -f fails rather than doing nothing.
func confirm(ctx context.Context, e *env, question string) (bool, error) {
	fmt.Fprintf(e.stderr, "%s [y/N]: ", question)
	line, err := interruptible(ctx, func() (string, error) { return bufio.NewReader(e.stdin).ReadString('\n') })
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr)
		return false, err
	}
	if err != nil && (!errors.Is(err, io.EOF) || strings.TrimSpace(line) == "") {
		fmt.Fprintln(e.stderr)
		return false, errors.New("no answer on stdin, nothing deleted (add -f to delete without asking)")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true, nil
	}
	return false, nil
}
