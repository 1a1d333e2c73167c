package resilience

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/strictjson"
)

func TestDecodeTopology(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"json", `{"services":[{"name":"a:version=v1"},{"name":"b"}],"dependencies":{"a:version=v1":["b"]}}`, ""},
		{"yaml", "services:\n  - name: a:version=v1\n    service_proxies: [\"127.0.0.1:9876\"]\n  - name: b\ndependencies:\n  a:version=v1: [b]\n", ""},
		{"tag order does not matter", `{"services":[{"name":"a:x,y"},{"name":"b"}],"dependencies":{"a:y,x":["b"]}}`, ""},
		{"no dependencies", `{"services":[{"name":"a"}]}`, ""},
		{"unknown field", `{"services":[{"name":"a","version":"v1"}]}`, "services[0].version: unknown field"},
		{"wrong type", `{"services":[{"name":5}]}`, "services[0].name: expected a string"},
		{"no services", `{"services":[]}`, "services: required"},
		{"empty name", `{"services":[{"name":""}]}`, "services[0].name: must not be empty"},
		{"empty tag", `{"services":[{"name":"a:v1,"}]}`, `services[0].name: "a:v1," has an empty tag`},
		{"duplicate", `{"services":[{"name":"a:x,y"},{"name":"a:y,x"}]}`, `services[1].name: "a:y,x" is also services[0]`},
		{"unknown source", `{"services":[{"name":"a"}],"dependencies":{"b":["a"]}}`, `dependencies.b: "b" is not a service of the topology`},
		{"unknown dependency", `{"services":[{"name":"a"}],"dependencies":{"a":["a","c"]}}`, `dependencies.a[1]: "c" is not a service of the topology`},
		{"not json or yaml", "services: [\n", "neither valid JSON nor valid YAML"},
		{"malformed json", `{"services":[}`, "neither valid JSON nor valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeTopology([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q, want it to contain %q", err, want)
	}
}

func TestDecodeScenarios(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"reference", `{"gremlins":[{"scenario":"delay_requests","source":"reviews:version=v2","dest":"ratings:version=v1","delaytime":"7s"}]}`, ""},
		{"yaml", "gremlins:\n  - scenario: abort_requests\n    dest: ratings\n    errorcode: 503\n    abortprobability: 0.5\n", ""},
		{"ignored fields", `{"gremlins":[{"scenario":"abort_requests","source":"a","errorcode":429,"messagetype":"request","trackingheader":"X","bodypattern":"*","headerpattern":"x-*","delaydistribution":"uniform","abortdistribution":"normal","mangleprobability":0.1,"mangledistribution":"uniform","searchstring":"a","replacestring":"b"}]}`, ""},
		{"all scenarios", `{"gremlins":[
			{"scenario":"delay_responses","dest":"b"},
			{"scenario":"abort_responses","source":"a","errorcode":-1},
			{"scenario":"partition_services","source":"a","dest":"b","srcprobability":0.5,"dstprobability":1,"errorcode":0},
			{"scenario":"crash_service","dest":"b","abortprobability":0.9},
			{"scenario":"overload_service","dest":"b","source":"a","delaytime":"8s","delayprobability":0.7,"errorcode":503,"abortprobability":0.6}]}`, ""},
		{"unknown field", `{"gremlins":[{"scenario":"delay_requests","dest":"b","colour":"red"}]}`, "gremlins[0].colour: unknown field"},
		{"bad duration", `{"gremlins":[{"scenario":"delay_requests","dest":"b","delaytime":"7x"}]}`, `gremlins[0].delaytime: "7x" is not a duration`},
		{"duration not a string", `{"gremlins":[{"scenario":"delay_requests","dest":"b","delaytime":7}]}`, `gremlins[0].delaytime: expected a string, got the number 7`},
		{"zero duration", `{"gremlins":[{"scenario":"delay_requests","dest":"b","delaytime":"0s"}]}`, `gremlins[0].delaytime: "0s": the delay must be more than 0`},
		{"long duration", `{"gremlins":[{"scenario":"delay_requests","dest":"b","delaytime":"25h"}]}`, `gremlins[0].delaytime: "25h": the delay must be at most 24h0m0s`},
		{"unknown scenario", `{"gremlins":[{"scenario":"explode","dest":"b"}]}`, `gremlins[0].scenario: unknown scenario "explode"`},
		{"no scenario", `{"gremlins":[{"dest":"b"}]}`, `gremlins[0].scenario: required`},
		{"probability 0", `{"gremlins":[{"scenario":"delay_requests","dest":"b","delayprobability":0}]}`, `gremlins[0].delayprobability: must be a probability in (0, 1], got 0`},
		{"probability 1.5", `{"gremlins":[{"scenario":"abort_requests","dest":"b","abortprobability":1.5}]}`, `gremlins[0].abortprobability: must be a probability in (0, 1], got 1.5`},
		{"error code", `{"gremlins":[{"scenario":"abort_requests","dest":"b","errorcode":600}]}`, `gremlins[0].errorcode: must be an HTTP status`},
		{"error code low", `{"gremlins":[{"scenario":"abort_requests","dest":"b","errorcode":-6}]}`, `got -6`},
		{"parameter of another scenario", `{"gremlins":[{"scenario":"delay_requests","dest":"b","errorcode":503}]}`, `gremlins[0].errorcode: not a parameter of delay_requests`},
		{"neither source nor dest", `{"gremlins":[{"scenario":"abort_requests"}]}`, `gremlins[0]: give source, dest or both`},
		{"partition without dest", `{"gremlins":[{"scenario":"partition_services","source":"a"}]}`, `gremlins[0].dest: required`},
		{"partition with itself", `{"gremlins":[{"scenario":"partition_services","source":"a","dest":"a"}]}`, `gremlins[0].dest: is the source`},
		{"crash with source", `{"gremlins":[{"scenario":"crash_service","source":"a","dest":"b"}]}`, `gremlins[0].source: not a parameter of crash_service`},
		{"overload without dest", `{"gremlins":[{"scenario":"overload_service","source":"a"}]}`, `gremlins[0].dest: required`},
		{"bad service", `{"gremlins":[{"scenario":"abort_requests","dest":"b:"}]}`, `gremlins[0].dest: "b:" has an empty tag`},
		{"several problems", `{"gremlins":[{"scenario":"x"},{"scenario":"delay_requests","dest":"b","delaytime":"7x"}]}`, `gremlins[0].scenario: unknown scenario "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeScenarios([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
		})
	}
	_, err := DecodeScenarios([]byte(`{"gremlins":[{"scenario":"x"},{"scenario":"delay_requests","dest":"b","delaytime":"7x"}]}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Errorf("want both problems in a *ValidationError, got %v", err)
	}
}

