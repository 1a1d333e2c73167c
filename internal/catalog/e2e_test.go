package catalog_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/eureka"
	"github.com/a8fabric/a8/internal/catalog/file"
	"github.com/a8fabric/a8/internal/catalog/kubernetes"
	"github.com/a8fabric/a8/internal/catalog/kubernetes/kubernetestest"
	"github.com/a8fabric/a8/internal/cli"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/sidecar"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/store/memory"
)

// backend is a service instance that answers with its name.
func backend(t *testing.T, name string) (ip string, port int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, name) }))
	t.Cleanup(srv.Close)
	host, p, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return host, n
}

func runCatalog(t *testing.T, c catalog.Catalog) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run = %v", c.Name(), err)
		}
	})
}

// The "done when": a Kubernetes service's pods, a remote Eureka's apps and a file's
// external services show up in a8ctl service-list and are routed to by a sidecar, by rules with
// their tags. Everything is real but the Kubernetes API server (client-go's fake clientset) and the
// remote Eureka (an httptest server answering Eureka's JSON).
func TestCatalogs_EndToEnd(t *testing.T) {
	ctx := context.Background()

	// Kubernetes: service reviews, pods with version labels.
	cs := fake.NewClientset()
	for _, v := range []string{"v1", "v2"} {
		ip, port := backend(t, "reviews-"+v)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reviews-" + v, Namespace: "default", UID: types.UID("uid-reviews-" + v),
			Labels: map[string]string{"app": "reviews", "version": v}}}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ready, name, p := true, "http", int32(port)
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "reviews-" + v, Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: "default", UID: pod.UID}}},
			Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p}},
		}
		if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, es, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	k8s, err := kubernetes.New(kubernetes.Config{Client: kubernetestest.Client(cs), Server: "fake"})
	if err != nil {
		t.Fatal(err)
	}

	// A remote Eureka: app RATINGS, tagged through amalgam8.tags.
	var insts []string
	for i, v := range []string{"v1", "v2"} {
		ip, port := backend(t, "ratings-"+v)
		insts = append(insts, fmt.Sprintf(`{"instanceId":"ratings-%d","hostName":"ratings-%d","app":"RATINGS","ipAddr":%q,"status":"UP",
			"port":{"$":%d,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"vipAddress":"ratings",
			"metadata":{"amalgam8.tags":"version=%s"}}`, i, i, ip, port, v))
	}
	remote := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"applications":{"versions__delta":"1","apps__hashcode":"UP_2_","application":[{"name":"RATINGS","instance":[%s]}]}}`, strings.Join(insts, ","))
	}))
	t.Cleanup(remote.Close)
	eu, err := eureka.New(eureka.Config{URLs: []string{remote.URL + "/eureka"}})
	if err != nil {
		t.Fatal(err)
	}

	// A file: an external service, two versions.
	dir := t.TempDir()
	var entries []string
	for _, v := range []string{"v1", "v2"} {
		ip, port := backend(t, "weather-"+v)
		entries = append(entries, fmt.Sprintf(`{"service_name": "weather", "endpoint": {"type": "http", "value": "%s:%d"}, "tags": ["version=%s", "external"]}`, ip, port, v))
	}
	if err := os.WriteFile(filepath.Join(dir, "default.json"), []byte(`{"instances": [`+strings.Join(entries, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fc, err := file.New(file.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}

	// The registry, on the merged store, and the controller, on one port (as a8 up).
	cats := []catalog.Catalog{k8s, eu, fc}
	for _, c := range cats {
		runCatalog(t, c)
	}
	merged := catalog.Merge(memory.NewInstances(nil), cats...)
	reg, err := registry.New(registry.Config{Store: merged, Catalogs: cats})
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := memory.NewRules("")
	ctl, err := controller.New(controller.Config{Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	reg.Mount(mux)
	ctl.Mount(mux)
	cp := httptest.NewServer(mux)
	t.Cleanup(func() { reg.Drain(); ctl.Drain(); cp.Close() })

	// a8ctl service-list shows the three services with their versions (a8ctl shows all tags).
	want := map[string][]string{
		"ratings": {"version=v1(1)", "version=v2(1)"},
		"reviews": {"app=reviews,version=v1(1)", "app=reviews,version=v2(1)"},
		"weather": {"version=v1,external(1)", "version=v2,external(1)"},
	}
	listed := func(out string) bool {
		for svc, versions := range want {
			found := false
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "| "+svc+" ") {
					found = true
					for _, v := range versions {
						found = found && strings.Contains(line, v)
					}
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		var out, errOut bytes.Buffer
		code := cli.Main(ctx, []string{"--registry_url", cp.URL, "service-list"}, strings.NewReader(""), &out, &errOut)
		if code == 0 && listed(out.String()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a8ctl service-list (%d):\n%s%s", code, out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The registry's Eureka API (it mounts it) lists them too.
	req, _ := http.NewRequest("GET", cp.URL+"/eureka/apps/", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	apps, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, app := range []string{`"REVIEWS"`, `"RATINGS"`, `"WEATHER"`} {
		if !strings.Contains(string(apps), app) {
			t.Fatalf("Eureka GET apps/ lacks %s: %s", app, apps)
		}
	}

	// Rules with the catalogs' tags route a sidecar's calls to the chosen versions.
	ctlClient, err := client.NewController(client.ControllerConfig{URL: cp.URL})
	if err != nil {
		t.Fatal(err)
	}
	rule := func(dest, tag string) api.Rule {
		return api.Rule{Destination: dest, Route: &api.Route{Backends: []api.Backend{{Tags: []string{tag}}}}}
	}
	if _, err := ctlClient.CreateRules(ctx, []api.Rule{rule("reviews", "version=v2"), rule("ratings", "version=v1"), rule("weather", "version=v2")}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Proxy, cfg.Service = true, config.Service{Name: "gateway"}
	cfg.Registry.URL, cfg.Controller.URL = cp.URL, cp.URL
	cfg.Registry.Poll, cfg.Controller.Poll = time.Second, time.Second
	cfg.ProxyConfig.HTTPListenerPort, cfg.ProxyConfig.AdminPort, cfg.ProxyConfig.ListenAddress = 0, 0, "127.0.0.1"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	scDone := make(chan struct{})
	go func() {
		defer close(scDone)
		if _, err := sc.Run(ctx); err != nil {
			t.Errorf("sidecar: %v", err)
		}
	}()
	t.Cleanup(func() { sc.Stop(nil); <-scDone })

	call := func(path string) string {
		resp, err := http.Get("http://" + sc.ProxyAddr() + path)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return string(data)
	}
	for path, want := range map[string]string{"/reviews/": "reviews-v2", "/ratings/": "ratings-v1", "/weather/": "weather-v2"} {
		deadline := time.Now().Add(20 * time.Second)
		for got := call(path); got != want; got = call(path) {
			if time.Now().After(deadline) {
				t.Fatalf("GET %s through the sidecar = %q, want %q", path, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
