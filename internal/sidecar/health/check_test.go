package health

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    Check
		wantErr string // substring of the error; "" = no error
	}{
		{in: "http://localhost:9080/health", want: Check{Type: TypeHTTP, Value: "http://localhost:9080/health"}},
		{in: "  http://localhost:9080/health  ", want: Check{Type: TypeHTTP, Value: "http://localhost:9080/health"}},
		{in: "HTTP://localhost/health", want: Check{Type: TypeHTTP, Value: "HTTP://localhost/health"}},
		{in: "https://app.example:8443/ready?full=1", want: Check{Type: TypeHTTPS, Value: "https://app.example:8443/ready?full=1"}},
		{in: "tcp://localhost:9080", want: Check{Type: TypeTCP, Value: "localhost:9080"}},
		{in: "tcp://127.0.0.1:6379/", want: Check{Type: TypeTCP, Value: "127.0.0.1:6379"}},
		{in: "tcp://[::1]:80", want: Check{Type: TypeTCP, Value: "[::1]:80"}},
		{in: "file:///bin/ls", want: Check{Type: TypeFile, Value: "/bin/ls"}},
		{in: "file://localhost/usr/bin/check%20me", want: Check{Type: TypeFile, Value: "/usr/bin/check me"}},
		{in: "file:/bin/true", want: Check{Type: TypeFile, Value: "/bin/true"}},

		{in: "", wantErr: "empty"},
		{in: "   ", wantErr: "empty"},
		{in: "ftp://host/x", wantErr: `unknown scheme "ftp": use http://, https://, tcp:// or file://`},
		{in: "localhost:9080", wantErr: "unknown scheme"},
		{in: "/bin/ls", wantErr: `unknown scheme ""`},
		{in: "http://", wantErr: "no host"},
		{in: "http:///health", wantErr: "no host"},
		{in: "http://localhost:99999/", wantErr: "1..65535"},
		{in: "http://local host/", wantErr: "invalid character"},
		{in: "tcp://localhost", wantErr: "no host or no port"},
		{in: "tcp://:9080", wantErr: "no host or no port"},
		{in: "tcp://localhost:0", wantErr: "1..65535"},
		{in: "tcp://localhost:http", wantErr: "port"},
		{in: "tcp://localhost:9080/health", wantErr: "not a tcp://host:port URL"},
		{in: "tcp:localhost:9080", wantErr: "not a tcp://host:port URL"},
		{in: "file://bin/ls", wantErr: `host "bin": use three slashes`},
		{in: "file:bin/ls", wantErr: "relative path"},
		{in: "file:///", wantErr: "no path"},
		{in: "file:///bin/sh?-c", wantErr: "arguments cannot be given"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseURL(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Check
		wantErr string
	}{
		{name: "empty", in: "", want: nil},
		{name: "only commas", in: " , ,", want: nil},
		{
			name: "amalgam8 example",
			in:   "http://localhost:9080/health,tcp://host:1234,file:///bin/ls",
			want: []Check{
				{Type: TypeHTTP, Value: "http://localhost:9080/health"},
				{Type: TypeTCP, Value: "host:1234"},
				{Type: TypeFile, Value: "/bin/ls"},
			},
		},
		{
			name: "spaces and empty items",
			in:   " https://a:1/x , ,tcp://b:2,",
			want: []Check{{Type: TypeHTTPS, Value: "https://a:1/x"}, {Type: TypeTCP, Value: "b:2"}},
		},
		{name: "bad item is named", in: "http://a/x,gopher://b", wantErr: `item 2 of the health check list: health check URL "gopher://b" has unknown scheme`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseList(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseList(%q) = %+v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseList(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseList(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Check
		want Check
	}{
		{
			name: "http",
			in:   Check{Type: "http", Value: "http://localhost:9080/health"},
			want: Check{Type: "http", Value: "http://localhost:9080/health", Interval: 30 * time.Second, Timeout: 5 * time.Second, Method: "GET", Code: 200},
		},
		{
			name: "https keeps set fields",
			in:   Check{Type: " HTTPS ", Value: "https://a/x", Interval: time.Second, Timeout: 2 * time.Second, Method: "HEAD", Code: 204, CACertFile: "/ca.pem"},
			want: Check{Type: "https", Value: "https://a/x", Interval: time.Second, Timeout: 2 * time.Second, Method: "HEAD", Code: 204, CACertFile: "/ca.pem"},
		},
		{
			name: "tcp URL reduced to host:port",
			in:   Check{Type: "tcp", Value: "tcp://localhost:9080"},
			want: Check{Type: "tcp", Value: "localhost:9080", Interval: 30 * time.Second, Timeout: 5 * time.Second},
		},
		{
			name: "tcp host:port",
			in:   Check{Type: "TCP", Value: "localhost:9080", Timeout: time.Minute},
			want: Check{Type: "tcp", Value: "localhost:9080", Interval: 30 * time.Second, Timeout: time.Minute},
		},
		{
			name: "file keeps code 0 and args",
			in:   Check{Type: "file", Value: "/bin/sh", Args: []string{"-c", "exit 0"}},
			want: Check{Type: "file", Value: "/bin/sh", Args: []string{"-c", "exit 0"}, Interval: 30 * time.Second, Timeout: 5 * time.Second},
		},
		{
			name: "file URL reduced to path",
			in:   Check{Type: "file", Value: "file:///bin/ls", Code: 2},
			want: Check{Type: "file", Value: "/bin/ls", Code: 2, Interval: 30 * time.Second, Timeout: 5 * time.Second},
		},
		{
			name: "negative durations kept for Validate",
			in:   Check{Type: "tcp", Value: "a:1", Interval: -time.Second, Timeout: -time.Second},
			want: Check{Type: "tcp", Value: "a:1", Interval: -time.Second, Timeout: -time.Second},
		},
		{
			name: "unknown type gets only durations",
			in:   Check{Type: "grpc", Value: "x"},
			want: Check{Type: "grpc", Value: "x", Interval: 30 * time.Second, Timeout: 5 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("WithDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	goodPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(goodPEM, testCAPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		c       Check
		wantErr string // "" = valid
	}{
		{name: "http minimal", c: Check{Type: "http", Value: "http://localhost:9080/health"}},
		{name: "https with CA", c: Check{Type: "https", Value: "https://localhost/x", CACertFile: goodPEM}},
		{name: "tcp", c: Check{Type: "tcp", Value: "localhost:9080"}},
		{name: "tcp URL", c: Check{Type: "tcp", Value: "tcp://localhost:9080"}},
		{name: "file", c: Check{Type: "file", Value: "/bin/true"}},
		{name: "file in PATH", c: Check{Type: "file", Value: "true", Code: 255}},
		{name: "timeout above interval", c: Check{Type: "tcp", Value: "a:1", Interval: time.Second, Timeout: time.Minute}},
		{name: "custom method", c: Check{Type: "http", Value: "http://a/x", Method: "PROPFIND", Code: 207}},
		{name: "unused fields ignored", c: Check{Type: "tcp", Value: "a:1", Method: "bad method", Code: 9999, CACertFile: "/nonexistent"}},

		{name: "missing type", c: Check{Value: "http://a/"}, wantErr: "type is missing: set type to http, https, tcp or file"},
		{name: "unknown type", c: Check{Type: "grpc", Value: "a:1"}, wantErr: `type "grpc" is unknown: use http, https, tcp or file`},
		{name: "http missing value", c: Check{Type: "http"}, wantErr: "value is missing: set it to the URL"},
		{name: "tcp missing value", c: Check{Type: "tcp"}, wantErr: "value is missing: set it to the host:port"},
		{name: "file missing value", c: Check{Type: "file", Value: "  "}, wantErr: "value is missing: set it to the path"},
		{name: "http scheme mismatch", c: Check{Type: "http", Value: "https://a/x"}, wantErr: `scheme "https" but the type is http`},
		{name: "http not a URL", c: Check{Type: "http", Value: "localhost:9080/health"}, wantErr: "scheme"},
		{name: "http no host", c: Check{Type: "http", Value: "http:///x"}, wantErr: "no host"},
		{name: "http bad port", c: Check{Type: "http", Value: "http://a:70000/x"}, wantErr: "1..65535"},
		{name: "method not token", c: Check{Type: "http", Value: "http://a/x", Method: "GET /"}, wantErr: `method "GET /" is not an HTTP method token`},
		{name: "http code low", c: Check{Type: "http", Value: "http://a/x", Code: 99}, wantErr: "code 99 is not an HTTP status"},
		{name: "http code high", c: Check{Type: "https", Value: "https://a/x", Code: 600}, wantErr: "code 600 is not an HTTP status"},
		{name: "ca file missing", c: Check{Type: "https", Value: "https://a/x", CACertFile: filepath.Join(dir, "nope.pem")}, wantErr: "ca_cert_file: open"},
		{name: "ca file not PEM", c: Check{Type: "https", Value: "https://a/x", CACertFile: notPEM}, wantErr: "holds no PEM certificate"},
		{name: "negative interval", c: Check{Type: "tcp", Value: "a:1", Interval: -time.Second}, wantErr: "interval -1s is not positive"},
		{name: "negative timeout", c: Check{Type: "tcp", Value: "a:1", Timeout: -time.Millisecond}, wantErr: "timeout -1ms is not positive"},
		{name: "tcp no port", c: Check{Type: "tcp", Value: "localhost"}, wantErr: "not host:port"},
		{name: "tcp no host", c: Check{Type: "tcp", Value: ":9080"}, wantErr: "has no host"},
		{name: "tcp port zero", c: Check{Type: "tcp", Value: "a:0"}, wantErr: "1..65535"},
		{name: "tcp named port", c: Check{Type: "tcp", Value: "a:http"}, wantErr: "not a number"},
		{name: "tcp bad URL", c: Check{Type: "tcp", Value: "tcp://a:1/path"}, wantErr: "not a tcp://host:port URL"},
		{name: "file code negative", c: Check{Type: "file", Value: "/bin/true", Code: -1}, wantErr: "code -1 is not an exit status"},
		{name: "file code high", c: Check{Type: "file", Value: "/bin/true", Code: 256}, wantErr: "code 256 is not an exit status"},
		{name: "file NUL", c: Check{Type: "file", Value: "/bin/tr\x00ue"}, wantErr: "NUL"},
		{name: "file bad URL", c: Check{Type: "file", Value: "file://bin/ls"}, wantErr: "three slashes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v, want nil", tt.c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate(%+v) = %v, want error containing %q", tt.c, err, tt.wantErr)
			}
		})
	}
}

func TestValidateWrapsFileError(t *testing.T) {
	err := Check{Type: "https", Value: "https://a/x", CACertFile: filepath.Join(t.TempDir(), "missing.pem")}.Validate()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Validate error %v does not wrap fs.ErrNotExist", err)
	}
}

func TestCheckString(t *testing.T) {
	tests := []struct {
		c    Check
		want string
	}{
		{Check{Type: "http", Value: "http://localhost:9080/health"}, "GET http://localhost:9080/health"},
		{Check{Type: "https", Value: "https://u:secret@a/x", Method: "HEAD"}, "HEAD https://u:xxxxx@a/x"},
		{Check{Type: "tcp", Value: "a:1"}, "tcp a:1"},
		{Check{Type: "file", Value: "/bin/sh", Args: []string{"-c", "exit 3"}}, "file /bin/sh -c exit 3"},
		{Check{Value: "x"}, "(no type) x"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}
