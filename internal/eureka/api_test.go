package eureka_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/eureka"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

// TestPaths serves every path variant: Netflix's /eureka/v2, Spring's /eureka, Amalgam8's
// /api/eureka/{token}/v2, with and without trailing slash, JSON or XML by Accept, gzip.
func TestPaths(t *testing.T) {
	e := newRegistry(t, memory.NewInstances(nil), nil)
	e.registerJSON("/eureka/v2", "DEMO", instanceJSON("DEMO", "demo-1", "10.0.0.1", 8080))

	const (
		xmlApps  = "<applications>"
		jsonApps = `{"applications":`
	)
	for _, tc := range []struct {
		method, path string
		headers      []string
		code         int
		contains     string
	}{
		{"GET", "/eureka/v2/apps", nil, 200, xmlApps}, // no Accept: XML
		{"GET", "/eureka/v2/apps/", []string{"Accept: application/xml"}, 200, xmlApps},
		{"GET", "/eureka/v2/apps", []string{jsonAccept}, 200, jsonApps},
		{"GET", "/eureka/v2/apps", []string{"Accept: text/html, application/vnd.x+json;q=0.5"}, 200, jsonApps},
		{"GET", "/eureka/apps", []string{jsonAccept}, 200, jsonApps},
		{"GET", "/eureka/apps/", []string{jsonAccept}, 200, jsonApps},
		{"GET", "/api/eureka/default/v2/apps", []string{jsonAccept}, 200, jsonApps},
		{"GET", "/api/eureka/default/v2/apps/", nil, 200, xmlApps},
		{"GET", "/api/eureka/default/apps", []string{jsonAccept}, 200, jsonApps},
		{"GET", "/eureka/v1/apps", []string{jsonAccept}, 200, jsonApps}, // any version is v2, as in Eureka
		{"GET", "/eureka/v2/apps/delta", []string{jsonAccept}, 200, `"actionType":"ADDED"`},
		{"GET", "/eureka/apps/delta", nil, 200, "<actionType>ADDED</actionType>"},
		{"GET", "/eureka/v2/apps/DEMO", []string{jsonAccept}, 200, `{"application":{"name":"DEMO","instance":[`},
		{"GET", "/eureka/v2/apps/demo", nil, 200, "<application><name>DEMO</name>"},
		{"GET", "/eureka/v2/apps/DEMO/demo-1", []string{jsonAccept}, 200, `{"instance":{"instanceId":"demo-1"`},
		{"GET", "/eureka/v2/apps/DEMO/demo-1", nil, 200, "<instance><instanceId>demo-1</instanceId>"},
		{"GET", "/eureka/v2/instances/demo-1", []string{jsonAccept}, 200, `"instanceId":"demo-1"`},
		{"GET", "/eureka/instances/demo-1/", nil, 200, "<instanceId>demo-1</instanceId>"},
		{"GET", "/eureka/v2/vips/demo", []string{jsonAccept}, 200, `"apps__hashcode":"UP_1_"`},
		{"GET", "/eureka/v2/svips/demo", nil, 200, "<instanceId>demo-1</instanceId>"},
		{"GET", "/eureka/v2/vips/DEMO", nil, 404, "case-sensitive"},
		{"GET", "/eureka/v2/apps/NOPE", nil, 404, "NOPE"},
		{"GET", "/eureka/v2/apps/NOPE/demo-1", nil, 404, "not registered"},
		{"GET", "/eureka/v2/apps/DEMO/nope", nil, 404, "not registered"},
		{"GET", "/eureka/v2/instances/nope", nil, 404, "not registered"},
		{"GET", "/eureka/v2/apps/DEMO/demo-1/extra/more", nil, 404, "Resource not found"},
		{"GET", "/eureka/v2/things", nil, 404, "Resource not found"},
		{"GET", "/eureka/", nil, 404, "Resource not found"},
		{"POST", "/eureka/v2/apps", nil, 405, "Method not allowed"},
		{"GET", "/eureka/v2/apps/DEMO/demo-1/status", nil, 405, "Method not allowed"},
		{"DELETE", "/eureka/v2/apps/DEMO", nil, 405, "Method not allowed"},
		{"HEAD", "/eureka/apps/", nil, 200, ""},
	} {
		t.Run(tc.method+" "+tc.path+" "+strings.Join(tc.headers, ","), func(t *testing.T) {
			r := e.do(tc.method, tc.path, "", tc.headers...).want(t, tc.code)
			if !strings.Contains(string(r.body), tc.contains) {
				t.Fatalf("body %s lacks %s", r.body, tc.contains)
			}
			if tc.code == 200 && tc.method == "GET" {
				ct := r.header.Get("Content-Type")
				if strings.HasPrefix(tc.contains, "<") != (ct == "application/xml") {
					t.Fatalf("Content-Type %s for %s", ct, r.body)
				}
			}
			if tc.code == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without Allow")
			}
		})
	}

	t.Run("gzip", func(t *testing.T) {
		for _, accept := range []string{"application/json", "application/xml"} {
			for i := 0; i < 2; i++ { // rendered, then from the snapshot's cache
				r := e.do("GET", "/eureka/apps/", "", "Accept: "+accept, "Accept-Encoding: gzip, deflate").want(t, 200)
				if r.header.Get("Content-Encoding") != "gzip" {
					t.Fatalf("Content-Encoding %q", r.header.Get("Content-Encoding"))
				}
				zr, err := gzip.NewReader(bytes.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				plain, err := io.ReadAll(zr)
				if err != nil {
					t.Fatal(err)
				}
				a, err := eureka.DecodeApplications(plain, r.header.Get("Content-Type"))
				if err != nil || ids(a) != "DEMO/demo-1" {
					t.Fatalf("%s: %v %s", accept, err, plain)
				}
			}
		}
		r := e.do("GET", "/eureka/apps/DEMO", "", "Accept-Encoding: gzip;q=0")
		if r.header.Get("Content-Encoding") != "" {
			t.Fatal("gzip;q=0 gzipped")
		}
	})
}

