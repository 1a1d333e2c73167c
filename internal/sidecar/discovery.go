package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/eureka"
	"github.com/a8fabric/a8/internal/catalog/kubernetes"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/sidecar/table"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/strictjson"
)

// state is the sidecar's view of the control plane: the latest instances and rules, and how fresh
// each is. Once both have arrived, every change rebuilds the routing table from both (before, there
// is no table: routing by instances alone could break rules, such as a canary's); a failed sync
// changes nothing (fail static: the last table stays).
type state struct {
	log     *slog.Logger
	opts    table.Options
	publish func(*table.Table)

	mu        sync.Mutex
	instances []api.Instance
	index     uint64
	haveInst  bool
	set       *rules.Set
	revision  int64
	haveRules bool
	sources   map[string]*sourceState
	current   *table.Table
}

// sourceState is what the admin endpoint shows of one source (registry, controller, file).
type sourceState struct {
	LastSync  time.Time `json:"last_sync"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"error_at,omitempty"`
	Failing   bool      `json:"failing"` // the last call failed
	// Rejected says why the source's latest data is not in use (rules that do not compile); it
	// stays until data that is usable arrives.
	Rejected string `json:"rejected,omitempty"`
}

func newState(log *slog.Logger, opts table.Options, publish func(*table.Table)) *state {
	return &state{log: log, opts: opts, publish: publish, sources: map[string]*sourceState{}}
}

func (s *state) source(name string) *sourceState {
	src := s.sources[name]
	if src == nil {
		src = &sourceState{}
		s.sources[name] = src
	}
	return src
}

func (s *state) synced(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.source(name)
	if src.Failing {
		s.log.Info("control plane reachable again", "source", name)
	}
	src.LastSync, src.Failing = time.Now(), false
}

func (s *state) failed(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.source(name)
	if !src.Failing {
		s.log.Warn("control plane unreachable; routing on with the last table", "source", name, "error", err)
	}
	src.Failing, src.LastError, src.ErrorAt = true, err.Error(), time.Now()
}

func (s *state) setInstances(list []api.Instance, index uint64) {
	s.mu.Lock()
	s.instances, s.index, s.haveInst = list, index, true
	s.rebuildLocked()
	s.mu.Unlock()
}

// setRules compiles a rule set from source; one that does not compile (an Amalgam8 controller may
// hold rules a8 refuses) is logged, marked on the source, and the previous set stays.
func (s *state) setRules(source string, rs []api.Rule, revision int64) error {
	set, err := rules.Compile(rs)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.log.Error("rules at this revision do not compile; keeping the previous ones", "revision", revision, "error", err)
		s.source(source).Rejected = fmt.Sprintf("rules at revision %d do not compile: %v", revision, err)
		return err
	}
	s.source(source).Rejected = ""
	s.set, s.revision, s.haveRules = set, revision, true
	s.rebuildLocked()
	return nil
}

func (s *state) rebuildLocked() {
	if !s.haveInst || !s.haveRules {
		return
	}
	t := table.Build(s.set, s.revision, s.instances, s.index, s.opts)
	s.current = t
	s.publish(t)
}

// loaded reports whether both instances and rules arrived at least once.
func (s *state) loaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.haveInst && s.haveRules
}

// snapshot returns the sources' states, for the admin endpoint and metrics.
func (s *state) snapshot() map[string]sourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]sourceState, len(s.sources))
	for k, v := range s.sources {
		out[k] = *v
	}
	return out
}

// watchControlPlane follows the registry's instances and the controller's rules until ctx ends.
func (s *state) watchControlPlane(ctx context.Context, reg *client.Registry, ctl *client.Controller, regPoll, ctlPoll time.Duration) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = reg.WatchInstances(ctx, client.InstanceQuery{}, client.WatchOptions{
			Poll:    regPoll,
			OnError: func(err error) { s.failed("registry", err) },
			OnSync:  func(client.QueryMeta) { s.synced("registry") },
		}, func(list []api.Instance, meta client.QueryMeta) { s.setInstances(list, meta.Index) })
	})
	wg.Go(func() { s.watchRules(ctx, ctl, ctlPoll) })
	wg.Wait()
}

// watchRules follows the controller's rules until ctx ends.
func (s *state) watchRules(ctx context.Context, ctl *client.Controller, poll time.Duration) {
	_ = ctl.WatchRules(ctx, client.RuleFilter{}, client.WatchOptions{
		Poll:    poll,
		OnError: func(err error) { s.failed("controller", err) },
		OnSync:  func(client.QueryMeta) { s.synced("controller") },
	}, func(l api.RuleList, _ client.QueryMeta) { _ = s.setRules("controller", l.Rules, l.Revision) })
}

