// Package kubernetes is the Kubernetes catalog (Amalgam8's --k8s_url): it follows the
// EndpointSlices (discovery.k8s.io/v1) and Pods of the mapped Kubernetes namespaces with client-go
// shared informers and lists, read-only, one instance per ready endpoint and port.
//
// Mapping: a Kubernetes namespace goes to the a8 namespace of the same name unless Namespaces says
// otherwise. An instance's service is its EndpointSlice's kubernetes.io/service-name label; its id
// is "<pod UID>-<port>" (the address instead of the UID for an endpoint that is not a pod); its
// endpoint is the endpoint's first address with the port; its type is https or http by the port's
// appProtocol or name ("http", "http-*", "http2", "h2c"; "https", "https-*"), udp for UDP, else tcp;
// its tags are the pod's labels as key=value, sorted; its metadata is the pod's annotations (less
// kubectl's last-applied-configuration); its status is UP. An endpoint is listed while the
// EndpointSlice says it is ready and its pod, if known, is not terminating and not unready.
//
// Every informer event schedules a rebuild of the whole content from the informers' caches, a
// Debounce later (100ms), so a change shows in the registry well within a second, and a burst of
// events (a rollout) costs one rebuild.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/store"
)

// AllNamespaces as a key of Config.Namespaces follows every Kubernetes namespace (cluster-wide
// list and watch rights needed), each into the a8 namespace of its name.
const AllNamespaces = "*"

// lastApplied is kubectl's copy of the whole object: large, and not metadata anyone routes by.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// Config configures a Kubernetes catalog.
type Config struct {
	// Client reaches the API server (see NewClient). Required.
	Client Client
	// Namespaces maps the Kubernetes namespaces to follow to a8 namespaces; an empty value means
	// the same name. AllNamespaces follows every namespace. Default: {"default": "default"}.
	Namespaces map[string]string
	// Resync replays the informers' caches this often, a safety net (default 5m).
	Resync time.Duration
	// Debounce is the delay between an event and the rebuild it schedules (default 100ms).
	Debounce time.Duration
	// Server names the API server in messages.
	Server string
	// Logger receives the catalog's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source (default time.Now).
	Clock store.Clock
}

// Catalog is the Kubernetes catalog.
type Catalog struct {
	*catalog.Feed
	cfg     Config
	log     *slog.Logger
	sources []*source
	poke    chan struct{} // an event happened; capacity 1

	mu        sync.Mutex
	synced    bool
	lastErr   error
	lastErrAt time.Time
	lastEvent time.Time
}

var _ catalog.Catalog = (*Catalog)(nil)

// source is the informers of one Kubernetes namespace, or of all of them.
type source struct {
	namespace string // "" for all
	slices    cache.SharedIndexInformer
	pods      cache.SharedIndexInformer
	synced    []cache.InformerSynced
}