// TestRegister_Validation refuses what Eureka refuses, with 400 and the field.
func TestRegister_Validation(t *testing.T) {
	e := newRegistry(t, memory.NewInstances(nil), nil)
	ok := instanceJSON("DEMO", "d1", "10.0.0.1", 8080)
	for _, tc := range []struct {
		name, app, body, ct, want string
	}{
		{"no hostName", "DEMO", strings.Replace(ok, `"hostName":"host-d1",`, "", 1), "application/json", "hostName: required"},
		{"no ipAddr", "DEMO", strings.Replace(ok, `"ipAddr":"10.0.0.1"`, `"ipAddr":""`, 1), "application/json", "ipAddr: required"},
		{"no app", "DEMO", strings.Replace(ok, `"app":"DEMO",`, "", 1), "application/json", "app: required"},
		{"no dataCenterInfo", "DEMO", strings.Replace(ok, `"dataCenterInfo":{"@class":"com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo","name":"MyOwn"},`, "", 1), "application/json", "dataCenterInfo.name: required"},
		{"app not the path's", "OTHER", ok, "application/json", "in the body is not the application"},
		{"malformed", "DEMO", `{"instance":{`, "application/json", "malformed JSON"},
		{"bad port", "DEMO", strings.Replace(ok, `"$":8080`, `"$":"x"`, 1), "application/json", "port"},
		{"no port to call", "DEMO", strings.Replace(ok, `"$":8080`, `"$":0`, 1), "application/json", "port: 0 is not a port"},
		{"secure port enabled without a number", "DEMO", strings.Replace(ok, `{"$":443,"@enabled":"false"}`, `{"@enabled":"true"}`, 1), "application/json", "securePort"},
		{"service name with a slash", "DEMO", strings.Replace(ok, `"vipAddress":"demo"`, `"vipAddress":"a/b"`, 1), "application/json", "vipAddress"},
		{"instanceId with a slash", "DEMO", strings.Replace(ok, `"instanceId":"d1"`, `"instanceId":"a/b"`, 1), "application/json", "instanceId"},
		{"bad XML", "DEMO", `<instance><app>DEMO</app>`, "application/xml", "malformed XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/eureka/v2/apps/"+tc.app, tc.body, "Content-Type: "+tc.ct).want(t, http.StatusBadRequest)
			if !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("%s lacks %q", r.body, tc.want)
			}
		})
	}
	r := e.do("POST", "/eureka/v2/apps/DEMO", strings.Repeat(" ", 70<<10)+ok, "Content-Type: application/json")
	r.want(t, http.StatusRequestEntityTooLarge)
	if len(e.a8List("?status=ALL")) != 0 {
		t.Fatal("a refused registration was stored")
	}
	// Lower-case app in the path and the body: both upper-cased.
	e.do("POST", "/eureka/v2/apps/demo", strings.Replace(ok, `"app":"DEMO"`, `"app":"demo"`, 1), "Content-Type: application/json").want(t, http.StatusNoContent)
	e.do("GET", "/eureka/v2/apps/DEMO/d1", "").want(t, http.StatusOK)
}

