package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/registry"
)

func TestRegistry_Register(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		body := reg("reviews", "10.0.0.5:9080", with("tags", []string{"version=v2"}), with("ttl", 45),
			with("metadata", map[string]any{"zone": "eu", "n": 1}))
		r := e.do("POST", "/api/v1/instances", "", body)
		if r.code != http.StatusCreated {
			t.Fatalf("register: %s", r)
		}
		sum := sha256.Sum256([]byte("reviews/http/10.0.0.5:9080"))
		wantID := hex.EncodeToString(sum[:])[:16]
		var out struct {
			ID    string
			TTL   int
			Links struct{ Self, Heartbeat string }
		}
		r.decode(t, &out)
		self := e.url + "/api/v1/instances/" + wantID
		if out.ID != wantID || out.TTL != 45 || out.Links.Self != self || out.Links.Heartbeat != self+"/heartbeat" {
			t.Fatalf("register answered %s; want id %s, ttl 45, links to %s", r.body, wantID, self)
		}
		if loc := r.header.Get("Location"); loc != self {
			t.Fatalf("Location = %q, want %q", loc, self)
		}

		// The same endpoint registered again keeps its id; the new content replaces the old.
		body["tags"] = []string{"version=v3"}
		if id := e.register("", body); id != wantID {
			t.Fatalf("re-registration got id %s, want %s", id, wantID)
		}
		list := e.list("", "")
		if len(list) != 1 {
			t.Fatalf("listed %d instances, want 1", len(list))
		}
		got := list[0]
		if fmt.Sprint(got["tags"]) != "[version=v3]" || got["service_name"] != "reviews" || got["status"] != "UP" ||
			got["ttl"] != 45.0 || fmt.Sprint(got["metadata"]) != "map[n:1 zone:eu]" || got["last_heartbeat"] == nil ||
			fmt.Sprint(got["endpoint"]) != "map[type:http value:10.0.0.5:9080]" {
			t.Fatalf("listed instance = %v", got)
		}
	})
}

func TestRegistry_TTLClamping(t *testing.T) {
	e := newMemoryEnv(t, nil)
	for _, tc := range []struct{ in, want int }{{0, 30}, {1, 10}, {10, 10}, {45, 45}, {600, 600}, {3600, 600}, {1 << 40, 600}} {
		r := e.do("POST", "/api/v1/instances", "", reg("s", fmt.Sprintf("h:%d", tc.in), with("ttl", tc.in)))
		var out struct{ TTL int }
		r.decode(t, &out)
		if r.code != 201 || out.TTL != tc.want {
			t.Errorf("ttl %d: %s, want ttl %d", tc.in, r, tc.want)
		}
	}
	e = newMemoryEnv(t, func(c *registry.Config) {
		c.DefaultTTL, c.MinTTL, c.MaxTTL = 20*time.Second, 5*time.Second, time.Minute
	})
	for _, tc := range []struct{ in, want int }{{0, 20}, {2, 5}, {61, 60}} {
		var out struct{ TTL int }
		e.do("POST", "/api/v1/instances", "", reg("s", fmt.Sprintf("h:%d", tc.in), with("ttl", tc.in))).decode(t, &out)
		if out.TTL != tc.want {
			t.Errorf("flags 20s/5s/1m, ttl %d: got %d, want %d", tc.in, out.TTL, tc.want)
		}
	}
}

