// Package eureka is the remote Eureka catalog (Amalgam8's --eureka_url): it polls a Eureka server
// and lists its applications' instances, read-only, in one a8 namespace.
//
// The URLs given are peers of one Eureka cluster, as in a Eureka client's serviceUrl list: the
// catalog reads from one and moves to the next when it fails. It fetches the whole registry
// (GET apps/), then every Poll only the changes (GET apps/delta), applying each instance's
// actionType (ADDED, MODIFIED, DELETED); it checks the result against the server's apps__hashcode
// and fetches everything again on a mismatch, when delta is refused, or after moving to another
// server, as Netflix's client does. When no server answers, the last content stays in force and the
// status says so.
//
// Mapping: an instance's id is "<APP>:<instanceId>" (instanceId falling back to the AWS instance-id
// and to hostName, as Eureka does); its service is the lower-cased first vipAddress (else the app
// name); its endpoint is ipAddr (else hostName) with securePort, type https, when the secure port
// is enabled, else with port, type http; its tags come from the metadata key amalgam8.tags (split
// on "," or ";"); its metadata is Eureka's metadata map; its status is Eureka's as given (UP, DOWN,
// STARTING, OUT_OF_SERVICE, UNKNOWN): only UP instances are routed to.
package eureka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/store"
)

// MaxResponseBytes bounds one answer of a remote Eureka.
const MaxResponseBytes = 64 << 20

// TagsKey is the metadata key whose value gives an instance's tags (Amalgam8's).
const TagsKey = "amalgam8.tags"

// Config configures a remote Eureka catalog.
type Config struct {
	// URLs are the Eureka servers' service URLs, such as http://eureka:8761/eureka (Spring Cloud)
	// or http://eureka:8080/eureka/v2 (Netflix): the paths apps/ and apps/delta are appended.
	// Required.
	URLs []string
	// Namespace is the a8 namespace the instances are listed in (default "default").
	Namespace string
	// Poll is the interval between fetches (default 30s, Eureka clients' own).
	Poll time.Duration
	// Client makes the requests (default: a client with a 15s timeout).
	Client *http.Client
	// Logger receives the catalog's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source (default time.Now).
	Clock store.Clock
}

// Catalog is the remote Eureka catalog.
type Catalog struct {
	*catalog.Feed
	cfg  Config
	urls []string // normalised, each ending in "/"
	log  *slog.Logger

	// Owned by the goroutine that polls.
	server    int               // index in urls of the server in use
	have      bool              // a full fetch succeeded since the last server change
	instances map[string]remote // by id
	failing   string            // the last failure, "" when the last poll worked
}

var _ catalog.Catalog = (*Catalog)(nil)

// remote is one Eureka instance: its status as Eureka states it (for the hashcode, which counts
// every instance) and, if a8 can list it (it has an address and an enabled port), what a8 lists.
type remote struct {
	status string
	listed bool
	inst   store.Instance
}

// New returns a catalog of the Eureka servers at cfg.URLs. It fetches nothing until Run.
func New(cfg Config) (*Catalog, error) {
	if len(cfg.URLs) == 0 {
		return nil, errors.New("eureka catalog: no server URL given (--eureka_url)")
	}
	urls := make([]string, len(cfg.URLs))
	for i, raw := range cfg.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--eureka_url %q: want the Eureka service URL, such as http://eureka:8761/eureka", raw)
		}
		p := strings.TrimRight(u.Path, "/")
		p = strings.TrimSuffix(p, "/apps") // a URL that names the apps resource itself
		u.Path = p + "/"
		u.RawQuery, u.Fragment = "", ""
		urls[i] = u.String()
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 30 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Catalog{Feed: catalog.NewFeed(cfg.Clock), cfg: cfg, urls: urls, log: cfg.Logger, instances: map[string]remote{}}, nil
}

// Name implements catalog.Catalog.
func (c *Catalog) Name() string { return "eureka" }