// TestMapping checks the a8 instance a Eureka registration becomes.
func TestMapping(t *testing.T) {
	e := newRegistry(t, memory.NewInstances(nil), func(c *registry.Config) { c.MaxTTL = 5 * time.Minute })
	reg := func(app, id string, extra ...string) map[string]any {
		t.Helper()
		e.registerJSON("/eureka", app, instanceJSON(app, id, "10.0.0.1", 8080, extra...))
		for _, in := range e.a8List("?status=ALL") {
			if in["id"] == eureka.ID(id) {
				return in
			}
		}
		t.Fatalf("%s not listed", id)
		return nil
	}
	a := reg("WEB", "w1", `"metadata":{"amalgam8.tags":"version=v2, zone=a;;version=v2"}`)
	if a["service_name"] != "web" || fmt.Sprint(a["endpoint"]) != "map[type:http value:10.0.0.1:8080]" || a["ttl"] != float64(90) ||
		fmt.Sprint(a["tags"]) != "[version=v2 zone=a]" || a["status"] != "UP" {
		t.Fatalf("%v", a)
	}
	// First VIP of a list, lower-cased; https on the secure port when enabled; lease clamped.
	b := reg("API", "a1", `"vipAddress":"Api-V2,api"`, `"securePort":{"$":8443,"@enabled":"true"}`, `"leaseInfo":{"durationInSecs":3600}`)
	if b["service_name"] != "api-v2" || fmt.Sprint(b["endpoint"]) != "map[type:https value:10.0.0.1:8443]" || b["ttl"] != float64(300) {
		t.Fatalf("%v", b)
	}
	// ipAddr that is not an IP: hostName is the address.
	c := reg("HOST", "h1", `"ipAddr":"not-an-ip"`, `"hostName":"svc.example"`)
	if fmt.Sprint(c["endpoint"]) != "map[type:http value:svc.example:8080]" {
		t.Fatalf("%v", c)
	}
	// No VIP: the app, lower-cased. Statuses: DOWN and the rest kept, OUT_OF_SERVICE is DOWN.
	for _, st := range []struct{ eureka, a8 string }{{"DOWN", "DOWN"}, {"STARTING", "STARTING"}, {"UNKNOWN", "UNKNOWN"}, {"OUT_OF_SERVICE", "DOWN"}} {
		body := strings.Replace(strings.Replace(instanceJSON("NOVIP", "n-"+st.eureka, "10.0.0.2", 80), `"status":"UP"`, `"status":"`+st.eureka+`"`, 1),
			`"vipAddress":"novip","secureVipAddress":"novip",`, "", 1)
		e.registerJSON("/eureka", "NOVIP", body)
		var got map[string]any
		for _, in := range e.a8List("?status=ALL") {
			if in["id"] == eureka.ID("n-"+st.eureka) {
				got = in
			}
		}
		if got["service_name"] != "novip" || got["status"] != st.a8 {
			t.Fatalf("%s: %v", st.eureka, got)
		}
		// Only UP is routable: no other status reaches sidecars or unfiltered lists.
		if findService(e.a8List(""), "novip") != nil {
			t.Fatalf("a %s instance is routable", st.eureka)
		}
	}
	// The Eureka data is kept whole in the a8 metadata.
	md := a["metadata"].(map[string]any)["eureka"].(map[string]any)
	if md["instanceId"] != "w1" || md["app"] != "WEB" || md["hostName"] != "host-w1" {
		t.Fatalf("metadata %v", md)
	}
}

