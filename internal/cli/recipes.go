package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/resilience"
)

// Defaults and bounds of recipe-run.
const (
	// defaultRecipeWait is how long, at most, the controller waits for the records of the test
	// requests before it evaluates the checks (Amalgam8 slept 5s instead).
	defaultRecipeWait = 30 * time.Second
	// recipeDeleteTimeout bounds the deletion of the recipe at the end of a run, which runs even
	// after Ctrl-C.
	recipeDeleteTimeout = 10 * time.Second
	// loadScriptWaitDelay is how long a8ctl waits, after the load script exited, for processes it
	// left behind to stop writing to the script's output.
	loadScriptWaitDelay = 2 * time.Second
	// loadScriptShell runs the load script, as Amalgam8's a8ctl did.
	loadScriptShell = "/bin/sh"
)

const recipeRunHelp = `The controller turns the topology (-t: the services, "name" or "name:tags", and who calls whom)
and the scenarios (-s: the gremlins, the faults to inject) into action rules tagged with the
recipe's id. They apply only to test requests, those whose header -H contains a match of the
regular expression -p ("*": any value), and have the sidecars record them. Then, with checks (-c):

  1. The load script (-r) runs with /bin/sh, its output on stderr, the recipe in its environment
     (A8_RECIPE_ID, A8_RECIPE_HEADER, A8_RECIPE_PATTERN). Without -r, a8ctl waits for Enter while
     you send the test requests; with -f it does not wait.
  2. The controller waits, at most -w, for the records of the test requests still in flight, and
     evaluates the checks on the records.
  3. The results are printed (table: Assertion | Source | Destination | Result | Error; json and
     yaml: the controller's {"results": [...]}), and the recipe is deleted, rules and records.

The files are JSON or YAML, as in examples/recipes; all of them are checked before anything is
sent. Progress goes to stderr, the results alone to stdout. a8ctl exits 0 when every check passed
and 1 when one failed, or when the run failed; a run that fails or is interrupted (Ctrl-C) after
the recipe started still deletes it. The recipe's id is printed as soon as the controller
created it; a Ctrl-C while it is being created waits for the controller's answer (at most
--timeout), so that the recipe is deleted, not left behind.

Without -c the recipe is left running, as Amalgam8's a8ctl left it: its faults apply to test
requests until you remove its rules with a8ctl rule-delete -t <recipe id>.`

// recipeRun holds recipe-run's flags.
type recipeRun struct {
	topology, scenarios, checks string
	script                      string
	header, pattern             string
	wait                        time.Duration
	force                       bool
	output                      string
}

// recipeRunCommand is Amalgam8 1.x's recipe-run: POST /api/v1/recipes, the test load, POST
// /api/v1/recipes/{id} with the checks, DELETE /api/v1/recipes/{id}.
func recipeRunCommand() *command {
	return &command{
		name:    "recipe-run",
		usage:   "-t topology -s scenarios [-c checks] [-r load-script] [-H header] [-p pattern] [-w wait] [-f] [-o table|json|yaml]",
		summary: "Run a Gremlin resilience recipe: inject faults into test requests, then check assertions on them.",
		help:    recipeRunHelp,
		group:   groupOther,
		setup: func(f *cmdFlags) runFunc {
			rr := &recipeRun{}
			f.String(&rr.topology, "topology,t", "", "file", `the application's topology, {"services": [...], "dependencies": {...}} (required)`)
			f.String(&rr.scenarios, "scenarios,s", "", "file", `the failure scenarios, {"gremlins": [...]} (required)`)
			f.String(&rr.checks, "checks,c", "", "file", `the assertions to check, {"checks": [...]}; without it the recipe is left running`)
			f.String(&rr.script, "run-load-script,r", "", "script", "a shell script that sends the test requests (instead of waiting for Enter)")
			f.String(&rr.header, "header,H", api.DefaultRecipeHeader, "header", "the HTTP header that marks test requests")
			f.String(&rr.pattern, "pattern,p", api.DefaultRecipeHeaderPattern, "pattern",
				"a regular expression the header's value must contain a match of; * for any value")
			f.Duration(&rr.wait, "wait,w", defaultRecipeWait, "duration",
				"the most time the controller waits for the test requests' records before checking (0: at once; at most 10m)")
			f.Bool(&rr.force, "force,f", "do not wait for Enter before checking (when there is no load script)")
			f.Output(&rr.output, formatTable, formatJSON, formatYAML)
			return rr.run
		},
	}
}