// Namespace is the a8 namespace the catalog lists its instances in.
func (c *Catalog) Namespace() string { return c.cfg.Namespace }

// Run implements catalog.Catalog.
func (c *Catalog) Run(ctx context.Context) error {
	c.Poll(ctx)
	t := time.NewTicker(c.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.Poll(ctx)
		}
	}
}

// Poll brings the content up to date once: a delta when one can be applied, else a full fetch.
// Run calls it; tests may too, but not while Run runs.
func (c *Catalog) Poll(ctx context.Context) {
	if c.have {
		err := c.delta(ctx)
		if err == nil {
			c.ok()
			return
		}
		if ctx.Err() != nil {
			return
		}
		c.log.Info("eureka catalog: fetching the whole registry", "reason", err.Error(), "server", c.urls[c.server])
	}
	if err := c.full(ctx); err != nil {
		if ctx.Err() == nil {
			c.fail(err)
		}
		return
	}
	c.ok()
}

// errNeedFull says a delta cannot be used and the whole registry must be fetched.
type errNeedFull struct{ reason string }

func (e *errNeedFull) Error() string { return e.reason }

// delta fetches apps/delta from the server in use and applies it.
func (c *Catalog) delta(ctx context.Context) error {
	apps, status, err := c.get(ctx, c.server, "apps/delta")
	switch {
	case status == http.StatusForbidden || status == http.StatusNotFound:
		return &errNeedFull{fmt.Sprintf("the server does not serve deltas (%d)", status)}
	case err != nil:
		return err
	case apps == nil || apps.VersionsDelta == "-1":
		return &errNeedFull{"the server does not serve deltas"}
	}
	next := maps.Clone(c.instances)
	for _, app := range apps.Application {
		for i := range app.Instance {
			in := &app.Instance[i]
			r := c.translate(app.Name, in)
			switch strings.ToUpper(in.ActionType) {
			case "DELETED":
				delete(next, r.inst.ID)
			case "ADDED", "MODIFIED", "":
				next[r.inst.ID] = r
			default:
				c.log.Warn("eureka catalog: unknown actionType in a delta; fetching the whole registry", "action", in.ActionType, "id", r.inst.ID)
				return &errNeedFull{"unknown actionType " + in.ActionType}
			}
		}
	}
	if got, want := hashcode(next), string(apps.AppsHashcode); got != want {
		return &errNeedFull{fmt.Sprintf("after the delta the registry's hashcode is %q, the server's %q", got, want)}
	}
	c.publish(next)
	return nil
}

// full fetches the whole registry, from the server in use or, failing that, the next ones.
func (c *Catalog) full(ctx context.Context) error {
	var errs []error
	for k := range c.urls {
		i := (c.server + k) % len(c.urls)
		apps, _, err := c.get(ctx, i, "apps/")
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		if i != c.server {
			c.log.Warn("eureka catalog: moved to another server", "from", c.urls[c.server], "to", c.urls[i])
			c.server = i
		}
		next := map[string]remote{}
		if apps != nil {
			for _, app := range apps.Application {
				for j := range app.Instance {
					r := c.translate(app.Name, &app.Instance[j])
					next[r.inst.ID] = r
				}
			}
		}
		c.have = true
		c.publish(next)
		return nil
	}
	c.have = false // the next success, wherever, is a full fetch
	return errors.Join(errs...)
}

// get fetches path from server i. status is the HTTP status when the server answered.
func (c *Catalog) get(ctx context.Context, i int, path string) (*applications, int, error) {
	u := c.urls[i] + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json") // else Eureka answers XML
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: reading the answer: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, data)
	}
	if len(data) > MaxResponseBytes {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: answer larger than %d MiB", u, MaxResponseBytes>>20)
	}
	var doc applicationsDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, resp.StatusCode, fmt.Errorf("GET %s: not Eureka's JSON (is the URL the Eureka service URL?): %w", u, err)
	}
	return doc.Applications, resp.StatusCode, nil
}

