package supervise

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv tells the test binary to act as a helper process instead of running the tests (the
// standard re-exec pattern): the reaper must wait for every child of its process, which the test
// process itself cannot afford to do.
const (
	helperEnv       = "A8_SUPERVISE_TEST_HELPER"
	helperScriptEnv = "A8_SUPERVISE_TEST_SCRIPT"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// runHelper is the helper process's main.
//
//   - "subreaper": become a child subreaper, run the script in A8_SUPERVISE_TEST_SCRIPT under
//     runInit, then print "code=<child's code> zombies=<zombie children left>".
//   - "pid1": call RunAsInit (the test starts this helper as PID 1 of a new PID namespace). The
//     reaper prints "reaper: code=<code>" and exits with it; its child (the same binary, with
//     A8_REAPER_CHILD=1) prints "child: pid=<pid>" and runs the script, exiting with its code.
func runHelper(mode string) int {
	script := os.Getenv(helperScriptEnv)
	switch mode {
	case "subreaper":
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			fmt.Fprintf(os.Stderr, "helper: prctl(PR_SET_CHILD_SUBREAPER): %v\n", errno)
			return 100
		}
		child := exec.Command("/bin/sh", "-c", script)
		child.Stdout, child.Stderr = os.Stderr, os.Stderr
		code, err := runInit(child)
		if err != nil {
			fmt.Fprintf(os.Stderr, "helper: runInit: %v\n", err)
			return 101
		}
		fmt.Printf("code=%d zombies=%d\n", code, len(zombieChildren(os.Getpid())))
		return 0
	case "pid1":
		if handled, code := RunAsInit(); handled {
			fmt.Printf("reaper: code=%d\n", code)
			return code
		}
		fmt.Printf("child: pid=%d %s=%s\n", os.Getpid(), ReaperChildEnv, os.Getenv(ReaperChildEnv))
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			fmt.Fprintf(os.Stderr, "helper: %v\n", err)
			return 102
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "helper: unknown mode %q\n", mode)
		return 103
	}
}

// procStat returns the state letter and parent pid of pid from /proc, or ok=false if there is no
// such process.
func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // comm may hold spaces and parentheses
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid, true
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// zombieChildren lists the zombies whose parent is ppid.
func zombieChildren(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var z []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pp, ok := procStat(pid); ok && pp == ppid && state == "Z" {
			z = append(z, pid)
		}
	}
	return z
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readPidFile waits for path to hold one pid per line and returns them.
func readPidFile(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	waitFor(t, 5*time.Second, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			if err != nil {
				return false
			}
			pids = append(pids, n)
		}
		return len(pids) > 0
	})
	return pids
}

// waitFile waits for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	waitFor(t, 5*time.Second, "file "+path, func() bool {
		_, err := os.Stat(path)
		return err == nil
	})
}

// startSup creates and starts a Supervisor and stops it when the test ends.
func startSup(t *testing.T, cmds []Command, opts Options) *Supervisor {
	t.Helper()
	s, err := New(cmds, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// terminated waits for the Supervisor's Terminated delivery.
func terminated(t *testing.T, s *Supervisor) Exit {
	t.Helper()
	select {
	case e := <-s.Terminated():
		return e
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing delivered on Terminated within 10s; running: %v", s.Running())
		return Exit{}
	}
}

// sh is a command running script with /bin/sh.
func sh(script string) []string { return []string{"/bin/sh", "-c", script} }

// tempPath is a path in the test's temporary directory.
func tempPath(t *testing.T, name string) string { return filepath.Join(t.TempDir(), name) }

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
