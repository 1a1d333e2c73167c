// Package demo runs the whole fabric on one machine: a8 up (registry and controller), Amalgam8's
// helloworld (v1 and v2, two instances each) and bookinfo (productpage, details, reviews v1/v2/v3,
// ratings) behind registering sidecars, and a gateway sidecar in front. Every process is the a8
// binary itself (the apps are embedded: a8 example ...), so a fresh clone needs nothing else.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/a8fabric/a8/internal/netutil"
)

// Options configure the demo.
type Options struct {
	Binary      string // the a8 binary (default: this executable)
	APIPort     int    // a8 up's port (default 8080)
	GatewayPort int    // the gateway's proxy port (default 32000, Amalgam8's)
	DataDir     string // where rules and logs go (default: a new temporary directory, removed at the end)
	Live        time.Duration
	Stdout      io.Writer
	Stderr      io.Writer
}

// proc is one child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// Demo is a running demo.
type Demo struct {
	opts    Options
	dir     string
	tmp     bool
	procs   []*proc
	mu      sync.Mutex
	APIURL  string
	Gateway string
}

// Run starts the demo, prints what to try, shows which versions answer until ctx ends, then stops
// every process it started (the gateway first, then the apps' sidecars, which deregister and stop
// their apps, then a8 up) and returns.
func Run(ctx context.Context, opts Options) error {
	d, err := Start(ctx, opts)
	if d != nil {
		defer d.Stop()
	}
	if err != nil {
		return err
	}
	d.banner()
	d.live(ctx)
	fmt.Fprintln(d.opts.Stdout, "\nstopping the demo...")
	return nil
}

// Start starts every process of the demo and waits until the gateway routes to every service. On
// error the processes started so far are left for Stop.
func Start(ctx context.Context, opts Options) (*Demo, error) {
	if opts.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Binary = exe
	}
	if opts.APIPort == 0 {
		opts.APIPort = 8080
	}
	if opts.GatewayPort == 0 {
		opts.GatewayPort = 32000
	}
	if opts.Live == 0 {
		opts.Live = 2 * time.Second
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	d := &Demo{opts: opts, dir: opts.DataDir}
	if d.dir == "" {
		dir, err := os.MkdirTemp("", "a8-demo-")
		if err != nil {
			return nil, err
		}
		d.dir, d.tmp = dir, true
	}
	if err := os.MkdirAll(filepath.Join(d.dir, "logs"), 0o755); err != nil {
		return d, err
	}
	for _, p := range []int{opts.APIPort, opts.GatewayPort} {
		if err := portFree(p); err != nil {
			return d, err
		}
	}
	d.APIURL = fmt.Sprintf("http://localhost:%d", opts.APIPort)
	d.Gateway = fmt.Sprintf("http://localhost:%d", opts.GatewayPort)
	fmt.Fprintf(opts.Stdout, "starting a8 demo (logs in %s)...\n", filepath.Join(d.dir, "logs"))

	if err := d.start("a8-up", "up", "--api_port", strconv.Itoa(opts.APIPort), "--data_dir", filepath.Join(d.dir, "data"), "--log_level", "warn"); err != nil {
		return d, err
	}
	if err := d.waitHTTP(ctx, d.APIURL+"/health", "a8 up"); err != nil {
		return d, err
	}
	apps := []struct {
		service, version, example string
		calls                     bool // needs a proxy to call other services
		copies                    int
	}{
		{"helloworld", "v1", "helloworld", false, 2},
		{"helloworld", "v2", "helloworld", false, 2},
		{"productpage", "v1", "bookinfo", true, 1},
		{"details", "v1", "bookinfo", false, 1},
		{"reviews", "v1", "bookinfo", false, 1},
		{"reviews", "v2", "bookinfo", true, 1},
		{"reviews", "v3", "bookinfo", true, 1},
		{"ratings", "v1", "bookinfo", false, 1},
	}
	for _, a := range apps {
		for i := range a.copies {
			port, err := freePort()
			if err != nil {
				return d, err
			}
			args := []string{"sidecar", "--register", "--service", a.service + ":version=" + a.version,
				"--endpoint_host", "127.0.0.1", "--endpoint_port", strconv.Itoa(port),
				"--registry_url", d.APIURL, "--controller_url", d.APIURL, "--admin_port", "0", "--log_level", "warn",
				"--healthchecks", fmt.Sprintf("http://127.0.0.1:%d/health", port)}
			appArgs := []string{"--", opts.Binary, "example", a.example, "--port", strconv.Itoa(port), "--version", a.version}
			if a.example == "bookinfo" {
				appArgs = append(appArgs, "--service", a.service)
			}
			if a.calls {
				proxyPort, err := freePort()
				if err != nil {
					return d, err
				}
				args = append(args, "--proxy", "--proxy_port", strconv.Itoa(proxyPort), "--proxy_address", "127.0.0.1")
				appArgs = append(appArgs, "--proxy", fmt.Sprintf("http://127.0.0.1:%d", proxyPort))
			}
			name := fmt.Sprintf("%s-%s-%d", a.service, a.version, i+1)
			if err := d.start(name, append(args, appArgs...)...); err != nil {
				return d, err
			}
		}
	}
	if err := d.start("gateway", "sidecar", "--proxy", "--service", "gateway:version=none", "--proxy_port", strconv.Itoa(opts.GatewayPort),
		"--registry_url", d.APIURL, "--controller_url", d.APIURL, "--admin_port", "0", "--log_level", "warn"); err != nil {
		return d, err
	}
	for _, path := range []string{"/helloworld/hello", "/productpage/health", "/details/health", "/reviews/health", "/ratings/health"} {
		if err := d.waitHTTP(ctx, d.Gateway+path, "the gateway to route "+strings.Split(path, "/")[1]); err != nil {
			return d, err
		}
	}
	// Every instance registered: four of helloworld, five of bookinfo.
	if err := d.waitInstances(ctx, 10); err != nil {
		return d, err
	}
	return d, nil
}