// run is recipe-run: it reads and checks the files, starts the recipe and, with checks, has the
// test load sent, checks the records, prints the results and deletes the recipe.
func (rr *recipeRun) run(ctx context.Context, e *env, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	var missing []string
	if rr.topology == "" {
		missing = append(missing, "-t topology")
	}
	if rr.scenarios == "" {
		missing = append(missing, "-s scenarios")
	}
	if len(missing) > 0 {
		return usagef("missing %s: a recipe needs its topology file (-t) and its scenarios file (-s), as in examples/recipes", strings.Join(missing, " and "))
	}
	if rr.wait < 0 {
		return usagef("-w must not be negative, got %v", rr.wait)
	}
	req, checks, nrules, err := rr.load()
	if err != nil {
		return err
	}
	ctl, err := e.controller()
	if err != nil {
		return err
	}
	// Ctrl-C does not cancel the creation: a recipe the controller created but whose id a8ctl never
	// read would go on faulting test requests, and nobody would know its id. The request is bounded
	// by --timeout; once it is answered, the id is printed at once, and an interrupted run deletes
	// the recipe.
	id, err := ctl.CreateRecipe(context.WithoutCancel(ctx), req)
	if err != nil {
		return e.ctlErr("starting the recipe", err)
	}
	rr.started(e, id, nrules, req)
	switch {
	case ctx.Err() != nil:
		// Interrupted while the recipe was created: it is deleted, with checks or without.
		err = ctx.Err()
	case checks == nil:
		// Amalgam8's a8ctl left a recipe without checks running; so does a8ctl.
		rr.leftRunning(e, id)
		return nil
	default:
		err = rr.test(ctx, e, id, checks.Checks)
	}
	if derr := deleteRecipe(ctx, e, ctl, id); derr != nil {
		if err == nil {
			return derr
		}
		fmt.Fprintf(e.stderr, "a8ctl recipe-run: %v\n", derr)
	}
	return err
}

// load reads the files and checks the recipe as the controller will, so that a mistake is
// reported, with its file and field path, before anything is sent. checks is nil without -c;
// rules is the number of rules the controller makes of the recipe (the same translation).
func (rr *recipeRun) load() (req api.RecipeRequest, checks *api.Checklist, rules int, err error) {
	topology, err := readRecipeFile("topology", rr.topology, resilience.DecodeTopology)
	if err != nil {
		return req, nil, 0, err
	}
	scenarios, err := readRecipeFile("scenarios", rr.scenarios, resilience.DecodeScenarios)
	if err != nil {
		return req, nil, 0, err
	}
	if rr.checks != "" {
		l, err := readRecipeFile("checks", rr.checks, resilience.DecodeChecklist)
		if err != nil {
			return req, nil, 0, err
		}
		checks = &l
	}
	if rr.script != "" {
		if fi, err := os.Stat(rr.script); err != nil {
			return req, nil, 0, fmt.Errorf("the load script (-r): %w", err)
		} else if fi.IsDir() {
			return req, nil, 0, fmt.Errorf("the load script (-r) %s is a directory: give a shell script", rr.script)
		}
	}
	req = api.RecipeRequest{Topology: topology, Scenarios: scenarios, Header: rr.header, HeaderPattern: rr.pattern}
	rs, err := resilience.Rules("check", req)
	if err != nil {
		return req, nil, 0, rr.recipeProblems(err)
	}
	return req, checks, len(rs), nil
}

