package controller_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store/memory"
)

// Amalgam8's helloworld test script, through the API.
func TestController_Helloworld(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		if r := e.do("DELETE", "/v1/rules", nil); r.code != 200 || len(r.body) != 0 {
			t.Fatalf("delete all on an empty controller: %s", r)
		}
		r := e.do("POST", "/v1/rules", example(t, "helloworld-default-route-rules.json"))
		if r.code != 201 || string(r.body) != `{"ids":["helloworld-default-route"]}` {
			t.Fatalf("create default route: %s", r)
		}
		l := e.get("/v1/rules")
		if path(l.Rules[0], "destination") != "helloworld" || path(l.Rules[0], "route", "backends", 0, "tags", 0) != "version=v1" {
			t.Fatalf("default route reads back as %v", l.Rules)
		}
		if l.Revision != 2 {
			t.Fatalf("revision %d after a delete and an add, want 2", l.Revision)
		}

		// The 75/25 split replaces the rule (same id); v1's weight reads back as absent (null).
		if r := e.do("POST", "/v1/rules", example(t, "helloworld-v1-v2-route-rules.json")); r.code != 201 {
			t.Fatalf("create split: %s", r)
		}
		l = e.get("/v1/rules")
		if len(l.Rules) != 1 || path(l.Rules[0], "route", "backends", 0, "weight") != 0.25 ||
			path(l.Rules[0], "route", "backends", 1, "weight") != nil || path(l.Rules[0], "route", "backends", 1, "tags", 0) != "version=v1" {
			t.Fatalf("split reads back as %v", l.Rules)
		}
		if raw := string(e.do("GET", "/v1/rules", nil).body); strings.Contains(raw, `"weight":null`) || strings.Contains(raw, `"priority":0`) {
			t.Fatalf("unset fields are written out: %s", raw)
		}
	})
}

// Amalgam8's bookinfo rules: defaults, the jason cookie route, the 7 s delay, filters, views, deletes.
func TestController_Bookinfo(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		for _, f := range []string{"bookinfo-default-route-rules.yaml", "bookinfo-jason-reviews-v2-route-rules.yaml"} {
			if r := e.do("POST", "/v1/rules", example(t, f)); r.code != 201 {
				t.Fatalf("%s: %s", f, r)
			}
		}
		r := e.do("POST", "/v1/rules", example(t, "bookinfo-jason-7s-delay.yaml"))
		var created struct{ IDs []string }
		r.decode(t, &created)
		if r.code != 201 || len(created.IDs) != 1 || created.IDs[0] != "bookinfo-jason-7s-delay" {
			t.Fatalf("7s delay: %s", r)
		}
		if got := ids(e.get("/v1/rules")); got != "details-default,productpage-default,bookinfo-jason-7s-delay,ratings-default,reviews-test-v2,reviews-default" {
			t.Fatalf("all rules: %s", got)
		}
		if got := ids(e.get("/v1/rules?destination=reviews")); got != "reviews-test-v2,reviews-default" {
			t.Fatalf("destination=reviews: %s", got)
		}
		if got := ids(e.get("/v1/rules?destination=reviews&destination=details")); got != "details-default,reviews-test-v2,reviews-default" {
			t.Fatalf("two destinations: %s", got)
		}
		if got := ids(e.get("/v1/rules?id=reviews-default&id=details-default")); got != "details-default,reviews-default" {
			t.Fatalf("by id: %s", got)
		}

		var routes struct{ Services map[string][]map[string]any }
		e.do("GET", "/v1/rules/routes", nil).decode(t, &routes)
		if len(routes.Services) != 4 || len(routes.Services["reviews"]) != 2 || routes.Services["ratings"][0]["id"] != "ratings-default" {
			t.Fatalf("routes view: %v", routes.Services)
		}
		var actions struct{ Services map[string][]map[string]any }
		e.do("GET", "/v1/rules/actions", nil).decode(t, &actions)
		if len(actions.Services) != 1 || path(actions.Services["ratings"][0], "actions", 0, "duration") != 7.0 {
			t.Fatalf("actions view: %v", actions.Services)
		}
		if got := ids(e.get("/v1/rules/actions/ratings")); got != "bookinfo-jason-7s-delay" {
			t.Fatalf("actions of ratings: %s", got)
		}
		if got := ids(e.get("/v1/rules/routes/ratings")); got != "ratings-default" {
			t.Fatalf("routes of ratings: %s", got)
		}

		rev := e.revision()
		if r := e.do("DELETE", "/v1/rules?id=bookinfo-jason-7s-delay", nil); r.code != 200 {
			t.Fatalf("delete the delay: %s", r)
		}
		if r := e.do("GET", "/v1/rules/actions", nil); r.code != 200 || string(r.body) != `{"services":{}}` {
			t.Fatalf("actions after the delete: %s", r)
		}
		if e.revision() != rev+1 {
			t.Fatal("delete did not raise the revision by one")
		}
		if r := e.do("DELETE", "/v1/rules/routes/reviews", nil); r.code != 200 {
			t.Fatalf("delete the routes of reviews: %s", r)
		}
		if got := ids(e.get("/v1/rules")); got != "details-default,productpage-default,ratings-default" {
			t.Fatalf("after deleting the routes of reviews: %s", got)
		}

		// The 25/75 reviews split.
		if r := e.do("POST", "/v1/rules", example(t, "bookinfo-reviews-routing.yaml")); r.code != 201 {
			t.Fatalf("reviews split: %s", r)
		}
		l := e.get("/v1/rules/routes/reviews")
		if path(l.Rules[0], "route", "backends", 0, "weight") != 0.25 || path(l.Rules[0], "route", "backends", 1, "tags", 0) != "version=v3" {
			t.Fatalf("reviews split: %v", l.Rules)
		}
	})
}

