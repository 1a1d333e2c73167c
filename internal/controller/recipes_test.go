package controller_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/controller"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

// recipeBody is Amalgam8's bookinfo recipe, as a8ctl recipe-run posts it.
func recipeBody(t *testing.T, header, pattern string) map[string]any {
	t.Helper()
	read := func(name string) json.RawMessage {
		data, err := os.ReadFile("../../examples/recipes/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	body := map[string]any{"topology": read("bookinfo-topology.json"), "scenarios": read("bookinfo-gremlins.json")}
	if header != "" {
		body["header"], body["header_pattern"] = header, pattern
	}
	return body
}

func (e *env) createRecipe(body any, opts ...opt) string {
	e.t.Helper()
	r := e.do("POST", "/api/v1/recipes", body, opts...)
	if r.code != 201 {
		e.t.Fatalf("POST /api/v1/recipes: %s", r)
	}
	var out api.RecipeCreated
	r.decode(e.t, &out)
	if out.RecipeID == "" || r.header.Get("Location") != "/api/v1/recipes/"+out.RecipeID {
		e.t.Fatalf("created %s, Location %q", r, r.header.Get("Location"))
	}
	return out.RecipeID
}

func rec(id, trace, src, dst string, status int, start time.Time, took time.Duration) api.Record {
	return api.Record{ID: id, StartTime: start, RequestTime: float64(took.Milliseconds()), UpstreamResponseTime: -1, Status: status,
		Src: src, Dst: dst, Method: "GET", Path: "/", RequestID: "req-" + id, ResponseFlags: "-", Attempts: 1,
		TraceKey: api.RecipeTraceKey, TraceValue: trace}
}

func TestRecipes_Lifecycle(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		e.do("POST", "/v1/rules", example(t, "helloworld-default-route-rules.json"))
		id := e.createRecipe(recipeBody(t, "Cookie", "^(.*?;)?(user=jason)(;.*)?$"))

		// The recipe became action rules tagged with its id: one per edge of the topology, the
		// reviews v2 -> ratings v1 edge with the 7 s delay.
		tagged := e.get("/v1/rules?tag=" + id)
		if len(tagged.Rules) != 4 {
			t.Fatalf("%d rules tagged with the recipe, want one per edge (4): %s", len(tagged.Rules), ids(tagged))
		}
		var delay map[string]any
		for _, r := range tagged.Rules {
			if r["destination"] == "ratings" {
				delay = r
			}
			if got := path(r, "match", "headers", "Cookie"); got != "^(.*?;)?(user=jason)(;.*)?$" {
				t.Fatalf("rule %v matches Cookie %v", r["id"], got)
			}
		}
		if path(delay, "match", "source", "name") != "reviews" || path(delay, "match", "source", "tags", 0) != "version=v2" ||
			!strings.Contains(fmt.Sprint(delay["actions"]), "delay") || !strings.Contains(fmt.Sprint(delay["actions"]), "duration:7") {
			t.Fatalf("delay rule: %v", delay)
		}

		var got api.Recipe
		e.do("GET", "/api/v1/recipes/"+id, nil).decode(t, &got)
		if got.ID != id || len(got.RuleIDs) != 4 || got.Header != "Cookie" || len(got.Topology.Services) != 5 || len(got.Scenarios.Gremlins) != 1 {
			t.Fatalf("GET recipe: %+v", got)
		}
		var list api.RecipeList
		e.do("GET", "/api/v1/recipes", nil).decode(t, &list)
		if len(list.Recipes) != 1 || list.Recipes[0].ID != id {
			t.Fatalf("list: %+v", list)
		}

		// Without header and pattern, Amalgam8's defaults apply and are shown.
		id2 := e.createRecipe(recipeBody(t, "", ""))
		e.do("GET", "/api/v1/recipes/"+id2, nil).decode(t, &got)
		if got.Header != "X-Request-ID" || got.HeaderPattern != "*" {
			t.Fatalf("defaults: header %q pattern %q", got.Header, got.HeaderPattern)
		}

		// Deleting the recipe removes exactly its rules, and its records.
		e.do("POST", "/api/v1/records", api.RecordBatch{Records: []api.Record{rec("1", id, "gateway:version=none", "productpage:version=v1", 200, time.Now(), time.Millisecond)}})
		if r := e.do("DELETE", "/api/v1/recipes/"+id, nil); r.code != 200 {
			t.Fatalf("DELETE: %s", r)
		}
		if l := e.get("/v1/rules?tag=" + id); len(l.Rules) != 0 {
			t.Fatalf("rules left behind: %s", ids(l))
		}
		if l := e.get("/v1/rules?tag=" + id2); len(l.Rules) != 4 {
			t.Fatalf("the other recipe's rules: %s", ids(l))
		}
		if l := e.get("/v1/rules?id=helloworld-default-route"); len(l.Rules) != 1 {
			t.Fatal("a rule of no recipe was deleted")
		}
		for _, p := range []string{"/api/v1/recipes/" + id, "/api/v1/recipes/" + id + "/records"} {
			if r := e.do("GET", p, nil); r.code != 404 {
				t.Fatalf("GET %s after delete: %s", p, r)
			}
		}
		if r := e.do("DELETE", "/api/v1/recipes/"+id, nil); r.code != 404 {
			t.Fatalf("second DELETE: %s", r)
		}
	})
}