func TestRegistry_BadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name     string
		body     any
		ctype    string
		wantCode int
		wantText string
	}{
		{"malformed JSON", `{"service_name": "a",`, "", 400, "malformed JSON"},
		{"not an object", `[1,2]`, "", 400, "expected an object"},
		{"trailing data", `{"service_name":"a","endpoint":{"type":"http","value":"h:1"}} {}`, "", 400, "after the JSON value"},
		{"empty body", ``, "", 400, "empty"},
		{"missing service_name", reg("", "h:1"), "", 400, "service_name: required"},
		{"service_name wrong type", `{"service_name": 5, "endpoint": {"type":"http","value":"h:1"}}`, "", 400, "service_name: expected a string"},
		{"service_name too long", reg(long(65), "h:1"), "", 400, "service_name: longer than 64 bytes"},
		{"missing endpoint", map[string]any{"service_name": "a"}, "", 400, "endpoint: required"},
		{"endpoint wrong type", `{"service_name":"a","endpoint":"h:1"}`, "", 400, "endpoint: expected an object"},
		{"missing endpoint type", map[string]any{"service_name": "a", "endpoint": map[string]any{"value": "h:1"}}, "", 400, "endpoint.type: required"},
		{"bad endpoint type", map[string]any{"service_name": "a", "endpoint": map[string]any{"type": "smtp", "value": "h:1"}}, "", 400, `endpoint.type: "smtp" is not one of`},
		{"missing endpoint value", map[string]any{"service_name": "a", "endpoint": map[string]any{"type": "tcp"}}, "", 400, "endpoint.value: required"},
		{"endpoint too long", reg("a", long(129)), "", 400, "endpoint.value: longer than 128 bytes"},
		{"bad status", reg("a", "h:1", with("status", "DOWN")), "", 400, `status: "DOWN" is not one of`},
		{"status too long", reg("a", "h:1", with("status", long(33))), "", 400, "status: longer than 32 bytes"},
		{"metadata too long", reg("a", "h:1", with("metadata", map[string]string{"k": long(1020)})), "", 400, "metadata: longer than 1024 bytes"},
		{"negative ttl", reg("a", "h:1", with("ttl", -5)), "", 400, "ttl: must be a whole number of seconds"},
		{"ttl wrong type", reg("a", "h:1", with("ttl", "30s")), "", 400, "ttl: expected an integer"},
		{"fractional ttl", reg("a", "h:1", with("ttl", 1.5)), "", 400, "ttl: expected an integer"},
		{"tags not an array", reg("a", "h:1", with("tags", "v1")), "", 400, "tags: expected an array"},
		{"tag not a string", reg("a", "h:1", with("tags", []any{"v1", 2})), "", 400, "expected a string"},
		{"empty tag", reg("a", "h:1", with("tags", []string{"v1", ""})), "", 400, "tags[1]: must not be empty"},
		{"not JSON content type", `service_name=a`, "application/x-www-form-urlencoded", 415, "Bad Content-Type"},
		{"wrong charset", `{}`, "application/json; charset=latin1", 415, "Bad Content-Type"},
		{"body too large", `{"service_name":"` + long(70<<10) + `"}`, "", 413, "larger than"},
	}
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		for _, tc := range tests {
			var r reply
			if tc.ctype != "" {
				r = e.doType("POST", "/api/v1/instances", tc.ctype, tc.body.(string))
			} else {
				r = e.do("POST", "/api/v1/instances", "", tc.body)
			}
			if r.code != tc.wantCode || !strings.Contains(r.errorText(t), tc.wantText) {
				t.Errorf("%s: %s; want %d containing %q", tc.name, r, tc.wantCode, tc.wantText)
			}
		}
		if got := e.list("", "?status=ALL"); len(got) != 0 {
			t.Fatalf("rejected registrations wrote %d instances", len(got))
		}
		// Limits are inclusive.
		e.register("", reg(long(64), long(128), with("status", "out_of_service"), with("metadata", map[string]string{"k": long(1016)})))
	})
}

func TestRegistry_BodyCutOff(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		full := `{"service_name":"a","endpoint":{"type":"http","value":"h:1"}}`
		code, text := e.rawRequest("POST /api/v1/instances HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(full)) + full[:20])
		if code != 0 && code != 400 {
			t.Fatalf("cut-off body answered %d %s", code, text)
		}
		if got := e.list("", "?status=ALL"); len(got) != 0 {
			t.Fatalf("a cut-off body wrote %d instances", len(got))
		}
	})
}