func (d *Demo) start(name string, args ...string) error {
	logPath := filepath.Join(d.dir, "logs", name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(d.opts.Binary, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: Ctrl-C reaches the demo alone, which stops everything in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	d.mu.Lock()
	d.procs = append(d.procs, p)
	d.mu.Unlock()
	return nil
}

// waitHTTP waits until url answers 200 or a process of the demo dies.
func (d *Demo) waitHTTP(ctx context.Context, url, what string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err := d.dead(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (%s); see the logs in %s", what, url, filepath.Join(d.dir, "logs"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *Demo) waitInstances(ctx context.Context, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(d.APIURL + "/api/v1/instances?fields=id")
		if err == nil {
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Count(string(data), `"id"`) >= n {
				return nil
			}
		}
		if err := d.dead(); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %d instances to register; see the logs in %s", n, filepath.Join(d.dir, "logs"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dead reports a process of the demo that exited, with the end of its log.
func (d *Demo) dead() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.procs {
		select {
		case <-p.done:
			data, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) > 10 {
				lines = lines[len(lines)-10:]
			}
			return fmt.Errorf("%s exited (%v):\n  %s", p.name, p.err, strings.Join(lines, "\n  "))
		default:
		}
	}
	return nil
}

// Stop stops every process: the gateway, then the apps' sidecars, then a8 up; SIGKILL after 10 s.
func (d *Demo) Stop() {
	d.mu.Lock()
	procs := slices.Clone(d.procs)
	d.mu.Unlock()
	slices.Reverse(procs) // started a8 up first, gateway last
	stop := func(ps []*proc) {
		for _, p := range ps {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range ps {
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		}
	}
	if len(procs) > 0 {
		stop(procs[:len(procs)-1]) // gateway and sidecars (which stop their apps)
		stop(procs[len(procs)-1:]) // a8 up last, so the sidecars could deregister
	}
	if d.tmp {
		_ = os.RemoveAll(d.dir)
	}
}

func (d *Demo) banner() {
	w := d.opts.Stdout
	fmt.Fprintf(w, `
a8 demo is running.

  registry + controller (a8 up)  %[1]s
  gateway                        %[2]s
  helloworld                     %[2]s/helloworld/hello
  bookinfo                       %[2]s/productpage/productpage

Try, in another shell (make build gives bin/a8ctl; or go run ./cmd/a8ctl):

  a8ctl service-list
  a8ctl rule-create -f examples/rules/helloworld-default-route-rules.json   # all helloworld traffic to v1
  a8ctl rule-create -f examples/rules/helloworld-v1-v2-route-rules.json     # 75%% v1, 25%% v2
  a8ctl traffic-start helloworld version=v2                                # or move it step by step
  a8ctl traffic-step helloworld
  a8ctl rule-create -f examples/rules/bookinfo-default-route-rules.yaml     # bookinfo: everything v1
  a8ctl rule-create -f examples/rules/bookinfo-jason-reviews-v2-route-rules.yaml
  a8ctl rule-create -f examples/rules/bookinfo-jason-7s-delay.yaml          # then sign in as jason
  a8ctl route-list
  a8ctl action-list
  a8ctl rule-delete -a -f                                                  # back to no rules

Which versions answer, live (helloworld: 20 requests; bookinfo reviews: 10 page loads). Ctrl-C stops.
`, d.APIURL, d.Gateway)
}

// live samples which versions answer until ctx ends.
func (d *Demo) live(ctx context.Context) {
	t := time.NewTicker(d.opts.Live)
	defer t.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	for {
		hello := map[string]int{}
		for range 20 {
			hello[version(client, d.Gateway+"/helloworld/hello", "version=")]++
		}
		reviews := map[string]int{}
		for range 10 {
			reviews[version(client, d.Gateway+"/productpage/api/v1/products/0", `"version":"`)]++
		}
		fmt.Fprintf(d.opts.Stdout, "%s  helloworld %s   bookinfo reviews %s\n", time.Now().Format("15:04:05"), bars(hello), bars(reviews))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// version fetches url and returns the version found after marker in the answer, or the failure.
func version(c *http.Client, url, marker string) string {
	resp, err := c.Get(url)
	if err != nil {
		return "error"
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return strconv.Itoa(resp.StatusCode)
	}
	s := string(data)
	i := strings.Index(s, marker)
	if i < 0 {
		return "none"
	}
	s = s[i+len(marker):]
	end := strings.IndexAny(s, `",\n `)
	if end < 0 {
		end = len(s)
	}
	return s[:end]
}

func bars(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %-20s %2d", k, strings.Repeat("█", m[k]), m[k]))
	}
	return strings.Join(parts, "  ")
}

func freePort() (int, error) { return netutil.FreePort() }

func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("port %d is in use: stop what uses it, or pick others with --api_port and --gateway_port", port)
		}
		return err
	}
	return l.Close()
}
