// Package cli implements a8ctl, a8's command-line client. It has the commands of both generations
// of Amalgam8's a8ctl with their flags and outputs: the 1.x Go CLI's rule-create, rule-update,
// rule-get, rule-delete, route-list, action-list, info and recipe-run, and the 0.x Python CLI's
// service-list, route-set, route-delete, action-add, action-clear and the gradual rollout
// traffic-start, traffic-step and traffic-abort.
//
// Main is the whole program; cmd/a8ctl only wires it to the process. The rules that route-set,
// action-add and traffic-* write are built by pure functions (routes.go, actions.go, traffic.go),
// and the tables by pure renderers (output.go), each with its own tests.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/flagenv"
	"github.com/a8fabric/a8/internal/version"
)

// Exit codes of Main.
const (
	// ExitOK is a success.
	ExitOK = 0
	// ExitFailure is an operation that failed: a server unreachable or refusing, a bad rule file,
	// a refused traffic transfer.
	ExitFailure = 1
	// ExitUsage is a command line a8ctl cannot run: an unknown command or flag, a missing argument.
	ExitUsage = 2
)

// envPrefix is the prefix of the environment variables of the global flags (A8_CONTROLLER_URL).
const envPrefix = "A8_"

// defaultURL is where `a8 up` serves both the registry and the controller.
const defaultURL = "http://localhost:8080"

// defaultTimeout bounds each request: the Go client's own bound, which a longer --timeout cannot
// lift.
const defaultTimeout = client.DefaultTimeout

// globals are the flags every command takes, before or after its name, and from the environment.
type globals struct {
	controllerURL   string
	controllerToken string
	registryURL     string
	registryToken   string
	namespace       string
	debug           bool
	timeout         time.Duration
	// ignored are the ignored flags of the older a8ctls that were set, by name.
	ignored map[string]bool
}