func TestRegistry_HeartbeatAndDeregister(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		id := e.register("", reg("a", "h:1", with("ttl", 10)))
		if r := e.do("PUT", "/api/v1/instances/"+id+"/heartbeat", "", nil); r.code != 200 || len(r.body) != 0 {
			t.Fatalf("heartbeat: %s", r)
		}
		if r := e.do("PUT", "/api/v1/instances/0123456789abcdef/heartbeat", "", nil); r.code != 410 || !strings.Contains(r.errorText(t), "register it again") {
			t.Fatalf("heartbeat of unknown id: %s", r)
		}
		if r := e.do("DELETE", "/api/v1/instances/"+id, "", nil); r.code != 200 || len(r.body) != 0 {
			t.Fatalf("deregister: %s", r)
		}
		if r := e.do("DELETE", "/api/v1/instances/"+id, "", nil); r.code != 410 {
			t.Fatalf("second deregister: %s", r)
		}
		if r := e.do("PUT", "/api/v1/instances/"+id+"/heartbeat", "", nil); r.code != 410 {
			t.Fatalf("heartbeat after deregister: %s", r)
		}
	})
}

func TestRegistry_Expiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		id := e.register("", reg("a", "h:1", with("ttl", 10)))
		oos := e.register("", reg("a", "h:2", with("ttl", 10), with("status", "OUT_OF_SERVICE")))
		e.clock.Advance(8 * time.Second)
		if r := e.do("PUT", "/api/v1/instances/"+id+"/heartbeat", "", nil); r.code != 200 {
			t.Fatalf("heartbeat within ttl: %s", r)
		}
		e.clock.Advance(10 * time.Second) // 10s since the heartbeat: still alive
		if got := field(e.list("", "?status=ALL"), "id"); len(got) != 2 {
			t.Fatalf("at exactly ttl: %v", got)
		}
		e.clock.Advance(time.Second)
		if got := field(e.list("", "?status=ALL"), "id"); fmt.Sprint(got) != fmt.Sprint([]string{oos}) {
			t.Fatalf("after ttl: %v, want only the OUT_OF_SERVICE instance %s", got, oos)
		}
		if r := e.do("PUT", "/api/v1/instances/"+id+"/heartbeat", "", nil); r.code != 410 {
			t.Fatalf("heartbeat after expiry: %s", r)
		}
		if r := e.do("GET", "/api/v1/services/a", "", nil); r.code != 200 {
			t.Fatalf("service with an OUT_OF_SERVICE instance: %s", r)
		}
	})
}

func TestRegistry_ListFilters(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		ids := map[string]string{
			"r1":  e.register("", reg("reviews", "h:1", with("tags", []string{"version=v1", "zone=a"}))),
			"r2":  e.register("", reg("reviews", "h:2", with("tags", []string{"version=v2", "zone=a"}))),
			"r3s": e.register("", reg("reviews", "h:3", with("tags", []string{"version=v2"}), with("status", "starting"))),
			"d1o": e.register("", reg("details", "h:4", with("status", "Out_Of_Service"))),
			"d2":  e.register("", reg("details", "h:5")),
		}
		names := func(list []map[string]any) string {
			var out []string
			for _, in := range list {
				for k, v := range ids {
					if in["id"] == v {
						out = append(out, k)
					}
				}
			}
			slices.Sort(out)
			return strings.Join(out, ",")
		}
		tests := []struct{ query, want string }{
			{"", "d2,r1,r2"},
			{"?status=ALL", "d1o,d2,r1,r2,r3s"},
			{"?status=all", "d1o,d2,r1,r2,r3s"},
			{"?status=up", "d2,r1,r2"},
			{"?status=STARTING", "r3s"},
			{"?status=out_of_service", "d1o"},
			{"?status=UP&status=STARTING", "d2,r1,r2,r3s"},
			{"?service_name=reviews", "r1,r2"},
			{"?service_name=reviews&status=ALL", "r1,r2,r3s"},
			{"?service_name=reviews&service_name=details", "d2,r1,r2"},
			{"?service_name=nothing", ""},
			{"?tags=version=v2", "r2"},
			{"?tags=version=v2&status=ALL", "r2,r3s"},
			{"?tags=zone=a,version=v1", "r1"},
			{"?tags=zone=a&tags=version=v2", "r2"},
			{"?tags=zone=b", ""},
			{"?id=" + ids["r3s"], ""},
			{"?id=" + ids["r3s"] + "&status=ALL", "r3s"},
		}
		for _, tc := range tests {
			if got := names(e.list("", tc.query)); got != tc.want {
				t.Errorf("GET /api/v1/instances%s = %q, want %q", tc.query, got, tc.want)
			}
		}
		// Sorted by service, then id.
		list := e.list("", "?status=ALL")
		for i := 1; i < len(list); i++ {
			a, b := list[i-1], list[i]
			if fmt.Sprint(a["service_name"], a["id"]) > fmt.Sprint(b["service_name"], b["id"]) {
				t.Fatalf("list is not sorted by service and id: %v", field(list, "id"))
			}
		}
	})
}

