package kubernetes_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/kubernetes"
	"github.com/a8fabric/a8/internal/catalog/kubernetes/kubernetestest"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

func ptr[T any](v T) *T { return &v }

// cluster is a fake API server with helpers to shape pods and EndpointSlices as Kubernetes'
// controllers would.
type cluster struct {
	t      *testing.T
	client *fake.Clientset
}

func (c *cluster) pod(ns, name string, ready bool, labels map[string]string) *corev1.Pod {
	status := corev1.ConditionTrue
	if !ready {
		status = corev1.ConditionFalse
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: labels,
			Annotations: map[string]string{"team": "bookinfo", "kubectl.kubernetes.io/last-applied-configuration": `{"huge":"json"}`}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

type ep struct {
	pod, ip string
	ready   bool
}

func (c *cluster) slice(ns, name, service string, eps []ep, ports ...discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       ports,
	}
	for _, e := range eps {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(e.ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod, UID: types.UID("uid-" + e.pod)},
		})
	}
	return es
}

func (c *cluster) createPod(p *corev1.Pod) {
	c.t.Helper()
	if _, err := c.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) updatePod(p *corev1.Pod) {
	c.t.Helper()
	if _, err := c.client.CoreV1().Pods(p.Namespace).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) applySlice(es *discoveryv1.EndpointSlice) {
	c.t.Helper()
	api := c.client.DiscoveryV1().EndpointSlices(es.Namespace)
	if _, err := api.Get(context.Background(), es.Name, metav1.GetOptions{}); err == nil {
		if _, err := api.Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
			c.t.Fatal(err)
		}
		return
	}
	if _, err := api.Create(context.Background(), es, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
}

var httpPort = discoveryv1.EndpointPort{Name: ptr("http"), Port: ptr(int32(9080)), Protocol: ptr(corev1.ProtocolTCP)}