func TestController_TagFiltersAreANDed(t *testing.T) {
	e := newMemoryEnv(t, nil)
	body := `{"rules":[
		{"id":"a","destination":"x","tags":["t1"],"route":{"backends":[{"tags":["v1"]}]}},
		{"id":"b","destination":"x","tags":["t1","t2"],"route":{"backends":[{"tags":["v1"]}]}},
		{"id":"c","destination":"y","tags":["t2"],"actions":[{"action":"trace"}]}]}`
	if r := e.do("POST", "/v1/rules", body); r.code != 201 {
		t.Fatal(r)
	}
	for q, want := range map[string]string{"tag=t1": "a,b", "tag=t1&tag=t2": "b", "tag=t2": "b,c", "tag=t3": "", "tag=t2&destination=y": "c"} {
		if got := ids(e.get("/v1/rules?" + q)); got != want {
			t.Errorf("?%s = %q, want %q", q, got, want)
		}
	}
	if r := e.do("DELETE", "/v1/rules?tag=t1&tag=t2", nil); r.code != 200 {
		t.Fatal(r)
	}
	if got := ids(e.get("/v1/rules")); got != "a,c" {
		t.Fatalf("after DELETE ?tag=t1&tag=t2: %s", got)
	}
}

func TestController_GeneratedIDs(t *testing.T) {
	e := newMemoryEnv(t, nil)
	r := e.do("POST", "/v1/rules", `{"rules":[
		{"destination":"x","route":{"backends":[{"tags":["v1"]}]}},
		{"id":"mine","destination":"y","route":{"backends":[{"tags":["v1"]}]}},
		{"destination":"z","actions":[{"action":"trace"}]}]}`)
	var out struct{ IDs []string }
	r.decode(t, &out)
	if r.code != 201 || len(out.IDs) != 3 || out.IDs[1] != "mine" || len(out.IDs[0]) != 36 || out.IDs[0] == out.IDs[2] || out.IDs[0][14] != '4' {
		t.Fatalf("ids: %s", r)
	}
	for i, dest := range []string{"x", "y", "z"} {
		if l := e.get("/v1/rules?id=" + out.IDs[i]); len(l.Rules) != 1 || l.Rules[0]["destination"] != dest {
			t.Fatalf("rule %s: %v", out.IDs[i], l.Rules)
		}
	}
}

