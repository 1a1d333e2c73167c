package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain runs main instead of the tests when the test binary is started as a8ctl by
// TestProcess, so that the exit codes are checked as a shell sees them.
func TestMain(m *testing.M) {
	if os.Getenv("A8CTL_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestProcess(t *testing.T) {
	hanging := hangingServer(t)
	tests := []struct {
		name      string
		args      []string
		env       []string
		code      int
		stdout    string // a prefix
		stderr    string // a substring
		notStderr string // not a substring
	}{
		{name: "version", args: []string{"version"}, stdout: "a8ctl "},
		{name: "help", args: []string{"help"}, stdout: "a8ctl is the command-line client of a8"},
		{name: "usage", args: nil, code: 2, stderr: "Usage:"},
		{name: "unknown command", args: []string{"nope"}, code: 2, stderr: `unknown command "nope"`},
		{name: "unreachable controller from the environment", args: []string{"rule-get", "-a"}, env: []string{"A8_CONTROLLER_URL=http://127.0.0.1:1"},
			code: 1, stderr: "cannot reach the controller at http://127.0.0.1:1"},
		{name: "info", args: []string{"info", "--controller_token", "secret"}, stdout: "+---", stderr: ""},
		// The child's stdin is /dev/null: a character device, but no terminal, so no prompt.
		{name: "rules from /dev/null", args: []string{"rule-create"}, code: 2, stderr: "no rules on stdin", notStderr: "Enter the rules"},
		{name: "a server that never answers", args: []string{"rule-get", "-a"}, env: []string{"A8_CONTROLLER_URL=" + hanging, "A8_TIMEOUT=300ms"},
			code: 1, stderr: "the controller at " + hanging + " did not answer in time (within 300ms"},
		{name: "Gremlin from the environment", args: []string{"version"}, env: []string{"A8_GREMLIN_URL=http://g:1", "A8_GREMLIN_TOKEN=t"},
			stdout: "a8ctl ", stderr: "ignored: a8 serves resilience recipes from its controller"},
		{name: "Gremlin flags", args: []string{"info", "--gremlin_url", "http://g:1"}, env: []string{"A8_GREMLIN_TOKEN=t"},
			stdout: "+---", stderr: "a8ctl: note: --gremlin_token (A8_GREMLIN_TOKEN), --gremlin_url (A8_GREMLIN_URL) ignored"},
		{name: "recipe-run without its files", args: []string{"recipe-run", "-c", "checks.json"}, code: 2, stderr: "missing -t topology and -s scenarios"},
		{name: "a dot-dot service", args: []string{"action-clear", ".."}, env: []string{"A8_CONTROLLER_URL=" + hanging}, code: 2, stderr: `".." is not a service name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			cmd.Env = append(append(cleanEnv(), "A8CTL_TEST_RUN_MAIN=1"), tt.env...)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.HasPrefix(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) ||
				(tt.notStderr != "" && strings.Contains(errb.String(), tt.notStderr)) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			if strings.Contains(out.String(), "secret") {
				t.Errorf("a token is shown:\n%s", out.String())
			}
		})
	}
}

// hangingServer accepts connections and never answers.
func hangingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(done)
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// cleanEnv is the environment without a8ctl's A8_ variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "A8_") {
			env = append(env, kv)
		}
	}
	return env
}
