package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/version"
)

// registryFlags are the flags of "a8 registry", with Amalgam8's names and defaults.
type registryFlags struct {
	serverFlags
	leaseFlags
	store       string
	redis       redisFlags
	replication bool
	catalogs    catalogFlags
}

func (f *registryFlags) register(fs *flag.FlagSet) {
	f.serverFlags.register(fs)
	f.leaseFlags.register(fs)
	f.catalogs.register(fs)
	fs.StringVar(&f.store, "store", "memory", "instance store: memory (embedded) or redis")
	fs.StringVar(&f.redis.address, "store_address", "", "Redis host:port or redis:// URL, with --store redis")
	fs.StringVar(&f.redis.password, "store_password", "", "Redis password, with --store redis")
	fs.IntVar(&f.redis.db, "store_db", 0, "Redis database number, with --store redis")
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
	if err := f.catalogs.validate(); err != nil {
		return err
	}
	return f.leaseFlags.validate()
}

// config is the registry configuration of the lease flags.
func (f *leaseFlags) config(s store.Instances) registry.Config {
	return registry.Config{
		Store:             s,
		DefaultTTL:        f.defaultTTL,
		MinTTL:            f.minTTL,
		MaxTTL:            f.maxTTL,
		NamespaceCapacity: f.namespaceCapacity,
		ReapInterval:      f.reapInterval,
		Version:           version.String(),
	}
}

func runRegistry(ctx context.Context, args []string, stderr io.Writer) error {
	var f registryFlags
	fs := newFlagSet("a8 registry", "Usage: a8 registry [flags]\n\nRuns the multi-tenant service registry (Amalgam8 registry API) on --api_port.", stderr)
	f.register(fs)
	if err := parse(fs, args, "a8 registry"); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	log, authn, err := f.setup(stderr)
	if err != nil {
		return err
	}
	instances, closeStore, err := openInstanceStore(f.store, f.redis, log)
	if err != nil {
		return err
	}
	defer closeStore()
	cats, err := f.catalogs.open(log)
	if err != nil {
		return err
	}
	instances = catalog.Merge(instances, cats...)

	cfg := f.leaseFlags.config(instances)
	cfg.Auth, cfg.RequireHTTPS, cfg.Logger, cfg.Catalogs = authn, f.requireHTTPS, log.With("component", "registry"), cats
	reg, err := registry.New(cfg)
	if err != nil {
		return err
	}
	ln, err := listen(f.apiPort)
	if err != nil {
		return err
	}
	log.Info("a8 registry listening", "address", ln.Addr().String(), "store", f.store,
		"auth_mode", f.authMode, "version", version.String())
	return serve(ctx, log, ln, reg.Handler(), reg.Drain, append(catalogRuns(cats), reg.Run)...)
}

// openInstanceStore opens the registry's store of --store.
func openInstanceStore(kind string, rf redisFlags, log *slog.Logger) (store.Instances, func(), error) {
	switch strings.ToLower(kind) {
	case "memory", "inmem":
		s := memory.NewInstances(nil)
		return s, func() { s.Close() }, nil
	case "redis":
		c, err := redisstore.NewClient(rf.options())
		if err != nil {
			return nil, nil, fmt.Errorf("%w (--store_address, env A8_STORE_ADDRESS)", err)
		}
		s := redisstore.NewInstances(c, redisstore.InstancesOptions{Logger: log.With("component", "redis")})
		pingRedis(s.Ping, rf.address, log)
		return s, func() { s.Close(); c.Close() }, nil
	}
	return nil, nil, fmt.Errorf("--store %q: use memory or redis", kind)
}

// pingRedis warns when Redis cannot be reached at start. The server starts anyway: requests get 503
// until Redis is reachable, and it recovers by itself.
func pingRedis(ping func(context.Context) error, address string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := ping(ctx); err != nil {
		log.Warn("Redis is not reachable yet; answering 503 until it is", "address", redactURL(address), "error", err)
	}
}
