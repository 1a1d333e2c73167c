package resilience

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// rec builds a record: src -> dst for request id, starting at ms after t0.
func rec(reqID, src, dst string, at float64, status int, took float64, mods ...func(*api.Record)) api.Record {
	r := api.Record{
		ID: fmt.Sprintf("s1-%s-%v", reqID, at), StartTime: t0.Add(ms(at)), RequestTime: took, UpstreamResponseTime: took,
		Status: status, Src: src, Dst: dst, Method: "GET", Path: "/", RequestID: reqID, ResponseFlags: "-",
		Attempts: 1, TraceKey: api.RecipeTraceKey, TraceValue: "r1",
	}
	for _, m := range mods {
		m(&r)
	}
	return r
}

func withFlags(f string) func(*api.Record) { return func(r *api.Record) { r.ResponseFlags = f } }
func withPath(p string) func(*api.Record)  { return func(r *api.Record) { r.Path = p } }
func withAttempts(n int) func(*api.Record) { return func(r *api.Record) { r.Attempts = n } }

const (
	gw = "gateway:version=none"
	pp = "productpage:version=v1"
	rv = "reviews:version=v2"
	rt = "ratings:version=v1"
	dt = "details:version=v1"
)

// bookinfoRecords reproduces Amalgam8's reference run: reviews v2 -> ratings delayed 7s,
// productpage gives reviews 3s twice and then answers without reviews, in about 6s.
func bookinfoRecords() []api.Record {
	var recs []api.Record
	for i, id := range []string{"req-1", "req-2"} {
		base := float64(i) * 10000
		recs = append(recs,
			rec(id, gw, pp, base, 200, 6120),
			rec(id, pp, dt, base+5, 200, 4),
			rec(id, pp, rv, base+10, 499, 3001, withFlags("DC")),
			rec(id, rv, rt, base+15, 200, 7003, withFlags("DI")),
			rec(id, pp, rv, base+3015, 499, 3001, withFlags("DC")),
			rec(id, rv, rt, base+3020, 200, 7002, withFlags("DI")),
		)
	}
	return recs
}

