package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/flagenv"
	"github.com/a8fabric/a8/internal/logging"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
)

// serverFlags are the flags every a8 server has, with Amalgam8's names.
type serverFlags struct {
	apiPort      int
	logLevel     string
	logFormat    string
	authMode     string
	jwtSecret    string
	requireHTTPS bool
}

func (f *serverFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&f.apiPort, "api_port", 8080, "port of the API")
	fs.StringVar(&f.logLevel, "log_level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log_format", "text", "text or json")
	fs.StringVar(&f.authMode, "auth_mode", "", "authentication: empty (one tenant, \"default\"), trusted, jwt, or a chain such as jwt,trusted")
	fs.StringVar(&f.jwtSecret, "jwt_secret", "", "HS256 secret of --auth_mode jwt")
	fs.BoolVar(&f.requireHTTPS, "require_https", false, "redirect plain-HTTP requests to HTTPS")
}

// setup builds the logger and the authenticator.
func (f *serverFlags) setup(stderr io.Writer) (*slog.Logger, auth.Authenticator, error) {
	log, err := logging.New(stderr, f.logLevel, f.logFormat)
	if err != nil {
		return nil, nil, err
	}
	redisstore.SetLogger(log.With("component", "go-redis"))
	a, err := auth.New(f.authMode, f.jwtSecret)
	if err != nil {
		return nil, nil, err
	}
	return log, a, nil
}

// leaseFlags are the registry's lease settings.
type leaseFlags struct {
	defaultTTL        time.Duration
	minTTL            time.Duration
	maxTTL            time.Duration
	namespaceCapacity int
	reapInterval      time.Duration
}

func (f *leaseFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.defaultTTL, "default_ttl", 30*time.Second, "TTL of a registration that gives none")
	fs.DurationVar(&f.minTTL, "min_ttl", 10*time.Second, "shortest TTL; shorter ones are raised to it")
	fs.DurationVar(&f.maxTTL, "max_ttl", 10*time.Minute, "longest TTL; longer ones are lowered to it")
	fs.IntVar(&f.namespaceCapacity, "namespace_capacity", -1, "most instances one namespace may hold (-1: unlimited)")
	fs.DurationVar(&f.reapInterval, "reap_interval", time.Second, "how often expired instances are removed and watchers told")
}

func (f *leaseFlags) validate() error {
	if f.namespaceCapacity == 0 || f.namespaceCapacity < -1 {
		return fmt.Errorf("--namespace_capacity %d: use -1 for unlimited or a positive number of instances", f.namespaceCapacity)
	}
	return nil
}

// redisFlags say how to reach Redis; the registry and the controller spell them differently
// (Amalgam8's --store_address versus --database_host), so each names its own.
type redisFlags struct {
	address, password string
	db                int
}

func (f *redisFlags) options() redisstore.ClientOptions {
	return redisstore.ClientOptions{Address: f.address, Password: f.password, DB: f.db}
}

// parse parses args into fs with the A8_ environment, and refuses positional arguments.
func parse(fs *flag.FlagSet, args []string, name string) error {
	if err := flagenv.Parse(fs, args, "A8_"); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", name, fs.Args())
	}
	return nil
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

// newFlagSet returns a flag set whose usage lists each flag's environment variable.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = flagenv.Usage(fs, "A8_", synopsis)
	return fs
}