func TestRegistry_FieldsProjection(t *testing.T) {
	e := newMemoryEnv(t, nil)
	e.register("", reg("reviews", "h:1", with("tags", []string{"v1"}), with("metadata", map[string]int{"a": 1})))
	tests := []struct{ query, wantKeys string }{
		{"", "endpoint,id,last_heartbeat,metadata,service_name,status,tags,ttl"},
		{"?fields=", "endpoint,id"},
		{"?fields=status", "endpoint,id,status"},
		{"?fields=tags,ttl,service_name", "endpoint,id,service_name,tags,ttl"},
		{"?fields=metadata&fields=last_heartbeat", "endpoint,id,last_heartbeat,metadata"},
	}
	for _, tc := range tests {
		list := e.list("", tc.query)
		var keys []string
		for k := range list[0] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if got := strings.Join(keys, ","); got != tc.wantKeys {
			t.Errorf("%s: keys %s, want %s", tc.query, got, tc.wantKeys)
		}
	}
}

func TestRegistry_BadQueries(t *testing.T) {
	e := newMemoryEnv(t, nil)
	tests := []struct{ query, wantText string }{
		{"?ttl=5", `cannot filter by "ttl"`},
		{"?endpoint=h:1", `cannot filter by "endpoint"`},
		{"?color=blue", `unknown query parameter "color"`},
		{"?fields=id,colour", `fields: unknown field "colour"`},
		{"?index=abc", "index: "},
		{"?index=-1", "index: "},
		{"?index=1&wait=soon", "wait: "},
		{"?index=1&wait=-5s", "wait: "},
	}
	for _, tc := range tests {
		r := e.do("GET", "/api/v1/instances"+tc.query, "", nil)
		if r.code != 400 || !strings.Contains(r.errorText(t), tc.wantText) {
			t.Errorf("%s: %s; want 400 containing %q", tc.query, r, tc.wantText)
		}
	}
}

func TestRegistry_Services(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		if r := e.do("GET", "/api/v1/services", "", nil); r.code != 200 || string(r.body) != `{"services":[]}` {
			t.Fatalf("empty services: %s", r)
		}
		e.register("", reg("reviews", "h:1"))
		e.register("", reg("reviews", "h:2", with("status", "STARTING")))
		e.register("", reg("details", "h:3", with("status", "OUT_OF_SERVICE")))
		r := e.do("GET", "/api/v1/services", "", nil)
		if r.code != 200 || string(r.body) != `{"services":["details","reviews"]}` {
			t.Fatalf("services: %s", r)
		}
		r = e.do("GET", "/api/v1/services/reviews", "", nil)
		var svc struct {
			ServiceName string           `json:"service_name"`
			Instances   []map[string]any `json:"instances"`
		}
		r.decode(t, &svc)
		if r.code != 200 || svc.ServiceName != "reviews" || len(svc.Instances) != 2 {
			t.Fatalf("service reviews (all statuses): %s", r)
		}
		r = e.do("GET", "/api/v1/services/ratings", "", nil)
		if r.code != 404 || !strings.Contains(r.errorText(t), `"ratings"`) {
			t.Fatalf("unknown service: %s", r)
		}
	})
}