func TestEvaluateGolden(t *testing.T) {
	checks, err := DecodeChecklist([]byte(`{"checks":[
		{"name":"bounded_response_time","source":"gateway:version=none","dest":"productpage:version=v1","max_latency":"7s"},
		{"name":"http_status","source":"gateway:version=none","dest":"productpage:version=v1","status":[200,302]},
		{"name":"http_status","source":"productpage:version=v1","dest":"reviews:version=v2","status":200},
		{"name":"http_status","source":"reviews:version=v2","dest":"ratings:version=v1","status":200}]}`))
	if err != nil {
		t.Fatal(err)
	}
	results := Evaluate(checks.Checks, bookinfoRecords(), EvalOptions{})
	got, err := json.Marshal(api.CheckResults{Results: results})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"results":[{"dest":"productpage:version=v1","errormsg":"","max_latency":"7s","name":"bounded_response_time","result":true,"source":"gateway:version=none"},{"dest":"productpage:version=v1","errormsg":"","name":"http_status","result":true,"source":"gateway:version=none","status":[200,302]},{"dest":"reviews:version=v2","errormsg":"unexpected connection termination","name":"http_status","result":false,"source":"productpage:version=v1","status":200},{"dest":"ratings:version=v1","errormsg":"","name":"http_status","result":true,"source":"reviews:version=v2","status":200}]}`
	assertJSON(t, got, []byte(want))

	// The same with the example files of testdata, against Amalgam8's recipe-run-results.json.
	file := readTestdata(t, "bookinfo-checks.json", DecodeChecklist)
	results = Evaluate(file.Checks, bookinfoRecords(), EvalOptions{Topology: ptr(bookinfoTopology(t))})
	got, _ = json.Marshal(api.CheckResults{Results: results})
	expected, err := os.ReadFile("testdata/recipe-run-results.json")
	if err != nil {
		t.Fatal(err)
	}
	assertJSON(t, got, expected)

	// Amalgam8's own example named the gateway "gateway:none", which matches no record.
	old := BoundedResponseTime("gateway:none", pp, 7*time.Second)
	r := Evaluate([]api.Check{old}, bookinfoRecords(), EvalOptions{})[0]
	if r.Result || r.ErrorMsg != "no requests from gateway:none to productpage:version=v1 were recorded (12 records in all)" {
		t.Errorf("gateway:none: %v %q", r.Result, r.ErrorMsg)
	}
}

func ptr[T any](v T) *T { return &v }

func assertJSON(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestEvaluate(t *testing.T) {
	at := func(id string, ms float64, status int) api.Record { return rec(id, pp, rv, ms, status, 10) }
	tests := []struct {
		name    string
		check   api.Check
		recs    []api.Record
		opts    EvalOptions
		wantMsg string // "" for PASS
	}{
		// Record selection.
		{"service without tags matches any version", HTTPStatus("productpage", "reviews", 200),
			[]api.Record{rec("a", pp, "reviews:version=v1", 0, 200, 1), rec("b", "productpage:", rv, 0, 500, 1), rec("c", "details:version=v1", rv, 0, 500, 1)},
			EvalOptions{}, "unexpected status 500 (request b; expected 200; 1 of 2 requests had another status)"},
		{"tags must all be there", HTTPStatus("reviews:version=v2,zone=a", "ratings", 200),
			[]api.Record{rec("a", "reviews:zone=a,version=v2", rt, 0, 200, 1), rec("b", rv, rt, 0, 500, 1)}, EvalOptions{}, ""},
		{"no records", HTTPStatus(gw, pp, 200), []api.Record{rec("a", pp, rv, 0, 200, 1)}, EvalOptions{},
			"no requests from gateway:version=none to productpage:version=v1 were recorded (1 record in all)"},
		{"no records, in flight", HTTPStatus(gw, pp, 200), nil, EvalOptions{InFlight: 3},
			"no requests from gateway:version=none to productpage:version=v1 were recorded (0 records in all) (3 requests still in flight when checked)"},
		{"invalid check", api.Check{Name: api.CheckHTTPStatus, Source: pp}, bookinfoRecords(), EvalOptions{},
			"invalid check: dest: required by http_status (http_status takes source, dest, status)"},

		// bounded_response_time
		{"latency pass", BoundedResponseTime(gw, pp, 7*time.Second), bookinfoRecords(), EvalOptions{}, ""},
		{"latency fail", BoundedResponseTime(rv, rt, 7*time.Second), bookinfoRecords(), EvalOptions{},
			"request req-1 took 7.003s, more than max_latency 7s (4 of 4 requests took longer)"},
		{"latency fail in flight", BoundedResponseTime(pp, rv, 3*time.Second), []api.Record{at("a", 0, 200), rec("b", pp, rv, 5, 200, 6200)}, EvalOptions{InFlight: 1},
			"request b took 6.2s, more than max_latency 3s (1 of 2 requests took longer) (1 request still in flight when checked)"},

		// http_status
		{"status list", HTTPStatus(pp, rv, 200, 302), []api.Record{at("a", 0, 200), at("b", 1, 302)}, EvalOptions{}, ""},
		{"status 499 is Amalgam8's message, even in flight", HTTPStatus(pp, rv, 200), []api.Record{at("a", 0, 200), at("b", 1, 499), at("c", 2, 503)}, EvalOptions{InFlight: 2},
			"unexpected connection termination"},
		{"status: the oldest failure is reported", HTTPStatus(pp, rv, 200), []api.Record{at("c", 20, 499), at("b", 10, 503)}, EvalOptions{},
			"unexpected status 503 (request b; expected 200; 2 of 2 requests had another status)"},
		{"status 0", HTTPStatus(pp, rv, 200, 302), []api.Record{at("a", 0, 0)}, EvalOptions{},
			"connection reset (request a; expected one of 200, 302; 1 of 1 request had another status)"},
		{"status 0 expected", HTTPStatus(pp, rv, 0), []api.Record{at("a", 0, 0)}, EvalOptions{}, ""},

		// http_success_status
		{"success pass", HTTPSuccessStatus(gw, pp), bookinfoRecords(), EvalOptions{}, ""},
		{"success everywhere fails", HTTPSuccessStatus("", ""), bookinfoRecords(), EvalOptions{},
			"4 of 12 requests did not succeed (2xx); the first, request req-1 from productpage:version=v1 to reviews:version=v2, got status 499 (the caller went away)"},
		{"success from one source", HTTPSuccessStatus(rv, ""), bookinfoRecords(), EvalOptions{}, ""},
		{"success: no records", HTTPSuccessStatus("", dt), nil, EvalOptions{},
			"no requests from any service to details:version=v1 were recorded (0 records in all)"},

		// at_most_requests
		{"at most pass", AtMostRequests(pp, rv, 2), bookinfoRecords(), EvalOptions{}, ""},
		{"at most fail", AtMostRequests(pp, rv, 1), bookinfoRecords(), EvalOptions{},
			"request req-1: 2 requests from productpage:version=v1 to reviews:version=v2, at most 1 expected (2 of 2 request ids over)"},
		{"at most without records passes", AtMostRequests(gw, dt, 1), bookinfoRecords(), EvalOptions{}, ""},

		// num_requests
		{"num pass", NumRequests(pp, rv, 4), bookinfoRecords(), EvalOptions{}, ""},
		{"num zero pass", NumRequests(gw, dt, 0), bookinfoRecords(), EvalOptions{}, ""},
		{"num fail", NumRequests(pp, rv, 2), bookinfoRecords(), EvalOptions{},
			"4 requests from productpage:version=v1 to reviews:version=v2 were recorded, expected 2"},
		{"num none", NumRequests(gw, dt, 2), bookinfoRecords(), EvalOptions{InFlight: 2},
			"no requests from gateway:version=none to details:version=v1 were recorded (12 records in all), expected 2 (2 requests still in flight when checked)"},

		// bounded_retries
		{"retries pass", BoundedRetries(pp, rv, 1, 0), bookinfoRecords(), EvalOptions{}, ""},
		{"retries fail", BoundedRetries(pp, rv, 3, 0),
			[]api.Record{at("abc", 0, 503), at("abc", 2, 503), at("abc", 5, 503), at("abc", 7, 503), at("abc", 10, 503), at("abc", 12, 200), at("x", 20, 200)},
			EvalOptions{}, "request abc: 6 attempts within 12ms (5 retries), bound 3"},
		{"retries count the proxy's attempts", BoundedRetries(pp, rv, 2, 0), []api.Record{at("a", 0, 503), rec("a", pp, rv, 10, 503, 5, withAttempts(3))},
			EvalOptions{}, "request a: 4 attempts within 10ms (3 retries), bound 2"},
		{"retries by uri", with(BoundedRetries(pp, rv, 1, 0), func(c *api.Check) { c.ByURI = ptr(true) }),
			[]api.Record{rec("a", pp, rv, 0, 503, 1, withPath("/r/1")), rec("b", pp, rv, 1, 503, 1, withPath("/r/1")), rec("c", pp, rv, 2, 503, 1, withPath("/r/1")), rec("d", pp, rv, 3, 200, 1, withPath("/r/2"))},
			EvalOptions{}, "path /r/1: 3 attempts within 2ms (2 retries), bound 1"},
		{"retries: several groups over", BoundedRetries(pp, rv, 0, 0), bookinfoRecords(), EvalOptions{},
			"request req-1: 2 attempts within 3.005s (1 retries), bound 0 (2 of 2 groups over the bound)"},
		{"retries wait pass", BoundedRetries(pp, rv, 1, 3*time.Second), bookinfoRecords(), EvalOptions{}, ""},
		{"retries wait fail", BoundedRetries(pp, rv, 2, time.Second), []api.Record{at("a", 0, 503), at("a", 1000, 503), at("a", 1120, 200)},
			EvalOptions{}, "request a: retry 2 was sent 120ms after the previous attempt, less than wait_time 1s"},
		{"retries wait within errdelta", with(BoundedRetries(pp, rv, 2, time.Second), func(c *api.Check) { c.ErrDelta = ptr(api.NewDuration(100 * time.Millisecond)) }),
			[]api.Record{at("a", 0, 503), at("a", 950, 200)}, EvalOptions{}, ""},
		{"retries wait beyond errdelta", with(BoundedRetries(pp, rv, 2, time.Second), func(c *api.Check) { c.ErrDelta = ptr(api.NewDuration(100 * time.Millisecond)) }),
			[]api.Record{at("a", 0, 503), at("a", 850, 200)}, EvalOptions{}, "request a: retry 1 was sent 850ms after the previous attempt, less than wait_time 1s - errdelta 100ms"},
		{"records without request id are not retries of each other", BoundedRetries(pp, rv, 0, 0), []api.Record{at("", 0, 503), at("", 1, 503)}, EvalOptions{}, ""},

		// no_proxy_errors
		{"proxy errors pass: injected faults and callers going away are not", NoProxyErrors(), bookinfoRecords(), EvalOptions{}, ""},
		{"proxy errors fail", NoProxyErrors(),
			[]api.Record{at("a", 0, 200), rec("b", pp, rv, 1, 503, 1, withFlags("UF,URX")), rec("c", pp, dt, 2, 503, 1, withFlags("UH")), rec("d", pp, dt, 3, 504, 1, withFlags("UT")), rec("e", pp, dt, 4, 503, 1, withFlags("FI"))},
			EvalOptions{}, "proxy errors in 3 of 5 requests: UH 1, UF 1, URX 1, UT 1 (the first: request b from productpage:version=v1 to reviews:version=v2, flags UF,URX)"},
		{"proxy errors narrowed", with(NoProxyErrors(), func(c *api.Check) { c.Source, c.Dest = pp, rv }),
			[]api.Record{at("a", 0, 200), rec("c", pp, dt, 2, 503, 1, withFlags("UH"))}, EvalOptions{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate([]api.Check{tt.check}, tt.recs, tt.opts)[0]
			if tt.wantMsg == "" {
				if !r.Result || r.ErrorMsg != "" {
					t.Fatalf("FAIL %q, want PASS", r.ErrorMsg)
				}
				return
			}
			if r.Result {
				t.Fatalf("PASS, want FAIL %q", tt.wantMsg)
			}
			if r.ErrorMsg != tt.wantMsg {
				t.Fatalf("errormsg\n %q\nwant\n %q", r.ErrorMsg, tt.wantMsg)
			}
		})
	}
}

func with(c api.Check, f func(*api.Check)) api.Check {
	f(&c)
	return c
}

func TestCircuitBreaker(t *testing.T) {
	// A caller whose breaker opens after 3 consecutive failures and waits 2s.
	fail := func(id string, at float64) api.Record { return rec(id, pp, rv, at, 503, 1, withFlags("FI")) }
	ok := func(id string, at float64) api.Record { return rec(id, pp, rv, at, 200, 1) }
	tests := []struct {
		name    string
		check   api.Check
		recs    []api.Record
		wantMsg string
	}{
		{"a caller that waits reset_time passes", CircuitBreaker(pp, rv, 2, 2*time.Second, 0),
			[]api.Record{ok("a", 0), fail("b", 100), fail("c", 200), fail("d", 300), /* opens at 300 */
				ok("e", 2300) /* trial */, ok("f", 2400), fail("g", 2500), fail("h", 2600), ok("i", 2700)}, ""},
		{"a caller without a breaker fails", CircuitBreaker(pp, rv, 2, 2*time.Second, 0),
			[]api.Record{fail("a", 0), fail("b", 100), fail("c", 200), fail("d", 320), fail("e", 400), fail("f", 2300)},
			"request d sent 120ms after the circuit opened, reset_time 2s (it opened at request c after 3 consecutive failures, closed_attempts 2; 2 requests were sent while open)"},
		{"a failed trial opens the circuit again", CircuitBreaker(pp, rv, 0, time.Second, 0),
			[]api.Record{fail("a", 0), fail("b", 1000), ok("c", 1500)},
			"request c sent 500ms after the circuit opened, reset_time 1s (it opened again at request b, a failed trial; 1 request was sent while open)"},
		{"half-open needs halfopen_attempts successes", CircuitBreaker(pp, rv, 0, time.Second, 2),
			[]api.Record{fail("a", 0), ok("b", 1000), fail("c", 1100), ok("d", 1200)},
			"request d sent 100ms after the circuit opened, reset_time 1s (it opened again at request c, a failed trial; 1 request was sent while open)"},
		{"half-open closes after halfopen_attempts successes", CircuitBreaker(pp, rv, 0, time.Second, 2),
			[]api.Record{fail("a", 0), ok("b", 1000), ok("c", 1100), fail("d", 1200), ok("e", 2200)}, ""},
		{"resets and 499s are failures", CircuitBreaker(pp, rv, 1, time.Second, 0),
			[]api.Record{rec("a", pp, rv, 0, 0, 1), rec("b", pp, rv, 10, 499, 1), ok("c", 20)},
			"request c sent 10ms after the circuit opened, reset_time 1s (it opened at request b after 2 consecutive failures, closed_attempts 1; 1 request was sent while open)"},
		{"requests the proxy refused were not sent", CircuitBreaker(pp, rv, 0, time.Second, 0),
			[]api.Record{fail("a", 0), rec("b", pp, rv, 10, 503, 0, withFlags("UO")), rec("c", pp, rv, 20, 503, 0, withFlags("UH")), ok("d", 1000)}, ""},
		{"headerprefix", with(CircuitBreaker(pp, rv, 0, time.Second, 0), func(c *api.Check) { c.HeaderPrefix = ptr("cb-") }),
			[]api.Record{fail("cb-1", 0), fail("other", 10), ok("cb-2", 1000)}, ""},
		{"remove_retries", with(CircuitBreaker(pp, rv, 1, time.Second, 0), func(c *api.Check) { c.RemoveRetries = ptr(true) }),
			[]api.Record{fail("a", 0), fail("a", 10), ok("a", 20), fail("b", 30), fail("b", 40), ok("c", 1040)}, ""},
		{"without remove_retries the same records fail", CircuitBreaker(pp, rv, 1, time.Second, 0),
			[]api.Record{fail("a", 0), fail("a", 10), ok("a", 20), fail("b", 30), fail("b", 40), ok("c", 1040)},
			"request a sent 10ms after the circuit opened, reset_time 1s (it opened at request a after 2 consecutive failures, closed_attempts 1; 3 requests were sent while open)"},
		{"no records", CircuitBreaker(pp, rv, 1, time.Second, 0), nil,
			"no requests from productpage:version=v1 to reviews:version=v2 were recorded (0 records in all)"},
		{"only refused records", CircuitBreaker(pp, rv, 1, time.Second, 0), []api.Record{rec("a", pp, rv, 0, 503, 0, withFlags("UO"))},
			"no requests from productpage:version=v1 to reviews:version=v2 reached the destination: the proxy refused every one (1, flags UO or UH)"},
		{"headerprefix matching nothing", with(CircuitBreaker(pp, rv, 0, time.Second, 0), func(c *api.Check) { c.HeaderPrefix = ptr("cb-") }),
			[]api.Record{fail("a", 0)},
			`no requests from productpage:version=v1 to reviews:version=v2 with a request id starting "cb-" were recorded (1 record in all)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate([]api.Check{tt.check}, tt.recs, EvalOptions{})[0]
			if got := map[bool]string{true: "", false: r.ErrorMsg}[r.Result]; got != tt.wantMsg || (tt.wantMsg == "") != r.Result {
				t.Fatalf("result %v %q\nwant %q", r.Result, r.ErrorMsg, tt.wantMsg)
			}
		})
	}
}

