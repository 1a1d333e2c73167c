package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/client"
)

// eureka-js-client, the npm Eureka client, against a real a8 registry: it registers, heartbeats,
// fetches the whole registry then deltas (an instance registered through Eureka appearing and
// going, one registered through a8's own API appearing), and after the registry restarts empty it
// registers again on its heartbeat's 404. The instance it registered is visible through a8's API
// with the tags of its amalgam8.tags metadata.
//
// It needs node and the client installed in test/e2e/eurekajs (`make test` and .ci/run run npm
// ci there). A8_SKIP_NODE_TESTS=1 skips it knowingly.
func TestEureka_JSClient(t *testing.T) {
	if os.Getenv("A8_SKIP_NODE_TESTS") == "1" {
		t.Skip("A8_SKIP_NODE_TESTS=1")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: install nodejs and npm (apt-get install -y nodejs npm), or set A8_SKIP_NODE_TESTS=1 to skip this test")
	}
	dir, err := filepath.Abs("eurekajs")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "eureka-js-client")); err != nil {
		t.Fatalf("eureka-js-client is not installed: run `npm ci` in %s (make test does), or set A8_SKIP_NODE_TESTS=1", dir)
	}

	port := freePort(t)
	reg := startOnPort(t, nil, port, []string{"registry", "--min_ttl", "1s", "--reap_interval", "200ms"})
	reg.waitHealthy("/uptime")

	cmd := exec.Command(node, "flow.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var out []string
	deadline := time.After(3 * time.Minute)
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			if ok {
				out = append(out, l)
			}
			return l, ok
		case <-deadline:
			t.Fatalf("eureka-js-client flow timed out; it printed:\n%s", strings.Join(out, "\n"))
			return "", false
		}
	}
	for {
		l, ok := next()
		if !ok {
			t.Fatalf("flow.js ended before the restart step:\n%s", strings.Join(out, "\n"))
		}
		if strings.HasPrefix(l, "FAIL") {
			t.Fatalf("eureka-js-client: %s\n%s", l, strings.Join(out, "\n"))
		}
		if l == "ok: own instance in the full fetch" {
			// The Eureka registration is an a8 instance too, with its tags.
			rc := newClient(t, reg.URL, "")
			insts, _, err := rc.Service(context.Background(), "demo", nil)
			if err != nil || len(insts) != 1 || len(insts[0].Tags) != 1 || insts[0].Tags[0] != "version=v1" {
				t.Fatalf("the eureka-js-client instance through a8's API: %+v, %v", insts, err)
			}
		}
		if l == "RESTART" {
			break
		}
	}
	// Restart the registry empty, on the same port: the client's next heartbeat gets 404 and it
	// registers again.
	if err := reg.stop(); err != nil {
		t.Fatalf("stopping the registry: %v", err)
	}
	reg2 := startOnPort(t, nil, port, []string{"registry", "--min_ttl", "1s", "--reap_interval", "200ms"})
	reg2.waitHealthy("/uptime")
	if _, err := io.WriteString(stdin, "restarted\n"); err != nil {
		t.Fatal(err)
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		if strings.HasPrefix(l, "FAIL") {
			t.Fatalf("eureka-js-client: %s\n%s", l, strings.Join(out, "\n"))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("flow.js: %v\n%s", err, strings.Join(out, "\n"))
	}
	for _, want := range []string{
		"ok: own instance in the full fetch", "ok: OTHER added by a delta",
		"ok: an instance registered through a8's API added by a delta", "ok: OTHER deleted by a delta",
		"ok: own instance registered again after the restart", "ok: stopped (deregistered)",
	} {
		if !contains(out, want) {
			t.Fatalf("flow.js did not reach %q:\n%s", want, strings.Join(out, "\n"))
		}
	}
	t.Logf("eureka-js-client:\n%s", strings.Join(out, "\n"))
	// Stopping deregistered the instance.
	waitFor(t, "the stopped client's instance to go", func() bool {
		insts, _, err := newClient(t, reg2.URL, "").Service(context.Background(), "demo", nil)
		return err != nil && isStatusClient(err, 404) || err == nil && len(insts) == 0
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func isStatusClient(err error, code int) bool {
	se, ok := err.(*client.StatusError)
	return ok && se.Code == code
}
