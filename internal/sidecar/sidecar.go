// Package sidecar runs a8's sidecar beside one app instance: it registers the instance and keeps it
// registered while its health checks pass, routes the app's outgoing calls through the proxy by the
// controller's rules and the registry's instances, supervises the app's processes, and serves an
// admin API (health, readiness, metrics, routing table, request records).
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/client"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/sidecar/config"
	"github.com/a8fabric/a8/internal/sidecar/health"
	"github.com/a8fabric/a8/internal/sidecar/proxy"
	"github.com/a8fabric/a8/internal/sidecar/records"
	"github.com/a8fabric/a8/internal/sidecar/supervise"
	"github.com/a8fabric/a8/internal/sidecar/table"
)

// Sidecar is a running sidecar.
type Sidecar struct {
	cfg     *config.Config
	log     *slog.Logger
	reg     *prometheus.Registry
	ring    *records.Ring
	writer  *records.Writer
	deliver *records.Deliverer // traced requests' records to the controller; nil without one
	proxy   *proxy.Proxy
	state   *state
	monitor *health.Monitor
	super   *supervise.Supervisor

	registered atomic.Bool
	regMu      sync.Mutex
	regErr     string
	regID      string

	proxyAddr, adminAddr string
	ready                chan struct{} // closed when the listeners are up (for tests)

	stopOnce sync.Once
	stopSig  os.Signal     // the signal that stopped the sidecar, forwarded to the apps
	stopping chan struct{} // closed by Stop
}

// New prepares a sidecar for cfg; Run starts it.
func New(cfg *config.Config, log *slog.Logger) (*Sidecar, error) {
	s := &Sidecar{cfg: cfg, log: log, reg: prometheus.NewRegistry(), ring: records.NewRing(cfg.ProxyConfig.Records),
		ready: make(chan struct{}), stopping: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	self := rules.Caller{Name: cfg.Service.Name, Tags: cfg.Service.Tags}
	if cfg.Proxy && cfg.StaticConfig != "" {
		log.Info("routing by --static_config: the controller is not used, nor the registry for routing", "file", cfg.StaticConfig)
	}
	if cfg.Proxy {
		switch cfg.ProxyConfig.AccessLog {
		case "":
		case "-":
			s.writer = records.NewWriter(os.Stdout, 8192, log)
		default:
			f, err := os.OpenFile(cfg.ProxyConfig.AccessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, fmt.Errorf("--access_log: %w", err)
			}
			s.writer = records.NewWriter(f, 8192, log)
		}
		m := proxy.NewMetrics(s.reg, cfg.Service.Name)
		pcfg := proxy.Config{Self: self, Ring: s.ring, Writer: s.writer, Metrics: m, Logger: log.With("component", "proxy")}
		if cfg.StaticConfig == "" && cfg.Controller.URL != "" {
			d, err := s.newDeliverer()
			if err != nil {
				return nil, err
			}
			s.deliver = d
			pcfg.OnTraceStart, pcfg.OnRecord = d.Started, d.Ended
		}
		s.proxy = proxy.New(pcfg)
		s.state = newState(log.With("component", "discovery"), table.Options{Self: self, Pool: table.NewPool(),
			OnEject: func(c *table.Cluster, e *table.Endpoint) {
				m.Ejected(c)
				log.Warn("instance ejected after repeated failures", "cluster", c.Key, "endpoint", e.Addr)
			}}, s.proxy.SetTable)
		s.reg.MustRegister(newFreshness(s.state))
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "a8_sidecar_table_age_seconds",
			Help: "Time since the routing table in use was built."}, func() float64 {
			if t := s.proxy.Table(); !t.Built.IsZero() {
				return time.Since(t.Built).Seconds()
			}
			return -1
		}))
		if s.writer != nil {
			s.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "a8_sidecar_records_dropped_total",
				Help: "Request records not written because the access log could not keep up."}, func() float64 { return float64(s.writer.Dropped()) }))
		}
	}
	if cfg.Register {
		mon, err := health.NewMonitor(cfg.HealthChecks, log.With("component", "health"))
		if err != nil {
			return nil, err
		}
		s.monitor = mon
		s.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "a8_sidecar_registered",
			Help: "1 while the instance is registered."}, func() float64 {
			if s.registered.Load() {
				return 1
			}
			return 0
		}))
	}
	if len(cfg.Commands) > 0 {
		cmds := make([]supervise.Command, len(cfg.Commands))
		for i, c := range cfg.Commands {
			cmds[i] = supervise.Command{Cmd: c.Cmd, Env: c.Env, OnExit: c.OnExit, KillGroup: c.KillGroup}
		}
		sup, err := supervise.New(cmds, supervise.Options{Logger: log.With("component", "supervisor"), Stdin: os.Stdin})
		if err != nil {
			return nil, err
		}
		s.super = sup
	}
	return s, nil
}

