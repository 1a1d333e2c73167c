package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"strings"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/version"
)

type upFlags struct {
	serverFlags
	leaseFlags
	recipeFlags
	catalogs catalogFlags
	dataDir  string
}

func (f *upFlags) register(fs *flag.FlagSet) {
	f.serverFlags.register(fs)
	f.leaseFlags.register(fs)
	f.recipeFlags.register(fs)
	f.catalogs.register(fs)
	fs.StringVar(&f.dataDir, "data_dir", DefaultDataDir, "directory where rules are written before a change is acknowledged (empty: memory only)")
}

// runUp runs the registry and the controller in one process, on one port, on the embedded stores:
// their paths do not collide (/api/v1/..., /uptime for the registry; /v1/rules..., /health for the
// controller).
func runUp(ctx context.Context, args []string, stderr io.Writer) error {
	var f upFlags
	fs := newFlagSet("a8 up", "Usage: a8 up [flags]\n\nRuns the registry and the controller in one process on --api_port, with embedded stores;\nrules are kept in --data_dir.", stderr)
	f.register(fs)
	if err := parse(fs, args, "a8 up"); err != nil {
		return err
	}
	if err := f.recipeFlags.validate(); err != nil {
		return err
	}
	if err := f.leaseFlags.validate(); err != nil {
		return err
	}
	if err := f.catalogs.validate(); err != nil {
		return err
	}
	log, authn, err := f.setup(stderr)
	if err != nil {
		return err
	}
	if f.dataDir == "" {
		log.Warn("--data_dir is empty: rules are kept in memory only and lost when a8 stops")
	}
	rulesStore, err := memory.NewRules(f.dataDir)
	if err != nil {
		return err
	}
	cats, err := f.catalogs.open(log)
	if err != nil {
		return err
	}
	instances := catalog.Merge(memory.NewInstances(nil), cats...)

	rcfg := f.leaseFlags.config(instances)
	rcfg.Auth, rcfg.Logger, rcfg.Catalogs = authn, log.With("component", "registry"), cats
	reg, err := registry.New(rcfg)
	if err != nil {
		return err
	}
	recipes := memory.NewRecipes(f.recipeFlags.options(), nil)
	defer recipes.Close()
	ctl, err := controller.New(controller.Config{Store: rulesStore, Recipes: recipes, Auth: authn, Logger: log.With("component", "controller"), Version: version.String()})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	reg.Mount(mux)
	ctl.Mount(mux)
	// An unknown path, or a panic, answers in the format of the API the path belongs to.
	writeErr := func(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || r.URL.Path == "/health" {
			controller.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				controller.WriteError(w, r, status, code, msg)
			})).ServeHTTP(w, r)
			return
		}
		registry.WriteError(w, r, status, code, msg)
	}
	mux.Handle("/", httpapi.NotFound(writeErr))
	var h http.Handler = httpapi.AccessLog(log, httpapi.Recover(log, writeErr, httpapi.CleanPath(writeErr, mux)))
	if f.requireHTTPS {
		h = httpapi.RequireHTTPS(h)
	}
	ln, err := listen(f.apiPort)
	if err != nil {
		return err
	}
	log.Info("a8 up: registry and controller listening", "address", ln.Addr().String(), "data_dir", f.dataDir,
		"auth_mode", f.authMode, "version", version.String(),
		"registry", "http://localhost:"+portOf(ln.Addr().String())+"/api/v1/instances",
		"controller", "http://localhost:"+portOf(ln.Addr().String())+"/v1/rules")
	return serve(ctx, log, ln, h, func() { reg.Drain(); ctl.Drain() }, append(catalogRuns(cats), reg.Run)...)
}

func portOf(addr string) string {
	return addr[strings.LastIndex(addr, ":")+1:]
}
