// Package config is the sidecar's configuration: Amalgam8's flags, A8_* environment variables and
// YAML file (--config), with its precedence (flags over environment over file over defaults) and
// names, plus a8's own settings, checked at start with errors that say what to set.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/a8fabric/a8/internal/flagenv"
	"github.com/a8fabric/a8/internal/sidecar/health"
)

// Supervised process exit policies.
const (
	OnExitTerminate = "terminate"
	OnExitIgnore    = "ignore"
)

// Config is the sidecar's configuration.
type Config struct {
	Register bool `yaml:"register"`
	Proxy    bool `yaml:"proxy"`

	Service  Service  `yaml:"service"`
	Endpoint Endpoint `yaml:"endpoint"`

	Registry   ControlPlane `yaml:"registry"`
	Controller ControlPlane `yaml:"controller"`

	HealthChecks []health.Check `yaml:"healthchecks"`
	Commands     []Command      `yaml:"commands"`

	ProxyConfig ProxyConfig `yaml:"proxy_config"`

	// StaticConfig is a file of instances and rules ({"instances": [...], "rules": [...]}, JSON or
	// YAML) used instead of the registry and controller, re-read when it changes: for a standalone
	// edge proxy, and for benchmarks.
	StaticConfig string `yaml:"static_config"`

	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`

	// Accepted from Amalgam8 configurations; checked by Validate.
	ProxyAdapter     string `yaml:"proxy_adapter"`
	DiscoveryAdapter string `yaml:"discovery_adapter"`
	RulesAdapter     string `yaml:"rules_adapter"`
	Supervise        bool   `yaml:"supervise"`
	DNS              bool   `yaml:"dns"`
	Dnsconfig        any    `yaml:"dnsconfig"`

	// Kubernetes and Eureka are where --discovery_adapter kubernetes or eureka reads instances.
	Kubernetes Kubernetes `yaml:"kubernetes"`
	Eureka     Eureka     `yaml:"eureka"`
}

// Discovery adapters: where a proxying sidecar reads the instances it routes to.
const (
	DiscoveryAmalgam8   = "amalgam8"   // the registry (which may merge catalogs of its own)
	DiscoveryKubernetes = "kubernetes" // a Kubernetes namespace's EndpointSlices and Pods, directly
	DiscoveryEureka     = "eureka"     // a remote Eureka server, directly
)

// Kubernetes is Amalgam8's kubernetes section: the API server the kubernetes discovery adapter
// reads a namespace's EndpointSlices and Pods from.
type Kubernetes struct {
	URL       string `yaml:"url"`       // empty: the pod's in-cluster configuration
	Token     string `yaml:"token"`     // empty: the pod's service account token
	Namespace string `yaml:"namespace"` // default "default"
	CAFile    string `yaml:"ca_file"`   // a8's: the CA that verifies the API server
	// PodName is Amalgam8's way to take the registered service and tags from the pod: not
	// supported (give --service); accepted so that Amalgam8 configurations load.
	PodName string `yaml:"pod_name"`
}

// Eureka is Amalgam8's eureka section: the remote Eureka servers (peers of one cluster) the
// eureka discovery adapter reads instances from.
type Eureka struct {
	URLs []string      `yaml:"urls"`
	Poll time.Duration `yaml:"poll"` // a8's: how often they are polled (default 30s)
}

// Service is the identity the sidecar registers and calls with.
type Service struct {
	Name string   `yaml:"name"`
	Tags []string `yaml:"tags"`
}

// String is Amalgam8's "name:tag1,tag2" form.
func (s Service) String() string { return s.Name + ":" + strings.Join(s.Tags, ",") }

// Endpoint is the address the app is reached at.
type Endpoint struct {
	Host string `yaml:"host"` // default: the host's first private IPv4 address
	Port int    `yaml:"port"`
	Type string `yaml:"type"` // http (default), https, tcp, udp, user
}

// ControlPlane is how to reach the registry or the controller.
type ControlPlane struct {
	URL   string        `yaml:"url"`
	Token string        `yaml:"token"`
	Poll  time.Duration `yaml:"poll"` // the interval when the server has no blocking queries
	TTL   time.Duration `yaml:"ttl"`  // registry only: the lease asked for (default 60s)
}

// Command is a process the sidecar supervises.
type Command struct {
	Cmd       []string `yaml:"cmd"`
	Env       []string `yaml:"env"`
	OnExit    string   `yaml:"on_exit"`
	KillGroup bool     `yaml:"kill_group"`
}

// ProxyConfig is Amalgam8's proxy_config, with a8's additions.
type ProxyConfig struct {
	HTTPListenerPort int    `yaml:"http_listener_port"`
	AdminPort        int    `yaml:"admin_port"`
	ListenAddress    string `yaml:"listen_address"` // the proxy's bind address (default all interfaces, as Amalgam8)
	AdminAddress     string `yaml:"admin_address"`  // the admin's bind address (default 127.0.0.1)
	AccessLog        string `yaml:"access_log"`     // request records as JSON lines: a path, "-" for stdout, "" for none
	Records          int    `yaml:"records"`        // how many records the admin API keeps (default 1000)
	// Amalgam8 1.x's Envoy settings: accepted and ignored, except tls (not supported).
	TLS             bool   `yaml:"tls"`
	CertChainFile   string `yaml:"cert_chain_file"`
	PrivateKeyFile  string `yaml:"private_key_file"`
	CACertFile      string `yaml:"ca_cert_file"`
	SDSPort         int    `yaml:"sds_port"`
	WorkingDir      string `yaml:"working_dir"`
	LoggingDir      string `yaml:"logging_dir"`
	ProxyBinaryPath string `yaml:"proxy_binary_path"`
	GRPCHTTP1Bridge bool   `yaml:"grpc_http1_bridge"`
	TCPProxies      any    `yaml:"tcp_proxies"`
}

// Defaults returns the configuration before file, environment and flags.
func Defaults() Config {
	return Config{
		Endpoint:   Endpoint{Type: "http"},
		Registry:   ControlPlane{URL: "http://localhost:8080", Poll: 15 * time.Second, TTL: 60 * time.Second},
		Controller: ControlPlane{URL: "http://localhost:8080", Poll: 15 * time.Second},
		ProxyConfig: ProxyConfig{
			HTTPListenerPort: 6379, AdminPort: 8001, AdminAddress: "127.0.0.1", Records: 1000,
		},
		LogLevel: "info", LogFormat: "text",
		ProxyAdapter: "envoy", DiscoveryAdapter: DiscoveryAmalgam8, RulesAdapter: "amalgam8",
		Kubernetes: Kubernetes{Namespace: "default"},
		Eureka:     Eureka{Poll: 30 * time.Second},
	}
}

// flagDef binds one flag to the configuration.
type flagDef struct {
	name, usage string
	kind        string // bool, string, int, duration, list
	def         string
	apply       func(c *Config, v string) error
}

func defs() []flagDef {
	str := func(dst func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *dst(c) = v; return nil }
	}
	integer := func(name string, dst func(*Config) *int) func(*Config, string) error {
		return func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("--%s %q: not an integer", name, v)
			}
			*dst(c) = n
			return nil
		}
	}
	dur := func(name string, dst func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("--%s %q: not a duration such as 15s", name, v)
			}
			*dst(c) = d
			return nil
		}
	}
	boolean := func(name string, dst func(*Config) *bool) func(*Config, string) error {
		return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("--%s %q: not true or false", name, v)
			}
			*dst(c) = b
			return nil
		}
	}
	return []flagDef{
		{"register", "register the app with the registry and keep it registered", "bool", "false", boolean("register", func(c *Config) *bool { return &c.Register })},
		{"proxy", "route the app's outgoing calls (listener --proxy_port)", "bool", "false", boolean("proxy", func(c *Config) *bool { return &c.Proxy })},
		{"service", "the app's service and tags, as name:tag1,tag2", "string", "", func(c *Config, v string) error {
			name, tags, _ := strings.Cut(v, ":")
			c.Service = Service{Name: strings.TrimSpace(name)}
			for _, t := range strings.Split(tags, ",") {
				if t = strings.TrimSpace(t); t != "" {
					c.Service.Tags = append(c.Service.Tags, t)
				}
			}
			return nil
		}},
		{"endpoint_host", "host the app is reached at (default: this host's private IP)", "string", "", str(func(c *Config) *string { return &c.Endpoint.Host })},
		{"endpoint_port", "port the app listens on", "int", "0", integer("endpoint_port", func(c *Config) *int { return &c.Endpoint.Port })},
		{"endpoint_type", "http, https, tcp, udp or user", "string", "http", str(func(c *Config) *string { return &c.Endpoint.Type })},
		{"registry_url", "registry URL", "string", "http://localhost:8080", str(func(c *Config) *string { return &c.Registry.URL })},
		{"registry_token", "registry bearer token", "string", "", str(func(c *Config) *string { return &c.Registry.Token })},
		{"registry_poll", "poll interval against a registry without blocking queries", "duration", "15s", dur("registry_poll", func(c *Config) *time.Duration { return &c.Registry.Poll })},
		{"registry_ttl", "lease asked for when registering", "duration", "60s", dur("registry_ttl", func(c *Config) *time.Duration { return &c.Registry.TTL })},
		{"controller_url", "controller URL", "string", "http://localhost:8080", str(func(c *Config) *string { return &c.Controller.URL })},
		{"controller_token", "controller bearer token", "string", "", str(func(c *Config) *string { return &c.Controller.Token })},
		{"controller_poll", "poll interval against a controller without blocking queries", "duration", "15s", dur("controller_poll", func(c *Config) *time.Duration { return &c.Controller.Poll })},
		{"healthchecks", "health checks as URLs, comma-separated or repeated: http://localhost:9080/health, tcp://host:port, file:///bin/check", "list", "", func(c *Config, v string) error {
			checks, err := health.ParseList(v)
			if err != nil {
				return fmt.Errorf("--healthchecks: %w", err)
			}
			c.HealthChecks = append(c.HealthChecks, checks...)
			return nil
		}},
		{"proxy_port", "port of the proxy listener (Amalgam8's proxy_config.http_listener_port)", "int", "6379", integer("proxy_port", func(c *Config) *int { return &c.ProxyConfig.HTTPListenerPort })},
		{"admin_port", "port of the admin listener: health, readiness, metrics, routing table, records", "int", "8001", integer("admin_port", func(c *Config) *int { return &c.ProxyConfig.AdminPort })},
		{"proxy_address", "address the proxy listens on (default all interfaces)", "string", "", str(func(c *Config) *string { return &c.ProxyConfig.ListenAddress })},
		{"admin_address", "address the admin listener listens on", "string", "127.0.0.1", str(func(c *Config) *string { return &c.ProxyConfig.AdminAddress })},
		{"access_log", "where request records go as JSON lines: a file, - for stdout, empty for none", "string", "", str(func(c *Config) *string { return &c.ProxyConfig.AccessLog })},
		{"records", "how many request records the admin API keeps", "int", "1000", integer("records", func(c *Config) *int { return &c.ProxyConfig.Records })},
		{"static_config", "file of instances and rules to route by instead of the registry and controller (watched for changes)", "string", "", str(func(c *Config) *string { return &c.StaticConfig })},
		{"log_level", "debug, info, warn or error", "string", "info", str(func(c *Config) *string { return &c.LogLevel })},
		{"log_format", "text or json", "string", "text", str(func(c *Config) *string { return &c.LogFormat })},
		{"proxy_adapter", "Amalgam8's proxy engine choice: accepted, a8 has its own", "string", "envoy", str(func(c *Config) *string { return &c.ProxyAdapter })},
		{"discovery_adapter", "where the proxy's instances come from: amalgam8 (the registry), kubernetes (--kubernetes_*) or eureka (--eureka_url)", "string", "amalgam8", str(func(c *Config) *string { return &c.DiscoveryAdapter })},
		{"kubernetes_url", "--discovery_adapter kubernetes: the API server's URL (empty: the pod's in-cluster configuration)", "string", "", str(func(c *Config) *string { return &c.Kubernetes.URL })},
		{"kubernetes_token", "--discovery_adapter kubernetes: bearer token (default: the pod's service account token)", "string", "", str(func(c *Config) *string { return &c.Kubernetes.Token })},
		{"kubernetes_namespace", "--discovery_adapter kubernetes: the namespace whose services are routed to", "string", "default", str(func(c *Config) *string { return &c.Kubernetes.Namespace })},
		{"kubernetes_ca_file", "--discovery_adapter kubernetes: CA file that verifies the API server (default: the pod's service account CA)", "string", "", str(func(c *Config) *string { return &c.Kubernetes.CAFile })},
		{"kubernetes_pod_name", "Amalgam8's registration identity from the pod: not supported, give --service", "string", "", str(func(c *Config) *string { return &c.Kubernetes.PodName })},
		{"eureka_url", "--discovery_adapter eureka: a Eureka server's service URL such as http://eureka:8761/eureka, comma-separated or repeated for peers", "list", "", func(c *Config, v string) error {
			for _, u := range strings.Split(v, ",") {
				if u = strings.TrimSpace(u); u != "" {
					c.Eureka.URLs = append(c.Eureka.URLs, u)
				}
			}
			return nil
		}},
		{"eureka_poll", "--discovery_adapter eureka: how often the Eureka server is polled", "duration", "30s", dur("eureka_poll", func(c *Config) *time.Duration { return &c.Eureka.Poll })},
		{"rules_adapter", "where rules come from: amalgam8 (the controller)", "string", "amalgam8", str(func(c *Config) *string { return &c.RulesAdapter })},
		{"supervise", "deprecated in Amalgam8 and ignored: commands given are supervised", "bool", "false", boolean("supervise", func(c *Config) *bool { return &c.Supervise })},
		{"dns", "Amalgam8's DNS server: not supported", "bool", "false", boolean("dns", func(c *Config) *bool { return &c.DNS })},
		{"proxy_tls", "Amalgam8's TLS between proxies: not supported", "bool", "false", boolean("proxy_tls", func(c *Config) *bool { return &c.ProxyConfig.TLS })},
	}
}

// listValue collects a repeatable flag.
type listValue struct{ vals *[]string }

func (l listValue) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}
func (l listValue) Set(v string) error { *l.vals = append(*l.vals, v); return nil }

// Load reads the configuration from args (flags and, after them, the command to supervise), the
// A8_* environment and the YAML file of --config / A8_CONFIG. It validates the result.
func Load(args []string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("a8 sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "YAML configuration file (Amalgam8's keys); flags and environment override it")
	values := map[string]*string{}
	lists := map[string]*[]string{}
	for _, d := range defs() {
		if d.kind == "list" {
			l := &[]string{}
			lists[d.name] = l
			fs.Var(listValue{l}, d.name, d.usage)
			continue
		}
		if d.kind == "bool" {
			b := new(bool)
			fs.BoolVar(b, d.name, d.def == "true", d.usage)
			continue
		}
		values[d.name] = fs.String(d.name, d.def, d.usage)
	}
	fs.Usage = flagenv.Usage(fs, "A8_", "Usage: a8 sidecar [flags] [-- command args...]\n\nRuns the sidecar beside an app: registers it (--register), routes its outgoing calls (--proxy)\nand, given a command, supervises it.")
	if err := flagenv.Parse(fs, args, "A8_"); err != nil {
		return nil, err
	}
	cfg := Defaults()
	if *configFile != "" {
		data, err := os.ReadFile(*configFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if err := cfg.loadYAML(data); err != nil {
			return nil, fmt.Errorf("--config %s: %w", *configFile, err)
		}
	}
	var err error
	// A list given by flags or the environment replaces the file's.
	resetList := map[string]func(){"healthchecks": func() { cfg.HealthChecks = nil }, "eureka_url": func() { cfg.Eureka.URLs = nil }}
	fs.Visit(func(f *flag.Flag) { // set on the command line or by the environment: over the file
		if err != nil || f.Name == "config" {
			return
		}
		for _, d := range defs() {
			if d.name != f.Name {
				continue
			}
			if d.kind == "list" {
				resetList[d.name]()
				for _, v := range *lists[d.name] {
					if err = d.apply(&cfg, v); err != nil {
						return
					}
				}
				return
			}
			err = d.apply(&cfg, f.Value.String())
		}
	})
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 { // Amalgam8: positional args are one supervised command
		cfg.Commands = append(cfg.Commands, Command{Cmd: fs.Args(), OnExit: OnExitTerminate})
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// loadYAML reads a configuration file over c. Unknown keys are errors: a misspelt key would
// otherwise be silently ignored.
func (c *Config) loadYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// Validate checks the configuration and fills in what can be derived (the endpoint host).
func (c *Config) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if !c.Register && !c.Proxy {
		bad("the sidecar has nothing to do: enable --register (A8_REGISTER), --proxy (A8_PROXY) or both")
	}
	if c.Register {
		if c.Service.Name == "" {
			bad("--register needs the app's service: --service name:tag1,tag2 (A8_SERVICE, or service.name in the file)")
		}
		if c.Endpoint.Port < 1 || c.Endpoint.Port > 65535 {
			bad("--register needs the app's port: --endpoint_port 1..65535 (A8_ENDPOINT_PORT), got %d", c.Endpoint.Port)
		}
		if !slices.Contains([]string{"http", "https", "tcp", "udp", "user"}, c.Endpoint.Type) {
			bad("--endpoint_type %q: use http, https, tcp, udp or user", c.Endpoint.Type)
		}
		if c.Registry.TTL < time.Second {
			bad("--registry_ttl %v: at least 1s", c.Registry.TTL)
		}
		if c.Endpoint.Host == "" {
			host, err := PrivateIP()
			if err != nil {
				bad("no --endpoint_host given and %v", err)
			}
			c.Endpoint.Host = host
		}
	}
	if c.Service.Name != "" && strings.ContainsAny(c.Service.Name, "/ \t") {
		bad("--service %q: a service name has no spaces or /", c.Service.Name)
	}
	needRegistry := c.Register || (c.Proxy && c.StaticConfig == "" && c.DiscoveryAdapter == DiscoveryAmalgam8)
	if needRegistry {
		validURL(&problems, "--registry_url (A8_REGISTRY_URL)", c.Registry.URL)
	}
	if c.Proxy && c.StaticConfig == "" {
		validURL(&problems, "--controller_url (A8_CONTROLLER_URL)", c.Controller.URL)
	}
	for name, d := range map[string]time.Duration{"--registry_poll": c.Registry.Poll, "--controller_poll": c.Controller.Poll} {
		if d < time.Second || d > time.Hour {
			bad("%s %v: between 1s and 1h", name, d)
		}
	}
	if p := c.ProxyConfig.AdminPort; p < 0 || p > 65535 {
		bad("--admin_port %d: a port is 0..65535", p)
	}
	if c.Proxy {
		if p := c.ProxyConfig.HTTPListenerPort; p < 0 || p > 65535 {
			bad("--proxy_port %d: a port is 0..65535", p)
		}
		if c.ProxyConfig.HTTPListenerPort == c.ProxyConfig.AdminPort && c.ProxyConfig.AdminPort != 0 {
			bad("--proxy_port and --admin_port are both %d: give them different ports", c.ProxyConfig.AdminPort)
		}
	}
	if c.ProxyConfig.TCPProxies != nil {
		bad("proxy_config.tcp_proxies: TCP proxying is not supported")
	}
	if c.ProxyConfig.Records < 1 {
		bad("--records %d: keep at least 1", c.ProxyConfig.Records)
	}
	for i, hc := range c.HealthChecks {
		if err := hc.Validate(); err != nil {
			bad("healthchecks[%d]: %v", i, err)
		}
	}
	for i, cmd := range c.Commands {
		if len(cmd.Cmd) == 0 || cmd.Cmd[0] == "" {
			bad("commands[%d].cmd: empty; give the program and its arguments", i)
		}
		if cmd.OnExit != "" && cmd.OnExit != OnExitTerminate && cmd.OnExit != OnExitIgnore {
			bad("commands[%d].on_exit %q: use terminate or ignore", i, cmd.OnExit)
		}
	}
	switch c.DiscoveryAdapter {
	case DiscoveryAmalgam8:
	case DiscoveryKubernetes:
		if c.Kubernetes.Namespace == "" {
			bad("--discovery_adapter kubernetes needs the namespace to route in: --kubernetes_namespace (A8_KUBERNETES_NAMESPACE)")
		}
		if c.Kubernetes.URL != "" {
			validURL(&problems, "--kubernetes_url (A8_KUBERNETES_URL)", c.Kubernetes.URL)
		} else if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			bad("--discovery_adapter kubernetes outside a pod needs the API server: --kubernetes_url (A8_KUBERNETES_URL)")
		}
	case DiscoveryEureka:
		if len(c.Eureka.URLs) == 0 {
			bad("--discovery_adapter eureka needs the Eureka server: --eureka_url http://eureka:8761/eureka (A8_EUREKA_URL, or eureka.urls in the file)")
		}
		for _, u := range c.Eureka.URLs {
			validURL(&problems, "--eureka_url (A8_EUREKA_URL)", u)
		}
		if c.Eureka.Poll < time.Second || c.Eureka.Poll > time.Hour {
			bad("--eureka_poll %v: between 1s and 1h", c.Eureka.Poll)
		}
	default:
		bad("--discovery_adapter %q: use amalgam8 (the registry), kubernetes or eureka", c.DiscoveryAdapter)
	}
	if c.Kubernetes.PodName != "" && c.Register && c.Service.Name == "" {
		bad("--kubernetes_pod_name: taking the service and tags from the pod is not supported; give --service name:tag1,tag2")
	}
	if c.RulesAdapter != "amalgam8" {
		bad("--rules_adapter %q is not supported: a8 reads rules from its controller", c.RulesAdapter)
	}
	if c.DNS {
		bad("--dns: the sidecar DNS server is not supported; call http://localhost:<proxy_port>/<service>/")
	}
	if c.ProxyConfig.TLS {
		bad("--proxy_tls: TLS between sidecars is not supported yet")
	}
	if len(problems) > 0 {
		return errors.New("invalid sidecar configuration:\n  " + strings.Join(problems, "\n  "))
	}
	return nil
}

func validURL(problems *[]string, name, raw string) {
	u, err := url.Parse(raw)
	if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		*problems = append(*problems, fmt.Sprintf("%s %q: want http(s)://host:port", name, raw))
	}
}

// PrivateIP returns the first private (or, failing that, any non-loopback) IPv4 address of this
// host, the default endpoint host as in Amalgam8.
func PrivateIP() (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("cannot list network interfaces: %w", err)
	}
	var fallback string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.To4() == nil || ipn.IP.IsLoopback() {
			continue
		}
		if ipn.IP.IsPrivate() {
			return ipn.IP.String(), nil
		}
		if fallback == "" {
			fallback = ipn.IP.String()
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", errors.New("this host has no IPv4 address besides loopback: set --endpoint_host")
}