func TestController_Update(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", example(t, "bookinfo-default-route-rules.yaml"))
		rev := e.revision()
		r := e.do("PUT", "/v1/rules", `{"rules":[{"id":"reviews-default","priority":1,"destination":"reviews","route":{"backends":[{"tags":["version=v2"]}]}}]}`)
		if r.code != 200 || len(r.body) != 0 {
			t.Fatalf("update: %s", r)
		}
		l := e.get("/v1/rules?id=reviews-default")
		if path(l.Rules[0], "route", "backends", 0, "tags", 0) != "version=v2" || l.Revision != rev+1 {
			t.Fatalf("after update: %v at %d", l.Rules, l.Revision)
		}
		// An unknown id makes the whole update fail: 404, nothing written.
		r = e.do("PUT", "/v1/rules", `{"rules":[
			{"id":"reviews-default","destination":"reviews","route":{"backends":[{"tags":["version=v3"]}]}},
			{"id":"ghost","destination":"reviews","route":{"backends":[{"tags":["version=v3"]}]}}]}`)
		if id, desc := r.errorID(t); r.code != 404 || id != "error_rule_not_found" || !strings.Contains(desc, `"ghost"`) {
			t.Fatalf("update with an unknown id: %s", r)
		}
		if l := e.get("/v1/rules?id=reviews-default"); path(l.Rules[0], "route", "backends", 0, "tags", 0) != "version=v2" || l.Revision != rev+1 {
			t.Fatalf("a failed update changed something: %v at %d", l.Rules, l.Revision)
		}
		r = e.do("PUT", "/v1/rules", `{"rules":[{"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]}`)
		if id, desc := r.errorID(t); r.code != 400 || id != "error_invalid_rule" || !strings.Contains(desc, "rules[0].id: required") {
			t.Fatalf("update without id: %s", r)
		}
	})
}

func TestController_Revisions(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		rule := `{"rules":[{"id":"r","destination":"x","route":{"backends":[{"tags":["v1"]}]}}]}`
		steps := []struct{ method, path, body string }{
			{"POST", "/v1/rules", rule},
			{"PUT", "/v1/rules", rule},
			{"DELETE", "/v1/rules?id=nothing", ""}, // deletes nothing, still a change
			{"PUT", "/v1/rules/routes/x", `{"rules":[]}`},
			{"DELETE", "/v1/rules/actions/x", ""},
			{"DELETE", "/v1/rules", ""},
		}
		if rev := e.revision(); rev != 0 {
			t.Fatalf("initial revision %d", rev)
		}
		for i, st := range steps {
			var body any
			if st.body != "" {
				body = st.body
			}
			if r := e.do(st.method, st.path, body); r.code >= 300 {
				t.Fatalf("%s %s: %s", st.method, st.path, r)
			}
			if rev := e.revision(); rev != int64(i+1) {
				t.Fatalf("after %s %s: revision %d, want %d", st.method, st.path, rev, i+1)
			}
		}
	})
}