func TestRecipes_BadInput(t *testing.T) {
	e := newMemoryEnv(t, nil)
	before := e.revision()
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not JSON", `{`, "recipe"},
		{"unknown field", `{"topology": {"services": []}, "scenarios": {"gremlins": []}, "colour": 1}`, "colour"},
		{"unknown scenario", `{"topology": {"services": [{"name": "a"}, {"name": "b"}], "dependencies": {"a": ["b"]}}, "scenarios": {"gremlins": [{"scenario": "explode", "source": "a", "dest": "b"}]}}`, "explode"},
		{"service not in topology", `{"topology": {"services": [{"name": "a"}, {"name": "b"}], "dependencies": {"a": ["b"]}}, "scenarios": {"gremlins": [{"scenario": "delay_requests", "source": "a", "dest": "zzz"}]}}`, "zzz"},
		{"bad duration", `{"topology": {"services": [{"name": "a"}, {"name": "b"}], "dependencies": {"a": ["b"]}}, "scenarios": {"gremlins": [{"scenario": "delay_requests", "source": "a", "dest": "b", "delaytime": "7x"}]}}`, "7x"},
		{"bad pattern", `{"topology": {"services": [{"name": "a"}, {"name": "b"}], "dependencies": {"a": ["b"]}}, "scenarios": {"gremlins": [{"scenario": "delay_requests", "source": "a", "dest": "b"}]}, "header_pattern": "(("}`, "header_pattern"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/recipes", tc.body)
			if r.code != 400 {
				t.Fatalf("want 400, got %s", r)
			}
			if id, desc := r.errorID(t); (id != controller.ErrInvalidRecipe && id != controller.ErrInvalidJSON) || !strings.Contains(desc, tc.want) {
				t.Fatalf("error %s %q, want it to name %q", id, desc, tc.want)
			}
		})
	}
	if e.revision() != before {
		t.Fatal("a refused recipe changed the rules")
	}
	id := e.createRecipe(recipeBody(t, "", ""))
	for _, tc := range []struct{ body, want string }{
		{`{"checklist": {"checks": [{"name": "bounded_response_time", "source": "a", "dest": "b"}]}}`, "max_latency"},
		{`{"checklist": {"checks": [{"name": "http_status", "source": "a", "dest": "b", "status": 200, "statuss": 1}]}}`, "statuss"},
		{`{"checklist": {"checks": [{"name": "no_such_check"}]}}`, "no_such_check"},
		{`{"checklist": {"checks": []}, "wait": "soon"}`, "wait"},
	} {
		r := e.do("POST", "/api/v1/recipes/"+id, tc.body)
		if r.code != 400 {
			t.Fatalf("checks %s: want 400, got %s", tc.body, r)
		}
		if _, desc := r.errorID(t); !strings.Contains(desc, tc.want) {
			t.Fatalf("checks %s: %q does not name %q", tc.body, desc, tc.want)
		}
	}
	if r := e.do("POST", "/api/v1/records", `{"records": [{"trace_value": "x"}]}`); r.code != 400 {
		t.Fatalf("a traced record without id: %s", r)
	}
}