// TestLease covers renewals, cancels and their 404s, re-registration, and the lastDirtyTimestamp rule.
func TestLease(t *testing.T) {
	e := newRegistry(t, memory.NewInstances(nil), nil)
	body := instanceJSON("DEMO", "d1", "10.0.0.1", 8080, `"lastDirtyTimestamp":"1000"`)
	e.registerJSON("/eureka/v2", "DEMO", body)

	e.do("PUT", "/eureka/v2/apps/DEMO/d1", "").want(t, 200)
	e.do("PUT", "/eureka/v2/apps/DEMO/d1?status=UP&lastDirtyTimestamp=1000", "").want(t, 200)
	e.do("PUT", "/eureka/v2/apps/DEMO/d1?status=UP&lastDirtyTimestamp=999", "").want(t, 200)
	// The client's copy is newer: register again.
	e.do("PUT", "/eureka/v2/apps/DEMO/d1?status=UP&lastDirtyTimestamp=1001", "").want(t, 404)
	e.do("PUT", "/eureka/v2/apps/DEMO/nope", "").want(t, 404)
	e.do("PUT", "/eureka/v2/apps/OTHER/d1", "").want(t, 404) // known, but in another app

	// Status override: required value, unknown instance, and it survives a re-registration.
	e.do("PUT", "/eureka/v2/apps/DEMO/d1/status", "").want(t, 400)
	e.do("PUT", "/eureka/v2/apps/DEMO/d1/status?value=SIDEWAYS", "").want(t, 400)
	e.do("PUT", "/eureka/v2/apps/DEMO/nope/status?value=DOWN", "").want(t, 404)
	e.do("PUT", "/eureka/v2/apps/DEMO/nope/metadata?a=b", "").want(t, 404)
	e.do("PUT", "/eureka/v2/apps/DEMO/d1/status?value=OUT_OF_SERVICE", "").want(t, 200)
	e.registerJSON("/eureka/v2", "DEMO", body)
	in := e.instance("/eureka/v2/apps/DEMO/d1")
	if in.EffectiveStatus() != "OUT_OF_SERVICE" || in.OverriddenStatus != "OUT_OF_SERVICE" || in.Status != "OUT_OF_SERVICE" {
		t.Fatalf("override after re-registration: %+v", in)
	}
	// DELETE with a fallback value sets the status too.
	e.do("DELETE", "/eureka/v2/apps/DEMO/d1/status?value=DOWN", "").want(t, 200)
	if in := e.instance("/eureka/v2/apps/DEMO/d1"); in.Status != "DOWN" || in.OverriddenStatus != "UNKNOWN" {
		t.Fatalf("after DELETE status?value=DOWN: %+v", in)
	}
	e.do("DELETE", "/eureka/v2/apps/DEMO/d1/status?value=UP&lastDirtyTimestamp=2000", "").want(t, 200)
	if in := e.instance("/eureka/v2/apps/DEMO/d1"); in.Status != "UP" || in.LastDirtyTimestamp != 2000 {
		t.Fatalf("after DELETE status?value=UP: %+v", in)
	}

	// Cancel: 200, then 404; the override goes with it.
	e.do("PUT", "/eureka/v2/apps/DEMO/d1/status?value=OUT_OF_SERVICE", "").want(t, 200)
	e.do("DELETE", "/eureka/v2/apps/DEMO/d1", "").want(t, 200)
	e.do("DELETE", "/eureka/v2/apps/DEMO/d1", "").want(t, 404)
	e.do("PUT", "/eureka/v2/apps/DEMO/d1", "").want(t, 404)
	e.registerJSON("/eureka/v2", "DEMO", body)
	if in := e.instance("/eureka/v2/apps/DEMO/d1"); in.EffectiveStatus() != "UP" {
		t.Fatalf("override survived a cancel: %+v", in)
	}

	// Status and metadata of an instance registered through the Amalgam8 API are not Eureka's to change.
	r := e.do("POST", "/api/v1/instances", `{"service_name":"native","endpoint":{"type":"http","value":"10.9.9.9:80"}}`, "Content-Type: application/json").want(t, 201)
	nid := string(r.body[strings.Index(string(r.body), `"id":"`)+6:][:16])
	eventually(t, "the native instance in the view", func() bool { return e.do("GET", "/eureka/v2/instances/"+nid, "").code == 200 })
	e.do("PUT", "/eureka/v2/apps/NATIVE/"+nid+"/status?value=DOWN", "").want(t, 409)
	e.do("PUT", "/eureka/v2/apps/NATIVE/"+nid+"/metadata?a=b", "").want(t, 409)
	e.do("PUT", "/eureka/v2/apps/NATIVE/"+nid, "").want(t, 200)
	e.do("DELETE", "/eureka/v2/apps/NATIVE/"+nid, "").want(t, 200)
}

