package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/catalog/kubernetes"
	"github.com/a8fabric/a8/internal/catalog/kubernetes/kubernetestest"
	"github.com/a8fabric/a8/internal/sidecar/config"
)

// startAdapter starts a proxying sidecar with cfg's discovery adapter and the control plane's
// controller for rules.
func startAdapter(t *testing.T, cp *controlPlane, cfg config.Config) *running {
	t.Helper()
	cfg.Proxy = true
	cfg.Service = config.Service{Name: "gateway"}
	cfg.Controller = config.ControlPlane{URL: cp.URL, Poll: time.Second}
	cfg.Registry = config.ControlPlane{URL: "http://registry.invalid:1", Poll: time.Second} // must not be needed
	cfg.ProxyConfig = config.ProxyConfig{Records: 100, AdminAddress: "127.0.0.1", ListenAddress: "127.0.0.1"}
	cfg.RulesAdapter, cfg.ProxyAdapter, cfg.LogLevel = "amalgam8", "envoy", "info"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := New(&cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{s: s, code: make(chan int, 1)}
	go func() {
		code, err := s.Run(context.Background())
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.code <- code
	}()
	t.Cleanup(func() {
		s.Stop(nil)
		select {
		case <-r.code:
		case <-time.After(30 * time.Second):
			t.Error("the sidecar did not stop")
		}
	})
	return r
}

func route(t *testing.T, cp *controlPlane, dest string, tags ...string) {
	t.Helper()
	ctx := context.Background()
	if err := cp.ctl.DeleteRules(ctx, client.RuleFilter{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.ctl.CreateRules(ctx, []api.Rule{{Destination: dest, Route: &api.Route{Backends: []api.Backend{{Tags: tags}}}}}); err != nil {
		t.Fatal(err)
	}
}

func hostPort(t *testing.T, srv *httptest.Server) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return host, p
}

// --discovery_adapter kubernetes: the sidecar routes to a namespace's pods by their labels, read
// straight from the API server (a fake clientset), and follows their changes.
func TestSidecar_KubernetesDiscoveryAdapter(t *testing.T) {
	cp := newControlPlane(t)
	cs := fake.NewClientset()
	old := newKubernetesClient
	newKubernetesClient = func(kubernetes.ClientConfig) (kubernetes.Client, string, error) {
		return kubernetestest.Client(cs), "fake", nil
	}
	t.Cleanup(func() { newKubernetesClient = old })

	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		up := upstream(t, v)
		ip, port := hostPort(t, up)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "reviews-" + v, Namespace: "shop", UID: types.UID("uid-" + v),
			Labels: map[string]string{"app": "reviews", "version": v}}}
		if _, err := cs.CoreV1().Pods("shop").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		ready, name, p := true, "http", int32(port)
		es := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: "reviews-" + v, Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: "shop", UID: pod.UID}}},
			Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &p}},
		}
		if _, err := cs.DiscoveryV1().EndpointSlices("shop").Create(ctx, es, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	route(t, cp, "reviews", "version=v2")
	r := startAdapter(t, cp, config.Config{DiscoveryAdapter: config.DiscoveryKubernetes,
		Kubernetes: config.Kubernetes{URL: "https://k8s.invalid:6443", Namespace: "shop"}})
	eventually(t, "routing by the pods' labels", func() bool { _, body := r.call(t, "/reviews/x"); return body == "v2" })

	// A label change moves the pod out of the rule's backend.
	pod, err := cs.CoreV1().Pods("shop").Get(ctx, "reviews-v2", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels["version"] = "v3"
	if _, err := cs.CoreV1().Pods("shop").Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the label change", func() bool { code, _ := r.call(t, "/reviews/x"); return code == http.StatusServiceUnavailable })
	route(t, cp, "reviews", "version=v1")
	eventually(t, "the new rule", func() bool { _, body := r.call(t, "/reviews/x"); return body == "v1" })

	_, m := r.admin(t, "/routes")
	if src, _ := m["sources"].(map[string]any)["kubernetes"].(map[string]any); src == nil || src["failing"] != false {
		t.Fatalf("sources: %v", m["sources"])
	}
}

// --discovery_adapter eureka: the sidecar routes to a remote Eureka's UP instances by their
// amalgam8.tags, never to a DOWN one.
func TestSidecar_EurekaDiscoveryAdapter(t *testing.T) {
	cp := newControlPlane(t)
	v1, v2, down := upstream(t, "v1"), upstream(t, "v2"), upstream(t, "down")
	var mu sync.Mutex
	downStatus := "DOWN"
	eurekaSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/apps/") {
			http.Error(w, "delta disabled", http.StatusForbidden)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var insts []string
		for _, in := range []struct {
			id, tags, status string
			srv              *httptest.Server
		}{{"r1", "version=v1", "UP", v1}, {"r2", "version=v2", "UP", v2}, {"r3", "version=v2", downStatus, down}} {
			ip, port := hostPort(t, in.srv)
			insts = append(insts, fmt.Sprintf(`{"instanceId":%q,"app":"REVIEWS","ipAddr":%q,"status":%q,"port":{"$":%d,"@enabled":"true"},"vipAddress":"reviews","metadata":{"amalgam8.tags":%q}}`,
				in.id, ip, in.status, port, in.tags))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"applications":{"versions__delta":"1","apps__hashcode":"","application":[{"name":"REVIEWS","instance":[%s]}]}}`, strings.Join(insts, ","))
	}))
	t.Cleanup(eurekaSrv.Close)

	route(t, cp, "reviews", "version=v2")
	r := startAdapter(t, cp, config.Config{DiscoveryAdapter: config.DiscoveryEureka,
		Eureka: config.Eureka{URLs: []string{eurekaSrv.URL + "/eureka"}, Poll: time.Second}})
	eventually(t, "routing by amalgam8.tags", func() bool { _, body := r.call(t, "/reviews/x"); return body == "v2" })
	for range 20 {
		if _, body := r.call(t, "/reviews/x"); body != "v2" {
			t.Fatalf("routed to %q: a DOWN instance must not be routed to", body)
		}
	}
	mu.Lock()
	downStatus = "UP"
	mu.Unlock()
	eventually(t, "the instance coming UP", func() bool { _, body := r.call(t, "/reviews/x"); return body == "down" })
}
