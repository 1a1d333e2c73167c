package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/version"
)

// DefaultDataDir is where the embedded store keeps rules, relative to the working directory.
const DefaultDataDir = "a8-data"

// controllerFlags are the flags of "a8 controller", with Amalgam8's names.
type controllerFlags struct {
	serverFlags
	recipeFlags
	databaseType  string
	redis         redisFlags
	dataDir       string
	encryptionKey string
}

func (f *controllerFlags) register(fs *flag.FlagSet) {
	f.serverFlags.register(fs)
	f.recipeFlags.register(fs)
	fs.StringVar(&f.databaseType, "database_type", "memory", "rules store: memory (embedded, persisted to --data_dir) or redis")
	fs.StringVar(&f.redis.address, "database_host", "", "Redis redis://host:port URL (or host:port), with --database_type redis")
	fs.StringVar(&f.redis.password, "database_password", "", "Redis password, with --database_type redis")
	fs.StringVar(&f.dataDir, "data_dir", DefaultDataDir, "directory where the memory store writes every change before acknowledging it (empty: keep rules in memory only)")
	fs.StringVar(&f.encryptionKey, "encryption_key", "", "Amalgam8's at-rest encryption of rules in Redis: not supported, protect Redis with AUTH and TLS")
}

func runController(ctx context.Context, args []string, stderr io.Writer) error {
	var f controllerFlags
	fs := newFlagSet("a8 controller", "Usage: a8 controller [flags]\n\nRuns the multi-tenant rules controller (Amalgam8 controller API) on --api_port.", stderr)
	f.register(fs)
	if err := parse(fs, args, "a8 controller"); err != nil {
		return err
	}
	if err := f.recipeFlags.validate(); err != nil {
		return err
	}
	log, authn, err := f.setup(stderr)
	if err != nil {
		return err
	}
	if f.encryptionKey != "" {
		log.Warn("--encryption_key is ignored: a8 stores rules unencrypted; protect Redis with AUTH (--database_password) and TLS (rediss://)")
	}
	rulesStore, recipes, closeStore, err := openRulesStore(f.databaseType, f.dataDir, f.redis, f.recipeFlags.options(), log)
	if err != nil {
		return err
	}
	defer closeStore()
	ctl, err := controller.New(controller.Config{
		Store:        rulesStore,
		Recipes:      recipes,
		Auth:         authn,
		RequireHTTPS: f.requireHTTPS,
		Logger:       log.With("component", "controller"),
		Version:      version.String(),
	})
	if err != nil {
		return err
	}
	ln, err := listen(f.apiPort)
	if err != nil {
		return err
	}
	log.Info("a8 controller listening", "address", ln.Addr().String(), "database_type", f.databaseType,
		"data_dir", f.dataDir, "auth_mode", f.authMode, "version", version.String())
	return serve(ctx, log, ln, ctl.Handler(), ctl.Drain)
}

// openRulesStore opens the controller's stores of --database_type: rules, and recipes with the
// records of traced requests (in memory for the memory type: they are tests in progress).
func openRulesStore(kind, dataDir string, rf redisFlags, ro store.RecipesOptions, log *slog.Logger) (store.Rules, store.Recipes, func(), error) {
	switch strings.ToLower(kind) {
	case "memory", "inmem":
		if dataDir == "" {
			log.Warn("--data_dir is empty: rules are kept in memory only and lost when the controller stops")
		}
		s, err := memory.NewRules(dataDir)
		if err != nil {
			return nil, nil, nil, err
		}
		rs := memory.NewRecipes(ro, nil)
		return s, rs, func() { rs.Close(); s.Close() }, nil
	case "redis":
		c, err := redisstore.NewClient(rf.options())
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w (--database_host, env A8_DATABASE_HOST)", err)
		}
		s := redisstore.NewRules(c, redisstore.RulesOptions{Logger: log.With("component", "redis")})
		rs := redisstore.NewRecipes(c, redisstore.RecipesOptions{RecipesOptions: ro})
		pingRedis(s.Ping, rf.address, log)
		return s, rs, func() { rs.Close(); s.Close(); c.Close() }, nil
	case "kubernetes":
		return nil, nil, nil, fmt.Errorf("--database_type kubernetes (Amalgam8's RoutingRule resources) is not supported: use memory or redis")
	}
	return nil, nil, nil, fmt.Errorf("--database_type %q: use memory or redis", kind)
}

// recipeFlags bound what the controller keeps of resilience tests.
type recipeFlags struct {
	records, recipes, memoryMB int
	retention                  time.Duration
}

func (f *recipeFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.records, "recipe_records", 100_000, "request records kept per recipe (the oldest are dropped first)")
	fs.DurationVar(&f.retention, "recipe_retention", 24*time.Hour, "how long the records of a recipe are kept after the last one arrived (recipes themselves stay until deleted)")
	fs.IntVar(&f.recipes, "recipe_limit", 1000, "recipes a tenant may run at once")
	fs.IntVar(&f.memoryMB, "recipe_memory_mb", 256, "MiB of request records a tenant may keep in the memory store (least recently used recipes' records go first; with Redis, Redis's maxmemory governs)")
}

func (f *recipeFlags) validate() error {
	if f.records < 1 {
		return fmt.Errorf("--recipe_records %d: keep at least 1 record per recipe", f.records)
	}
	if f.retention <= 0 {
		return fmt.Errorf("--recipe_retention %v: must be positive, such as 24h", f.retention)
	}
	if f.recipes < 1 {
		return fmt.Errorf("--recipe_limit %d: allow at least 1 recipe per tenant", f.recipes)
	}
	if f.memoryMB < 1 {
		return fmt.Errorf("--recipe_memory_mb %d: allow at least 1 MiB", f.memoryMB)
	}
	return nil
}

func (f *recipeFlags) options() store.RecipesOptions {
	return store.RecipesOptions{MaxRecords: f.records, Retention: f.retention, MaxRecipes: f.recipes, MaxBytes: int64(f.memoryMB) << 20}
}