// Amalgam8 0.x's per-destination bulk PUT, as the Python a8ctl's route-set and action-add use it.
func TestController_SetDestination(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", `{"rules":[
			{"id":"old","destination":"reviews","route":{"backends":[{"tags":["v1"]}]}},
			{"id":"fault","destination":"reviews","actions":[{"action":"abort","return_code":503}]},
			{"id":"other","destination":"ratings","route":{"backends":[{"tags":["v1"]}]}}]}`)
		// What a8ctl route-set reviews --default v1 --selector 'v2(user="jason")' sends.
		r := e.do("PUT", "/v1/rules/routes/reviews", `{"rules":[
			{"destination":"reviews","priority":2,"match":{"headers":{"Cookie":".*?user=jason"}},"route":{"backends":[{"tags":["v2"]}]}},
			{"priority":1,"route":{"backends":[{"tags":["v1"]}]}}]}`)
		var out struct{ IDs []string }
		r.decode(t, &out)
		if r.code != 201 || len(out.IDs) != 2 {
			t.Fatalf("route-set: %s", r)
		}
		l := e.get("/v1/rules/routes/reviews")
		if len(l.Rules) != 2 || l.Rules[1]["destination"] != "reviews" || ids(l) == "old" {
			t.Fatalf("routes of reviews after route-set: %v", l.Rules)
		}
		if got := ids(e.get("/v1/rules?id=fault&id=other")); got != "other,fault" {
			t.Fatalf("route-set touched other rules: %s", got)
		}
		// What a8ctl action-add sends: an action rule with an empty match.
		r = e.do("PUT", "/v1/rules/actions/reviews", `{"rules":[{"destination":"reviews","priority":10,"match":{},"actions":[{"action":"delay","probability":0.5,"duration":5,"tags":["v1"]}]}]}`)
		if r.code != 201 {
			t.Fatalf("action-add: %s", r)
		}
		if l := e.get("/v1/rules/actions/reviews"); len(l.Rules) != 1 || path(l.Rules[0], "actions", 0, "duration") != 5.0 {
			t.Fatalf("actions after action-add: %v", l.Rules)
		}
		rev := e.revision()
		for _, bad := range []struct{ path, body, want string }{
			{"/v1/rules/routes/reviews", `{"rules":[{"destination":"ratings","route":{"backends":[{"tags":["v1"]}]}}]}`, `rules[0].destination: "ratings" is not "reviews"`},
			{"/v1/rules/routes/reviews", `{"rules":[{"actions":[{"action":"trace"}]}]}`, "rules[0]: is not a route rule"},
			{"/v1/rules/actions/reviews", `{"rules":[{"route":{"backends":[{"tags":["v1"]}]}}]}`, "rules[0]: is not a action rule"},
		} {
			r := e.do("PUT", bad.path, bad.body)
			if id, desc := r.errorID(t); r.code != 400 || id != "error_invalid_rule" || !strings.Contains(desc, bad.want) {
				t.Errorf("PUT %s %s: %s; want 400 with %q", bad.path, bad.body, r, bad.want)
			}
		}
		if e.revision() != rev {
			t.Fatal("refused bulk PUTs changed the revision")
		}
	})
}

func TestController_BadInput(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", `{"rules":[{"id":"keep","destination":"x","route":{"backends":[{"tags":["v1"]}]}}]}`)
		rev := e.revision()
		valid := func(extra string) string {
			return `{"rules":[{"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}},` + extra + `]}`
		}
		tests := []struct {
			name, method, path, body string
			code                     int
			id, want                 string
		}{
			{"malformed JSON", "POST", "/v1/rules", `{"rules": [`, 400, "error_invalid_json", "malformed JSON"},
			{"not JSON at all", "POST", "/v1/rules", `rules: []`, 400, "error_invalid_json", "malformed JSON"},
			{"empty rules", "POST", "/v1/rules", `{"rules": []}`, 400, "error_no_rules_provided", "no rules provided"},
			{"no rules key", "POST", "/v1/rules", `{}`, 400, "error_no_rules_provided", "no rules provided"},
			{"wrong type", "POST", "/v1/rules", valid(`{"destination":"r","priority":"high","route":{"backends":[{"tags":["v1"]}]}}`), 400, "error_invalid_json", "rules[1].priority: expected an integer"},
			{"weight as string", "POST", "/v1/rules", valid(`{"destination":"r","route":{"backends":[{"tags":["v1"]},{"tags":["v2"],"weight":"0.5"}]}}`), 400, "error_invalid_json", `rules[1].route.backends[1].weight: expected a number`},
			{"huge timeout", "POST", "/v1/rules", valid(`{"destination":"d","route":{"http_req_timeout":1e300,"backends":[{"tags":["v1"]}]}}`), 400, "error_invalid_rule", "rules[1].route.http_req_timeout: the timeout must be more than 0 and at most 86400 seconds"},
			{"huge delay", "POST", "/v1/rules", valid(`{"destination":"d","actions":[{"action":"delay","duration":1e300}]}`), 400, "error_invalid_rule", "rules[1].actions[0].duration"},
			{"unroutable destination", "POST", "/v1/rules", valid(`{"destination":"a/b c","route":{"backends":[{"tags":["v1"]}]}}`), 400, "error_invalid_rule", `rules[1].destination: "a/b c" contains /`},
			{"bad bulk PUT", "PUT", "/v1/rules/routes/reviews", `{"rules":[{"route":{"backends":[{"tags":["v1"],"weight":3}]}}]}`, 400, "error_invalid_rule", "rules[0].route.backends[0].weight"},
			{"bulk PUT of malformed JSON", "PUT", "/v1/rules/actions/reviews", `{"rules":`, 400, "error_invalid_json", "malformed JSON"},
			{"unknown field", "POST", "/v1/rules", valid(`{"destination":"r","route":{"backends":[{"tags":["v1"],"wieght":0.5}]}}`), 400, "error_invalid_rule", "rules[1].route.backends[0].wieght: unknown field"},
			{"weight out of range", "POST", "/v1/rules", valid(`{"destination":"r","route":{"backends":[{"tags":["v1"],"weight":1.5}]}}`), 400, "error_invalid_rule", "rules[1].route.backends[0].weight: must be in (0, 1], got 1.5"},
			{"weights sum", "POST", "/v1/rules", valid(`{"destination":"reviews","route":{"backends":[{"tags":["v1"],"weight":0.7},{"tags":["v2"],"weight":0.5}]}}`), 400, "error_invalid_rule", "weights of destination reviews sum to 1.2"},
			{"probability", "POST", "/v1/rules", valid(`{"destination":"r","actions":[{"action":"delay","duration":1,"probability":2}]}`), 400, "error_invalid_rule", "rules[1].actions[0].probability: must be in (0, 1]"},
			{"return code", "POST", "/v1/rules", valid(`{"destination":"r","actions":[{"action":"abort","return_code":700}]}`), 400, "error_invalid_rule", "rules[1].actions[0].return_code: must be in [-5, 599]"},
			{"both", "POST", "/v1/rules", valid(`{"destination":"r","route":{"backends":[{"tags":["v1"]}]},"actions":[{"action":"trace"}]}`), 400, "error_invalid_rule", "rules[1]: has both route and actions"},
			{"neither", "POST", "/v1/rules", valid(`{"destination":"r"}`), 400, "error_invalid_rule", "rules[1]: has neither route nor actions"},
			{"regex", "POST", "/v1/rules", valid(`{"destination":"r","match":{"headers":{"Cookie":"(user=jason"}},"route":{"backends":[{"tags":["v1"]}]}}`), 400, "error_invalid_rule", "rules[1].match.headers.Cookie: invalid regex"},
			{"duplicate ids", "POST", "/v1/rules", `{"rules":[{"id":"d","destination":"r","actions":[{"action":"trace"}]},{"id":"d","destination":"r","actions":[{"action":"trace"}]}]}`, 400, "error_invalid_rule", `"d" is also the id of rules[0]`},
			{"too large", "POST", "/v1/rules", `{"rules":[{"destination":"` + strings.Repeat("x", 1<<20) + `"}]}`, 413, "error_request_too_large", "larger than"},
			{"unknown id on get", "GET", "/v1/rules?id=ghost", "", 404, "error_rule_not_found", `"ghost"`},
			{"unknown query", "GET", "/v1/rules?tags=t1", "", 400, "error_invalid_query", `unknown query parameter "tags"`},
			{"unknown query on delete", "DELETE", "/v1/rules?destinaton=x", "", 400, "error_invalid_query", `"destinaton"`},
			{"bad index", "GET", "/v1/rules?index=x", "", 400, "error_invalid_query", "index: "},
			{"wrong method", "PATCH", "/v1/rules", "", 405, "error_method_not_allowed", "Method not allowed"},
			{"post to a view", "POST", "/v1/rules/routes", `{"rules":[]}`, 405, "error_method_not_allowed", "Method not allowed"},
			{"unknown route", "GET", "/v2/rules", "", 404, "error_not_found", "Resource not found"},
		}
		for _, tc := range tests {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := e.do(tc.method, tc.path, body)
			id, desc := r.errorID(t)
			if r.code != tc.code || id != tc.id || !strings.Contains(desc, tc.want) {
				t.Errorf("%s: %s; want %d %s containing %q", tc.name, r, tc.code, tc.id, tc.want)
			}
		}
		r := e.doType("POST", "/v1/rules", "text/plain", valid(`{"destination":"y","actions":[{"action":"trace"}]}`))
		if id, _ := r.errorID(t); r.code != 415 || id != "error_invalid_content_type" {
			t.Errorf("text/plain body: %s", r)
		}
		// The errors Amalgam8's HTTP framework answered carry its {"Error": ...} too.
		for _, c := range []struct{ method, path string }{{"GET", "/v2/x"}, {"PATCH", "/v1/rules"}} {
			var body map[string]any
			r := e.do(c.method, c.path, nil)
			r.decode(t, &body)
			if body["Error"] == nil || body["error"] == nil {
				t.Errorf("%s %s: %s; want both {\"Error\"} and {\"error\", \"description\"}", c.method, c.path, r)
			}
		}
		if l := e.get("/v1/rules"); ids(l) != "keep" || l.Revision != rev {
			t.Fatalf("rejected requests changed the rules: %s at %d (was %d)", ids(l), l.Revision, rev)
		}
	})
}