func (c *Catalog) publish(next map[string]remote) {
	c.instances = next
	list := make([]store.Instance, 0, len(next))
	for _, r := range next {
		if r.listed {
			list = append(list, r.inst)
		}
	}
	c.Replace(map[string][]store.Instance{c.cfg.Namespace: list})
}

func (c *Catalog) ok() {
	if c.failing != "" {
		c.log.Info("eureka catalog: in step with the server again", "server", c.urls[c.server], "instances", len(c.instances))
		c.failing = ""
	}
	c.Synced()
}

func (c *Catalog) fail(err error) {
	msg := err.Error()
	if msg != c.failing {
		c.log.Warn("eureka catalog: cannot read the registry; keeping the last content", "error", msg, "instances", len(c.instances))
	}
	c.failing = msg
	last := "nothing fetched yet"
	if st := c.Status(); !st.LastSync.IsZero() {
		last = fmt.Sprintf("keeping the content of %s (%d instances)", st.LastSync.UTC().Format(time.RFC3339), len(c.instances))
	}
	c.Failed(fmt.Sprintf("%s; %s", msg, last))
}

// translate maps a Eureka instance to an a8 instance. One a8 cannot list (no address or enabled
// port) is kept unlisted, so that the hashcode still counts it.
func (c *Catalog) translate(appName string, in *instance) remote {
	app := strings.ToUpper(in.App)
	if app == "" {
		app = strings.ToUpper(appName)
	}
	iid := in.InstanceID
	if iid == "" {
		if s, ok := in.DataCenterInfo.Metadata["instance-id"].(string); ok {
			iid = s
		}
	}
	if iid == "" {
		iid = in.HostName
	}
	status := strings.ToUpper(in.Status)
	if status == "" {
		status = "UNKNOWN"
	}
	r := remote{status: status, inst: store.Instance{ID: app + ":" + iid, Status: status}}
	host := in.IPAddr
	if host == "" {
		host = in.HostName
	}
	switch {
	case host == "" || app == "" || iid == "":
		c.log.Debug("eureka catalog: instance without app, id or address not listed", "app", app, "id", iid)
		return r
	case in.SecurePort.secureEnabled():
		r.inst.Endpoint = store.Endpoint{Type: "https", Value: joinHostPort(host, in.SecurePort.Number)}
	case in.Port.enabled():
		r.inst.Endpoint = store.Endpoint{Type: "http", Value: joinHostPort(host, in.Port.Number)}
	default:
		c.log.Debug("eureka catalog: instance without an enabled port not listed", "id", r.inst.ID)
		return r
	}
	r.listed = true
	r.inst.ServiceName = strings.ToLower(strings.TrimSpace(strings.Split(in.VIPAddress, ",")[0]))
	if r.inst.ServiceName == "" {
		r.inst.ServiceName = strings.ToLower(app)
	}
	if len(in.Metadata) > 0 {
		m := make(map[string]any, len(in.Metadata))
		for k, v := range in.Metadata {
			if k != "@class" { // Java's marker of an empty map
				m[k] = v
			}
		}
		if s, ok := m[TagsKey].(string); ok {
			for _, t := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
				if t = strings.TrimSpace(t); t != "" {
					r.inst.Tags = append(r.inst.Tags, t)
				}
			}
		}
		if len(m) > 0 {
			r.inst.Metadata, _ = json.Marshal(m) // keys sorted: the same map gives the same bytes
		}
	}
	return r
}

func joinHostPort(host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return fmt.Sprintf("%s:%d", host, port)
}

// hashcode is Eureka's reconcile hashcode of a registry: STATUS_count_ per status, statuses
// sorted ("DOWN_1_UP_2_").
func hashcode(instances map[string]remote) string {
	counts := map[string]int{}
	for _, r := range instances {
		counts[r.status]++
	}
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "%s_%d_", s, counts[s])
	}
	return b.String()
}
