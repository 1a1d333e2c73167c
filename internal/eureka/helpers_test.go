package eureka_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	logging "github.com/op/go-logging"

	"github.com/a8fabric/a8/internal/eureka"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

func TestMain(m *testing.M) {
	logging.SetLevel(logging.CRITICAL, "fargo") // fargo logs every request at NOTICE
	os.Exit(m.Run())
}

var prefixes atomic.Int64

// backend opens stores of one kind; stores opened by one backend share their data (one Redis), so
// that two servers on them are two replicas of one registry.
type backend struct {
	name string
	open func(t testing.TB, clock store.Clock) store.Instances
}

// eachBackend runs fn on the memory store and on Redis.
func eachBackend(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("memory", func(t *testing.T) {
		var shared store.Instances
		fn(t, backend{"memory", func(t testing.TB, clock store.Clock) store.Instances {
			if shared == nil {
				shared = memory.NewInstances(clock)
			}
			return shared
		}})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		prefix := fmt.Sprintf("e%d", prefixes.Add(1))
		fn(t, backend{"redis", func(t testing.TB, clock store.Clock) store.Instances {
			c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			s := redisstore.NewInstances(c, redisstore.InstancesOptions{Prefix: prefix, Clock: clock})
			t.Cleanup(func() { s.Close(); c.Close() })
			return s
		}})
	})
}

// env is a server over real HTTP on loopback.
type env struct {
	t     testing.TB
	url   string
	store store.Instances
}

// newRegistry serves the real registry (Amalgam8 API and Eureka API) on s.
func newRegistry(t testing.TB, s store.Instances, mut func(*registry.Config)) *env {
	t.Helper()
	cfg := registry.Config{Store: s, Version: "test"}
	if mut != nil {
		mut(&cfg)
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(func() { srv.Close(); reg.Close() })
	return &env{t: t, url: srv.URL, store: s}
}

// newEureka serves the Eureka API alone, configured by cfg (Store must be set).
func newEureka(t testing.TB, cfg eureka.Config) (*env, *eureka.Server) {
	t.Helper()
	s, err := eureka.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Mount(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { srv.Close(); s.Close() })
	return &env{t: t, url: srv.URL, store: cfg.Store}, s
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

// req is a request to send: headers as "Name: value" strings.
func (e *env) do(method, path string, body string, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultTransport.RoundTrip(req) // no transparent gzip: tests see the bytes
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, data}
}

// want fails unless the reply has the status.
func (r reply) want(t testing.TB, code int) reply {
	t.Helper()
	if r.code != code {
		t.Fatalf("got %s, want %d", r, code)
	}
	return r
}

const jsonAccept = "Accept: application/json"

// registerJSON registers a Eureka instance by POSTing JSON and fails on anything but 204.
func (e *env) registerJSON(prefix, app, body string) {
	e.t.Helper()
	e.do("POST", prefix+"/apps/"+app, body, "Content-Type: application/json").want(e.t, http.StatusNoContent)
}

// instanceJSON is a register body. extra fields are added as raw JSON members.
func instanceJSON(app, id, ip string, port int, extra ...string) string {
	fields := []string{
		fmt.Sprintf(`"instanceId":%q,"hostName":"host-%s","app":%q,"ipAddr":%q`, id, id, app, ip),
		fmt.Sprintf(`"vipAddress":%q,"secureVipAddress":%q`, strings.ToLower(app), strings.ToLower(app)),
		fmt.Sprintf(`"port":{"$":%d,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"}`, port),
		`"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"}`,
		`"status":"UP"`,
	}
	fields = append(fields, extra...)
	return `{"instance":{` + strings.Join(fields, ",") + `}}`
}

// apps fetches and decodes GET apps (JSON).
func (e *env) apps(prefix string, headers ...string) *eureka.Applications {
	e.t.Helper()
	r := e.do("GET", prefix+"/apps", "", append([]string{jsonAccept}, headers...)...).want(e.t, http.StatusOK)
	a, err := eureka.DecodeApplications(r.body, r.header.Get("Content-Type"))
	if err != nil {
		e.t.Fatalf("decode %s: %v", r.body, err)
	}
	return a
}

// delta fetches and decodes GET apps/delta (JSON).
func (e *env) delta(prefix string) *eureka.Applications {
	e.t.Helper()
	r := e.do("GET", prefix+"/apps/delta", "", jsonAccept).want(e.t, http.StatusOK)
	a, err := eureka.DecodeApplications(r.body, "application/json")
	if err != nil {
		e.t.Fatalf("decode %s: %v", r.body, err)
	}
	return a
}

// ids lists "APP/instanceId" of a document, with the action type if any.
func ids(a *eureka.Applications) string {
	var out []string
	for _, app := range a.Applications {
		for _, in := range app.Instances {
			s := app.Name + "/" + in.InstanceID
			if in.ActionType != "" {
				s += "=" + in.ActionType
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// a8List lists the namespace through the Amalgam8 API.
func (e *env) a8List(query string, headers ...string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", "/api/v1/instances"+query, "", headers...).want(e.t, http.StatusOK)
	var l struct {
		Instances []map[string]any `json:"instances"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l.Instances
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func compactJSON(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return b.String()
}

// manualClock is a storetest clock usable as eureka's and the store's.
func manualClock() *storetest.Clock { return storetest.NewClock() }

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