// readRecipeFile reads one of recipe-run's files (what: "topology", "scenarios" or "checks") and
// decodes it; errors name the file and the field path.
func readRecipeFile[T any](what, file string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(file)
	if err != nil {
		return zero, fmt.Errorf("reading the %s: %w", what, err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return zero, fmt.Errorf("%s: the file is empty (expected the %s, in JSON or YAML)", file, what)
	}
	v, err := decode(data)
	if err != nil {
		var ve *resilience.ValidationError
		if errors.As(err, &ve) {
			return zero, fmt.Errorf("%s: invalid %s:%s", file, what, listProblems(ve.Problems, func(p resilience.Problem) string { return p.String() }))
		}
		return zero, fmt.Errorf("%s: %w", file, err)
	}
	return v, nil
}

// recipeProblems describes what resilience.Rules found wrong with the recipe as a whole, each
// problem under the file or flag it comes from. Problems of -H or -p alone are a usage error.
func (rr *recipeRun) recipeProblems(err error) error {
	var ve *resilience.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("the recipe would not run, nothing was sent: %w", err)
	}
	flagsOnly := true
	where := func(p resilience.Problem) string {
		if rest, ok := strings.CutPrefix(p.Path, "topology."); ok {
			flagsOnly = false
			return rr.topology + ": " + resilience.Problem{Path: rest, Reason: p.Reason}.String()
		}
		if rest, ok := strings.CutPrefix(p.Path, "scenarios."); ok {
			flagsOnly = false
			return rr.scenarios + ": " + resilience.Problem{Path: rest, Reason: p.Reason}.String()
		}
		switch p.Path {
		case "header":
			return "-H: " + p.Reason
		case "header_pattern":
			return "-p: " + p.Reason
		}
		flagsOnly = false
		return p.String()
	}
	msg := listProblems(ve.Problems, where)
	if flagsOnly {
		return usagef("invalid recipe, nothing was sent:%s", msg)
	}
	return fmt.Errorf("invalid recipe, nothing was sent:%s", msg)
}

// listProblems writes problems one a line, each indented on a new line.
func listProblems(ps []resilience.Problem, describe func(resilience.Problem) string) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %s", describe(p))
	}
	return b.String()
}

// started says, as soon as the controller answered the creation, that the recipe runs: its id,
// its number of rules (rules, from the translation load checked the recipe with, which the
// controller makes too), and its header and pattern with the controller's defaults. It needs no
// other request, so that a run interrupted or failing right after the creation has printed the
// id of the recipe it deletes (or, should the deletion fail, leaves behind).
func (rr *recipeRun) started(e *env, id string, rules int, req api.RecipeRequest) {
	req = req.WithDefaults()
	fmt.Fprintf(e.stderr, "Recipe %s started: %s tagged %s (header %s, pattern %s)\n",
		id, countOf(rules, "rule", "rules"), id, req.Header, req.HeaderPattern)
}

// leftRunning prints, for a recipe without checks, that it runs and how to end it: Amalgam8's
// words on stdout with -o table, the recipe's id as {"recipe_id"} with -o json or yaml.
func (rr *recipeRun) leftRunning(e *env, id string) {
	msg := fmt.Sprintf("Recipe created but not verified. No checks file provided.\n"+
		"Recipe %s is running: its faults apply to test requests until you remove its rules with a8ctl rule-delete -t %s\n", id, id)
	if rr.output == formatTable {
		io.WriteString(e.stdout, msg)
		return
	}
	io.WriteString(e.stderr, msg)
	writeStructured(e.stdout, rr.output, api.RecipeCreated{RecipeID: id})
}

// test runs the test of a started recipe: the load (script or Enter), the checks, the results.
// It fails when a check failed, after printing the results.
func (rr *recipeRun) test(ctx context.Context, e *env, id string, checks []api.Check) error {
	switch {
	case rr.script != "":
		if err := rr.runLoadScript(ctx, e, id); err != nil {
			return err
		}
	case !rr.force:
		if err := rr.waitForEnter(ctx, e); err != nil {
			return err
		}
	}
	results, err := rr.check(ctx, e, id, checks)
	if err != nil {
		return err
	}
	if results == nil {
		results = []api.CheckResult{}
	}
	if rr.output == formatTable {
		if _, err := io.WriteString(e.stdout, resilience.Summary(results)); err != nil {
			return fmt.Errorf("printing the results: %w", err)
		}
	} else if err := writeStructured(e.stdout, rr.output, api.CheckResults{Results: results}); err != nil {
		return fmt.Errorf("printing the results: %w", err)
	}
	failed := 0
	for _, r := range results {
		if !r.Passed() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %s failed", failed, countOf(len(results), "check", "checks"))
	}
	return nil
}

