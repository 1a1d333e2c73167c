package supervise

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestCommandValidate(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		want []string // substrings of the error; nil means valid
	}{
		{"default on_exit", Command{Cmd: []string{"app"}}, nil},
		{"terminate", Command{Cmd: []string{"app", "-x"}, OnExit: OnExitTerminate, Env: []string{"A=1", "B="}}, nil},
		{"ignore with kill_group", Command{Cmd: []string{"app"}, OnExit: OnExitIgnore, KillGroup: true}, nil},
		{"nil cmd", Command{}, []string{"cmd is empty", "list the program"}},
		{"empty cmd", Command{Cmd: []string{}}, []string{"cmd is empty"}},
		{"empty program", Command{Cmd: []string{"", "arg"}}, []string{"empty program name"}},
		{"env without =", Command{Cmd: []string{"app"}, Env: []string{"NOEQUALS"}}, []string{`"NOEQUALS"`, "KEY=VALUE"}},
		{"env without key", Command{Cmd: []string{"app"}, Env: []string{"=v"}}, []string{`"=v"`, "KEY=VALUE"}},
		{"unknown on_exit", Command{Cmd: []string{"app"}, OnExit: "restart"}, []string{`"restart"`, `"terminate"`, `"ignore"`}},
		{"on_exit is case sensitive", Command{Cmd: []string{"app"}, OnExit: "Ignore"}, []string{`"Ignore"`, "not allowed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cmd.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v; want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil; want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q; want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestNewValidatesEveryCommand(t *testing.T) {
	_, err := New([]Command{{Cmd: []string{"app"}}, {Cmd: []string{"other"}, OnExit: "sometimes"}}, Options{})
	if err == nil {
		t.Fatal("New accepted an invalid command")
	}
	for _, w := range []string{"command 2 of 2", `"sometimes"`, `["other"]`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("New error %q does not contain %q", err, w)
		}
	}
}

func TestEnvIsAppendedAndOutputCopied(t *testing.T) {
	t.Setenv("A8_SUPERVISE_PARENT", "from-parent")
	t.Setenv("A8_SUPERVISE_OVERRIDDEN", "parent-value")
	outFile, err := os.Create(tempPath(t, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	tests := []struct {
		name   string
		stdout io.Writer // a file is handed to the process; anything else goes through a pipe
		read   func() string
	}{
		{"pipe", new(syncBuffer), nil},
		{"file", outFile, func() string { b, _ := os.ReadFile(outFile.Name()); return string(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr := new(syncBuffer)
			s := startSup(t, []Command{{
				Cmd: sh(`echo "$A8_SUPERVISE_PARENT $A8_SUPERVISE_ADDED $A8_SUPERVISE_OVERRIDDEN"; echo oops >&2`),
				Env: []string{"A8_SUPERVISE_ADDED=added", "A8_SUPERVISE_OVERRIDDEN=child-value"},
			}}, Options{Stdout: tt.stdout, Stderr: stderr})
			if e := terminated(t, s); e.Code != 0 || e.Err != nil {
				t.Fatalf("exit = %+v; want code 0", e)
			}
			s.Stop(context.Background()) // returns once output has been copied
			read := tt.read
			if read == nil {
				read = tt.stdout.(*syncBuffer).String
			}
			if got, want := read(), "from-parent added child-value\n"; got != want {
				t.Errorf("stdout = %q; want %q", got, want)
			}
			if got := stderr.String(); got != "oops\n" {
				t.Errorf("stderr = %q; want %q", got, "oops\n")
			}
		})
	}
}

func TestTerminateDeliversExitCode(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   int
	}{
		{"success", "exit 0", 0},
		{"exit 7", "exit 7", 7},
		{"killed by SIGKILL", "kill -KILL $$", 137},
		{"killed by SIGTERM", "kill -TERM $$", 143},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSup(t, []Command{{Cmd: sh(tt.script)}}, Options{Stdout: io.Discard, Stderr: io.Discard})
			pid := s.Running()
			e := terminated(t, s)
			if e.Code != tt.want || e.Err != nil {
				t.Errorf("exit = code %d, err %v; want code %d", e.Code, e.Err, tt.want)
			}
			if e.Command.OnExit != OnExitTerminate {
				t.Errorf("exit command OnExit = %q; want the default %q filled in", e.Command.OnExit, OnExitTerminate)
			}
			if len(pid) == 1 && e.Pid != pid[0] {
				t.Errorf("exit pid = %d; want %d", e.Pid, pid[0])
			}
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed after the only process ended")
			}
			if r := s.Running(); len(r) != 0 {
				t.Errorf("Running() = %v after the process ended", r)
			}
		})
	}
}

