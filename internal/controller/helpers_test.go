package controller_test

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

	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

type env struct {
	t     *testing.T
	url   string
	store store.Rules
	redis *redistest.Server
}

var prefixes atomic.Int64

// eachBackend runs fn on the persisted memory store and on Redis.
func eachBackend(t *testing.T, fn func(t *testing.T, newEnv func(mut func(*controller.Config)) *env)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(mut func(*controller.Config)) *env {
			s, err := memory.NewRules(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			rs := memory.NewRecipes(store.RecipesOptions{}, nil)
			t.Cleanup(func() { rs.Close() })
			return start(t, s, rs, nil, mut)
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		fn(t, func(mut func(*controller.Config)) *env {
			c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			prefix := fmt.Sprintf("c%d", prefixes.Add(1))
			s := redisstore.NewRules(c, redisstore.RulesOptions{Prefix: prefix})
			rs := redisstore.NewRecipes(c, redisstore.RecipesOptions{Prefix: prefix})
			t.Cleanup(func() { rs.Close(); s.Close(); c.Close() })
			return start(t, s, rs, srv, mut)
		})
	})
}

func newMemoryEnv(t *testing.T, mut func(*controller.Config)) *env {
	s, err := memory.NewRules(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	recipes := memory.NewRecipes(store.RecipesOptions{}, nil)
	t.Cleanup(func() { recipes.Close() })
	return start(t, s, recipes, nil, mut)
}

func start(t *testing.T, s store.Rules, recipes store.Recipes, rs *redistest.Server, mut func(*controller.Config)) *env {
	cfg := controller.Config{Store: s, Recipes: recipes, Version: "test"}
	if mut != nil {
		mut(&cfg)
	}
	c, err := controller.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, store: s, redis: rs}
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.code, r.body) }

func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errorID returns the "error" of a controller error body, failing on any other shape.
func (r reply) errorID(t *testing.T) (id, description string) {
	t.Helper()
	var e map[string]any // a map: keys are case-sensitive here, unlike struct fields
	if err := json.Unmarshal(r.body, &e); err != nil || e["error"] == nil || e["description"] == nil {
		t.Fatalf("error body %q is not {\"error\", \"description\"}", r.body)
	}
	id, _ = e["error"].(string)
	description, _ = e["description"].(string)
	return id, description
}

type opt func(*http.Request)

func token(tok string) opt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func header(k, v string) opt {
	return func(r *http.Request) { r.Header.Set(k, v) }
}

func (e *env) do(method, path string, body any, opts ...opt) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, data}
}

// example returns an example rule file from examples/rules as a JSON request body.
func example(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("../../examples/rules/" + name)
	if err != nil {
		t.Fatal(err)
	}
	js, err := rules.ToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

type ruleList struct {
	Rules    []map[string]any `json:"rules"`
	Revision int64            `json:"revision"`
}

func (e *env) get(path string, opts ...opt) ruleList {
	e.t.Helper()
	r := e.do("GET", path, nil, opts...)
	if r.code != 200 {
		e.t.Fatalf("GET %s: %s", path, r)
	}
	var l ruleList
	r.decode(e.t, &l)
	return l
}

func (e *env) revision() int64 { return e.get("/v1/rules").Revision }

func ids(l ruleList) string {
	var out []string
	for _, r := range l.Rules {
		out = append(out, fmt.Sprint(r["id"]))
	}
	return strings.Join(out, ",")
}

// path digs into decoded JSON: path(v, "route", "backends", 0, "tags", 0).
func path(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func (e *env) doType(method, path, contentType, body string) reply {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, data}
}
