package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/flagenv"
	"github.com/a8fabric/a8/internal/logging"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/version"
)

// registryFlags are the flags of "a8 registry", with Amalgam8's names and defaults.
type registryFlags struct {
	apiPort           int
	logLevel          string
	logFormat         string
	defaultTTL        time.Duration
	minTTL            time.Duration
	maxTTL            time.Duration
	namespaceCapacity int
	authMode          string
	jwtSecret         string
	requireHTTPS      bool
	store             string
	storeAddress      string
	storePassword     string
	storeDB           int
	reapInterval      time.Duration
	replication       bool
}

func (f *registryFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.apiPort, "api_port", 8080, "port of the registry API")
	fs.StringVar(&f.logLevel, "log_level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log_format", "text", "text or json")
	fs.DurationVar(&f.defaultTTL, "default_ttl", 30*time.Second, "TTL of a registration that gives none")
	fs.DurationVar(&f.minTTL, "min_ttl", 10*time.Second, "shortest TTL; shorter ones are raised to it")
	fs.DurationVar(&f.maxTTL, "max_ttl", 10*time.Minute, "longest TTL; longer ones are lowered to it")
	fs.IntVar(&f.namespaceCapacity, "namespace_capacity", -1, "most instances one namespace may hold (-1: unlimited)")
	fs.StringVar(&f.authMode, "auth_mode", "", "authentication: empty (one tenant, \"default\"), trusted, jwt, or a chain such as jwt,trusted")
	fs.StringVar(&f.jwtSecret, "jwt_secret", "", "HS256 secret of --auth_mode jwt")
	fs.BoolVar(&f.requireHTTPS, "require_https", false, "redirect plain-HTTP requests to HTTPS")
	fs.StringVar(&f.store, "store", "memory", "instance store: memory (embedded) or redis")
	fs.StringVar(&f.storeAddress, "store_address", "", "Redis host:port or redis:// URL, with --store redis")
	fs.StringVar(&f.storePassword, "store_password", "", "Redis password, with --store redis")
	fs.IntVar(&f.storeDB, "store_db", 0, "Redis database number, with --store redis")
	fs.DurationVar(&f.reapInterval, "reap_interval", time.Second, "how often expired instances are removed and watchers told")
	// Amalgam8's in-memory peer replication: a8 replicates through Redis instead. The flags are
	// known so that an Amalgam8 command line gets a clear answer rather than "flag not defined".
	fs.BoolVar(&f.replication, "replication", false, "Amalgam8's peer replication: not supported, use --store redis with several replicas")
	for _, name := range []string{"replication_port", "cluster_dir", "cluster_size", "sync_timeout"} {
		fs.String(name, "", "Amalgam8 replication setting: not supported (see --replication)")
	}
}

func (f *registryFlags) validate() error {
	if f.replication {
		return errors.New("--replication: a8 does not replicate between in-memory registries; run several registries with --store redis --store_address host:port, they share one state")
	}
	if f.namespaceCapacity == 0 || f.namespaceCapacity < -1 {
		return fmt.Errorf("--namespace_capacity %d: use -1 for unlimited or a positive number of instances", f.namespaceCapacity)
	}
	return nil
}

func runRegistry(ctx context.Context, args []string, stderr io.Writer) error {
	var f registryFlags
	fs := flag.NewFlagSet("a8 registry", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	fs.Usage = flagenv.Usage(fs, "A8_", "Usage: a8 registry [flags]\n\nRuns the multi-tenant service registry (Amalgam8 registry API) on --api_port.")
	if err := flagenv.Parse(fs, args, "A8_"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("a8 registry takes no arguments, got %q", fs.Args())
	}
	if err := f.validate(); err != nil {
		return err
	}
	log, err := logging.New(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	authn, err := auth.New(f.authMode, f.jwtSecret)
	if err != nil {
		return err
	}
	instances, closeStore, err := openInstanceStore(f, log)
	if err != nil {
		return err
	}
	defer closeStore()

	reg, err := registry.New(registry.Config{
		Store:             instances,
		Auth:              authn,
		DefaultTTL:        f.defaultTTL,
		MinTTL:            f.minTTL,
		MaxTTL:            f.maxTTL,
		NamespaceCapacity: f.namespaceCapacity,
		ReapInterval:      f.reapInterval,
		RequireHTTPS:      f.requireHTTPS,
		Logger:            log.With("component", "registry"),
		Version:           version.String(),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", f.apiPort))
	if err != nil {
		return fmt.Errorf("listen on --api_port %d: %w", f.apiPort, err)
	}
	log.Info("a8 registry listening", "address", ln.Addr().String(), "store", f.store,
		"auth_mode", f.authMode, "version", version.String())
	return serve(ctx, log, ln, reg.Handler(), reg.Drain, reg.Run)
}

// openInstanceStore opens the store of --store.
func openInstanceStore(f registryFlags, log *slog.Logger) (store.Instances, func(), error) {
	switch strings.ToLower(f.store) {
	case "memory", "inmem":
		s := memory.NewInstances(nil)
		return s, func() { s.Close() }, nil
	case "redis":
		c, err := redisstore.NewClient(redisstore.ClientOptions{Address: f.storeAddress, Password: f.storePassword, DB: f.storeDB})
		if err != nil {
			return nil, nil, err
		}
		s := redisstore.NewInstances(c, redisstore.InstancesOptions{Logger: log.With("component", "redis")})
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := s.Ping(pctx); err != nil {
			// Start anyway: requests get 503 until Redis is reachable, and the registry recovers by itself.
			log.Warn("Redis is not reachable yet; answering 503 until it is", "address", redactURL(f.storeAddress), "error", err)
		}
		return s, func() { s.Close(); c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("--store %q: use memory or redis", f.store)
}

// redactURL hides a password in a redis:// URL before it is logged.
func redactURL(addr string) string {
	if at := strings.LastIndex(addr, "@"); at >= 0 {
		if scheme := strings.Index(addr, "://"); scheme >= 0 && scheme < at {
			return addr[:scheme+3] + "***" + addr[at:]
		}
	}
	return addr
}

// serve serves h on ln and runs background loops until ctx ends, then drains blocking queries and
// shuts down gracefully.
func serve(ctx context.Context, log *slog.Logger, ln net.Listener, h http.Handler, drain func(), loops ...func(context.Context) error) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No WriteTimeout: blocking queries legitimately hold a response for up to 5 minutes.
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	errc := make(chan error, len(loops)+1)
	for _, loop := range loops {
		go func() { errc <- loop(loopCtx) }()
	}
	go func() { errc <- srv.Serve(ln) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	log.Info("shutting down")
	drain()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	return err
}