func TestDecodeChecklist(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"amalgam8", `{"log_server":"localhost:30200","checks":[{"name":"bounded_response_time","source":"a","dest":"b","max_latency":"100ms"}]}`, ""},
		{"yaml", "checks:\n  - name: http_status\n    source: a\n    dest: b\n    status: [200, 302]\n  - name: bounded_retries\n    source: a\n    dest: b\n    retries: 3\n    wait_time: 1s\n    errdelta: 0.1\n", ""},
		{"unknown parameter", `{"checks":[{"name":"http_success_status"},{"name":"http_status","source":"a","dest":"b","status":200,"req_id":"x"}]}`, `checks[1].req_id: unknown parameter of http_status`},
		{"missing parameter", `{"checks":[{"name":"at_most_requests","source":"a","dest":"b"}]}`, `checks[0].num_requests: required by at_most_requests`},
		{"bad duration", `{"checks":[{"name":"bounded_response_time","source":"a","dest":"b","max_latency":"7x"}]}`, `checks[0].max_latency: "7x" is not a duration`},
		{"unknown assertion", `{"checks":[{"name":"reachability"}]}`, `checks[0].name: unknown assertion "reachability"`},
		{"unknown top-level field", `{"checks":[],"log":"x"}`, `log: unknown field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeChecklist([]byte(tt.in))
			checkErr(t, err, tt.wantErr)
		})
	}
	_, err := DecodeChecklist([]byte(`{"checks":[{"name":"http_status","source":"a","dest":"b","statuss":200}]}`))
	var se *strictjson.Error
	if !errors.As(err, &se) || se.Path != "checks[0].statuss" || !se.Unknown {
		t.Errorf("want a *strictjson.Error at checks[0].statuss marked Unknown, got %#v", se)
	}
}

func TestDecodeRequests(t *testing.T) {
	r, err := DecodeRecipeRequest([]byte(`{"topology":{"services":[{"name":"a"}]},"scenarios":{"gremlins":[]},"header":"X-Test","header_pattern":"t-.*"}`))
	if err != nil || r.Header != "X-Test" || len(r.Topology.Services) != 1 {
		t.Errorf("DecodeRecipeRequest: %+v, %v", r, err)
	}
	_, err = DecodeRecipeRequest([]byte(`{"topology":{"services":[{"name":"a"}]},"scenarios":{"gremlins":[{"scenario":"x","delay":1}]}}`))
	checkErr(t, err, "scenarios.gremlins[0].delay: unknown field")
	_, err = DecodeChecksRequest([]byte(`{"checklist":{"checks":[{"name":"num_requests","source":"a","dest":"b","num_requests":"3"}]},"wait":"10s"}`))
	checkErr(t, err, `checklist.checks[0].num_requests: expected an integer, got the string "3"`)
}

func TestDecodeTestdata(t *testing.T) {
	for _, f := range []struct {
		file   string
		decode func([]byte) error
	}{
		{"bookinfo-topology.json", func(b []byte) error { _, err := DecodeTopology(b); return err }},
		{"bookinfo-gremlins.json", func(b []byte) error { _, err := DecodeScenarios(b); return err }},
		{"bookinfo-checks.json", func(b []byte) error { _, err := DecodeChecklist(b); return err }},
	} {
		data, err := os.ReadFile("testdata/" + f.file)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.decode(data); err != nil {
			t.Errorf("%s: %v", f.file, err)
		}
	}
}

func TestValidateChecks(t *testing.T) {
	if err := ValidateChecks([]api.Check{HTTPStatus("a", "b", 200), NoProxyErrors()}); err != nil {
		t.Fatal(err)
	}
	err := ValidateChecks([]api.Check{
		HTTPStatus("a", "b", 200),
		{Name: api.CheckHTTPStatus, Source: "a", Dest: "b"},
		BoundedResponseTime("a", "b:", time.Second),
		{Name: "x"},
	})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	want := `checks[1].status: required by http_status (http_status takes source, dest, status); checks[2].dest: "b:" has an empty tag: write "name" or "name:tag1,tag2"; checks[3].name: unknown assertion "x"`
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error\n %s\nwant it to start with\n %s", err, want)
	}
}