// Every problem of a request is reported, with paths, in the description and as a list.
func TestController_ProblemsList(t *testing.T) {
	e := newMemoryEnv(t, nil)
	r := e.do("POST", "/v1/rules", `{"rules":[
		{"id":"a","destination":"reviews","route":{"backends":[{"tags":["v1"],"weight":2}]}},
		{"destination":"","actions":[{"action":"delay"}]}]}`)
	var body struct {
		Error    string
		Problems []struct {
			Path, Reason string
			RuleID       string `json:"rule_id"`
		}
	}
	r.decode(t, &body)
	if r.code != 400 || len(body.Problems) != 3 || body.Problems[0].Path != "rules[0].route.backends[0].weight" || body.Problems[0].RuleID != "a" ||
		body.Problems[1].Path != "rules[1].destination" || body.Problems[2].Path != "rules[1].actions[0].duration" {
		t.Fatalf("problems: %s", r)
	}
}

func TestController_Tenancy(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		a, err := auth.New("trusted", "")
		if err != nil {
			t.Fatal(err)
		}
		e := newEnv(func(c *controller.Config) { c.Auth = a })
		rule := func(id string) string {
			return `{"rules":[{"id":"` + id + `","destination":"x","route":{"backends":[{"tags":["v1"]}]}}]}`
		}
		e.do("POST", "/v1/rules", rule("of-a"), token("team-a"))
		e.do("POST", "/v1/rules", rule("of-b"), token("team-b"))
		if got := ids(e.get("/v1/rules", token("team-a"))); got != "of-a" {
			t.Fatalf("team-a sees %s", got)
		}
		if r := e.do("DELETE", "/v1/rules", nil, token("team-b")); r.code != 200 {
			t.Fatal(r)
		}
		if got := ids(e.get("/v1/rules", token("team-a"))); got != "of-a" {
			t.Fatalf("team-b's delete-all reached team-a: %s", got)
		}
		// The admin token acts for the tenant in A8-Namespace.
		if got := ids(e.get("/v1/rules", token("admin"), header("A8-Namespace", "team-a"))); got != "of-a" {
			t.Fatalf("admin for team-a sees %s", got)
		}
		e.do("POST", "/v1/rules", rule("by-admin"), token("admin"), header("A8-Namespace", "team-b"))
		if got := ids(e.get("/v1/rules", token("team-b"))); got != "by-admin" {
			t.Fatalf("team-b after the admin wrote for it: %s", got)
		}
		r := e.do("GET", "/v1/rules", nil, token("admin"))
		if id, _ := r.errorID(t); r.code != 400 || id != "error_namespace_missing" {
			t.Fatalf("admin without A8-Namespace: %s", r)
		}
		for _, c := range []struct {
			opts []opt
			id   string
		}{{nil, "error_auth_header_missing"}, {[]opt{header("Authorization", "Basic x")}, "error_auth_header_malformed"}} {
			r := e.do("GET", "/v1/rules", nil, c.opts...)
			if id, _ := r.errorID(t); r.code != 401 || id != c.id {
				t.Fatalf("auth failure: %s, want 401 %s", r, c.id)
			}
		}
		if r := e.do("GET", "/health", nil); r.code != 200 {
			t.Fatalf("/health needs no token: %s", r)
		}
	})
}