func TestRegistry_Routing(t *testing.T) {
	e := newMemoryEnv(t, nil)
	tests := []struct {
		method, path string
		wantCode     int
		wantText     string
	}{
		{"PUT", "/api/v1/instances", 405, "Method not allowed"},
		{"DELETE", "/api/v1/instances", 405, "Method not allowed"},
		{"GET", "/api/v1/instances/abc", 405, "Method not allowed"},
		{"POST", "/api/v1/instances/abc/heartbeat", 405, "Method not allowed"},
		{"POST", "/api/v1/services", 405, "Method not allowed"},
		{"DELETE", "/api/v1/services/x", 405, "Method not allowed"},
		{"GET", "/api/v2/instances", 404, "Resource not found"},
		{"GET", "/api/v1/instances/abc/heartbeat/x", 404, "Resource not found"},
		{"GET", "/nothing", 404, "Resource not found"},
	}
	for _, tc := range tests {
		r := e.do(tc.method, tc.path, "", nil)
		if r.code != tc.wantCode || r.errorText(t) != tc.wantText {
			t.Errorf("%s %s: %s; want %d %q", tc.method, tc.path, r, tc.wantCode, tc.wantText)
		}
		if tc.wantCode == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without an Allow header", tc.method, tc.path)
		}
	}
	if r := e.do("GET", "/", "", nil); r.code != 200 {
		t.Errorf("GET /: %s", r)
	}
	r := e.do("GET", "/uptime", "", nil)
	var up struct {
		UPTIME struct {
			Healthy    bool
			Properties map[string]any
		}
	}
	r.decode(t, &up)
	if r.code != 200 || !up.UPTIME.Healthy || up.UPTIME.Properties["uptime"] == nil || up.UPTIME.Properties["build_version"] != "test" {
		t.Errorf("GET /uptime: %s", r)
	}
}

func TestRegistry_Tenancy(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		a, err := auth.New("trusted", "")
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(func(c *registry.Config) { c.Auth = a })
		idA := e.register("team-a", reg("reviews", "h:1"))
		e.register("team-b", reg("ratings", "h:1"))
		if got := field(e.list("team-a", ""), "service_name"); fmt.Sprint(got) != "[reviews]" {
			t.Fatalf("team-a sees %v", got)
		}
		if got := field(e.list("team-b", ""), "service_name"); fmt.Sprint(got) != "[ratings]" {
			t.Fatalf("team-b sees %v", got)
		}
		if r := e.do("PUT", "/api/v1/instances/"+idA+"/heartbeat", "team-b", nil); r.code != 410 {
			t.Fatalf("team-b heartbeat of team-a's instance: %s", r)
		}
		if r := e.do("DELETE", "/api/v1/instances/"+idA, "team-b", nil); r.code != 410 {
			t.Fatalf("team-b deregistered team-a's instance: %s", r)
		}
		if r := e.do("GET", "/api/v1/services/reviews", "team-b", nil); r.code != 404 {
			t.Fatalf("team-b sees team-a's service: %s", r)
		}
		if r := e.do("GET", "/api/v1/instances", "", nil); r.code != 401 {
			t.Fatalf("no token in trusted mode: %s", r)
		}
		if r := e.do("GET", "/uptime", "", nil); r.code != 200 {
			t.Fatalf("/uptime needs no token: %s", r)
		}
	})
}

func TestRegistry_DefaultAuthRefusesOtherTokens(t *testing.T) {
	e := newMemoryEnv(t, nil)
	if r := e.do("GET", "/api/v1/instances", "default", nil); r.code != 200 {
		t.Fatalf("token default: %s", r)
	}
	if r := e.do("GET", "/api/v1/instances", "team-a", nil); r.code != 401 {
		t.Fatalf("token team-a with auth off: %s", r)
	}
}

