package e2e

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// a8-sidecar is `a8 sidecar` alone: the same flags route a call by a static table, and a bad
// configuration is refused with the same message and exit status.
func TestSidecarBinary(t *testing.T) {
	appPort := freePort(t)
	startProcess(t, nil, helloBin, "--port", fmt.Sprint(appPort), "--version", "v2")
	routes := filepath.Join(t.TempDir(), "routes.yaml")
	if err := os.WriteFile(routes, []byte(fmt.Sprintf(`instances:
- {service_name: helloworld, endpoint: {type: http, value: "127.0.0.1:%d"}, tags: [version=v2]}
rules:
- {destination: helloworld, route: {backends: [{tags: [version=v2]}]}}
`, appPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	proxyPort, adminPort := freePort(t), freePort(t)
	startProcess(t, nil, sidecarBin, "--proxy", "--service", "caller", "--static_config", routes,
		"--proxy_address", "127.0.0.1", "--proxy_port", fmt.Sprint(proxyPort), "--admin_port", fmt.Sprint(adminPort), "--log_level", "warn")
	url := fmt.Sprintf("http://127.0.0.1:%d/helloworld/hello", proxyPort)
	var body string
	waitFor(t, "a8-sidecar to route to helloworld v2", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(body, "version=v2") {
		t.Fatalf("answer %q, want helloworld v2's", body)
	}

	out, err := exec.Command(sidecarBin, "--register").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--register needs the app's service") {
		t.Fatalf("a8-sidecar --register = %v, %q; want exit status 2 and what is missing", err, out)
	}
}