// New prepares a catalog of cfg's namespaces; Run starts the informers.
func New(cfg Config) (*Catalog, error) {
	if cfg.Client == nil {
		return nil, errors.New("kubernetes catalog: no client")
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = map[string]string{"default": "default"}
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	c := &Catalog{Feed: catalog.NewFeed(cfg.Clock), cfg: cfg, log: cfg.Logger, poke: make(chan struct{}, 1)}
	var namespaces []string
	if _, all := cfg.Namespaces[AllNamespaces]; all {
		namespaces = []string{""}
	} else {
		namespaces = slices.Sorted(func(yield func(string) bool) {
			for ns := range cfg.Namespaces {
				if !yield(ns) {
					return
				}
			}
		})
	}
	for _, ns := range namespaces {
		src, err := c.newSource(ns)
		if err != nil {
			return nil, err
		}
		c.sources = append(c.sources, src)
	}
	return c, nil
}

func (c *Catalog) newSource(ns string) (*source, error) {
	cl := c.cfg.Client
	src := &source{
		namespace: ns,
		slices: newInformer(cl, &discoveryv1.EndpointSlice{}, c.cfg.Resync,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cl.ListEndpointSlices(ctx, ns, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cl.WatchEndpointSlices(ctx, ns, o)
			}),
		pods: newInformer(cl, &corev1.Pod{}, c.cfg.Resync,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cl.ListPods(ctx, ns, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cl.WatchPods(ctx, ns, o)
			}),
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.event() },
		UpdateFunc: func(any, any) { c.event() },
		DeleteFunc: func(any) { c.event() },
	}
	onError := func(_ context.Context, _ *cache.Reflector, err error) { c.watchError(err) }
	for _, inf := range []cache.SharedIndexInformer{src.slices, src.pods} {
		if err := inf.SetTransform(slim); err != nil {
			return nil, fmt.Errorf("kubernetes catalog: %w", err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(onError); err != nil {
			return nil, fmt.Errorf("kubernetes catalog: %w", err)
		}
		reg, err := inf.AddEventHandler(handler)
		if err != nil {
			return nil, fmt.Errorf("kubernetes catalog: %w", err)
		}
		src.synced = append(src.synced, reg.HasSynced)
	}
	return src, nil
}

// newInformer makes an informer of one kind, indexed by namespace, on classic list and watch
// (which every API server serves).
func newInformer(cl Client, example runtime.Object, resync time.Duration,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.SharedIndexInformer {
	lw := &cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}
	return cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, noWatchList{}), example, resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// noWatchList tells the informers' reflectors to list, then watch, rather than ask for a
// streamed list (a newer API server feature).
type noWatchList struct{}

func (noWatchList) IsWatchListSemanticsUnSupported() bool { return true }

// Name implements catalog.Catalog.
func (c *Catalog) Name() string { return "kubernetes" }

// Run implements catalog.Catalog: it runs the informers and rebuilds the content after events,
// until ctx ends; then it stops the informers and waits for them.
func (c *Catalog) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	var synced []cache.InformerSynced
	for _, src := range c.sources {
		wg.Go(func() { src.slices.RunWithContext(ctx) })
		wg.Go(func() { src.pods.RunWithContext(ctx) })
		synced = append(synced, src.synced...)
	}
	wg.Go(func() {
		// An empty namespace sends no event once listed: say so, so that the catalog counts as
		// synced (with no instances) rather than waiting.
		if cache.WaitForCacheSync(ctx.Done(), synced...) {
			c.mu.Lock()
			c.synced = true
			c.mu.Unlock()
			c.log.Info("kubernetes catalog: synced", "server", c.cfg.Server, "namespaces", c.namespaceList())
			c.schedule()
		}
	})
	// The delay runs from the first event of a burst, not the last, so that a steady stream of
	// events (a busy namespace) still rebuilds every Debounce.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.poke:
			if !pending {
				debounce.Reset(c.cfg.Debounce)
				pending = true
			}
			continue
		case <-debounce.C:
		}
		pending = false
		c.rebuild()
	}
}