func TestBulkhead(t *testing.T) {
	// productpage calls details every 100ms while reviews hangs (5s).
	steady := func(until float64) []api.Record {
		recs := []api.Record{rec("slow", pp, rv, 0, 200, 5000)}
		for at := 10.0; at <= until; at += 100 {
			recs = append(recs, rec(fmt.Sprintf("d%v", at), pp, dt, at, 200, 2))
		}
		return recs
	}
	starved := append(steady(1000), rec("late", pp, dt, 4000, 200, 2))
	topo := bookinfoTopology(t)
	tests := []struct {
		name    string
		check   api.Check
		recs    []api.Record
		opts    EvalOptions
		wantMsg string
	}{
		{"steady calls pass (dependencies from the records)", Bulkhead(pp, rv, 5), steady(5000), EvalOptions{}, ""},
		{"steady calls pass (dependencies from the topology)", Bulkhead(pp, "reviews", 5), steady(5000), EvalOptions{Topology: &topo}, ""},
		{"a gap fails", Bulkhead(pp, rv, 5), starved, EvalOptions{},
			"productpage:version=v1 did not call details:version=v1 for 3.09s (from request d910 to request late), more than 1/rate = 200ms"},
		{"a dependency never called fails", Bulkhead(pp, rv, 5, dt, "ratings"), steady(5000), EvalOptions{},
			"productpage:version=v1 did not call ratings for 5s (from the first request from productpage:version=v1 to the end of the test), more than 1/rate = 200ms"},
		{"calls that stop before the end fail", Bulkhead(pp, rv, 2), steady(1000), EvalOptions{Topology: &topo},
			"productpage:version=v1 did not call details:version=v1 for 4.09s (from request d910 to the end of request slow, the test's last), more than 1/rate = 500ms"},
		{"no dependency left", Bulkhead(pp, rv, 2), []api.Record{rec("a", pp, rv, 0, 200, 1)}, EvalOptions{},
			"productpage:version=v1 has no dependency other than reviews:version=v2 to check: give dependencies, or a topology that lists them"},
		{"no records", Bulkhead(gw, pp, 2), steady(100), EvalOptions{},
			"no requests from gateway:version=none to any service were recorded (2 records in all)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate([]api.Check{tt.check}, tt.recs, tt.opts)[0]
			if got := map[bool]string{true: "", false: r.ErrorMsg}[r.Result]; got != tt.wantMsg || (tt.wantMsg == "") != r.Result {
				t.Fatalf("result %v %q\nwant %q", r.Result, r.ErrorMsg, tt.wantMsg)
			}
		})
	}
}

