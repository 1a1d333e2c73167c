package cli

import (
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
)

func TestDefaultRouteRule(t *testing.T) {
	tests := []struct {
		name    string
		rules   string
		wantID  string
		wantErr string
	}{
		{name: "none", rules: `[]`, wantErr: "No default route rule for reviews"},
		{name: "only matched rules", rules: `[{"id":"m","destination":"reviews","match":{"headers":{"A":"b"}},"route":{"backends":[{"tags":["v2"]}]}}]`,
			wantErr: "a8ctl route-set reviews --default <version>"},
		{name: "one among others", wantID: "d", rules: `[
			{"id":"m","priority":2,"destination":"reviews","match":{"headers":{"A":"b"}},"route":{"backends":[{"tags":["v2"]}]}},
			{"id":"d","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`},
		{name: "two", rules: `[
			{"id":"d1","priority":2,"destination":"reviews","route":{"backends":[{"tags":["v2"]}]}},
			{"id":"d2","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"]}]}}]`,
			wantErr: "reviews has 2 route rules without a match (d1, d2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultRouteRule("reviews", mustRules(t, tt.rules))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.ID != tt.wantID {
				t.Fatalf("got %q, %v; want %q", got.ID, err, tt.wantID)
			}
		})
	}
}

const (
	singleV1 = `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`
	split30  = `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.3},{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`
)

func mustRule(t *testing.T, js string) api.Rule {
	t.Helper()
	return mustRules(t, "["+js+"]")[0]
}

func TestStartTransfer(t *testing.T) {
	tests := []struct {
		name     string
		rule     string
		version  string
		amount   int
		want     string
		wantFrom string
		wantErr  string
	}{
		{name: "default 10%", rule: singleV1, version: "v2", amount: 10, wantFrom: "v1",
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.1},{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`},
		{name: "55%", rule: singleV1, version: "v2", amount: 55, wantFrom: "v1",
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.55},{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`},
		{name: "100% replaces the version", rule: singleV1, version: "v2", amount: 100, wantFrom: "v1",
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"lb_type":"random"}],"http_req_timeout":3}}`},
		{name: "already split", rule: split30, version: "v3", amount: 10, wantErr: `Invalid state for start operation: service "reviews" traffic is already being split`},
		{name: "same version", rule: singleV1, version: "v1", amount: 10, wantErr: "already sends all its traffic to v1"},
		{name: "two unweighted", rule: `{"id":"r","destination":"reviews","route":{"backends":[{"tags":["v1"]},{"tags":["v3"]}]}}`, version: "v2", amount: 10, wantErr: "already being split"},
		{name: "amount 0", rule: singleV1, version: "v2", amount: 0, wantErr: "--amount must be between 1 and 100"},
		{name: "amount 101", rule: singleV1, version: "v2", amount: 101, wantErr: "--amount must be between 1 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustRule(t, tt.rule)
			before := jsonOf(t, in)
			got, from, err := startTransfer("reviews", in, tt.version, tt.amount)
			if jsonOf(t, in) != before {
				t.Errorf("the input rule changed: %s", jsonOf(t, in))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if from != tt.wantFrom || jsonOf(t, got) != tt.want {
				t.Errorf("got %s from %q\nwant %s from %q", jsonOf(t, got), from, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestStepTransfer(t *testing.T) {
	splitAt := func(w string) string {
		return `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":` + w + `},{"tags":["v1"]}]}}`
	}
	tests := []struct {
		name        string
		rule        string
		amount      int
		want        string
		wantPercent int
		wantErr     string
	}{
		{name: "10 more", rule: splitAt("0.1"), wantPercent: 20, want: splitAt("0.2")},
		{name: "10 more of a share that is not a whole percent in binary", rule: splitAt("0.29"), wantPercent: 39, want: splitAt("0.39")},
		{name: "a given amount", rule: splitAt("0.1"), amount: 75, wantPercent: 75, want: splitAt("0.75")},
		{name: "a given lower amount", rule: splitAt("0.5"), amount: 20, wantPercent: 20, want: splitAt("0.2")},
		{name: "90 to 100 completes", rule: splitAt("0.9"), wantPercent: 100,
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"]}]}}`},
		{name: "95 plus 10 completes at 100", rule: splitAt("0.95"), wantPercent: 100,
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"]}]}}`},
		{name: "amount 100 completes", rule: splitAt("0.1"), amount: 100, wantPercent: 100,
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"]}]}}`},
		{name: "keeps the other fields", rule: split30, wantPercent: 40,
			want: `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v2"],"weight":0.4},{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`},
		{name: "no transfer", rule: singleV1, wantErr: "Invalid state for step operation: no traffic transfer in progress for reviews"},
		{name: "weights the other way", rule: `{"id":"r","destination":"reviews","route":{"backends":[{"tags":["v1"]},{"tags":["v2"],"weight":0.1}]}}`, wantErr: "Invalid state for step"},
		{name: "bad amount", rule: splitAt("0.1"), amount: 120, wantErr: "--amount must be between 1 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustRule(t, tt.rule)
			before := jsonOf(t, in)
			got, percent, to, from, err := stepTransfer("reviews", in, tt.amount)
			if jsonOf(t, in) != before {
				t.Errorf("the input rule changed: %s", jsonOf(t, in))
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if percent != tt.wantPercent || to != "v2" || from != "v1" || jsonOf(t, got) != tt.want {
				t.Errorf("got %s at %d%% (%s -> %s)\nwant %s at %d%%", jsonOf(t, got), percent, from, to, tt.want, tt.wantPercent)
			}
		})
	}
}

func TestAbortTransfer(t *testing.T) {
	got, from, err := abortTransfer("reviews", mustRule(t, split30))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"r","priority":1,"destination":"reviews","route":{"backends":[{"tags":["v1"],"lb_type":"random"}],"http_req_timeout":3}}`
	if from != "v1" || jsonOf(t, got) != want {
		t.Errorf("got %s back to %q, want %s back to v1", jsonOf(t, got), from, want)
	}
	if _, _, err := abortTransfer("reviews", mustRule(t, singleV1)); err == nil || !strings.Contains(err.Error(), "Invalid state for abort operation") {
		t.Errorf("abort without a transfer: %v", err)
	}
}

func TestTrafficArgs(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		svc, ver    string
		wantVersion bool
		wantSvc     string
		wantVer     string
		wantErr     string
	}{
		{name: "positional", args: []string{"reviews", "v2"}, wantVersion: true, wantSvc: "reviews", wantVer: "v2"},
		{name: "flags", svc: "reviews", ver: "v2", wantVersion: true, wantSvc: "reviews", wantVer: "v2"},
		{name: "missing version", args: []string{"reviews"}, wantVersion: true, wantErr: "missing the version"},
		{name: "missing service", wantErr: "missing the service"},
		{name: "twice", args: []string{"reviews"}, svc: "ratings", wantErr: "given twice"},
		{name: "too many", args: []string{"reviews", "v2"}, wantErr: "too many arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, ver := tt.svc, tt.ver
			err := trafficArgs(tt.args, &svc, &ver, tt.wantVersion)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || svc != tt.wantSvc || ver != tt.wantVer {
				t.Errorf("got %q %q %v", svc, ver, err)
			}
		})
	}
}