func TestController_RequestID(t *testing.T) {
	e := newMemoryEnv(t, nil)
	if r := e.do("GET", "/v1/rules", nil, header("A8-Request-Id", "req-42")); r.header.Get("A8-Request-Id") != "req-42" {
		t.Fatalf("A8-Request-Id not echoed: %v", r.header)
	}
	seen := map[string]bool{}
	for _, p := range []string{"/v1/rules", "/v1/nothing", "/nothing", "/health"} {
		id := e.do("GET", p, nil).header.Get("A8-Request-Id")
		if id == "" || seen[id] {
			t.Fatalf("GET %s: request id %q (empty or repeated)", p, id)
		}
		seen[id] = true
	}
}

func TestController_Watch(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", example(t, "helloworld-default-route-rules.json"))
		for _, p := range []string{"/v1/rules?", "/v1/rules/routes?", "/v1/rules/routes/helloworld?", "/v1/rules?destination=helloworld&"} {
			rev := e.revision()
			done := make(chan reply, 1)
			go func() { done <- e.do("GET", fmt.Sprintf("%sindex=%d&wait=30s", p, rev), nil) }()
			select {
			case r := <-done:
				t.Fatalf("%s returned without a change: %s", p, r)
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			e.do("POST", "/v1/rules", example(t, "helloworld-v1-v2-route-rules.json"))
			select {
			case r := <-done:
				if r.code != 200 || r.header.Get("A8-Index") != fmt.Sprint(rev+1) {
					t.Fatalf("%s woke with %s, A8-Index %q; want revision %d", p, r, r.header.Get("A8-Index"), rev+1)
				}
				t.Logf("%s woke %v after the write", p, time.Since(start))
			case <-time.After(20 * time.Second):
				t.Fatalf("%s did not wake on a change", p)
			}
		}
		// A plain GET answers at once, as Amalgam8 clients expect.
		start := time.Now()
		if l := e.get("/v1/rules"); l.Revision != e.revision() || time.Since(start) > 5*time.Second {
			t.Fatal("plain GET")
		}
	})
}