func TestIgnoreIsNotDeliveredNorRestarted(t *testing.T) {
	runs := tempPath(t, "runs")
	logs := new(syncBuffer)
	ignore := Command{Cmd: sh(`echo $$ >> "$RUNS"; exit 3`), Env: []string{"RUNS=" + runs}, OnExit: OnExitIgnore}
	keep := Command{Cmd: []string{"sleep", "30"}} // terminate, keeps running

	s := startSup(t, []Command{ignore, keep}, Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Stdout: io.Discard, Stderr: io.Discard,
	})
	waitFor(t, 5*time.Second, "the ignore process to end", func() bool { return len(s.Exits()) == 1 })
	if e := s.Exits()[0]; e.Code != 3 || e.Command.OnExit != OnExitIgnore {
		t.Fatalf("first exit = %+v; want the ignore command with code 3", e)
	}
	// A restart, if there were one, would happen right away: give it a moment to show up.
	time.Sleep(300 * time.Millisecond)
	select {
	case e := <-s.Terminated():
		t.Fatalf("Terminated delivered %+v for an ignore process", e)
	default:
	}
	if pids := readPidFile(t, runs); len(pids) != 1 {
		t.Errorf("the ignore command ran %d times (pids %v); want once, no restart", len(pids), pids)
	}
	if r := s.Running(); len(r) != 1 {
		t.Errorf("Running() = %v; want only the sleep", r)
	}
	if !strings.Contains(logs.String(), "not restarted") {
		t.Errorf("the ignore exit was not logged as not restarted; logs:\n%s", logs)
	}

	// Stopping ends the terminate process, which is then delivered (143: SIGTERM).
	s.Stop(context.Background())
	if e := terminated(t, s); e.Code != 143 || e.Command.Cmd[0] != "sleep" {
		t.Errorf("after Stop, Terminated delivered %+v; want the sleep with code 143", e)
	}
}

func TestOnlyIgnoreCommands(t *testing.T) {
	s := startSup(t, []Command{
		{Cmd: sh("exit 0"), OnExit: OnExitIgnore},
		{Cmd: sh("exit 1"), OnExit: OnExitIgnore},
	}, Options{})
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after every process ended")
	}
	select {
	case e := <-s.Terminated():
		t.Fatalf("Terminated delivered %+v though every command is ignore", e)
	default:
	}
	if n := len(s.Exits()); n != 2 {
		t.Errorf("%d exits recorded; want 2", n)
	}
}

func TestFirstTerminateWins(t *testing.T) {
	s := startSup(t, []Command{
		{Cmd: sh("exit 4")},
		{Cmd: sh(`sleep 0.2; exit 9`)},
	}, Options{})
	if e := terminated(t, s); e.Code != 4 {
		t.Fatalf("Terminated delivered code %d; want 4 (the first to end)", e.Code)
	}
	<-s.Done()
	select {
	case e := <-s.Terminated():
		t.Fatalf("Terminated delivered a second exit: %+v", e)
	default:
	}
}

func TestSignalReachesProcess(t *testing.T) {
	tests := []struct {
		sig  syscall.Signal
		trap string
		want int
	}{
		{syscall.SIGTERM, "TERM", 42},
		{syscall.SIGUSR1, "USR1", 43},
		{syscall.SIGUSR2, "USR2", 44},
	}
	for _, tt := range tests {
		t.Run(tt.trap, func(t *testing.T) {
			t.Parallel()
			ready := tempPath(t, "ready")
			script := `trap "exit ` + strconv.Itoa(tt.want) + `" ` + tt.trap + `; touch "$READY"; while :; do sleep 0.05; done`
			s := startSup(t, []Command{{Cmd: sh(script), Env: []string{"READY=" + ready}}}, Options{})
			waitFile(t, ready)
			s.Signal(tt.sig)
			if e := terminated(t, s); e.Code != tt.want {
				t.Errorf("after Signal(%v) the process exited %d; want %d (its trap)", tt.sig, e.Code, tt.want)
			}
		})
	}
}