func TestEvaluateKeepsOrderAndInput(t *testing.T) {
	recs := bookinfoRecords()
	recs[0], recs[5] = recs[5], recs[0]
	before := append([]api.Record(nil), recs...)
	checks := []api.Check{HTTPSuccessStatus(gw, pp), HTTPStatus(pp, rv, 200), NumRequests(rv, rt, 4)}
	results := Evaluate(checks, recs, EvalOptions{})
	if len(results) != 3 || !results[0].Result || results[1].Result || !results[2].Result {
		t.Errorf("results %+v", results)
	}
	if !reflect.DeepEqual(recs, before) {
		t.Error("Evaluate changed its input")
	}
	if Passed(results) || !Passed(results[:1]) {
		t.Error("Passed")
	}
}

func TestSummary(t *testing.T) {
	results := Evaluate([]api.Check{
		HTTPStatus(pp, rv, 200),
		Bulkhead(pp, rv, 0.05, dt),
		NoProxyErrors(),
	}, bookinfoRecords(), EvalOptions{})
	got := Summary(results)
	want := strings.Join([]string{
		"+-----------------+------------------------+--------------------+--------+-----------------------------------+",
		"| Assertion       | Source                 | Destination        | Result | Error                             |",
		"+-----------------+------------------------+--------------------+--------+-----------------------------------+",
		"| http_status     | productpage:version=v1 | reviews:version=v2 | FAIL   | unexpected connection termination |",
		"| bulkhead        | productpage:version=v1 | reviews:version=v2 | PASS   |                                   |",
		"| no_proxy_errors | *                      | *                  | PASS   |                                   |",
		"+-----------------+------------------------+--------------------+--------+-----------------------------------+",
		"",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestConstructorsValidate(t *testing.T) {
	for _, c := range []api.Check{
		BoundedResponseTime(gw, pp, time.Second), HTTPStatus(gw, pp, 200), HTTPStatus(gw, pp, 200, 302),
		HTTPSuccessStatus("", ""), AtMostRequests(gw, pp, 1), NumRequests(gw, pp, 0),
		BoundedRetries(gw, pp, 1, 0), BoundedRetries(gw, pp, 1, time.Second), CircuitBreaker(gw, pp, 3, time.Second, 0),
		CircuitBreaker(gw, pp, 3, time.Second, 2), Bulkhead(gw, pp, 1), Bulkhead(gw, pp, 1, dt), NoProxyErrors(),
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
		// What the constructors make decodes back to the same check.
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var back api.Check
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("%s: %v", b, err)
		}
		again, _ := json.Marshal(back)
		if string(again) != string(b) {
			t.Errorf("%s decodes to %s", b, again)
		}
	}
	if b, _ := json.Marshal(HTTPStatus(gw, pp, 200, 302)); string(b) != `{"name":"http_status","source":"gateway:version=none","dest":"productpage:version=v1","status":[200,302]}` {
		t.Errorf("HTTPStatus: %s", b)
	}
	if b, _ := json.Marshal(CircuitBreaker(gw, pp, 3, 1500*time.Millisecond, 0)); string(b) != `{"name":"circuit_breaker","source":"gateway:version=none","dest":"productpage:version=v1","closed_attempts":3,"reset_time":"1.5s"}` {
		t.Errorf("CircuitBreaker: %s", b)
	}

	topo := bookinfoTopology(t)
	for _, g := range []api.Gremlin{
		DelayRequests(rv, rt, 7*time.Second, 0), DelayRequests("", rt, 0, 0.5), AbortRequests(pp, "", 503, 1),
		PartitionServices(pp, rv), CrashService(rt), OverloadService("", rv), OverloadService(pp, rv),
	} {
		if _, err := Rules("r1", api.RecipeRequest{Topology: topo, Scenarios: api.Scenarios{Gremlins: []api.Gremlin{g}}}); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
	}
	if g := DelayRequests(rv, rt, 7*time.Second, 0); g.DelayTime != "7s" || g.DelayProbability != nil {
		t.Errorf("DelayRequests: %+v", g)
	}
}

func TestNoPanics(t *testing.T) {
	var checks []api.Check
	for _, name := range append(api.CheckNames(), "", "nope") {
		checks = append(checks, api.Check{Name: name})
	}
	checks = append(checks, api.Check{Name: api.CheckHTTPStatus, Source: "a", Dest: "b", Status: &api.Status{}})
	weird := []api.Record{{}, {Src: ":", Dst: "::", RequestTime: -5, ResponseFlags: ",,"}, {Src: "a", Dst: "b", Status: 999}}
	for _, r := range Evaluate(checks, weird, EvalOptions{Topology: &api.Topology{}, InFlight: -1}) {
		if r.Name != api.CheckHTTPSuccessStatus && r.Name != api.CheckNoProxyErrors && (r.Result || !strings.HasPrefix(r.ErrorMsg, "invalid check: ")) {
			t.Errorf("%q: %v %q", r.Name, r.Result, r.ErrorMsg)
		}
	}
	if _, err := Rules("r1", api.RecipeRequest{}); err == nil {
		t.Error("an empty recipe translated")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"services":[{"name":"a"}],"dependencies":{"a":["a"]}}`,
		`{"gremlins":[{"scenario":"delay_requests","dest":"b","delaytime":"7x"}]}`,
		`{"checks":[{"name":"http_status","source":"a","dest":"b","status":[200]}]}`,
		"checks:\n  - name: bulkhead\n", `[`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if tp, err := DecodeTopology(data); err == nil {
			_, _ = Rules("r1", api.RecipeRequest{Topology: tp})
		}
		if sc, err := DecodeScenarios(data); err == nil {
			_, _ = Rules("r1", api.RecipeRequest{Scenarios: sc})
		}
		if l, err := DecodeChecklist(data); err == nil {
			_ = Evaluate(l.Checks, nil, EvalOptions{})
			if _, err := json.Marshal(l.Checks); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = DecodeChecksRequest(data)
	})
}
