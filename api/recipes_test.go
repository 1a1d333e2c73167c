package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`"7s"`, 7 * time.Second, ""},
		{`"1s500ms"`, 1500 * time.Millisecond, ""},
		{`"250ms"`, 250 * time.Millisecond, ""},
		{`7`, 7 * time.Second, ""},
		{`0.25`, 250 * time.Millisecond, ""},
		{`1e400`, 0, "not a duration"},
		{`"7x"`, 0, `"7x" is not a duration`},
		{`true`, 0, "expected a duration"},
		{`[1]`, 0, "expected a duration"},
	}
	for _, tt := range tests {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if d.Duration() != tt.want {
			t.Errorf("%s: %v, want %v", tt.in, d.Duration(), tt.want)
		}
		out, err := json.Marshal(d)
		if err != nil || string(out) != tt.in {
			t.Errorf("%s: marshals as %s (%v), want it unchanged", tt.in, out, err)
		}
	}
	if out, _ := json.Marshal(NewDuration(1500 * time.Millisecond)); string(out) != `"1.5s"` {
		t.Errorf("NewDuration marshals as %s", out)
	}
}

func TestStatus(t *testing.T) {
	for _, in := range []string{`200`, `[200]`, `[200,302]`} {
		var s Status
		if err := json.Unmarshal([]byte(in), &s); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if out, _ := json.Marshal(s); string(out) != in {
			t.Errorf("%s marshals as %s", in, out)
		}
	}
	for in, want := range map[string]string{`"200"`: `the string "200"`, `[200,"x"]`: `[1]: expected an integer`, `2.5`: `got 2.5`} {
		var s Status
		if err := json.Unmarshal([]byte(in), &s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", in, err, want)
		}
	}
	if out, _ := json.Marshal(StatusCodes(200)); string(out) != `200` {
		t.Errorf("StatusCodes(200) = %s", out)
	}
	if out, _ := json.Marshal(StatusCodes(200, 302)); string(out) != `[200,302]` {
		t.Errorf("StatusCodes(200, 302) = %s", out)
	}
}

func TestCheckRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"name":"bounded_response_time","source":"gateway:version=none","dest":"productpage:version=v1","max_latency":"7s"}`,
		`{"name":"bounded_response_time","source":"a","dest":"b","max_latency":7.5}`,
		`{"name":"http_status","source":"a","dest":"b:version=v2","status":[200,302]}`,
		`{"name":"http_success_status"}`,
		`{"name":"at_most_requests","source":"a","dest":"b","num_requests":0}`,
		`{"name":"bounded_retries","source":"a","dest":"b","retries":3,"wait_time":"1s500ms","errdelta":0.1,"by_uri":false}`,
		`{"name":"circuit_breaker","source":"a","dest":"b","closed_attempts":3,"reset_time":"2s","halfopen_attempts":1,"headerprefix":"","remove_retries":true}`,
		`{"name":"bulkhead","source":"a","slow_dest":"b","rate":10,"dependencies":["c","d:x"]}`,
		`{"name":"no_proxy_errors","source":"a"}`,
	} {
		var c Check
		if err := json.Unmarshal([]byte(in), &c); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, out, []byte(in)) {
			t.Errorf("round trip:\n in %s\nout %s", in, out)
		}
		res, err := json.Marshal(CheckResult{Check: c, Result: false, ErrorMsg: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var back CheckResult
		if err := json.Unmarshal(res, &back); err != nil {
			t.Fatalf("%s: %v", res, err)
		}
		if back.Result || back.ErrorMsg != "x" {
			t.Errorf("%s: read back result %v %q", res, back.Result, back.ErrorMsg)
		}
		again, _ := json.Marshal(back)
		if !jsonEqual(t, again, res) {
			t.Errorf("result round trip:\n in %s\nout %s", res, again)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func TestCheckErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{`{"source":"a","dest":"b"}`, "name: required"},
		{`{"name":"latency","source":"a","dest":"b"}`, `name: unknown assertion "latency"`},
		{`{"name":"http_status","source":"a","dest":"b","statuss":200}`, `statuss: unknown parameter of http_status (http_status takes source, dest, status)`},
		{`{"name":"http_status","source":"a","dest":"b"}`, `status: required by http_status`},
		{`{"name":"http_status","source":"a","dest":"b","status":[]}`, `status: must list at least one`},
		{`{"name":"http_status","source":"a","dest":"b","status":700}`, `status: 700 is not an HTTP status`},
		{`{"name":"bounded_response_time","source":"a","dest":"b","max_latency":"7x"}`, `max_latency: "7x" is not a duration`},
		{`{"name":"bounded_response_time","source":"a","dest":"b","max_latency":"-1s"}`, `max_latency: must be more than 0`},
		{`{"name":"bounded_response_time","source":"a:","dest":"b","max_latency":"1s"}`, `source: "a:" has an empty tag`},
		{`{"name":"bounded_response_time","source":"","dest":"b","max_latency":"1s"}`, `source: must not be empty`},
		{`{"name":"at_most_requests","source":"a","dest":"b","num_requests":1.5}`, `num_requests: expected an integer, got 1.5`},
		{`{"name":"at_most_requests","source":"a","dest":"b","num_requests":-1}`, `num_requests: must be at least 0`},
		{`{"name":"bounded_retries","source":"a","dest":"b","retries":1,"by_uri":"yes"}`, `by_uri: expected true or false`},
		{`{"name":"circuit_breaker","source":"a","dest":"b","closed_attempts":1,"reset_time":"1s","halfopen_attempts":0}`, `halfopen_attempts: must be at least 1`},
		{`{"name":"bulkhead","source":"a","slow_dest":"b","rate":0}`, `rate: must be a number of requests per second more than 0`},
		{`{"name":"bulkhead","source":"a","dest":"b","rate":1}`, `dest: unknown parameter of bulkhead`},
		{`{"name":"bulkhead","source":"a","slow_dest":"b","rate":1,"dependencies":[]}`, `dependencies: must list at least one`},
		{`{"name":"no_proxy_errors","max_latency":"1s"}`, `max_latency: unknown parameter of no_proxy_errors (no_proxy_errors takes source, dest, all optional)`},
		{`[]`, `expected an object`},
	}
	for _, tt := range tests {
		var c Check
		err := json.Unmarshal([]byte(tt.in), &c)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s:\n error %v\n want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestChecklistErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{`{"checks":[{"name":"http_success_status"},{"name":"http_status","source":"a","dest":"b","statuss":200}]}`, `checks[1].statuss: unknown parameter of http_status`},
		{`{"checks":[{"name":"http_status","source":"a","dest":"b"}]}`, `checks[0].status: required by http_status`},
		{`{"log_server":"es:9200","checks":[{"name":"bulkhead","source":"a","slow_dest":"b","rate":1,"dependencies":["c",""]}]}`, `checks[0].dependencies[1]: must not be empty`},
		{`{"checks":[{"name":"http_status","source":"a","dest":"b","status":[200,"x"]}]}`, `checks[0].status[1]: expected an integer`},
		{`{"check":[]}`, `check: unknown field`},
		{`{}`, `checks: required`},
	}
	for _, tt := range tests {
		var l Checklist
		err := json.Unmarshal([]byte(tt.in), &l)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s:\n error %v\n want %q", tt.in, err, tt.wantErr)
		}
	}
	var l Checklist
	if err := json.Unmarshal([]byte(`{"log_server":"es:9200","checks":[{"name":"http_success_status"}]}`), &l); err != nil || len(l.Checks) != 1 || l.LogServer != "es:9200" {
		t.Errorf("good checklist: %+v, %v", l, err)
	}
}

func TestChecksRequest(t *testing.T) {
	var r ChecksRequest
	if err := json.Unmarshal([]byte(`{"checklist":{"checks":[{"name":"http_success_status"}]},"wait":"30s"}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Wait != "30s" || len(r.Checklist.Checks) != 1 {
		t.Errorf("got %+v", r)
	}
	tests := []struct{ in, wantErr string }{
		{`{"checklist":{"checks":[{"name":"http_status","source":"a","dest":"b","statuss":1}]}}`, `checklist.checks[0].statuss: unknown parameter`},
		{`{"checklist":{"checks":[]},"wait":"soon"}`, `wait: "soon" is not a duration`},
		{`{"checklist":{"checks":[]},"wait":"-1s"}`, `wait: must not be negative`},
		{`{"checklist":{"checks":[]},"wait":30}`, `wait: expected a string, got the number 30`},
		{`{"checklist":{"checks":[]},"timeout":"1s"}`, `timeout: unknown field`},
		{`{"wait":"1s"}`, `checklist: required`},
	}
	for _, tt := range tests {
		var r ChecksRequest
		err := json.Unmarshal([]byte(tt.in), &r)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s:\n error %v\n want %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestCheckResultKeepsUnknownFields(t *testing.T) {
	in := `{"name":"reachability","source":"a","future":{"x":1},"result":true,"errormsg":""}`
	var r CheckResult
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(r)
	if !jsonEqual(t, out, []byte(in)) {
		t.Errorf("round trip:\n in %s\nout %s", in, out)
	}
}

func TestGremlinIgnoredFields(t *testing.T) {
	in := `{"scenario":"abort_requests","source":"a","errorcode":429,"messagetype":"request","headerpattern":"x-*","abortdistribution":"normal"}`
	var g Gremlin
	if err := json.Unmarshal([]byte(in), &g); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(g)
	if !jsonEqual(t, out, []byte(in)) {
		t.Errorf("round trip:\n in %s\nout %s", in, out)
	}
}

func TestSplitService(t *testing.T) {
	tests := []struct {
		in   string
		name string
		tags []string
	}{
		{"reviews", "reviews", nil},
		{"reviews:version=v2", "reviews", []string{"version=v2"}},
		{"reviews:a,b", "reviews", []string{"a", "b"}},
		{"gateway:", "gateway", nil},
		{"x:a:b", "x", []string{"a:b"}},
	}
	for _, tt := range tests {
		name, tags := SplitService(tt.in)
		if name != tt.name || !reflect.DeepEqual(tags, tt.tags) {
			t.Errorf("SplitService(%q) = %q %q, want %q %q", tt.in, name, tags, tt.name, tt.tags)
		}
	}
}
