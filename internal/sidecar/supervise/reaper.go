package supervise

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// ReaperChildEnv is the environment variable RunAsInit sets to "1" in the child it starts, so that
// the child, although it runs the same binary, does not act as the reaper again.
const ReaperChildEnv = "A8_REAPER_CHILD"

// reapSafetyInterval is how often the reaper reaps even without SIGCHLD, in case a SIGCHLD was
// dropped because the signal channel was full.
const reapSafetyInterval = time.Second

// RunAsInit makes the sidecar a proper init process when it runs as PID 1 (a container's first
// process): if the current process is PID 1 and the environment variable A8_REAPER_CHILD is not
// "1", it starts the same binary (os.Executable) with the same arguments and environment plus
// A8_REAPER_CHILD=1 as a child, forwards every signal it receives to that child (except SIGCHLD,
// which it uses itself, and SIGURG, which the Go runtime uses), reaps every zombie (orphans are
// re-parented to PID 1), and when the child exits returns (true, the child's exit code; 128+signal
// when it was killed by a signal) so that main can os.Exit with it. Otherwise it returns (false, 0)
// at once and main proceeds normally.
//
// Call it first thing in main, before anything starts child processes. If the child cannot be
// started, RunAsInit writes why to os.Stderr and returns (false, 0): the sidecar then runs as
// PID 1 itself, without reaping.
func RunAsInit() (handled bool, code int) {
	if !shouldRunAsInit(os.Getpid(), os.Getenv(ReaperChildEnv)) {
		return false, 0
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "a8: running as PID 1 without reaping zombies: cannot find the sidecar's own executable to start it as a child: %v\n", err)
		return false, 0
	}
	child := exec.Command(exe, os.Args[1:]...)
	if len(os.Args) > 0 {
		child.Args[0] = os.Args[0]
	}
	child.Env = append(os.Environ(), ReaperChildEnv+"=1")
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	code, err = runInit(child)
	if err != nil {
		fmt.Fprintf(os.Stderr, "a8: running as PID 1 without reaping zombies: %v\n", err)
		return false, 0
	}
	return true, code
}

// shouldRunAsInit is RunAsInit's decision: PID 1, and not already the reaper's child.
func shouldRunAsInit(pid int, reaperChild string) bool {
	return pid == 1 && reaperChild != "1"
}

// runInit starts child, forwards the signals this process receives to it, reaps every child of
// this process (the ones re-parented to it included) and returns child's exit code once child has
// exited. This process must be PID 1 or a child subreaper for orphans to reach it. Nothing else in
// the process may wait for children meanwhile: runInit reaps them all. child's standard streams
// must be nil or *os.File, because child is reaped directly rather than through exec.Cmd.Wait.
func runInit(child *exec.Cmd) (int, error) {
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs) // every signal, before the child exists, so none of its SIGCHLDs is missed
	defer signal.Stop(sigs)

	if err := child.Start(); err != nil {
		return 0, fmt.Errorf("starting %q as the reaper's child: %w", child.Path, err)
	}
	pid := child.Process.Pid
	safety := time.NewTicker(reapSafetyInterval)
	defer safety.Stop()
	for {
		if ws, ok := reapAll(pid); ok {
			_ = child.Process.Release()
			if ws.Signaled() {
				return 128 + int(ws.Signal()), nil
			}
			return ws.ExitStatus(), nil
		}
		select {
		case sig := <-sigs:
			if sig == syscall.SIGCHLD || sig == syscall.SIGURG {
				continue
			}
			_ = child.Process.Signal(sig) // fails only if the child is already gone
		case <-safety.C:
		}
	}
}

// reapAll waits for every child that has ended, without blocking, and reports the status of pid if
// it was among them.
func reapAll(pid int) (status syscall.WaitStatus, found bool) {
	for {
		var ws syscall.WaitStatus
		wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || wpid <= 0 { // ECHILD: no children at all; 0: none has ended
			return status, found
		}
		if wpid == pid {
			status, found = ws, true
		}
	}
}
