package flagenv

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantTTL time.Duration
		wantOn  bool
		wantErr string
	}{
		{"defaults", nil, nil, 30 * time.Second, false, ""},
		{"env", nil, map[string]string{"A8_DEFAULT_TTL": "45s", "A8_REQUIRE_HTTPS": "true"}, 45 * time.Second, true, ""},
		{"flag wins over env", []string{"--default_ttl", "1m"}, map[string]string{"A8_DEFAULT_TTL": "45s"}, time.Minute, false, ""},
		{"bad env", nil, map[string]string{"A8_DEFAULT_TTL": "soon"}, 0, false, `A8_DEFAULT_TTL="soon"`},
		{"bad flag", []string{"--default_ttl", "soon"}, nil, 0, false, "invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			ttl := fs.Duration("default_ttl", 30*time.Second, "")
			on := fs.Bool("require_https", false, "")
			err := Parse(fs, tc.args, "A8_")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || *ttl != tc.wantTTL || *on != tc.wantOn {
				t.Fatalf("got %v %v %v; want %v %v", *ttl, *on, err, tc.wantTTL, tc.wantOn)
			}
		})
	}
}