func (e *env) instance(path string) *eureka.Instance {
	e.t.Helper()
	r := e.do("GET", path, "", jsonAccept).want(e.t, 200)
	in, err := eureka.DecodeInstance(r.body, "application/json")
	if err != nil {
		e.t.Fatal(err)
	}
	return in
}

// TestTenancy: one tenant's Eureka view never shows another's, under every path style.
func TestTenancy(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := newRegistry(t, b.open(t, nil), func(c *registry.Config) { c.Auth = auth.Trusted() })
		e.registerJSON("/api/eureka/team-a/v2", "DEMO", instanceJSON("DEMO", "shared-id", "10.0.0.1", 8080))
		e.registerJSON("/api/eureka/team-b/v2", "DEMO", instanceJSON("DEMO", "shared-id", "10.0.0.2", 8080))
		e.registerJSON("/api/eureka/team-b/v2", "ONLYB", instanceJSON("ONLYB", "b-1", "10.0.0.3", 8080))

		basic := func(user, pass string) string {
			return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
		}
		for _, tc := range []struct {
			name, prefix string
			headers      []string
			want         string
		}{
			{"a by path", "/api/eureka/team-a/v2", nil, "DEMO/shared-id"},
			{"b by path", "/api/eureka/team-b/v2", nil, "DEMO/shared-id ONLYB/b-1"},
			{"a by bearer", "/eureka/v2", []string{"Authorization: Bearer team-a"}, "DEMO/shared-id"},
			{"b by bearer", "/eureka", []string{"Authorization: bearer team-b"}, "DEMO/shared-id ONLYB/b-1"},
			{"a by basic password", "/eureka", []string{basic("user", "team-a")}, "DEMO/shared-id"},
			{"b by basic user", "/eureka", []string{basic("team-b", "")}, "DEMO/shared-id ONLYB/b-1"},
			{"c is empty", "/api/eureka/team-c/v2", nil, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if got := ids(e.apps(tc.prefix, tc.headers...)); got != tc.want {
					t.Fatalf("apps %q, want %q", got, tc.want)
				}
			})
		}
		if in := e.instance("/api/eureka/team-a/v2/instances/shared-id"); in.IPAddr != "10.0.0.1" {
			t.Fatalf("team-a's shared-id: %+v", in)
		}
		e.do("GET", "/api/eureka/team-a/v2/apps/ONLYB", "").want(t, 404)
		e.do("GET", "/api/eureka/team-a/v2/vips/onlyb", "").want(t, 404)
		e.do("DELETE", "/api/eureka/team-a/v2/apps/ONLYB/b-1", "").want(t, 404)
		// A cancel in one tenant leaves the other's instance of the same id.
		e.do("DELETE", "/api/eureka/team-a/v2/apps/DEMO/shared-id", "").want(t, 200)
		if got := ids(e.apps("/api/eureka/team-b/v2")); got != "DEMO/shared-id ONLYB/b-1" {
			t.Fatalf("team-b after team-a's cancel: %s", got)
		}
		if got := ids(e.delta("/api/eureka/team-a/v2")); got != "DEMO/shared-id=DELETED" {
			t.Fatalf("team-a's delta: %s", got)
		}
		if got := ids(e.delta("/api/eureka/team-b/v2")); got != "DEMO/shared-id=ADDED ONLYB/b-1=ADDED" {
			t.Fatalf("team-b's delta: %s", got)
		}
		// The Amalgam8 API sees the same tenants.
		if l := e.a8List("", "Authorization: Bearer team-b"); len(l) != 2 {
			t.Fatalf("Amalgam8 API, team-b: %v", l)
		}
		// No token where one is needed.
		e.do("GET", "/eureka/apps", "").want(t, 401)
		e.do("GET", "/eureka/apps", "", "Authorization: Token x").want(t, 401)
	})

	t.Run("default auth", func(t *testing.T) {
		e := newRegistry(t, memory.NewInstances(nil), nil)
		e.registerJSON("/eureka", "DEMO", instanceJSON("DEMO", "d1", "10.0.0.1", 8080))
		for _, prefix := range []string{"/eureka", "/eureka/v2", "/api/eureka/default/v2"} {
			if got := ids(e.apps(prefix)); got != "DEMO/d1" {
				t.Fatalf("%s: %q", prefix, got)
			}
		}
		if got := ids(e.apps("/eureka", "Authorization: Bearer default")); got != "DEMO/d1" {
			t.Fatal(got)
		}
		e.do("GET", "/api/eureka/team-a/v2/apps", "").want(t, 401)
		e.do("GET", "/eureka/apps", "", "Authorization: Bearer team-a").want(t, 401)
	})
}