func TestKillGroup(t *testing.T) {
	tests := []struct {
		killGroup       bool
		grandchildAlive bool // after Signal(SIGTERM) ended the process
	}{
		{killGroup: true, grandchildAlive: false},
		{killGroup: false, grandchildAlive: true},
	}
	for _, tt := range tests {
		t.Run("kill_group="+map[bool]string{true: "true", false: "false"}[tt.killGroup], func(t *testing.T) {
			t.Parallel()
			gpFile := tempPath(t, "grandchild")
			// The grandchild holds the output pipe too: Stop must still return.
			s := startSup(t, []Command{{
				Cmd:       sh(`sleep 30 & echo $! > "$GP.tmp" && mv "$GP.tmp" "$GP"; wait`),
				Env:       []string{"GP=" + gpFile},
				KillGroup: tt.killGroup,
			}}, Options{Stdout: io.Discard, Stderr: io.Discard})
			gp := readPidFile(t, gpFile)[0]
			t.Cleanup(func() { killIfFailed(t, gp) })
			s.Signal(syscall.SIGTERM)
			if e := terminated(t, s); e.Code != 143 {
				t.Fatalf("the process exited %d; want 143 (SIGTERM)", e.Code)
			}
			if tt.grandchildAlive {
				if !alive(gp) {
					t.Fatal("the grandchild got the signal although KillGroup is false")
				}
			} else {
				waitFor(t, 5*time.Second, "the grandchild to get SIGTERM", func() bool { return !alive(gp) })
			}
			// Stop kills whatever is left of the group.
			start := time.Now()
			s.Stop(context.Background())
			if !tt.grandchildAlive {
				return
			}
			waitFor(t, 5*time.Second, "Stop to kill the leftover grandchild", func() bool { return !alive(gp) })
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Stop took %v with only a leftover group member", d)
			}
		})
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	for _, killGroup := range []bool{false, true} {
		t.Run("kill_group="+map[bool]string{true: "true", false: "false"}[killGroup], func(t *testing.T) {
			t.Parallel()
			ready, gpFile := tempPath(t, "ready"), tempPath(t, "grandchild")
			// Both the process and its grandchild ignore SIGTERM.
			s := startSup(t, []Command{{
				Cmd:       sh(`trap "" TERM; sleep 30 & echo $! > "$GP"; touch "$READY"; while :; do sleep 0.05; done`),
				Env:       []string{"READY=" + ready, "GP=" + gpFile},
				KillGroup: killGroup,
			}}, Options{Grace: grace})
			waitFile(t, ready)
			gp := readPidFile(t, gpFile)[0]
			t.Cleanup(func() { killIfFailed(t, gp) })

			start := time.Now()
			s.Stop(context.Background())
			d := time.Since(start)
			if d < grace || d > grace+2*time.Second {
				t.Errorf("Stop took %v; want a little over the %v grace", d, grace)
			}
			if e := terminated(t, s); e.Code != 137 {
				t.Errorf("the process exited %d; want 137 (SIGKILL after the grace)", e.Code)
			}
			if r := s.Running(); len(r) != 0 {
				t.Errorf("Running() = %v after Stop", r)
			}
			waitFor(t, 5*time.Second, "the grandchild to be killed with its group", func() bool { return !alive(gp) })

			// Idempotent: later calls, concurrent ones included, return at once.
			start = time.Now()
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() { s.Stop(context.Background()) })
			}
			wg.Wait()
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("repeated Stop took %v", d)
			}
		})
	}
}

