package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
)

// Services that a8 did not register itself: an external service in a file catalog, and an app of a
// remote Eureka server (here another a8 registry, registered through its Eureka API). Both show in
// a8ctl service-list, are routed to by a gateway sidecar, by rules with their tags, and cannot be
// changed through a8's API. (The Kubernetes catalog is tested with client-go's fake clientset in
// internal/catalog/kubernetes and internal/sidecar: no API server runs here.)
func TestCatalogs_FileAndRemoteEureka(t *testing.T) {
	extPort, remotePort := freePort(t), freePort(t)
	startProcess(t, nil, helloBin, "--port", fmt.Sprint(extPort), "--version", "v1")
	startProcess(t, nil, helloBin, "--port", fmt.Sprint(remotePort), "--version", "v2")

	// The remote Eureka, with one app registered the way a Eureka client does.
	remote := startRegistry(t, nil)
	body := fmt.Sprintf(`{"instance": {"app": "REMOTE", "instanceId": "remote-1", "hostName": "localhost", "ipAddr": "127.0.0.1",
		"vipAddress": "remote", "status": "UP", "port": {"$": %d, "@enabled": "true"}, "metadata": {"amalgam8.tags": "version=v2"},
		"leaseInfo": {"durationInSecs": 600}, "dataCenterInfo": {"@class": "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", "name": "MyOwn"}}}`, remotePort)
	resp, err := http.Post(remote.URL+"/eureka/v2/apps/REMOTE", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("registering with the remote Eureka: %d", resp.StatusCode)
	}

	dir := t.TempDir()
	file := fmt.Sprintf(`{"instances": [{"service_name": "ext", "endpoint": {"type": "http", "value": "127.0.0.1:%d"}, "tags": ["version=v1"]}]}`, extPort)
	if err := os.WriteFile(filepath.Join(dir, "default.json"), []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	up := startA8(t, nil, "/health", "up", "--data_dir", t.TempDir(), "--fs_catalog", dir,
		"--eureka_url", remote.URL+"/eureka/v2", "--eureka_poll", "1s")
	d := &demoEnv{t: t, api: up.URL}
	waitFor(t, "both catalogs in service-list", func() bool {
		out, _, code := d.ctlCode("service-list")
		return code == 0 && strings.Contains(out, "ext") && strings.Contains(out, "remote")
	})
	out := d.ctl("service-list")
	for _, want := range []string{"version=v1(1)", "version=v2(1)"} {
		if !strings.Contains(out, want) {
			t.Fatalf("service-list lacks %s:\n%s", want, out)
		}
	}
	t.Logf("a8ctl service-list:\n%s", out)

	// A gateway routes to both, by rules on their tags.
	f := &fabric{t: t, up: up}
	gwPort := freePort(t)
	startProcess(t, nil, a8Bin, f.sidecarArgs("--proxy", "--service", "gateway", "--proxy_port", fmt.Sprint(gwPort))...)
	f.gateway = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	f.ctl = newController(t, up.URL)
	rule := func(dest, version string) api.Rule {
		return api.Rule{ID: dest + "-route", Destination: dest, Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=" + version}}}}}
	}
	if _, err := f.ctl.CreateRules(context.Background(), []api.Rule{rule("ext", "v1"), rule("remote", "v2")}); err != nil {
		t.Fatal(err)
	}
	for dest, want := range map[string]string{"ext": "version=v1", "remote": "version=v2"} {
		waitFor(t, "the gateway to route to "+dest, func() bool {
			req, _ := http.NewRequest("GET", f.gateway+"/"+dest+"/hello", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			buf := make([]byte, 256)
			n, _ := resp.Body.Read(buf)
			return resp.StatusCode == 200 && strings.Contains(string(buf[:n]), "Hello version: "+want)
		})
	}

	// Catalog instances belong to their catalog: a8's API refuses to change them, and says why.
	reg := newClient(t, up.URL, "")
	insts, _, err := reg.Service(context.Background(), "ext", nil)
	if err != nil || len(insts) != 1 {
		t.Fatalf("ext through a8's API: %+v, %v", insts, err)
	}
	if err := reg.Deregister(context.Background(), insts[0].ID); !isStatusClient(err, 409) || !strings.Contains(err.Error(), "file") {
		t.Fatalf("deregistering a file catalog instance: %v", err)
	}
}
