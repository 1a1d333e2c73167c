package registry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	redisstore "github.com/a8fabric/a8/internal/store/redis"
	"github.com/a8fabric/a8/internal/store/storetest"
	"github.com/a8fabric/a8/internal/testutil/redistest"
)

// env is a registry served over real HTTP on loopback, on one backend, with a manual clock.
type env struct {
	t     *testing.T
	url   string
	clock *storetest.Clock
	store store.Instances
	redis *redistest.Server
}

var prefixes atomic.Int64

// eachBackend runs fn once per store backend. newEnv starts a fresh registry on that backend;
// mut adjusts its config.
func eachBackend(t *testing.T, fn func(t *testing.T, newEnv func(mut func(*registry.Config)) *env)) {
	t.Run("memory", func(t *testing.T) {
		fn(t, func(mut func(*registry.Config)) *env {
			clock := storetest.NewClock()
			return start(t, memory.NewInstances(clock.Now), clock, nil, mut)
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		fn(t, func(mut func(*registry.Config)) *env {
			clock := storetest.NewClock()
			c, err := redisstore.NewClient(redisstore.ClientOptions{Address: srv.Addr})
			if err != nil {
				t.Fatal(err)
			}
			s := redisstore.NewInstances(c, redisstore.InstancesOptions{Prefix: fmt.Sprintf("r%d", prefixes.Add(1)), Clock: clock.Now})
			t.Cleanup(func() { s.Close(); c.Close() })
			return start(t, s, clock, srv, mut)
		})
	})
}

func start(t *testing.T, s store.Instances, clock *storetest.Clock, rs *redistest.Server, mut func(*registry.Config)) *env {
	cfg := registry.Config{Store: s, Version: "test"}
	if mut != nil {
		mut(&cfg)
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close) // after srv.Close: cleanups run last first
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, clock: clock, store: s, redis: rs}
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

// errorText returns the {"Error": ...} message, failing if the body is not in that shape.
func (r reply) errorText(t *testing.T) string {
	t.Helper()
	var e map[string]string
	if err := json.Unmarshal(r.body, &e); err != nil || len(e) != 1 || e["Error"] == "" {
		t.Fatalf("error body %q is not {\"Error\": \"...\"}", r.body)
	}
	return e["Error"]
}

// do sends a request; a string body is sent as is, anything else as JSON. Token "" sends none.
func (e *env) do(method, path, token string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
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
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
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

func reg(service, addr string, extra ...func(map[string]any)) map[string]any {
	m := map[string]any{"service_name": service, "endpoint": map[string]any{"type": "http", "value": addr}}
	for _, f := range extra {
		f(m)
	}
	return m
}

func with(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }

// register registers and returns the instance id, failing on anything but 201.
func (e *env) register(token string, body map[string]any) string {
	e.t.Helper()
	r := e.do("POST", "/api/v1/instances", token, body)
	if r.code != http.StatusCreated {
		e.t.Fatalf("register %v: %s", body, r)
	}
	var out struct{ ID string }
	r.decode(e.t, &out)
	return out.ID
}

type listed struct {
	Instances []map[string]any `json:"instances"`
}

func (e *env) list(token, query string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", "/api/v1/instances"+query, token, nil)
	if r.code != http.StatusOK {
		e.t.Fatalf("list %s: %s", query, r)
	}
	var l listed
	r.decode(e.t, &l)
	return l.Instances
}

func field(list []map[string]any, key string) []string {
	out := make([]string, len(list))
	for i, in := range list {
		out[i] = fmt.Sprint(in[key])
	}
	return out
}

// newMemoryEnv starts a registry on the memory store in t itself, for tests of the HTTP layer that
// do not depend on the backend.
func newMemoryEnv(t *testing.T, mut func(*registry.Config)) *env {
	clock := storetest.NewClock()
	return start(t, memory.NewInstances(clock.Now), clock, nil, mut)
}

// doType sends body with the given Content-Type.
func (e *env) doType(method, path, contentType, body string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, data}
}

// rawRequest writes raw to a new connection, half-closes it (as a client that died mid-body would),
// and returns the status code of the answer, or 0 if the server just closed the connection.
func (e *env) rawRequest(raw string) (int, string) {
	e.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(raw)); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).CloseWrite()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}