// Checks wait for the records of requests still in flight, then evaluate them: Amalgam8's bookinfo
// checks give Amalgam8's expected results.
func TestRecipes_ChecksWaitForRecords(t *testing.T) {
	eachBackend(t, func(t *testing.T, newEnv func(func(*controller.Config)) *env) {
		e := newEnv(nil)
		id := e.createRecipe(recipeBody(t, "Cookie", "user=jason"))
		t0 := time.Now().UTC()
		gw, pp, rv, rt := "gateway:version=none", "productpage:version=v1", "reviews:version=v2", "ratings:version=v1"
		// The page load ended after productpage's two 3 s attempts at reviews; reviews' call to
		// ratings (delayed 7 s) is still in flight.
		started := []api.RecordStart{{ID: "r4", StartTime: t0, Src: rv, Dst: rt, RequestID: "q", TraceKey: api.RecipeTraceKey, TraceValue: id}}
		done := []api.Record{
			rec("r1", id, gw, pp, 200, t0, 6*time.Second),
			rec("r2", id, pp, rv, 499, t0, 3*time.Second),
			rec("r3", id, pp, rv, 499, t0.Add(3*time.Second), 3*time.Second),
		}
		if r := e.do("POST", "/api/v1/records", api.RecordBatch{Started: started, Records: done}); r.code != 204 {
			t.Fatalf("POST records: %s", r)
		}
		checks, err := os.ReadFile("../../examples/recipes/bookinfo-checks.json")
		if err != nil {
			t.Fatal(err)
		}
		type answer struct {
			r    reply
			took time.Duration
		}
		ch := make(chan answer, 1)
		go func() {
			start := time.Now()
			r := e.do("POST", "/api/v1/recipes/"+id, map[string]any{"checklist": json.RawMessage(checks), "wait": "20s"})
			ch <- answer{r, time.Since(start)}
		}()
		select {
		case a := <-ch:
			t.Fatalf("checks answered while a request was in flight: %s", a.r)
		case <-time.After(800 * time.Millisecond):
		}
		if r := e.do("POST", "/api/v1/records", api.RecordBatch{Records: []api.Record{rec("r4", id, rv, rt, 200, t0, 7*time.Second)}}); r.code != 204 {
			t.Fatalf("POST record: %s", r)
		}
		a := <-ch
		if a.r.code != 200 || a.took > 15*time.Second {
			t.Fatalf("checks: %s after %v", a.r, a.took)
		}
		want, err := os.ReadFile("../../resilience/testdata/recipe-run-results.json")
		if err != nil {
			t.Fatal(err)
		}
		var gotV, wantV any
		_ = json.Unmarshal(a.r.body, &gotV)
		_ = json.Unmarshal(want, &wantV)
		if fmt.Sprint(gotV) != fmt.Sprint(wantV) {
			t.Fatalf("results:\n%s\nwant Amalgam8's:\n%s", a.r.body, want)
		}
		var list api.RecordList
		e.do("GET", "/api/v1/recipes/"+id+"/records", nil).decode(t, &list)
		if len(list.Records) != 4 || list.InFlight != 0 || list.Records[3].ID != "r4" {
			t.Fatalf("records: %+v", list)
		}
	})
}

// At the deadline, checks run on what arrived and say how many requests were still in flight.
func TestRecipes_ChecksDeadline(t *testing.T) {
	e := newMemoryEnv(t, nil)
	id := e.createRecipe(recipeBody(t, "", ""))
	t0 := time.Now().UTC()
	e.do("POST", "/api/v1/records", api.RecordBatch{
		Started: []api.RecordStart{{ID: "late", StartTime: t0, Src: "a:", Dst: "b:", TraceKey: api.RecipeTraceKey, TraceValue: id}},
		Records: []api.Record{rec("1", id, "a:", "b:", 503, t0, time.Millisecond)},
	})
	start := time.Now()
	r := e.do("POST", "/api/v1/recipes/"+id, `{"checklist": {"checks": [{"name": "http_status", "source": "a", "dest": "b", "status": 200}]}, "wait": "1s"}`)
	if r.code != 200 || time.Since(start) < time.Second {
		t.Fatalf("checks: %s after %v", r, time.Since(start))
	}
	var res api.CheckResults
	r.decode(t, &res)
	if len(res.Results) != 1 || res.Results[0].Result || !strings.Contains(res.Results[0].ErrorMsg, "503") || !strings.Contains(res.Results[0].ErrorMsg, "in flight") {
		t.Fatalf("results: %s", r)
	}
}