// newKubernetesClient makes the kubernetes discovery adapter's API client; tests replace it.
var newKubernetesClient = kubernetes.NewClient

// watchDiscoveryAdapter follows the controller's rules and, instead of the registry's instances,
// those of the source --discovery_adapter names, read directly with the registry's catalog code:
// a Kubernetes namespace's EndpointSlices and Pods, or a remote Eureka. Until ctx ends.
func (s *Sidecar) watchDiscoveryAdapter(ctx context.Context) {
	cat, ns, err := newAdapterCatalog(s.cfg, s.log)
	if err != nil {
		s.log.Error("discovery adapter cannot start; the proxy has no instances to route to", "adapter", s.cfg.DiscoveryAdapter, "error", err)
		s.state.failed(s.cfg.DiscoveryAdapter, err)
		return
	}
	ctl, err := client.NewController(client.ControllerConfig{URL: s.cfg.Controller.URL, Token: s.cfg.Controller.Token})
	if err != nil {
		s.log.Error("controller client", "error", err)
		return
	}
	s.log.Info("routing by instances read directly from the discovery adapter, not the registry", "adapter", cat.Name(), "namespace", ns)
	var wg sync.WaitGroup
	wg.Go(func() { s.state.followCatalog(ctx, cat, ns) })
	wg.Go(func() { s.state.watchRules(ctx, ctl, s.cfg.Controller.Poll) })
	wg.Wait()
}

// newAdapterCatalog builds the catalog of cfg's discovery adapter, and the catalog namespace whose
// instances the sidecar routes to.
func newAdapterCatalog(cfg *config.Config, log *slog.Logger) (catalog.Catalog, string, error) {
	switch cfg.DiscoveryAdapter {
	case config.DiscoveryKubernetes:
		kubernetes.SetLogger(log.With("component", "client-go"))
		k := cfg.Kubernetes
		cl, host, err := newKubernetesClient(kubernetes.ClientConfig{URL: k.URL, Token: k.Token, CAFile: k.CAFile, UserAgent: "a8-sidecar"})
		if err != nil {
			return nil, "", err
		}
		cat, err := kubernetes.New(kubernetes.Config{Client: cl, Namespaces: map[string]string{k.Namespace: k.Namespace}, Server: host,
			Logger: log.With("component", "discovery", "adapter", "kubernetes")})
		return cat, k.Namespace, err
	case config.DiscoveryEureka:
		const ns = "default"
		cat, err := eureka.New(eureka.Config{URLs: cfg.Eureka.URLs, Poll: cfg.Eureka.Poll, Namespace: ns,
			Logger: log.With("component", "discovery", "adapter", "eureka")})
		return cat, ns, err
	}
	return nil, "", fmt.Errorf("--discovery_adapter %q: use amalgam8, kubernetes or eureka", cfg.DiscoveryAdapter)
}

// followCatalog runs cat and hands the routable instances of its namespace ns to the table each
// time they change, until ctx ends. The catalog's status shows as a source, named after it. Before
// the catalog first syncs there is no table (as before the registry first answers); after, a
// catalog that loses its source keeps its last content, and so does the table.
func (s *state) followCatalog(ctx context.Context, cat catalog.Catalog, ns string) {
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = cat.Run(ctx)
	}()
	defer func() { <-runDone }()
	tick := time.NewTicker(time.Second) // to follow the status between changes
	defer tick.Stop()
	initial, began := cat.Snapshot(), time.Now()
	var last *catalog.Snapshot
	synced := false
	for {
		snap, st := cat.Snapshot(), cat.Status()
		synced = synced || st.OK || snap != initial // a catalog publishes only what it read
		switch {
		case st.OK:
			s.synced(cat.Name())
		case synced || time.Since(began) > 10*time.Second: // starting takes a moment
			s.failed(cat.Name(), errors.New(st.Detail))
		}
		if synced && snap != last {
			t := snap.Tenant(ns)
			s.setInstances(routableInstances(t.Instances), t.Generation)
			last = snap
		}
		select {
		case <-ctx.Done():
			return
		case <-snap.Changed():
		case <-tick.C:
		}
	}
}