func TestStopWaitTime(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		script  string
		ctx     context.Context
		want    int
		maxTime time.Duration
	}{
		// Dies on SIGTERM: no need to wait for the (long) grace.
		{"exits on SIGTERM", `touch "$READY"; exec sleep 30`, context.Background(), 143, 2 * time.Second},
		// Ignores SIGTERM, but the context ends the grace early.
		{"context done", `trap "" TERM; touch "$READY"; while :; do sleep 0.05; done`, canceled, 137, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ready := tempPath(t, "ready")
			s := startSup(t, []Command{{Cmd: sh(tt.script), Env: []string{"READY=" + ready}}}, Options{Grace: 30 * time.Second})
			waitFile(t, ready)
			start := time.Now()
			s.Stop(tt.ctx)
			if d := time.Since(start); d > tt.maxTime {
				t.Errorf("Stop took %v; want under %v", d, tt.maxTime)
			}
			if e := terminated(t, s); e.Code != tt.want {
				t.Errorf("exit code %d; want %d", e.Code, tt.want)
			}
		})
	}
}

func TestStopReturnsWhenDescendantKeepsOutputOpen(t *testing.T) {
	gpFile := tempPath(t, "escaped")
	// The grandchild leaves the process group (setsid) and keeps the stdout pipe open.
	s := startSup(t, []Command{{
		Cmd: sh(`setsid sleep 30 & echo $! > "$GP.tmp" && mv "$GP.tmp" "$GP"; echo bye`),
		Env: []string{"GP=" + gpFile},
	}}, Options{Stdout: io.Discard, Stderr: io.Discard})
	gp := readPidFile(t, gpFile)[0]
	t.Cleanup(func() { killIfFailed(t, gp) })
	// The exit is seen at once, not when the pipe closes.
	if e := terminated(t, s); e.Code != 0 {
		t.Fatalf("exit code %d; want 0", e.Code)
	}
	start := time.Now()
	s.Stop(context.Background())
	if d := time.Since(start); d > outputDrain+2*time.Second {
		t.Errorf("Stop took %v; want about the %v output drain", d, outputDrain)
	}
}

func TestStartFailure(t *testing.T) {
	tests := []struct {
		name    string
		program string
		is      error
	}{
		{"not on PATH", "a8-no-such-program", exec.ErrNotFound},
		{"no such file", "/nonexistent/a8-no-such-program", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := New([]Command{
				{Cmd: []string{"sleep", "30"}},
				{Cmd: []string{tt.program, "--flag"}},
				{Cmd: []string{"sleep", "30"}},
			}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Start()
			if err == nil {
				s.Stop(context.Background())
				t.Fatal("Start succeeded with a program that does not exist")
			}
			for _, w := range []string{tt.program, "command 2 of 3", "PATH"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Start error %q does not contain %q", err, w)
				}
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("Start error %v does not wrap %v", err, tt.is)
			}
			if r := s.Running(); len(r) != 0 {
				t.Errorf("Running() = %v after a failed Start", r)
			}
			exits := s.Exits()
			if len(exits) != 1 {
				t.Fatalf("exits = %+v; want the first sleep only (the third was never started)", exits)
			}
			if alive(exits[0].Pid) {
				t.Errorf("the first command (pid %d) is still running after a failed Start", exits[0].Pid)
			}
			select {
			case <-s.Done():
			default:
				t.Error("Done not closed after a failed Start")
			}
			if err := s.Start(); err == nil {
				t.Error("a second Start succeeded")
			}
		})
	}
}

func TestStartOnceAndNotAfterStop(t *testing.T) {
	s := startSup(t, []Command{{Cmd: sh("exit 0")}}, Options{})
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Start = %v; want an 'already called' error", err)
	}

	s2, err := New([]Command{{Cmd: []string{"sleep", "30"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2.Stop(context.Background())
	<-s2.Done()
	if err := s2.Start(); err == nil || !strings.Contains(err.Error(), "after Stop") {
		t.Errorf("Start after Stop = %v; want an error", err)
	}
	if r := s2.Running(); len(r) != 0 {
		t.Errorf("Running() = %v", r)
	}
}

func TestNoCommands(t *testing.T) {
	s := startSup(t, nil, Options{})
	select {
	case <-s.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed with no commands")
	}
	s.Stop(context.Background())
}

// killIfFailed kills a grandchild a failed test may have left running. Only then: a passing test's
// grandchild is gone, and its pid may already belong to another process (pids are reused, and other
// packages' tests start processes meanwhile).
func killIfFailed(t *testing.T, pid int) {
	if t.Failed() && alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