func TestRecipes_UnknownAndDisabled(t *testing.T) {
	e := newMemoryEnv(t, nil)
	r := e.do("POST", "/api/v1/recipes/nope", `{"checklist": {"checks": []}}`)
	if id, _ := r.errorID(t); r.code != 404 || id != controller.ErrRecipeNotFound {
		t.Fatalf("checks of an unknown recipe: %s", r)
	}
	// Records traced by hand-written rules can be checked by their trace value.
	e.do("POST", "/api/v1/records", api.RecordBatch{Records: []api.Record{rec("1", "mytrace", "a:", "b:v1", 200, time.Now(), time.Millisecond)}})
	r = e.do("POST", "/api/v1/recipes/mytrace", `{"checklist": {"checks": [{"name": "http_status", "source": "a", "dest": "b", "status": 200}]}}`)
	if r.code != 200 || !strings.Contains(string(r.body), `"result":true`) {
		t.Fatalf("checks of a hand-made trace: %s", r)
	}

	d := newMemoryEnv(t, func(c *controller.Config) { c.Recipes = nil })
	if r := d.do("GET", "/api/v1/recipes", nil); r.code != 501 {
		t.Fatalf("without a recipes store: %s", r)
	}
}

func TestRecipes_Tenancy(t *testing.T) {
	e := newMemoryEnv(t, func(c *controller.Config) { c.Auth = auth.Trusted() })
	id := e.createRecipe(recipeBody(t, "", ""), token("alice"))
	e.do("POST", "/api/v1/records", api.RecordBatch{Records: []api.Record{rec("1", id, "a:", "b:", 200, time.Now(), time.Millisecond)}}, token("alice"))
	if r := e.do("GET", "/api/v1/recipes/"+id, nil, token("bob")); r.code != 404 {
		t.Fatalf("bob sees alice's recipe: %s", r)
	}
	if r := e.do("GET", "/api/v1/recipes/"+id+"/records", nil, token("bob")); r.code != 404 {
		t.Fatalf("bob sees alice's records: %s", r)
	}
	if r := e.do("DELETE", "/api/v1/recipes/"+id, nil, token("bob")); r.code != 404 {
		t.Fatalf("bob deletes alice's recipe: %s", r)
	}
	var list api.RecordList
	e.do("GET", "/api/v1/recipes/"+id+"/records", nil, token("alice")).decode(t, &list)
	if len(list.Records) != 1 {
		t.Fatalf("alice's records: %+v", list)
	}
	if r := e.do("GET", "/api/v1/recipes", nil); r.code != 401 {
		t.Fatalf("no token: %s", r)
	}
}

// A batch of records is decoded item by item: one of too many items is refused at the limit,
// however small the items, and nothing of it is kept.
func TestRecords_BatchLimits(t *testing.T) {
	e := newMemoryEnv(t, nil)
	var b strings.Builder
	b.WriteString(`{"records":[`)
	for i := range 200_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("{}")
	}
	b.WriteString("]}")
	r := e.do("POST", "/api/v1/records", b.String())
	if id, desc := r.errorID(t); r.code != 413 || id != controller.ErrInvalidRecords || !strings.Contains(desc, "10000") {
		t.Fatalf("200,000 empty records: %s", r)
	}
	long := strings.Repeat("x", 3000)
	for _, tc := range []struct{ body, want string }{
		{`{"records": [{"id": "1", "path": "` + long + `", "trace_value": "t"}]}`, "records[0]: a field is longer than 2048 bytes"},
		{`{"started": [{"id": "1", "colour": "red"}]}`, `started[0]: json: unknown field "colour"`},
		{`{"records": [], "extra": []}`, `unknown field "extra"`},
		{`{"records": [{"trace_value": "t"}]}`, "records[0].id: required"},
		{`{"records": {}}`, "records"},
		{`{"records": []} {}`, "data after the batch"},
	} {
		r := e.do("POST", "/api/v1/records", tc.body)
		if _, desc := r.errorID(t); r.code != 400 || !strings.Contains(desc, tc.want) {
			t.Errorf("%.60s: %s, want 400 naming %q", tc.body, r, tc.want)
		}
	}
}

