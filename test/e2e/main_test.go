// Package e2e tests a8 as users run it: the real binaries, started as processes, talking over
// loopback to each other and to a real redis-server.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/netutil"
)

// a8Bin is the a8 binary, sidecarBin a8-sidecar, ctlBin a8ctl, and helloBin the helloworld example
// app, built once for the package.
var a8Bin, sidecarBin, ctlBin, helloBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "a8-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a8Bin, ctlBin, helloBin = filepath.Join(dir, "a8"), filepath.Join(dir, "a8ctl"), filepath.Join(dir, "helloworld")
	sidecarBin = filepath.Join(dir, "a8-sidecar")
	for bin, pkg := range map[string]string{a8Bin: "github.com/a8fabric/a8/cmd/a8", ctlBin: "github.com/a8fabric/a8/cmd/a8ctl",
		sidecarBin: "github.com/a8fabric/a8/cmd/a8-sidecar",
		helloBin:   "github.com/a8fabric/a8/examples/helloworld/cmd/helloworld"} {
		build := exec.Command("go", "build", "-race", "-o", bin, pkg)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running a8 process whose output is kept for failure reports.
type process struct {
	t      *testing.T
	cmd    *exec.Cmd
	out    *syncBuffer
	done   chan error
	URL    string
	port   int
	killed bool
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startRegistry starts "a8 registry" on a free port with args and env, and waits until it is healthy.
func startRegistry(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	return startA8(t, env, "/uptime", append([]string{"registry"}, args...)...)
}

// startA8 starts "a8 <args>" on a free port (--api_port is added) and waits until GET health
// answers 200.
func startA8(t *testing.T, env []string, health string, args ...string) *process {
	t.Helper()
	p := startA8NoWait(t, env, args)
	p.waitHealthy(health)
	return p
}

func (p *process) waitHealthy(health string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.URL + health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			p.t.Fatalf("a8 exited before it was ready: %v\n%s", err, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("a8 not ready after 30s:\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startRegistryWith starts "a8 registry" on a free port and returns at once.
func startRegistryWith(t *testing.T, env, args []string) *process {
	t.Helper()
	return startA8NoWait(t, env, append([]string{"registry"}, args...))
}

// startA8NoWait starts "a8 <args> --api_port <free>" and returns at once.
func startA8NoWait(t *testing.T, env, args []string) *process {
	t.Helper()
	return startOnPort(t, env, freePort(t), args)
}

// startOnPort starts "a8 <args> --api_port port".
func startOnPort(t *testing.T, env []string, port int, args []string) *process {
	t.Helper()
	cmd := exec.Command(a8Bin, append(append([]string{}, args...), "--api_port", fmt.Sprint(port))...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1), URL: fmt.Sprintf("http://127.0.0.1:%d", port), port: port}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil && !p.killed {
			t.Errorf("a8 %s: %v", args[0], err)
		}
		if t.Failed() {
			t.Logf("a8 %s output:\n%s", args[0], p.out.String())
		}
	})
	return p
}

// startProcess starts bin with args and env (no port added) and returns at once.
func startProcess(t *testing.T, env []string, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &process{t: t, cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	name := filepath.Base(bin) + " " + strings.Join(args, " ")
	t.Cleanup(func() {
		if err := p.stop(); err != nil && !p.killed {
			t.Errorf("%s: %v", name, err)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// kill ends the process with SIGKILL, as a crash would.
func (p *process) kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// stop sends SIGTERM and returns how the process exited; after 15s it kills it.
func (p *process) stop() error {
	select {
	case err := <-p.done: // already exited
		p.done <- err
		return err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("did not exit within 15s of SIGTERM (killed): %v", err)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