func TestRegistry_NamespaceCapacity(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		a, _ := auth.New("trusted", "")
		e := newEnv(func(c *registry.Config) { c.NamespaceCapacity = 2; c.Auth = a })
		e.register("a", reg("s", "h:1"))
		e.register("a", reg("s", "h:2"))
		r := e.do("POST", "/api/v1/instances", "a", reg("s", "h:3"))
		if r.code != 403 || !strings.Contains(r.errorText(t), "capacity") {
			t.Fatalf("third instance with capacity 2: %s", r)
		}
		e.register("a", reg("s", "h:2", with("tags", []string{"x"}))) // updating is not adding
		e.register("b", reg("s", "h:3"))                              // capacity is per tenant
	})
}

// A Redis outage is a 503 that says so, not a crash; the registry serves again once Redis is back.
func TestRegistry_RedisOutage(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*registry.Config)) *env) {
		e := newEnv(nil)
		if e.redis == nil {
			t.Skip("the memory store has no outage")
		}
		id := e.register("", reg("reviews", "h:1"))
		e.redis.Stop()
		for _, c := range []struct{ method, path string }{
			{"POST", "/api/v1/instances"}, {"GET", "/api/v1/instances"}, {"PUT", "/api/v1/instances/" + id + "/heartbeat"},
			{"DELETE", "/api/v1/instances/" + id}, {"GET", "/api/v1/services"}, {"GET", "/api/v1/instances?index=1&wait=1s"},
		} {
			var body any
			if c.method == "POST" {
				body = reg("reviews", "h:2")
			}
			r := e.do(c.method, c.path, "", body)
			if r.code != 503 || !strings.Contains(r.errorText(t), "store is unavailable") || r.header.Get("Retry-After") == "" {
				t.Errorf("%s %s during outage: %s", c.method, c.path, r)
			}
		}
		if r := e.do("GET", "/uptime", "", nil); r.code != 503 {
			t.Errorf("/uptime during outage: %s", r)
		}
		e.redis.Restart(t)
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := e.do("POST", "/api/v1/instances", "", reg("reviews", "h:1"))
			if r.code == 201 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("registry did not recover after Redis returned: %s", r)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := e.list("", ""); len(got) != 1 {
			t.Fatalf("after recovery: %v", got)
		}
	})
}

func TestRegistry_JWT(t *testing.T) {
	a, err := auth.New("jwt", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	e := newMemoryEnv(t, func(c *registry.Config) { c.Auth = a })
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	teamA := sign(jwt.MapClaims{"namespace": "team-a", "exp": time.Now().Add(time.Hour).Unix()})
	e.register(teamA, reg("reviews", "h:1"))
	if got := e.list(sign(jwt.MapClaims{"namespace": "team-a"}), ""); len(got) != 1 {
		t.Fatalf("same namespace, another token: %v", got)
	}
	if got := e.list(sign(jwt.MapClaims{"namespace": "team-b"}), ""); len(got) != 0 {
		t.Fatalf("team-b sees team-a's instances: %v", got)
	}
	for name, token := range map[string]string{
		"expired":   sign(jwt.MapClaims{"namespace": "team-a", "exp": time.Now().Add(-time.Minute).Unix()}),
		"no claim":  sign(jwt.MapClaims{"sub": "x"}),
		"not a JWT": "team-a",
	} {
		if r := e.do("GET", "/api/v1/instances", token, nil); r.code != 401 {
			t.Errorf("%s token: %s, want 401", name, r)
		}
	}
}

func TestRegistry_RequireHTTPS(t *testing.T) {
	e := newMemoryEnv(t, func(c *registry.Config) { c.RequireHTTPS = true })
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(e.url + "/api/v1/instances?service_name=x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || !strings.HasPrefix(loc, "https://") || !strings.HasSuffix(loc, "/api/v1/instances?service_name=x") {
		t.Fatalf("plain HTTP: %d Location %q, want 301 to https", resp.StatusCode, loc)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/v1/instances", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("behind a TLS-terminating proxy: %d, want 200", resp.StatusCode)
	}
}