func (c *Catalog) namespaceList() string {
	var out []string
	for k8s, a8 := range c.cfg.Namespaces {
		if a8 == "" || a8 == k8s {
			out = append(out, k8s)
		} else {
			out = append(out, k8s+"="+a8)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

func (c *Catalog) event() {
	c.mu.Lock()
	c.lastEvent = c.cfg.Clock()
	c.mu.Unlock()
	c.schedule()
}

func (c *Catalog) schedule() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// watchError records a failed list or watch; the informer retries with backoff by itself.
func (c *Catalog) watchError(err error) {
	if errors.Is(err, io.EOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return // a watch ending normally; the informer resumes
	}
	if apierrors.IsForbidden(err) {
		err = fmt.Errorf("%w (grant a8's token list and watch on pods and on discovery.k8s.io endpointslices there)", err)
	}
	c.mu.Lock()
	first := c.lastErr == nil || c.lastErr.Error() != err.Error()
	c.lastErr, c.lastErrAt = err, c.cfg.Clock()
	c.mu.Unlock()
	if first {
		c.log.Warn("kubernetes catalog: cannot list or watch; retrying, the last content stays in force", "server", c.cfg.Server, "error", err)
	}
}

// errorGrace is how long a list or watch failure is reported without a later event to show the
// informers work again.
const errorGrace = 90 * time.Second

// Status implements catalog.Catalog.
func (c *Catalog) Status() catalog.Status {
	st := c.Feed.Status()
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Clock()
	failing := c.lastErr != nil && c.lastEvent.Before(c.lastErrAt) && now.Sub(c.lastErrAt) < errorGrace
	switch {
	case failing:
		st.OK = false
		st.Detail = fmt.Sprintf("cannot list or watch EndpointSlices and Pods at %s (namespaces %s): %v; the last content stays in force", c.cfg.Server, c.namespaceList(), c.lastErr)
	case !c.synced:
		st.OK = false
		st.Detail = fmt.Sprintf("waiting for the first list of EndpointSlices and Pods from %s (namespaces %s)", c.cfg.Server, c.namespaceList())
	default:
		st.OK, st.Detail = true, ""
		st.LastSync = c.lastEvent
	}
	return st
}

// a8Namespace maps a Kubernetes namespace to its a8 namespace; ok is false for one not followed.
func (c *Catalog) a8Namespace(k8s string) (string, bool) {
	a8, ok := c.cfg.Namespaces[k8s]
	if !ok {
		if _, all := c.cfg.Namespaces[AllNamespaces]; !all {
			return "", false
		}
	}
	if a8 == "" {
		a8 = k8s
	}
	return a8, true
}

// rebuild computes the whole content from the informers' caches and publishes it.
func (c *Catalog) rebuild() {
	c.mu.Lock()
	synced := c.synced
	c.mu.Unlock()
	if !synced { // a partial cache would look like instances going away
		return
	}
	content := map[string][]store.Instance{}
	for k8s, a8 := range c.cfg.Namespaces {
		if k8s != AllNamespaces {
			content[cmpOr(a8, k8s)] = nil // followed namespaces are published even when empty
		}
	}
	for _, src := range c.sources {
		for _, obj := range src.slices.GetStore().List() {
			es, ok := obj.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			a8, ok := c.a8Namespace(es.Namespace)
			if !ok {
				continue
			}
			content[a8] = appendInstances(content[a8], es, src.pods.GetStore())
		}
	}
	if c.Replace(content) {
		n := 0
		for _, l := range content {
			n += len(l)
		}
		c.log.Debug("kubernetes catalog: content changed", "instances", n)
	}
	c.Synced()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// appendInstances adds an EndpointSlice's instances: one per ready endpoint and port.
func appendInstances(out []store.Instance, es *discoveryv1.EndpointSlice, pods cache.Store) []store.Instance {
	service := es.Labels[discoveryv1.LabelServiceName]
	if service == "" {
		return out // not a Service's slice
	}
	for _, ep := range es.Endpoints {
		if len(ep.Addresses) == 0 || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
			continue
		}
		uid := ep.Addresses[0]
		var pod *corev1.Pod
		if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
			if ref.UID != "" {
				uid = string(ref.UID)
			}
			if obj, ok, _ := pods.GetByKey(es.Namespace + "/" + ref.Name); ok {
				if p, ok := obj.(*corev1.Pod); ok {
					pod = p
					uid = string(p.UID)
				}
			}
		}
		if pod != nil && !podReady(pod) {
			continue // the slice has not caught up with the pod yet
		}
		var tags []string
		var meta json.RawMessage
		if pod != nil {
			for k, v := range pod.Labels {
				tags = append(tags, k+"="+v)
			}
			slices.Sort(tags)
			ann := make(map[string]string, len(pod.Annotations))
			for k, v := range pod.Annotations {
				if k != lastApplied {
					ann[k] = v
				}
			}
			if len(ann) > 0 {
				meta, _ = json.Marshal(ann) // keys sorted
			}
		}
		for _, p := range es.Ports {
			if p.Port == nil {
				continue // "all ports": nothing to dial
			}
			out = append(out, store.Instance{
				ID:          fmt.Sprintf("%s-%d", uid, *p.Port),
				ServiceName: service,
				Endpoint:    store.Endpoint{Type: endpointType(p), Value: joinHostPort(ep.Addresses[0], *p.Port)},
				Status:      "UP",
				Tags:        tags,
				Metadata:    meta,
			})
		}
	}
	return out
}

// podReady is false for a pod that is terminating or whose Ready condition is not true.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}

func endpointType(p discoveryv1.EndpointPort) string {
	if p.Protocol != nil {
		switch *p.Protocol {
		case corev1.ProtocolUDP:
			return "udp"
		case corev1.ProtocolSCTP:
			return "user"
		}
	}
	name := strings.ToLower(ptrOr(p.Name))
	switch app := strings.ToLower(ptrOr(p.AppProtocol)); {
	case app == "https" || name == "https" || strings.HasPrefix(name, "https-"):
		return "https"
	case app == "http" || app == "kubernetes.io/h2c" || name == "http" || strings.HasPrefix(name, "http-") ||
		name == "http2" || strings.HasPrefix(name, "http2-") || name == "h2c":
		return "http"
	}
	return "tcp"
}

func ptrOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func joinHostPort(host string, port int32) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// slim keeps of an object only what the catalog reads, so that the informers' caches of a busy
// namespace stay small: managed fields go, and of a pod only its identity, labels, annotations,
// deletion time and conditions stay.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return &corev1.Pod{
			TypeMeta: o.TypeMeta,
			ObjectMeta: metav1.ObjectMeta{
				Name: o.Name, Namespace: o.Namespace, UID: o.UID, ResourceVersion: o.ResourceVersion,
				Labels: o.Labels, Annotations: withoutLastApplied(o.Annotations), DeletionTimestamp: o.DeletionTimestamp,
			},
			Status: corev1.PodStatus{Conditions: o.Status.Conditions},
		}, nil
	case metav1.Object:
		o.SetManagedFields(nil)
	}
	return obj, nil
}