func TestController_Health(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		if r := e.do("GET", "/health", nil); r.code != 200 || !strings.Contains(string(r.body), `"healthy":true`) {
			t.Fatalf("/health: %s", r)
		}
		if e.redis == nil {
			return
		}
		e.redis.Stop()
		if r := e.do("GET", "/health", nil); r.code != 503 {
			t.Fatalf("/health with Redis down: %s", r)
		}
		r := e.do("POST", "/v1/rules", `{"rules":[{"destination":"x","actions":[{"action":"trace"}]}]}`)
		if id, desc := r.errorID(t); r.code != 503 || id != "error_unavailable" || !strings.Contains(desc, "retry later") {
			t.Fatalf("write with Redis down: %s", r)
		}
		e.redis.Restart(t)
		deadline := time.Now().Add(30 * time.Second)
		for e.do("GET", "/health", nil).code != 200 {
			if time.Now().After(deadline) {
				t.Fatal("controller did not recover when Redis came back")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// The 0.x bulk PUT replaces its destination's rules of its kind, and never takes over another rule.
func TestController_SetDestinationScope(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", `{"rules":[{"id":"shared","destination":"ratings","route":{"backends":[{"tags":["v1"]}]}},
			{"id":"act","destination":"reviews","actions":[{"action":"trace"}]}]}`)
		rev := e.revision()
		r := e.do("PUT", "/v1/rules/routes/reviews", `{"rules":[{"id":"shared","route":{"backends":[{"tags":["v2"]}]}},{"id":"act","route":{"backends":[{"tags":["v3"]}]}}]}`)
		id, desc := r.errorID(t)
		if r.code != 400 || id != "error_invalid_rule" || !strings.Contains(desc, `"shared" is the id of a route rule of ratings`) || !strings.Contains(desc, `"act" is the id of a action rule of reviews`) {
			t.Fatalf("bulk PUT taking over other rules: %s", r)
		}
		if l := e.get("/v1/rules"); ids(l) != "shared,act" || l.Revision != rev {
			t.Fatalf("a refused bulk PUT changed the rules: %s at %d", ids(l), l.Revision)
		}
	})
}

// The exact bodies Amalgam8's tools send.
func TestController_AmalgamToolBodies(t *testing.T) {
	e := newMemoryEnv(t, nil)
	// Python a8ctl route-set reviews --default v1 --selector 'v2(weight=1.0)' --source productpage:v1
	r := e.do("PUT", "/v1/rules/routes/reviews", `{"rules":[
		{"destination":"reviews","priority":2,"match":{"source":{"name":"productpage","tags":["v1"]}},"route":{"backends":[{"tags":["v2"],"weight":1.0},{"tags":["v1"]}]}},
		{"destination":"reviews","priority":1,"route":{"backends":[{"tags":["v1"]}]}}]}`)
	if r.code != 201 {
		t.Fatalf("route-set with a weight of 1.0 and a source: %s", r)
	}
	// Python a8ctl traffic-start: PUT /v1/rules of the default rule with a weighted backend.
	l := e.get("/v1/rules/routes/reviews")
	id := l.Rules[1]["id"]
	r = e.do("PUT", "/v1/rules", fmt.Sprintf(`{"rules":[{"id":%q,"destination":"reviews","priority":1,"route":{"backends":[{"tags":["v2"],"weight":0.1},{"tags":["v1"]}]}}]}`, id))
	if r.code != 200 {
		t.Fatalf("traffic-start: %s", r)
	}
	// Gremlin (a8ctl recipe-run without -p): a trace and a delay on an edge, pattern "*", then DELETE by tag.
	r = e.do("POST", "/v1/rules", `{"rules":[{"destination":"ratings","tags":["3f1c"],"priority":10,
		"match":{"source":{"name":"reviews","tags":["version=v2"]},"headers":{"X-Request-ID":"*"}},
		"actions":[{"action":"trace","log_key":"gremlin_recipe_id","log_value":"3f1c","tags":["version=v1"]},
		           {"action":"delay","probability":1,"duration":7.0,"tags":["version=v1"]}]}]}`)
	if r.code != 201 {
		t.Fatalf("Gremlin recipe rule: %s", r)
	}
	if r := e.do("DELETE", "/v1/rules?tag=3f1c", nil); r.code != 200 {
		t.Fatalf("Gremlin cleanup: %s", r)
	}
	if got := len(e.get("/v1/rules/actions/ratings").Rules); got != 0 {
		t.Fatalf("%d Gremlin rules left after the cleanup", got)
	}
}

// A watch filtered by id hears that the rule was deleted (a plain GET of it is a 404).
func TestController_WatchByIDSeesDeletion(t *testing.T) {
	e := newMemoryEnv(t, nil)
	e.do("POST", "/v1/rules", `{"rules":[{"id":"x","destination":"d","route":{"backends":[{"tags":["v1"]}]}}]}`)
	done := make(chan reply, 1)
	go func() { done <- e.do("GET", "/v1/rules?id=x&index=1&wait=30s", nil) }()
	time.Sleep(50 * time.Millisecond)
	e.do("DELETE", "/v1/rules?id=x", nil)
	r := <-done
	var l ruleList
	r.decode(t, &l)
	if r.code != 200 || len(l.Rules) != 0 || l.Revision != 2 {
		t.Fatalf("watch of a deleted rule: %s", r)
	}
	if r := e.do("GET", "/v1/rules?id=x", nil); r.code != 404 {
		t.Fatalf("plain GET of a deleted rule: %s", r)
	}
}

// Drain answers open watches at once, with the current rules.
func TestController_DrainAnswersWatches(t *testing.T) {
	s, _ := memory.NewRules("")
	ctl, err := controller.New(controller.Config{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ctl.Handler())
	defer srv.Close()
	e := &env{t: t, url: srv.URL, store: s}
	done := make(chan reply, 1)
	go func() { done <- e.do("GET", "/v1/rules?index=0&wait=5m", nil) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	ctl.Drain()
	select {
	case r := <-done:
		if r.code != 200 || time.Since(start) > 5*time.Second {
			t.Fatalf("drained watch: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not answer an open watch")
	}
}