// Stop asks a running sidecar to stop because of sig (nil: no signal): it deregisters the instance,
// passes sig on to the supervised processes and gives them the grace period to exit before they are
// killed. Run then returns.
func (s *Sidecar) Stop(sig os.Signal) {
	s.stopOnce.Do(func() {
		s.stopSig = sig
		close(s.stopping)
	})
}

// Run runs the sidecar until ctx ends, Stop is called or a "terminate" process exits, and returns
// the exit code the sidecar should end with: that of the first "terminate" process to exit, or 0.
func (s *Sidecar) Run(ctx context.Context) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup // background loops: discovery, health
	defer wg.Wait()
	defer cancel()

	// Requests in flight when the sidecar stops get a grace period, then their context ends.
	reqCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	var servers []stoppable
	var srvWG sync.WaitGroup
	if s.cfg.Proxy {
		ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.ProxyConfig.ListenAddress, strconv.Itoa(s.cfg.ProxyConfig.HTTPListenerPort)))
		if err != nil {
			return 1, fmt.Errorf("proxy listener (--proxy_port %d): %w", s.cfg.ProxyConfig.HTTPListenerPort, err)
		}
		s.proxyAddr = ln.Addr().String()
		ps := proxy.NewServer(s.proxy)
		srvWG.Add(1)
		go func() {
			defer srvWG.Done()
			if err := ps.Serve(ln); err != nil && !errors.Is(err, proxy.ErrServerClosed) {
				s.log.Error("listener failed", "listener", "proxy", "error", err)
			}
		}()
		servers = append(servers, ps)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.ProxyConfig.AdminAddress, strconv.Itoa(s.cfg.ProxyConfig.AdminPort)))
	if err != nil {
		for _, srv := range servers {
			srv.Close()
		}
		return 1, fmt.Errorf("admin listener (--admin_port %d): %w", s.cfg.ProxyConfig.AdminPort, err)
	}
	s.adminAddr = ln.Addr().String()
	servers = append(servers, s.serve(&srvWG, ln, s.admin(), "admin", reqCtx))
	stopDelivery := func() {}
	if s.deliver != nil {
		dctx, cancelDelivery := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.deliver.Run(dctx) }()
		stopDelivery = func() { cancelDelivery(); <-done }
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				cancelRequests() // the grace is over: end what is still in flight
				srv.Close()
			}
		}
		srvWG.Wait()
		if s.proxy != nil {
			s.proxy.Close()
		}
		stopDelivery() // after the proxy: the last requests' records go too
		if s.writer != nil {
			s.writer.Close()
		}
	}()
	s.log.Info("a8 sidecar started", "service", s.cfg.Service.String(), "register", s.cfg.Register, "proxy", s.cfg.Proxy,
		"proxy_address", s.proxyAddr, "admin_address", s.adminAddr, "commands", len(s.cfg.Commands))
	close(s.ready)

	if s.cfg.Proxy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.cfg.StaticConfig != "" {
				s.state.watchFile(ctx, s.cfg.StaticConfig, time.Second)
				return
			}
			if a := s.cfg.DiscoveryAdapter; a == config.DiscoveryKubernetes || a == config.DiscoveryEureka {
				s.watchDiscoveryAdapter(ctx)
				return
			}
			reg, err := client.NewRegistry(client.RegistryConfig{URL: s.cfg.Registry.URL, Token: s.cfg.Registry.Token})
			if err != nil {
				s.log.Error("registry client", "error", err)
				return
			}
			ctl, err := client.NewController(client.ControllerConfig{URL: s.cfg.Controller.URL, Token: s.cfg.Controller.Token})
			if err != nil {
				s.log.Error("controller client", "error", err)
				return
			}
			s.state.watchControlPlane(ctx, reg, ctl, s.cfg.Registry.Poll, s.cfg.Controller.Poll)
		}()
	}
	// Registration runs in its own context, so that it can be ended (deregistering) before the apps
	// are told to stop: no caller should be sent to an app that is going away.
	regCtx, stopRegistration := context.WithCancel(ctx)
	regDone := make(chan struct{})
	if s.monitor != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.monitor.Run(ctx) }()
		go func() { defer close(regDone); s.register(regCtx) }()
	} else {
		close(regDone)
	}
	deregister := func() {
		stopRegistration()
		select {
		case <-regDone:
		case <-time.After(10 * time.Second):
			s.log.Warn("deregistration did not finish within 10s")
		}
	}
	defer deregister()

	if s.super == nil {
		select {
		case <-ctx.Done():
		case <-s.stopping:
		}
		return 0, nil
	}
	if err := s.super.Start(); err != nil {
		return 1, err
	}
	code := 0
	select {
	case exit := <-s.super.Terminated():
		code = exitCodeOf(exit)
		s.log.Info("supervised process exited; stopping the sidecar", "command", exit.Command.String(), "code", code, "error", exit.Err)
		deregister()
	case <-ctx.Done():
		deregister()
	case <-s.stopping:
		deregister()
		if s.stopSig != nil { // pass the signal on, as Amalgam8 did, and give the apps their grace
			s.log.Info("stopping: passing the signal on to the supervised processes", "signal", s.stopSig.String())
			s.super.Signal(s.stopSig)
			select {
			case <-s.super.Done():
			case <-time.After(supervise.DefaultGrace):
			}
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	s.super.Stop(sctx)
	scancel()
	if code == 0 {
		for _, e := range s.super.Exits() { // the first "terminate" process's code, if it ended now
			if e.Command.OnExit != supervise.OnExitIgnore {
				code = exitCodeOf(e)
				break
			}
		}
	}
	return code, nil
}

func exitCodeOf(e supervise.Exit) int {
	if e.Err != nil && e.Code <= 0 {
		return 1
	}
	return e.Code
}

func (s *Sidecar) serve(wg *sync.WaitGroup, ln net.Listener, h http.Handler, name string, base context.Context) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("listener failed", "listener", name, "error", err)
		}
	}()
	return srv
}