// globalFlagSet registers the global flags on a new flag set bound to g.
func globalFlagSet(g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("a8ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.controllerURL, "controller_url", defaultURL, "`URL` of the controller")
	fs.StringVar(&g.controllerToken, "controller_token", "", "bearer `token` for the controller")
	fs.StringVar(&g.registryURL, "registry_url", defaultURL, "`URL` of the registry")
	fs.StringVar(&g.registryToken, "registry_token", "", "bearer `token` for the registry")
	fs.StringVar(&g.namespace, "namespace", "", "the `tenant` to act for with the admin token (the A8-Namespace header)")
	fs.BoolVar(&g.debug, "debug", false, "show the HTTP requests and answers on stderr as they happen")
	fs.DurationVar(&g.timeout, "timeout", defaultTimeout, "how long to wait for each answer, such as 10s (at most 30s)")
	// Amalgam8 1.x's Gremlin flags (and A8_GREMLIN_URL, A8_GREMLIN_TOKEN): a8 serves resilience
	// recipes from the controller, so they are taken and ignored, with a note.
	for _, name := range gremlinFlags {
		fs.Var(&ignoredValue{g: g, name: name}, name, "ignored (Amalgam8 1.x's Gremlin service)")
	}
	return fs
}

// gremlinFlags are Amalgam8 1.x's global flags for its Gremlin service.
var gremlinFlags = []string{"gremlin_url", "gremlin_token"}

// pythonAliases are the Python a8ctl's names of the global flags, without environment variables
// of their own (the Python a8ctl's variables are A8_CONTROLLER_URL and so on, as here).
var pythonAliases = map[string]string{
	"a8-controller-url":   "controller_url",
	"a8-controller-token": "controller_token",
	"a8-registry-url":     "registry_url",
	"a8-registry-token":   "registry_token",
}

// pythonIgnored is the Python a8ctl's global flag a8 has no use for: a8 has no log server.
const pythonIgnored = "a8-log-server"

// addLegacyFlags adds to gfs, after the environment was read, the Python a8ctl's flag names: the
// aliases (sharing the values of the flags they stand for) and the ignored --a8-log-server.
func addLegacyFlags(gfs *flag.FlagSet, g *globals) {
	for alias, name := range pythonAliases {
		gfs.Var(gfs.Lookup(name).Value, alias, "the Python a8ctl's --"+name)
	}
	gfs.Var(&ignoredValue{g: g, name: pythonIgnored}, pythonIgnored, "ignored (the Python a8ctl's log server)")
}

// hiddenGlobal reports whether the help leaves out a global flag: the older a8ctls' names, which
// it mentions in one line.
func hiddenGlobal(name string) bool {
	_, alias := pythonAliases[name]
	return alias || name == pythonIgnored || name == "gremlin_url" || name == "gremlin_token"
}

// ignoredValue is a flag that is accepted and ignored; being set is remembered for the note.
type ignoredValue struct {
	g    *globals
	name string
}

func (v *ignoredValue) Set(string) error {
	if v.g.ignored == nil {
		v.g.ignored = map[string]bool{}
	}
	v.g.ignored[v.name] = true
	return nil
}

func (v *ignoredValue) String() string { return "" }

// noteIgnored writes one line naming the ignored flags that were set.
func noteIgnored(w io.Writer, g *globals) {
	if len(g.ignored) == 0 {
		return
	}
	var names []string
	for n := range g.ignored {
		if n == pythonIgnored {
			names = append(names, "--"+n)
		} else {
			names = append(names, fmt.Sprintf("--%s (%s)", n, flagenv.EnvName(envPrefix, n)))
		}
	}
	sort.Strings(names)
	fmt.Fprintf(w, "a8ctl: note: %s ignored: a8 serves resilience recipes from its controller, without a Gremlin service or log server\n", strings.Join(names, ", "))
}

// shareGlobals makes the flags of src (the global flags) also flags of dst, with the same values.
func shareGlobals(src, dst *flag.FlagSet) {
	src.VisitAll(func(f *flag.Flag) { dst.Var(f.Value, f.Name, f.Usage) })
}

// env is what a command runs with: the settings, the standard streams and the HTTP client.
type env struct {
	g      *globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	hc     *http.Client
}

// runFunc runs a command with its positional arguments, its flags already parsed.
type runFunc func(ctx context.Context, e *env, args []string) error

// command is one a8ctl command.
type command struct {
	name    string
	usage   string // the arguments and flags after the name, for the synopsis
	summary string // one line for the command list
	help    string // more, for `a8ctl help <name>`
	group   string
	// setup registers the command's flags and returns the function that runs it.
	setup func(f *cmdFlags) runFunc
}

// Command groups, in the order the help lists them.
const (
	groupRules   = "Rules (Amalgam8 1.x)"
	groupRouting = "Routing and fault injection (Amalgam8 0.x)"
	groupRollout = "Gradual rollout (Amalgam8 0.x)"
	groupOther   = "Other"
)

var groups = []string{groupRules, groupRouting, groupRollout, groupOther}

// commands returns every command, by name.
func commands() map[string]*command {
	all := []*command{
		ruleCreateCommand(), ruleUpdateCommand(), ruleGetCommand(), ruleDeleteCommand(),
		routeListCommand(), actionListCommand(),
		serviceListCommand(), routeSetCommand(), routeDeleteCommand(), actionAddCommand(), actionClearCommand(),
		trafficStartCommand(), trafficStepCommand(), trafficAbortCommand(),
		infoCommand(), recipeRunCommand(), versionCommand(),
	}
	m := make(map[string]*command, len(all))
	for _, c := range all {
		m[c.name] = c
	}
	return m
}

// Main runs a8ctl with args (without the program name) and returns its exit code: ExitOK,
// ExitFailure or ExitUsage. Results go to stdout, errors and prompts to stderr; stdin is read for
// rules (rule-create and rule-update without -f, or with -f -) and for rule-delete -a's question.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{}
	gfs := globalFlagSet(g)
	// The environment first; the command line (before or after the command) then overrides it.
	if err := flagenv.Parse(gfs, nil, envPrefix); err != nil {
		fmt.Fprintf(stderr, "a8ctl: %v\n", err)
		return ExitUsage
	}
	addLegacyFlags(gfs, g)
	cmds := commands()

	top := flag.NewFlagSet("a8ctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	shareGlobals(gfs, top)
	showVersion := top.Bool("version", false, "print the version")
	err := top.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeUsage(stdout, cmds)
		return ExitOK
	case err != nil:
		fmt.Fprintf(stderr, "a8ctl: %v\nRun 'a8ctl help' for the commands and their flags.\n", err)
		return ExitUsage
	case *showVersion:
		fmt.Fprintln(stdout, "a8ctl", version.String())
		return ExitOK
	}
	rest := top.Args()
	if len(rest) == 0 {
		writeUsage(stderr, cmds)
		return ExitUsage
	}
	name := rest[0]
	if name == "help" {
		return runHelp(rest[1:], cmds, stdout, stderr)
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "a8ctl: unknown command %q%s\nRun 'a8ctl help' for the commands.\n", name, suggest(name, cmds))
		return ExitUsage
	}

	f := newCmdFlags(name)
	run := cmd.setup(f)
	shareGlobals(gfs, f.fs)
	pos, err := parseInterleaved(f.fs, rest[1:])
	if errors.Is(err, flag.ErrHelp) {
		writeCommandHelp(stdout, cmd, f, gfs)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "a8ctl %s: %v\nRun 'a8ctl %s --help' for its flags.\n", name, err, name)
		return ExitUsage
	}

	if g.timeout <= 0 {
		fmt.Fprintf(stderr, "a8ctl %s: --timeout must be more than 0, got %v\nRun 'a8ctl %s --help' for its flags.\n", name, g.timeout, name)
		return ExitUsage
	}
	noteIgnored(stderr, g)
	e := &env{g: g, stdin: stdin, stdout: stdout, stderr: stderr, hc: newHTTPClient(g.debug, stderr, g.timeout)}
	if err := run(ctx, e, pos); err != nil {
		return report(stderr, name, err)
	}
	return ExitOK
}

