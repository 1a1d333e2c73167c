package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// An Amalgam8 sidecar configuration file loads as it is.
const amalgam8YAML = `
register: true
proxy: true
service:
  name: reviews
  tags: [version=v2]
endpoint:
  host: 10.1.2.3
  port: 9080
  type: http
registry:
  url: http://registry:8080
  token: tok
  poll: 10s
controller:
  url: http://controller:8080
  poll: 20s
healthchecks:
  - type: http
    value: http://localhost:9080/health
    interval: 15s
    timeout: 2s
    code: 200
  - type: file
    value: /bin/ls
commands:
  - cmd: [python, app.py]
    env: [MODE=prod]
    on_exit: terminate
  - cmd: [filebeat]
    on_exit: ignore
proxy_config:
  http_listener_port: 6380
  admin_port: 8002
  working_dir: /etc/envoy/
log_level: debug
supervise: false
`

func TestLoad_Amalgam8File(t *testing.T) {
	cfg, err := Load([]string{"--config", writeFile(t, amalgam8YAML)}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Register || !cfg.Proxy || cfg.Service.String() != "reviews:version=v2" || cfg.Endpoint.Host != "10.1.2.3" || cfg.Endpoint.Port != 9080 ||
		cfg.Registry.URL != "http://registry:8080" || cfg.Registry.Token != "tok" || cfg.Registry.Poll != 10*time.Second ||
		cfg.Controller.Poll != 20*time.Second || len(cfg.HealthChecks) != 2 || cfg.HealthChecks[0].Interval != 15*time.Second ||
		len(cfg.Commands) != 2 || cfg.Commands[1].OnExit != "ignore" || cfg.ProxyConfig.HTTPListenerPort != 6380 ||
		cfg.ProxyConfig.AdminPort != 8002 || cfg.LogLevel != "debug" || cfg.Registry.TTL != 60*time.Second {
		t.Fatalf("loaded %+v", cfg)
	}
}

// Flags over environment over file over defaults.
func TestLoad_Precedence(t *testing.T) {
	file := writeFile(t, amalgam8YAML)
	t.Setenv("A8_SERVICE", "ratings:version=v1,zone=a")
	t.Setenv("A8_ENDPOINT_PORT", "7000")
	t.Setenv("A8_LOG_LEVEL", "warn")
	t.Setenv("A8_HEALTHCHECKS", "tcp://localhost:7000")
	cfg, err := Load([]string{"--config", file, "--endpoint_port", "7001", "--admin_port", "9001"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Service.Name != "ratings" || strings.Join(cfg.Service.Tags, ",") != "version=v1,zone=a" {
		t.Errorf("env over file: service %v", cfg.Service)
	}
	if cfg.Endpoint.Port != 7001 || cfg.ProxyConfig.AdminPort != 9001 {
		t.Errorf("flag over env and file: port %d, admin %d", cfg.Endpoint.Port, cfg.ProxyConfig.AdminPort)
	}
	if cfg.LogLevel != "warn" || cfg.Registry.URL != "http://registry:8080" {
		t.Errorf("env over file, file over default: %s %s", cfg.LogLevel, cfg.Registry.URL)
	}
	if len(cfg.HealthChecks) != 1 || cfg.HealthChecks[0].Type != "tcp" {
		t.Errorf("health checks from the environment replace the file's: %+v", cfg.HealthChecks)
	}
	// Defaults.
	t.Setenv("A8_SERVICE", "")
	cfg, err = Load([]string{"--proxy"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ProxyConfig.HTTPListenerPort != 6379 || cfg.ProxyConfig.AdminPort != 8001 || cfg.Controller.URL != "http://localhost:8080" || cfg.ProxyConfig.AdminAddress != "127.0.0.1" {
		t.Errorf("defaults: %+v", cfg.ProxyConfig)
	}
}

func TestLoad_Command(t *testing.T) {
	cfg, err := Load([]string{"--register", "--service", "helloworld:version=v1", "--endpoint_port", "5000", "--endpoint_host", "h",
		"--healthchecks", "http://localhost:5000/health", "--healthchecks", "file:///bin/true", "python", "app.py", "--port", "5000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Commands) != 1 || strings.Join(cfg.Commands[0].Cmd, " ") != "python app.py --port 5000" || cfg.Commands[0].OnExit != "terminate" {
		t.Fatalf("positional command: %+v", cfg.Commands)
	}
	if len(cfg.HealthChecks) != 2 || cfg.HealthChecks[1].Type != "file" || cfg.HealthChecks[1].Value != "/bin/true" {
		t.Fatalf("repeated --healthchecks: %+v", cfg.HealthChecks)
	}
}

func TestLoad_EndpointHostDefaultsToPrivateIP(t *testing.T) {
	if _, err := PrivateIP(); err != nil {
		t.Skip(err)
	}
	cfg, err := Load([]string{"--register", "--service", "s", "--endpoint_port", "80"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Endpoint.Host == "" {
		t.Fatal("no endpoint host derived")
	}
}

func TestLoad_Errors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // outside a pod, even if the tests run in one
	tests := []struct {
		args []string
		yaml string
		want string
	}{
		{nil, "", "the sidecar has nothing to do"},
		{[]string{"--register"}, "", "--register needs the app's service"},
		{[]string{"--register", "--service", "s"}, "", "--register needs the app's port"},
		{[]string{"--register", "--service", "s", "--endpoint_port", "70000"}, "", "got 70000"},
		{[]string{"--register", "--service", "s", "--endpoint_port", "80", "--endpoint_type", "smtp"}, "", `--endpoint_type "smtp"`},
		{[]string{"--proxy", "--controller_url", "controller:8080"}, "", `--controller_url (A8_CONTROLLER_URL) "controller:8080"`},
		{[]string{"--proxy", "--registry_poll", "1ms"}, "", "--registry_poll 1ms"},
		{[]string{"--proxy", "--proxy_port", "8001"}, "", "--proxy_port and --admin_port are both 8001"},
		{[]string{"--proxy", "--healthchecks", "smtp://x"}, "", "--healthchecks"},
		{[]string{"--proxy", "--endpoint_port", "x"}, "", `--endpoint_port "x": not an integer`},
		{[]string{"--proxy", "--dns"}, "", "--dns"},
		{[]string{"--proxy", "--discovery_adapter", "consul"}, "", `--discovery_adapter "consul": use amalgam8 (the registry), kubernetes or eureka`},
		{[]string{"--proxy", "--discovery_adapter", "eureka"}, "", "--discovery_adapter eureka needs the Eureka server: --eureka_url"},
		{[]string{"--proxy", "--discovery_adapter", "eureka", "--eureka_url", "eureka:8761"}, "", `--eureka_url (A8_EUREKA_URL) "eureka:8761"`},
		{[]string{"--proxy", "--discovery_adapter", "eureka", "--eureka_url", "http://e/eureka", "--eureka_poll", "1ms"}, "", "--eureka_poll 1ms"},
		{[]string{"--proxy", "--discovery_adapter", "kubernetes", "--kubernetes_namespace", ""}, "", "--kubernetes_namespace"},
		{[]string{"--proxy", "--discovery_adapter", "kubernetes"}, "", "--discovery_adapter kubernetes outside a pod needs the API server: --kubernetes_url"},
		{[]string{"--proxy", "--discovery_adapter", "kubernetes", "--kubernetes_url", "k8s:6443"}, "", `--kubernetes_url (A8_KUBERNETES_URL) "k8s:6443"`},
		{[]string{"--register", "--endpoint_port", "80", "--kubernetes_pod_name", "p-1"}, "", "--kubernetes_pod_name: taking the service and tags from the pod is not supported"},
		{nil, "proxy: true\ncommands:\n  - cmd: []\n", "commands[0].cmd: empty"},
		{nil, "proxy: true\ncommands:\n  - cmd: [x]\n    on_exit: restart\n", `commands[0].on_exit "restart"`},
		{nil, "proxy: true\nservcie:\n  name: x\n", "field servcie not found"},
		{nil, "proxy: true\nhealthchecks:\n  - type: http\n", "healthchecks[0]"},
		{[]string{"--config", "/nonexistent.yaml"}, "", "--config"},
	}
	for _, tc := range tests {
		args := tc.args
		if tc.yaml != "" {
			args = append([]string{"--config", writeFile(t, tc.yaml)}, args...)
		}
		_, err := Load(args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q, %q) = %v; want an error containing %q", tc.args, tc.yaml, err, tc.want)
		}
	}
}

func TestLoad_DiscoveryAdapters(t *testing.T) {
	file := writeFile(t, `
proxy: true
discovery_adapter: kubernetes
kubernetes:
  url: https://k8s:6443
  token: tok
  namespace: shop
  pod_name: ignored-without-register
eureka:
  urls: [http://eureka-1:8761/eureka]
`)
	cfg, err := Load([]string{"--config", file, "--registry_url", "not a URL: no registry is needed"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiscoveryAdapter != DiscoveryKubernetes || cfg.Kubernetes != (Kubernetes{URL: "https://k8s:6443", Token: "tok", Namespace: "shop", PodName: "ignored-without-register"}) ||
		strings.Join(cfg.Eureka.URLs, ",") != "http://eureka-1:8761/eureka" || cfg.Eureka.Poll != 30*time.Second {
		t.Fatalf("loaded %+v %+v", cfg.Kubernetes, cfg.Eureka)
	}
	// The environment's list replaces the file's.
	t.Setenv("A8_EUREKA_URL", "http://e1:8761/eureka, http://e2:8761/eureka")
	cfg, err = Load([]string{"--config", file, "--discovery_adapter", "eureka", "--eureka_poll", "5s"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DiscoveryAdapter != DiscoveryEureka || strings.Join(cfg.Eureka.URLs, ",") != "http://e1:8761/eureka,http://e2:8761/eureka" || cfg.Eureka.Poll != 5*time.Second {
		t.Fatalf("loaded %+v", cfg.Eureka)
	}
	// Defaults: the registry, and the default namespace.
	t.Setenv("A8_EUREKA_URL", "")
	cfg, err = Load([]string{"--proxy"}, io.Discard)
	if err != nil || cfg.DiscoveryAdapter != DiscoveryAmalgam8 || cfg.Kubernetes.Namespace != "default" {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
}

// Every problem is reported at once.
func TestValidate_AllProblems(t *testing.T) {
	c := Defaults()
	c.Register = true
	c.Registry.URL = "nope"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "service") || !strings.Contains(err.Error(), "port") || !strings.Contains(err.Error(), "--registry_url") {
		t.Fatalf("Validate = %v", err)
	}
}