func withoutLastApplied(ann map[string]string) map[string]string {
	if _, ok := ann[lastApplied]; !ok {
		return ann
	}
	out := make(map[string]string, len(ann)-1)
	for k, v := range ann {
		if k != lastApplied {
			out[k] = v
		}
	}
	return out
}

// ClientConfig says how to reach the API server.
type ClientConfig struct {
	// URL of the API server; empty: the in-cluster configuration of the pod a8 runs in.
	URL string
	// Token is the bearer token; empty with a URL: the pod's service account token, if any.
	Token string
	// CAFile verifies the API server's certificate; empty with a URL: the pod's service account
	// CA, if any, else the system's roots.
	CAFile string
	// UserAgent names a8 to the API server.
	UserAgent string
}

// Service account files of a pod.
const (
	saToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	saCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// NewClient returns a client of the API server cc names, and the server's address for messages.
func NewClient(cc ClientConfig) (Client, string, error) {
	var rc *rest.Config
	if cc.URL == "" {
		var err error
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("kubernetes: no --k8s_url given and not running in a pod (%w): set --k8s_url to the API server", err)
		}
		if cc.Token != "" {
			rc.BearerToken, rc.BearerTokenFile = cc.Token, ""
		}
		if cc.CAFile != "" {
			rc.TLSClientConfig.CAFile = cc.CAFile
		}
	} else {
		rc = &rest.Config{Host: cc.URL, BearerToken: cc.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: cc.CAFile}}
		if cc.Token == "" && fileExists(saToken) {
			rc.BearerTokenFile = saToken
		}
		if cc.CAFile == "" && fileExists(saCA) {
			rc.TLSClientConfig.CAFile = saCA
		}
	}
	rc.UserAgent = cc.UserAgent
	client, err := newRESTClient(rc)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes: client for %s: %w (check --k8s_url and --k8s_ca_file)", rc.Host, err)
	}
	return client, rc.Host, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var setLogger sync.Once

// SetLogger sends client-go's own logs (klog) to log, at most once per process. Without it they go
// to stderr unstructured.
func SetLogger(log *slog.Logger) {
	setLogger.Do(func() { klog.SetSlogLogger(log) })
}