// start runs a catalog of the fake cluster and returns the merged store it feeds.
func start(t *testing.T, namespaces map[string]string) (*cluster, *kubernetes.Catalog, store.Instances) {
	t.Helper()
	cl := &cluster{t: t, client: fake.NewClientset()}
	cat, err := kubernetes.New(kubernetes.Config{Client: kubernetestest.Client(cl.client), Namespaces: namespaces, Server: "fake", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cat.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	})
	// The fake API server does not replay events from before a watch starts: wait for the
	// informers' first list before changing anything.
	deadline := time.Now().Add(10 * time.Second)
	for !cat.Status().OK {
		if time.Now().After(deadline) {
			t.Fatalf("the catalog never synced: %+v", cat.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cl, cat, catalog.Merge(memory.NewInstances(nil), cat)
}

// await waits, through the merged store's Wait, until ns's instances satisfy want, and says how
// long it took.
func await(t *testing.T, s store.Instances, ns, what string, want func([]store.Instance) bool) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	l, err := s.List(ctx, ns, "")
	if err != nil {
		t.Fatal(err)
	}
	for !want(l.Instances) {
		idx, err := s.Wait(ctx, ns, l.Index)
		if err != nil {
			t.Fatalf("%s: not seen (%v); instances: %s", what, err, describe(l.Instances))
		}
		if l, err = s.List(ctx, ns, ""); err != nil {
			t.Fatal(err)
		}
		if l.Index != idx {
			t.Fatalf("%s: Wait returned %d, List %d", what, idx, l.Index)
		}
	}
	return time.Since(began)
}

func describe(list []store.Instance) string {
	var out []string
	for _, in := range list {
		out = append(out, fmt.Sprintf("%s %s %s %s [%s]", in.ID, in.ServiceName, in.Endpoint.Type, in.Endpoint.Value, strings.Join(in.Tags, " ")))
	}
	return strings.Join(out, "; ")
}

// has reports whether list is exactly these "id value tags" lines.
func has(lines ...string) func([]store.Instance) bool {
	return func(list []store.Instance) bool {
		var got []string
		for _, in := range list {
			got = append(got, in.ID+" "+in.Endpoint.Value+" "+strings.Join(in.Tags, ","))
		}
		slices.Sort(got)
		slices.Sort(lines)
		return slices.Equal(got, lines)
	}
}

func TestKubernetes_Lifecycle(t *testing.T) {
	cl, cat, s := start(t, map[string]string{"shop": ""})
	v1 := map[string]string{"app": "reviews", "version": "v1"}

	steps := []struct {
		name   string
		change func()
		want   func([]store.Instance) bool
	}{
		{"create", func() {
			cl.createPod(cl.pod("shop", "reviews-a", true, v1))
			cl.applySlice(cl.slice("shop", "reviews-x1", "reviews", []ep{{"reviews-a", "10.1.0.1", true}}, httpPort))
		}, has("uid-reviews-a-9080 10.1.0.1:9080 app=reviews,version=v1")},
		{"scale up", func() {
			cl.createPod(cl.pod("shop", "reviews-b", true, v1))
			cl.applySlice(cl.slice("shop", "reviews-x1", "reviews", []ep{{"reviews-a", "10.1.0.1", true}, {"reviews-b", "10.1.0.2", true}}, httpPort))
		}, has("uid-reviews-a-9080 10.1.0.1:9080 app=reviews,version=v1", "uid-reviews-b-9080 10.1.0.2:9080 app=reviews,version=v1")},
		{"label change", func() {
			cl.updatePod(cl.pod("shop", "reviews-b", true, map[string]string{"app": "reviews", "version": "v2"}))
		}, has("uid-reviews-a-9080 10.1.0.1:9080 app=reviews,version=v1", "uid-reviews-b-9080 10.1.0.2:9080 app=reviews,version=v2")},
		{"pod not ready (before the slice says so)", func() {
			cl.updatePod(cl.pod("shop", "reviews-b", false, map[string]string{"app": "reviews", "version": "v2"}))
		}, has("uid-reviews-a-9080 10.1.0.1:9080 app=reviews,version=v1")},
		{"endpoint not ready", func() {
			cl.updatePod(cl.pod("shop", "reviews-b", true, map[string]string{"app": "reviews", "version": "v2"}))
			cl.applySlice(cl.slice("shop", "reviews-x1", "reviews", []ep{{"reviews-a", "10.1.0.1", false}, {"reviews-b", "10.1.0.2", true}}, httpPort))
		}, has("uid-reviews-b-9080 10.1.0.2:9080 app=reviews,version=v2")},
		{"scale down", func() {
			cl.applySlice(cl.slice("shop", "reviews-x1", "reviews", []ep{{"reviews-b", "10.1.0.2", true}}, httpPort))
			if err := cl.client.CoreV1().Pods("shop").Delete(context.Background(), "reviews-a", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, has("uid-reviews-b-9080 10.1.0.2:9080 app=reviews,version=v2")},
		{"delete", func() {
			if err := cl.client.DiscoveryV1().EndpointSlices("shop").Delete(context.Background(), "reviews-x1", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, has()},
	}
	for _, st := range steps {
		st.change()
		took := await(t, s, "shop", st.name, st.want)
		if took > time.Second {
			t.Errorf("%s: took %v to show; want under a second", st.name, took)
		}
	}
	if st := cat.Status(); !st.OK || st.Instances != 0 {
		t.Fatalf("status = %+v", st)
	}
}

func TestKubernetes_Mapping(t *testing.T) {
	cl, _, s := start(t, map[string]string{"shop": "team-a"})
	p := cl.pod("shop", "web-a", true, map[string]string{"app": "web"})
	cl.createPod(p)
	cl.createPod(cl.pod("elsewhere", "web-z", true, nil))
	cl.applySlice(cl.slice("elsewhere", "web-z1", "web", []ep{{"web-z", "10.9.0.1", true}}, httpPort))
	cl.applySlice(cl.slice("shop", "web-1", "web", []ep{{"web-a", "10.1.0.9", true}},
		discoveryv1.EndpointPort{Name: ptr("https-api"), Port: ptr(int32(8443))},
		discoveryv1.EndpointPort{Name: ptr("metrics"), Port: ptr(int32(9100))},
		discoveryv1.EndpointPort{Name: ptr("dns"), Port: ptr(int32(53)), Protocol: ptr(corev1.ProtocolUDP)},
		discoveryv1.EndpointPort{Name: ptr("web"), Port: ptr(int32(8080)), AppProtocol: ptr("http")}))
	// A slice that is no Service's is ignored.
	orphan := cl.slice("shop", "orphan", "", []ep{{"web-a", "10.1.0.9", true}}, httpPort)
	orphan.Labels = nil
	cl.applySlice(orphan)

	await(t, s, "team-a", "the web instances", func(l []store.Instance) bool { return len(l) == 4 })
	l, err := s.List(context.Background(), "team-a", "web")
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, in := range l.Instances {
		types[in.ID] = in.Endpoint.Type + " " + in.Endpoint.Value
		if in.ServiceName != "web" || in.Status != "UP" || string(in.Metadata) != `{"team":"bookinfo"}` || strings.Join(in.Tags, ",") != "app=web" {
			t.Errorf("instance %+v", in)
		}
	}
	want := map[string]string{
		"uid-web-a-8443": "https 10.1.0.9:8443", "uid-web-a-9100": "tcp 10.1.0.9:9100",
		"uid-web-a-53": "udp 10.1.0.9:53", "uid-web-a-8080": "http 10.1.0.9:8080",
	}
	for id, w := range want {
		if types[id] != w {
			t.Errorf("%s = %q, want %q", id, types[id], w)
		}
	}
	for _, ns := range []string{"shop", "elsewhere", "default"} {
		if l, _ := s.List(context.Background(), ns, ""); len(l.Instances) != 0 {
			t.Errorf("namespace %s (not mapped there) lists %s", ns, describe(l.Instances))
		}
	}
	// Read-only through the store.
	if err := s.Deregister(context.Background(), "team-a", "uid-web-a-8080"); err == nil || !strings.Contains(err.Error(), "kubernetes catalog") {
		t.Fatalf("deregistering a pod's instance = %v", err)
	}
}

func TestKubernetes_AllNamespaces(t *testing.T) {
	cl, _, s := start(t, map[string]string{kubernetes.AllNamespaces: ""})
	for _, ns := range []string{"a", "b"} {
		cl.createPod(cl.pod(ns, "p", true, nil))
		cl.applySlice(cl.slice(ns, "s", "svc", []ep{{"p", "10.0.0.1", true}}, httpPort))
	}
	for _, ns := range []string{"a", "b"} {
		await(t, s, ns, "namespace "+ns, func(l []store.Instance) bool { return len(l) == 1 })
	}
}

// An API server that refuses the catalog's token: the status says so (with what to grant), and
// Run still stops cleanly.
func TestKubernetes_Forbidden(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"%s is forbidden: User \"system:serviceaccount:a8:a8\" cannot list resource","reason":"Forbidden","code":403}`, r.URL.Path)
	}))
	defer api.Close()
	client, host, err := kubernetes.NewClient(kubernetes.ClientConfig{URL: api.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := kubernetes.New(kubernetes.Config{Client: client, Server: host, Namespaces: map[string]string{"shop": "team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := cat.Status(); st.OK || !strings.Contains(st.Detail, "waiting for the first list") || !strings.Contains(st.Detail, "shop=team-a") {
		t.Fatalf("status before Run = %+v", st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cat.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(cat.Status().Detail, "cannot list or watch") {
		if time.Now().After(deadline) {
			t.Fatalf("status = %+v", cat.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := cat.Status(); st.OK || !strings.Contains(st.Detail, "forbidden") || !strings.Contains(st.Detail, "grant a8's token list and watch") || !strings.Contains(st.Detail, api.URL) {
		t.Fatalf("status = %+v", st)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestKubernetes_NewClient(t *testing.T) {
	if _, _, err := kubernetes.NewClient(kubernetes.ClientConfig{}); err == nil || !strings.Contains(err.Error(), "--k8s_url") {
		t.Fatalf("NewClient outside a pod = %v", err)
	}
	if _, host, err := kubernetes.NewClient(kubernetes.ClientConfig{URL: "https://k8s.example:6443", Token: "t"}); err != nil || host != "https://k8s.example:6443" {
		t.Fatalf("NewClient = %q, %v", host, err)
	}
}

// The REST client NewClient makes, against an API server that speaks Kubernetes' JSON list and
// watch: it lists pods at /api/v1 and EndpointSlices at /apis/discovery.k8s.io/v1 in the mapped
// namespace, then watches from the list's resourceVersion, and follows a watch event.
func TestKubernetes_RESTClientListAndWatch(t *testing.T) {
	events := make(chan string, 1)
	var mu sync.Mutex
	var seen []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		seen = append(seen, r.URL.Path+" watch="+q.Get("watch")+" rv="+q.Get("resourceVersion"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer t" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		watching := q.Get("watch") == "true"
		switch r.URL.Path {
		case "/api/v1/namespaces/shop/pods":
			if watching {
				<-r.Context().Done() // no pod changes
				return
			}
			fmt.Fprint(w, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":[
				{"metadata":{"name":"web-1","namespace":"shop","uid":"u1","labels":{"version":"v1"}},
				 "status":{"conditions":[{"type":"Ready","status":"True"}]}},
				{"metadata":{"name":"web-2","namespace":"shop","uid":"u2","labels":{"version":"v2"}},
				 "status":{"conditions":[{"type":"Ready","status":"True"}]}}]}`)
		case "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices":
			if watching {
				if q.Get("resourceVersion") != "11" {
					http.Error(w, "watch from the list's resourceVersion", http.StatusBadRequest)
					return
				}
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				select {
				case ev := <-events:
					fmt.Fprintln(w, ev)
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
				<-r.Context().Done()
				return
			}
			fmt.Fprint(w, `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"11"},"items":[
				{"metadata":{"name":"web-abc","namespace":"shop","resourceVersion":"11","labels":{"kubernetes.io/service-name":"web"}},
				 "addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
				 "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","namespace":"shop","name":"web-1","uid":"u1"}}]}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer api.Close()
	client, host, err := kubernetes.NewClient(kubernetes.ClientConfig{URL: api.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	cat, err := kubernetes.New(kubernetes.Config{Client: client, Server: host, Namespaces: map[string]string{"shop": "team-a"}, Debounce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cat.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	}()
	s := catalog.Merge(memory.NewInstances(nil), cat)
	await(t, s, "team-a", "web-1 from the lists", has("u1-8080 10.0.0.1:8080 version=v1"))
	// The second pod becomes an endpoint: a MODIFIED event on the slice's watch.
	events <- `{"type":"MODIFIED","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1",
		"metadata":{"name":"web-abc","namespace":"shop","resourceVersion":"12","labels":{"kubernetes.io/service-name":"web"}},
		"addressType":"IPv4","ports":[{"name":"http","port":8080,"protocol":"TCP"}],
		"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","namespace":"shop","name":"web-1","uid":"u1"}},
		             {"addresses":["10.0.0.2"],"conditions":{"ready":true},"targetRef":{"kind":"Pod","namespace":"shop","name":"web-2","uid":"u2"}}]}}`
	await(t, s, "team-a", "web-2 from the watch", has("u1-8080 10.0.0.1:8080 version=v1", "u2-8080 10.0.0.2:8080 version=v2"))
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"/api/v1/namespaces/shop/pods watch= rv=0", "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices watch=true rv=11"} {
		if !slices.Contains(seen, want) {
			t.Errorf("no request %q among %q", want, seen)
		}
	}
}