// parseInterleaved parses args into fs allowing positional arguments between flags
// (`route-set reviews --default v1`), and returns the positional arguments. After "--" everything
// is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// runHelp is `a8ctl help [command]`.
func runHelp(args []string, cmds map[string]*command, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeUsage(stdout, cmds)
		return ExitOK
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "a8ctl help: unknown command %q%s\n", args[0], suggest(args[0], cmds))
		return ExitUsage
	}
	f := newCmdFlags(cmd.name)
	cmd.setup(f)
	writeCommandHelp(stdout, cmd, f, globalFlagSet(&globals{}))
	return ExitOK
}

// suggest names a command close to a mistyped one, if there is one.
func suggest(name string, cmds map[string]*command) string {
	var best string
	for n := range cmds {
		if strings.Contains(n, name) || strings.Contains(name, n) || editDistance(n, name) <= 2 {
			if best == "" || n < best {
				best = n
			}
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

const intro = `a8ctl is the command-line client of a8, an Amalgam8-compatible microservice routing fabric.

Usage:
  a8ctl [global flags] <command> [flags] [arguments]
`

// writeUsage writes the list of commands and the global flags.
func writeUsage(w io.Writer, cmds map[string]*command) {
	fmt.Fprint(w, intro)
	for _, grp := range groups {
		var names []string
		for n, c := range cmds {
			if c.group == grp {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(w, "\n%s:\n", grp)
		for _, n := range names {
			fmt.Fprintf(w, "  %-15s %s\n", n, cmds[n].summary)
		}
	}
	fmt.Fprintln(w)
	writeGlobalFlags(w, globalFlagSet(&globals{}))
	fmt.Fprint(w, "\nRun 'a8ctl help <command>' or 'a8ctl <command> --help' for a command's flags.\n")
}

// writeCommandHelp writes a command's synopsis, description and flags.
func writeCommandHelp(w io.Writer, cmd *command, f *cmdFlags, gfs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: a8ctl %s", cmd.name)
	if cmd.usage != "" {
		fmt.Fprintf(w, " %s", cmd.usage)
	}
	fmt.Fprintf(w, "\n\n%s\n", cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(cmd.help, "\n"))
	}
	if len(f.specs) > 0 {
		fmt.Fprint(w, "\nFlags:\n")
		for _, s := range f.specs {
			fmt.Fprintf(w, "  %s\n      %s", s.synopsis(), s.usage)
			if s.def != "" {
				fmt.Fprintf(w, " (default %s)", s.def)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w)
	writeGlobalFlags(w, gfs)
}

// writeGlobalFlags lists the global flags with their environment variables and defaults (never
// the current values: they may be tokens).
func writeGlobalFlags(w io.Writer, gfs *flag.FlagSet) {
	fmt.Fprint(w, "Global flags (before or after the command; each also read from the environment variable shown):\n")
	defaults := globalFlagSet(&globals{})
	gfs.VisitAll(func(fl *flag.Flag) {
		if hiddenGlobal(fl.Name) {
			return
		}
		arg, usage := flag.UnquoteUsage(fl)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s  [%s]\n      %s", fl.Name, arg, flagenv.EnvName(envPrefix, fl.Name), usage)
		if d := defaults.Lookup(fl.Name).DefValue; d != "" && d != "false" {
			fmt.Fprintf(w, " (default %s)", d)
		}
		fmt.Fprintln(w)
	})
	fmt.Fprint(w, "\nThe Python a8ctl's --a8-controller-url, --a8-controller-token, --a8-registry-url and\n"+
		"--a8-registry-token are also taken; its --a8-log-server and Amalgam8 1.x's --gremlin_url and\n"+
		"--gremlin_token (A8_GREMLIN_URL, A8_GREMLIN_TOKEN) are taken and ignored.\n")
}

// versionCommand is `a8ctl version`.
func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "Print a8ctl's version.",
		group:   groupOther,
		setup: func(f *cmdFlags) runFunc {
			return func(_ context.Context, e *env, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "a8ctl", version.String())
				return nil
			}
		},
	}
}