// runLoadScript runs the load script with /bin/sh, its output on stderr (stdout holds the results
// alone), the recipe in its environment. A script that fails stops the run.
func (rr *recipeRun) runLoadScript(ctx context.Context, e *env, id string) error {
	fmt.Fprintf(e.stderr, "Running the load script %s...\n", rr.script)
	cmd := exec.CommandContext(ctx, loadScriptShell, rr.script)
	cmd.Stdout, cmd.Stderr = e.stderr, e.stderr
	cmd.Env = append(os.Environ(),
		"A8_RECIPE_ID="+id, "A8_RECIPE_HEADER="+rr.header, "A8_RECIPE_PATTERN="+rr.pattern)
	cmd.WaitDelay = loadScriptWaitDelay
	err := cmd.Run()
	var xe *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("running the load script %s: %w", rr.script, ctx.Err())
	case errors.Is(err, exec.ErrWaitDelay):
		// The script succeeded but left processes that hold its output open: not a failure.
		fmt.Fprintf(e.stderr, "a8ctl recipe-run: note: the load script %s exited, leaving processes that still hold its output; their output is no longer shown\n", rr.script)
	case errors.As(err, &xe):
		return fmt.Errorf("the load script %s failed (%v), so the checks were not run: fix the script, or send the test requests yourself without -r", rr.script, xe)
	case err != nil:
		return fmt.Errorf("running the load script %s with %s: %w", rr.script, loadScriptShell, err)
	}
	return nil
}

// waitForEnter asks for the test requests and waits for Enter on stdin. Ctrl-C stops the wait; a
// stdin that ends without a line is an error, so that a script that forgot -f does not check a
// test that never ran.
func (rr *recipeRun) waitForEnter(ctx context.Context, e *env) error {
	fmt.Fprintf(e.stderr, "Inject test requests with HTTP header %s matching the pattern %s\n", rr.header, rr.pattern)
	fmt.Fprintln(e.stderr, "When done, press Enter key to continue to validation phase")
	line, err := interruptible(ctx, func() (string, error) { return bufio.NewReader(e.stdin).ReadString('\n') })
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for Enter: %w", ctx.Err())
	case errors.Is(err, io.EOF) && line != "":
		return nil // a last line without its newline
	case errors.Is(err, io.EOF):
		return errors.New("stdin ended before Enter was pressed, so the checks were not run: add -f to check without waiting for Enter, or -r to run a load script")
	case err != nil:
		return fmt.Errorf("waiting for Enter on stdin: %w", err)
	}
	return nil
}

// check has the controller wait, at most -w, for the records of the test requests and evaluate
// the checks on them. The call may take -w longer than others, and is allowed to.
func (rr *recipeRun) check(ctx context.Context, e *env, id string, checks []api.Check) ([]api.CheckResult, error) {
	wait := rr.wait
	if wait == 0 {
		fmt.Fprintln(e.stderr, "Checking the records of the test requests that have arrived (-w 0: not waiting for more)...")
		// The client sends no wait for 0, which the controller takes as its default (30s); the
		// least duration is "at once".
		wait = time.Nanosecond
	} else {
		fmt.Fprintf(e.stderr, "Waiting up to %v for the records of the test requests...\n", wait)
	}
	srv := e.controllerServer()
	srv.timeout = wait + e.g.requestTimeout()
	hc := *e.hc
	hc.Timeout = srv.timeout
	ctl, err := client.NewController(client.ControllerConfig{
		URL: e.g.controllerURL, Token: e.g.controllerToken, Namespace: e.g.namespace, HTTPClient: &hc,
	})
	if err != nil {
		return nil, usagef("%w (set --controller_url or A8_CONTROLLER_URL)", err)
	}
	results, err := ctl.CheckRecipe(ctx, id, checks, wait)
	if err != nil {
		return nil, &remoteError{srv: srv, doing: "checking recipe " + id, err: err}
	}
	return results, nil
}

// deleteRecipe ends the recipe: the controller deletes its rules and records. It runs even after
// Ctrl-C, within recipeDeleteTimeout; a failure says how to remove the rules by hand.
func deleteRecipe(ctx context.Context, e *env, ctl *client.Controller, id string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recipeDeleteTimeout)
	defer cancel()
	err := ctl.DeleteRecipe(dctx, id)
	var se *client.StatusError
	if errors.As(err, &se) && se.Code == http.StatusNotFound && se.ErrorID == errRecipeNotFound {
		err = nil // already gone: someone ended it, or it expired
	}
	if err != nil {
		srv := e.controllerServer()
		srv.timeout = min(srv.timeout, recipeDeleteTimeout)
		return fmt.Errorf("%w; its faults may still apply to test requests: remove its rules with a8ctl rule-delete -t %s",
			&remoteError{srv: srv, doing: "deleting recipe " + id, err: err}, id)
	}
	fmt.Fprintf(e.stderr, "Recipe %s deleted, with its rules and records\n", id)
	return nil
}

// errRecipeNotFound is the controller's error id for an unknown recipe.
const errRecipeNotFound = "error_recipe_not_found"

// countOf writes n things: "1 rule", "3 rules".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