// readOnly is a store with one catalog instance: listed, and refused to every change.
type readOnly struct {
	store.Instances
	cat store.Instance
}

func (s *readOnly) List(ctx context.Context, ns, service string) (store.InstanceList, error) {
	l, err := s.Instances.List(ctx, ns, service)
	if err == nil && (service == "" || service == s.cat.ServiceName) {
		l.Instances = append(l.Instances, s.cat)
	}
	return l, err
}

func (s *readOnly) refuse(id string) error {
	if id == s.cat.ID {
		return fmt.Errorf("instance %s belongs to the test catalog: %w", id, store.ErrReadOnly)
	}
	return nil
}

func (s *readOnly) Register(ctx context.Context, ns string, in store.Instance, c int) (store.Instance, error) {
	if err := s.refuse(in.ID); err != nil {
		return store.Instance{}, err
	}
	return s.Instances.Register(ctx, ns, in, c)
}

func (s *readOnly) Renew(ctx context.Context, ns, id string) error {
	if err := s.refuse(id); err != nil {
		return err
	}
	return s.Instances.Renew(ctx, ns, id)
}

func (s *readOnly) Deregister(ctx context.Context, ns, id string) error {
	if err := s.refuse(id); err != nil {
		return err
	}
	return s.Instances.Deregister(ctx, ns, id)
}

// TestReadOnly: instances of a catalog are shown and refused to every change with 409.
func TestReadOnly(t *testing.T) {
	// One catalog instance with a Eureka record (as a mirror of a Eureka would list it), one without.
	rec := goldenInstance()
	rec.ActionType = ""
	meta := fmt.Sprintf(`{"eureka":%s}`, mustJSON(t, rec))
	s := &readOnly{Instances: memory.NewInstances(nil), cat: store.Instance{
		ID: eureka.ID(rec.InstanceID), ServiceName: "demo", Endpoint: store.Endpoint{Type: "http", Value: "10.0.0.5:8080"},
		Status: "UP", Metadata: []byte(meta),
	}}
	e := newRegistry(t, s, nil)
	if got := ids(e.apps("/eureka")); got != "DEMO/host1:demo:8080" {
		t.Fatalf("apps: %s", got)
	}
	for _, tc := range []struct{ method, path string }{
		{"PUT", "/eureka/apps/DEMO/host1:demo:8080"},
		{"DELETE", "/eureka/apps/DEMO/host1:demo:8080"},
		{"PUT", "/eureka/apps/DEMO/host1:demo:8080/status?value=OUT_OF_SERVICE"},
		{"DELETE", "/eureka/apps/DEMO/host1:demo:8080/status"},
		{"PUT", "/eureka/apps/DEMO/host1:demo:8080/metadata?a=b"},
	} {
		r := e.do(tc.method, tc.path, "").want(t, http.StatusConflict)
		if !strings.Contains(string(r.body), "belongs to the test catalog") {
			t.Fatalf("%s %s: %s", tc.method, tc.path, r.body)
		}
	}
	r := e.do("POST", "/eureka/apps/DEMO", string(eureka.EncodeInstance(rec, true)), "Content-Type: application/json").want(t, http.StatusConflict)
	if !strings.Contains(string(r.body), "read-only") {
		t.Fatalf("register over a catalog instance: %s", r.body)
	}
}