// routableInstances converts a catalog's instances for the table, leaving out those the registry
// would not list by default either: starting, out of service, or down or unknown to Eureka.
func routableInstances(list []store.Instance) []api.Instance {
	out := make([]api.Instance, 0, len(list))
	for _, in := range list {
		switch in.Status {
		case api.StatusStarting, api.StatusOutOfService, "DOWN", "UNKNOWN":
			continue
		}
		var beat *time.Time
		if !in.LastHeartbeat.IsZero() {
			b := in.LastHeartbeat
			beat = &b
		}
		out = append(out, api.Instance{
			ID: in.ID, ServiceName: in.ServiceName, Endpoint: &api.Endpoint{Type: in.Endpoint.Type, Value: in.Endpoint.Value},
			TTL: int64(in.TTL / time.Second), Status: in.Status, Metadata: in.Metadata, LastHeartbeat: beat, Tags: in.Tags,
		})
	}
	return out
}

// staticFile is the file form of a control plane: the instances and rules to route by.
type staticFile struct {
	Instances []api.Instance `json:"instances"`
	Rules     []api.Rule     `json:"rules"`
}

// watchFile loads a static configuration file and reloads it when it changes (checked every
// interval), until ctx ends. A file that does not load leaves the last good one in force.
func (s *state) watchFile(ctx context.Context, path string, interval time.Duration) {
	var lastMod time.Time
	var lastSize int64 = -1
	load := func() {
		fi, err := os.Stat(path)
		if err != nil {
			s.failed("file", err)
			return
		}
		if fi.ModTime().Equal(lastMod) && fi.Size() == lastSize {
			s.synced("file")
			return
		}
		lastMod, lastSize = fi.ModTime(), fi.Size()
		data, err := os.ReadFile(path)
		if err != nil {
			s.failed("file", err)
			return
		}
		f, err := parseStatic(data)
		if err != nil {
			s.failed("file", fmt.Errorf("%s: %w", path, err))
			return
		}
		s.mu.Lock()
		rev := s.revision + 1
		s.mu.Unlock()
		s.setInstances(f.Instances, uint64(rev))
		if err := s.setRules("file", f.Rules, rev); err != nil {
			return
		}
		s.synced("file")
		s.log.Info("static configuration loaded", "file", path, "instances", len(f.Instances), "rules", len(f.Rules))
	}
	load()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			load()
		}
	}
}

func parseStatic(data []byte) (*staticFile, error) {
	js, err := rules.ToJSON(data)
	if err != nil {
		return nil, err
	}
	var f staticFile
	if err := strictjson.Unmarshal(js, &f, ""); err != nil {
		return nil, err
	}
	for i, in := range f.Instances {
		if in.ServiceName == "" || in.Endpoint == nil || in.Endpoint.Value == "" {
			return nil, fmt.Errorf("instances[%d]: needs service_name and endpoint {type, value}", i)
		}
		if in.Endpoint.Type == "" {
			f.Instances[i].Endpoint.Type = api.EndpointHTTP
		}
		if in.Status == "" {
			f.Instances[i].Status = api.StatusUp
		}
	}
	return &f, nil
}

// freshness exports how old the view of each source is.
type freshness struct {
	s       *state
	desc    *prometheus.Desc
	failing *prometheus.Desc
	rev     *prometheus.Desc
}

func newFreshness(s *state) *freshness {
	return &freshness{s: s,
		desc: prometheus.NewDesc("a8_sidecar_sync_age_seconds", "Time since the last answer of a control-plane source (registry, controller, file). "+
			"A blocking query is held up to 30s, so up to about 32s is normal; more means the source is away.", []string{"source"}, nil),
		failing: prometheus.NewDesc("a8_sidecar_source_failing", "1 while the last call to a control-plane source failed, or its latest data was rejected (rules that do not compile): the sidecar routes on an older table.", []string{"source"}, nil),
		rev:     prometheus.NewDesc("a8_sidecar_table_revision", "Rules revision (rules) and registry index (instances) of the routing table in use.", []string{"of"}, nil),
	}
}

func (f *freshness) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc; ch <- f.failing; ch <- f.rev }

func (f *freshness) Collect(ch chan<- prometheus.Metric) {
	for name, src := range f.s.snapshot() {
		age := time.Since(src.LastSync).Seconds()
		if src.LastSync.IsZero() {
			age = -1
		}
		ch <- prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, age, name)
		failing := 0.0
		if src.Failing || src.Rejected != "" {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(f.failing, prometheus.GaugeValue, failing, name)
	}
	f.s.mu.Lock()
	rev, idx := f.s.revision, f.s.index
	f.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(f.rev, prometheus.GaugeValue, float64(rev), "rules")
	ch <- prometheus.MustNewConstMetric(f.rev, prometheus.GaugeValue, float64(idx), "instances")
}