// A recipe's DELETE removes the rules the recipe made, not a user's rule that happens to carry
// the same tag.
func TestRecipes_DeleteOnlyItsRules(t *testing.T) {
	e := newMemoryEnv(t, nil)
	id := e.createRecipe(recipeBody(t, "", ""))
	mine := fmt.Sprintf(`{"rules": [{"id": "mine", "destination": "ratings", "tags": [%q], "actions": [{"action": "trace", "log_key": "k", "log_value": "v"}]}]}`, id)
	if r := e.do("POST", "/v1/rules", mine); r.code != 201 {
		t.Fatal(r)
	}
	if r := e.do("DELETE", "/api/v1/recipes/"+id, nil); r.code != 200 {
		t.Fatal(r)
	}
	if l := e.get("/v1/rules?tag=" + id); ids(l) != "mine" {
		t.Fatalf("after DELETE: %s", ids(l))
	}
	// A tag alone is not a recipe.
	if r := e.do("DELETE", "/api/v1/recipes/prod", nil); r.code != 404 {
		t.Fatalf("DELETE of a recipe that never was: %s", r)
	}
}

// Checks that would pass on records that arrived while requests are still in flight at the
// deadline are inconclusive, not PASS.
func TestRecipes_InFlightIsInconclusive(t *testing.T) {
	e := newMemoryEnv(t, nil)
	id := e.createRecipe(recipeBody(t, "", ""))
	t0 := time.Now().UTC()
	e.do("POST", "/api/v1/records", api.RecordBatch{
		Started: []api.RecordStart{{ID: "lost", StartTime: t0, Src: "a:", Dst: "b:", TraceKey: api.RecipeTraceKey, TraceValue: id}},
		Records: []api.Record{rec("1", id, "a:", "b:", 200, t0, time.Millisecond)},
	})
	r := e.do("POST", "/api/v1/recipes/"+id, `{"checklist": {"checks": [{"name": "http_status", "source": "a", "dest": "b", "status": 200}]}, "wait": "700ms"}`)
	var res api.CheckResults
	r.decode(t, &res)
	if len(res.Results) != 1 || res.Results[0].Result || !strings.Contains(res.Results[0].ErrorMsg, "inconclusive") {
		t.Fatalf("results: %s", r)
	}
}

// A controller that shuts down while checks wait for records answers 503 rather than judging the
// test on part of its records.
func TestRecipes_DrainDuringChecks(t *testing.T) {
	rulesStore, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	recipes := memory.NewRecipes(store.RecipesOptions{}, nil)
	defer recipes.Close()
	srv, err := controller.New(controller.Config{Store: rulesStore, Recipes: recipes})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	e := &env{t: t, url: hs.URL, store: rulesStore}
	id := e.createRecipe(recipeBody(t, "", ""))
	e.do("POST", "/api/v1/records", api.RecordBatch{
		Started: []api.RecordStart{{ID: "x", StartTime: time.Now(), Src: "a:", Dst: "b:", TraceKey: api.RecipeTraceKey, TraceValue: id}},
	})
	ch := make(chan reply, 1)
	go func() {
		ch <- e.do("POST", "/api/v1/recipes/"+id, `{"checklist": {"checks": [{"name": "num_requests", "source": "a", "dest": "b", "num_requests": 1}]}, "wait": "20s"}`)
	}()
	time.Sleep(300 * time.Millisecond)
	srv.Drain()
	select {
	case r := <-ch:
		if id, _ := r.errorID(t); r.code != 503 || id != controller.ErrUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("checks at shutdown: %s", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not end the wait")
	}
}

// A tenant runs at most the store's number of recipes; one more is refused and changes no rule.
func TestRecipes_Capacity(t *testing.T) {
	rulesStore, err := memory.NewRules("")
	if err != nil {
		t.Fatal(err)
	}
	recipes := memory.NewRecipes(store.RecipesOptions{MaxRecipes: 2}, nil)
	defer recipes.Close()
	e := start(t, rulesStore, recipes, nil, nil)
	e.createRecipe(recipeBody(t, "", ""))
	e.createRecipe(recipeBody(t, "", ""))
	before := e.revision()
	r := e.do("POST", "/api/v1/recipes", recipeBody(t, "", ""))
	if id, desc := r.errorID(t); r.code != 403 || id != controller.ErrRecipeCapacity || !strings.Contains(desc, "delete some") {
		t.Fatalf("third recipe: %s", r)
	}
	if e.revision() != before {
		t.Fatal("a refused recipe changed the rules")
	}
}
