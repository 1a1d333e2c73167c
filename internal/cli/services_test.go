package cli

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/api"
)

func TestServiceSummary(t *testing.T) {
	tests := []struct {
		name  string
		insts [][]string // each instance's tags
		want  []string
	}{
		{name: "none", want: []string{}},
		{name: "two versions", insts: [][]string{{"v2"}, {"v1"}, {"v1"}, {"v2"}}, want: []string{"v1(2)", "v2(2)"}},
		{name: "multi-tag and untagged", insts: [][]string{{"version=v1", "zone=a"}, nil, {"version=v1", "zone=a"}},
			want: []string{"-untagged-(1)", "version=v1,zone=a(2)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var insts []api.Instance
			for _, tags := range tt.insts {
				insts = append(insts, api.Instance{Tags: tags})
			}
			got := serviceSummary("helloworld", insts)
			if got.Service != "helloworld" || !reflect.DeepEqual(got.Instances, tt.want) {
				t.Errorf("got %+v, want %v", got, tt.want)
			}
		})
	}
}

func TestServiceRows(t *testing.T) {
	var b strings.Builder
	renderTable(&b, []string{"Service", "Instances"}, serviceRows([]serviceEntry{
		{Service: "helloworld", Instances: []string{"v1(2)", "v2(2)"}},
		{Service: "reviews", Instances: []string{"v1(1)", "v2(1)", "v3(1)"}},
	}))
	want := `+------------+---------------------+
| Service    | Instances           |
+------------+---------------------+
| helloworld | v1(2), v2(2)        |
| reviews    | v1(1), v2(1), v3(1) |
+------------+---------------------+
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestInfoRowsMaskTokens(t *testing.T) {
	rows := infoRows(&globals{controllerURL: "http://c:1", registryURL: "http://r:2", controllerToken: "secret", namespace: "team-a", debug: true, timeout: 5 * time.Second})
	want := [][]string{
		{"A8_REGISTRY_URL", "http://r:2"},
		{"A8_REGISTRY_TOKEN", ""},
		{"A8_CONTROLLER_URL", "http://c:1"},
		{"A8_CONTROLLER_TOKEN", "********"},
		{"A8_NAMESPACE", "team-a"},
		{"A8_DEBUG", "true"},
		{"A8_TIMEOUT", "5s"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got %v\nwant %v", rows, want)
	}
}

func TestSplitProblems(t *testing.T) {
	got := splitProblems(`rules[0].route.backends[0].weight: must be in (0, 1], got 1.5; rules[1].match.headers.Cookie: invalid regex "(a; b": missing closing )`)
	want := []string{
		"rules[0].route.backends[0].weight: must be in (0, 1], got 1.5",
		`rules[1].match.headers.Cookie: invalid regex "(a; b": missing closing )`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