// stoppable is a server the sidecar shuts down: the proxy's and the admin's.
type stoppable interface {
	Shutdown(context.Context) error
	Close() error
}

// register keeps the instance registered while its health checks pass: registration starts when
// they all pass, stops (deregistering) when one fails, and starts again on recovery.
func (s *Sidecar) register(ctx context.Context) {
	reg, err := client.NewRegistry(client.RegistryConfig{URL: s.cfg.Registry.URL, Token: s.cfg.Registry.Token})
	if err != nil {
		s.setRegErr(err)
		return
	}
	registration := api.InstanceRegistration{
		ServiceName: s.cfg.Service.Name, Tags: s.cfg.Service.Tags, TTL: int64(s.cfg.Registry.TTL / time.Second),
		Endpoint: &api.Endpoint{Type: s.cfg.Endpoint.Type, Value: net.JoinHostPort(s.cfg.Endpoint.Host, strconv.Itoa(s.cfg.Endpoint.Port))},
	}
	if len(s.cfg.HealthChecks) == 0 { // as Amalgam8: give the app a moment to listen
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
	}
	type keeper struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	var k *keeper
	halt := func() {
		if k != nil {
			k.cancel()
			<-k.done
			k = nil
		}
	}
	defer halt()
	for {
		select {
		case <-ctx.Done():
			return
		case healthy := <-s.monitor.Updates():
			if healthy && k == nil {
				kctx, cancel := context.WithCancel(ctx)
				k = &keeper{cancel: cancel, done: make(chan struct{})}
				done := k.done
				go func() {
					defer close(done)
					err := reg.KeepRegistered(kctx, registration, client.KeepOptions{
						Logger: s.log.With("component", "registration"),
						OnRegistered: func(r api.RegistrationResponse) {
							s.regMu.Lock()
							s.regID, s.regErr = r.ID, ""
							s.regMu.Unlock()
							if !s.registered.Swap(true) {
								s.log.Info("registered", "service", s.cfg.Service.String(), "id", r.ID, "endpoint", registration.Endpoint.Value, "ttl", r.TTL)
							}
						},
					})
					s.registered.Store(false)
					if err != nil {
						s.setRegErr(err)
						s.log.Error("registration stopped: the registry refuses it; fix the configuration", "error", err)
					}
				}()
			} else if !healthy && k != nil {
				s.log.Warn("health checks failing: deregistering until they pass")
				halt()
			}
		}
	}
}

func (s *Sidecar) setRegErr(err error) {
	s.regMu.Lock()
	s.regErr = err.Error()
	s.regMu.Unlock()
}

// ProxyAddr and AdminAddr are the listeners' addresses once Run has started them.
func (s *Sidecar) ProxyAddr() string { <-s.ready; return s.proxyAddr }

// AdminAddr is the admin listener's address once Run has started it.
func (s *Sidecar) AdminAddr() string { <-s.ready; return s.adminAddr }

// Signal forwards a signal to the supervised processes.
func (s *Sidecar) Signal(sig os.Signal) {
	if s.super != nil && sig != syscall.SIGCHLD {
		s.super.Signal(sig)
	}
}

// Exited reports whether the supervised processes have all exited (true without any).
func (s *Sidecar) Exited() bool {
	if s.super == nil {
		return true
	}
	select {
	case <-s.super.Done():
		return true
	default:
		return false
	}
}
