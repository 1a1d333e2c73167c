package supervise

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanScript leaves three orphans behind (their parent exits at once, so they are re-parented to
// the nearest subreaper or to PID 1), then waits until every one of them has been reaped: a
// zombie still answers kill -0, so the loop only ends once the reaper has waited for it. It exits 5
// when all were reaped, 99 if one was still there after 10s.
const orphanScript = `
sh -c 'for n in 1 2 3; do sleep 0.1 & echo $!; done > "$1"' sh "$PIDS"
for gp in $(cat "$PIDS"); do
	i=0
	while kill -0 "$gp" 2>/dev/null; do
		i=$((i+1))
		if [ "$i" -gt 200 ]; then echo "orphan $gp was not reaped" >&2; exit 99; fi
		sleep 0.05
	done
done
exit 5
`

func TestShouldRunAsInit(t *testing.T) {
	tests := []struct {
		pid         int
		reaperChild string
		want        bool
	}{
		{1, "", true},
		{1, "0", true},
		{1, "1", false}, // already the reaper's child
		{2, "", false},
		{4242, "1", false},
	}
	for _, tt := range tests {
		if got := shouldRunAsInit(tt.pid, tt.reaperChild); got != tt.want {
			t.Errorf("shouldRunAsInit(%d, %q) = %v; want %v", tt.pid, tt.reaperChild, got, tt.want)
		}
	}
}

func TestRunAsInitNotPID1(t *testing.T) {
	if os.Getpid() == 1 {
		t.Skip("the test process is PID 1")
	}
	start := time.Now()
	if handled, code := RunAsInit(); handled || code != 0 {
		t.Fatalf("RunAsInit() = %v, %d; want false, 0 when not PID 1", handled, code)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("RunAsInit took %v; want it to return at once", d)
	}
}

// runInitHelper runs the test binary as a child subreaper that runs script under runInit, and
// returns the helper process (started) and its stdout.
func runInitHelper(t *testing.T, script string, env ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(helperEnviron(), append([]string{helperEnv + "=subreaper", helperScriptEnv + "=" + script}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the helper: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("helper stderr:\n%s", stderr.String())
		}
	})
	return cmd, &stdout
}

func waitHelper(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper failed: %v", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("helper did not finish within 15s")
	}
}

func TestRunInitReapsAndReturnsChildCode(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   string
	}{
		{"orphans are reaped", orphanScript, "code=5 zombies=0\n"},
		{"exit code", "exit 7", "code=7 zombies=0\n"},
		{"killed by a signal", "kill -KILL $$", "code=137 zombies=0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd, stdout := runInitHelper(t, tt.script, "PIDS="+tempPath(t, "pids"))
			waitHelper(t, cmd)
			if got := stdout.String(); got != tt.want {
				t.Errorf("helper reported %q; want %q", got, tt.want)
			}
		})
	}
}

func TestRunInitForwardsSignals(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		trap string
		want string
	}{
		{syscall.SIGTERM, "TERM", "code=42 zombies=0\n"},
		{syscall.SIGINT, "INT", "code=43 zombies=0\n"},
		{syscall.SIGHUP, "HUP", "code=44 zombies=0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.trap, func(t *testing.T) {
			t.Parallel()
			ready := tempPath(t, "ready")
			code := strings.TrimSuffix(strings.TrimPrefix(tt.want, "code="), " zombies=0\n")
			script := `trap "exit ` + code + `" ` + tt.trap + `; touch "$READY"; while :; do sleep 0.05; done`
			cmd, stdout := runInitHelper(t, script, "READY="+ready)
			waitFile(t, ready) // the trap is set, and runInit (which started the child) catches signals
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			waitHelper(t, cmd)
			if got := stdout.String(); got != tt.want {
				t.Errorf("helper reported %q; want %q", got, tt.want)
			}
		})
	}
}

// TestRunAsInitAsPID1 runs the helper as PID 1 of a new PID namespace (inside a new user namespace,
// so no privilege is needed where unprivileged user namespaces are allowed): RunAsInit must start
// the same binary again as its child with A8_REAPER_CHILD=1, reap the orphans that the child's
// script leaves (they are re-parented to PID 1) and exit with the child's code.
func TestRunAsInitAsPID1(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(helperEnviron(), helperEnv+"=pid1", helperScriptEnv+"="+orphanScript, "PIDS="+tempPath(t, "pids"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot create a PID namespace here (%v); runInit is covered by the subreaper tests", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("PID 1 helper did not finish within 15s; stderr:\n%s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 {
		t.Fatalf("PID 1 helper ended with %v; want exit code 5 (the child's)\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, w := range []string{" " + ReaperChildEnv + "=1\n", "reaper: code=5\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("PID 1 helper output %q does not contain %q", out, w)
		}
	}
	if !strings.HasPrefix(out, "child: pid=") || strings.HasPrefix(out, "child: pid=1 ") {
		t.Errorf("PID 1 helper output %q: want the child (not PID 1) to report first", out)
	}
}

// helperEnviron is the test's environment for a helper, telling a race-enabled helper not to
// sleep for a second before exiting (the race runtime's default atexit_sleep_ms).
func helperEnviron() []string {
	return append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
}
