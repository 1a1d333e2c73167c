package health

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testMux serves the endpoints the Run tests request.
func testMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/head-only", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 32<<10))
		for range 64 { // 2 MiB, more than Run drains
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done(): // the client gave up
		case <-time.After(10 * time.Second):
		}
	})
	return mux
}

// writeCertPEM writes the TLS test server's certificate to a PEM file and returns its path.
func writeCertPEM(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testCAPEM returns a PEM certificate, for the Validate tests.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// closedAddr returns a 127.0.0.1 address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// listen returns a 127.0.0.1 listener that accepts and closes connections until the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln
}

func TestRun(t *testing.T) {
	srv := httptest.NewServer(testMux())
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewTLSServer(testMux())
	t.Cleanup(tlsSrv.Close)
	caFile := writeCertPEM(t, tlsSrv)
	ln := listen(t)
	refused := closedAddr(t)

	tests := []struct {
		name        string
		c           Check
		wantHealthy bool
		wantErr     string        // substring of Result.Err when unhealthy
		maxDuration time.Duration // 0 = 3s
	}{
		// http
		{name: "http ok", c: Check{Type: TypeHTTP, Value: srv.URL + "/ok"}, wantHealthy: true},
		{name: "http big body drained", c: Check{Type: TypeHTTP, Value: srv.URL + "/big"}, wantHealthy: true},
		{name: "http wrong status", c: Check{Type: TypeHTTP, Value: srv.URL + "/fail"},
			wantErr: "GET " + srv.URL + "/fail: status 503, want 200"},
		{name: "http expected non-200 code", c: Check{Type: TypeHTTP, Value: srv.URL + "/fail", Code: 503}, wantHealthy: true},
		{name: "http custom method and code", c: Check{Type: TypeHTTP, Value: srv.URL + "/head-only", Method: "HEAD", Code: 204}, wantHealthy: true},
		{name: "http default method is GET", c: Check{Type: TypeHTTP, Value: srv.URL + "/head-only", Code: 204},
			wantErr: "status 405, want 204"},
		{name: "http redirect not followed", c: Check{Type: TypeHTTP, Value: srv.URL + "/redirect"},
			wantErr: "status 302, want 200"},
		{name: "http redirect expected", c: Check{Type: TypeHTTP, Value: srv.URL + "/redirect", Code: 302}, wantHealthy: true},
		{name: "http connection refused", c: Check{Type: TypeHTTP, Value: "http://" + refused + "/ok"},
			wantErr: "connection refused"},
		{name: "http slow server times out", c: Check{Type: TypeHTTP, Value: srv.URL + "/slow", Timeout: 200 * time.Millisecond},
			wantErr: "GET " + srv.URL + "/slow: no response within the 200ms timeout"},
		// https
		{name: "https with CA file", c: Check{Type: TypeHTTPS, Value: tlsSrv.URL + "/ok", CACertFile: caFile}, wantHealthy: true},
		{name: "https wrong status", c: Check{Type: TypeHTTPS, Value: tlsSrv.URL + "/fail", CACertFile: caFile},
			wantErr: "status 503, want 200"},
		{name: "https without CA file", c: Check{Type: TypeHTTPS, Value: tlsSrv.URL + "/ok"},
			wantErr: "certificate"},
		{name: "https CA file unreadable", c: Check{Type: TypeHTTPS, Value: tlsSrv.URL + "/ok", CACertFile: filepath.Join(t.TempDir(), "none.pem")},
			wantErr: "ca_cert_file"},
		// tcp
		{name: "tcp ok", c: Check{Type: TypeTCP, Value: ln.Addr().String()}, wantHealthy: true},
		{name: "tcp URL value", c: Check{Type: TypeTCP, Value: "tcp://" + ln.Addr().String()}, wantHealthy: true},
		{name: "tcp connection refused", c: Check{Type: TypeTCP, Value: refused},
			wantErr: "tcp " + refused + ": connect: connection refused"},
		// file
		{name: "file true", c: Check{Type: TypeFile, Value: "/bin/true"}, wantHealthy: true},
		{name: "file false", c: Check{Type: TypeFile, Value: "/bin/false"}, wantErr: "file /bin/false: exit status 1, want 0"},
		{name: "file exit 3 unexpected", c: Check{Type: TypeFile, Value: "/bin/sh", Args: []string{"-c", "exit 3"}},
			wantErr: "file /bin/sh -c exit 3: exit status 3, want 0"},
		{name: "file exit 3 expected", c: Check{Type: TypeFile, Value: "/bin/sh", Args: []string{"-c", "exit 3"}, Code: 3}, wantHealthy: true},
		{name: "file expected 3 got 0", c: Check{Type: TypeFile, Value: "/bin/true", Code: 3}, wantErr: "exit status 0, want 3"},
		{name: "file output in error", c: Check{Type: TypeFile, Value: "/bin/sh", Args: []string{"-c", "echo 'db is\n down' >&2; exit 2"}},
			wantErr: "exit status 2, want 0; output: db is down"},
		{name: "file killed by signal", c: Check{Type: TypeFile, Value: "/bin/sh", Args: []string{"-c", "kill -9 $$"}},
			wantErr: "killed by signal killed"},
		{name: "file not found", c: Check{Type: TypeFile, Value: "/nonexistent/health-check"}, wantErr: "no such file"},
		{name: "file URL value", c: Check{Type: TypeFile, Value: "file:///bin/true"}, wantHealthy: true},
		{name: "file slow command killed", c: Check{Type: TypeFile, Value: "/bin/sleep", Args: []string{"10"}, Timeout: 200 * time.Millisecond},
			wantErr: "file /bin/sleep 10: still running within the 200ms timeout; killed its process group"},
		// invalid
		{name: "invalid check", c: Check{Type: "grpc", Value: "x"}, wantErr: `type "grpc" is unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now()
			r := Run(context.Background(), tt.c)
			elapsed := time.Since(before)
			if r.Healthy != tt.wantHealthy {
				t.Fatalf("Run(%+v) healthy = %v (err %q), want %v", tt.c, r.Healthy, r.Err, tt.wantHealthy)
			}
			if tt.wantHealthy && r.Err != "" {
				t.Errorf("healthy result has Err %q", r.Err)
			}
			if !tt.wantHealthy && !strings.Contains(r.Err, tt.wantErr) {
				t.Errorf("Err = %q, want it to contain %q", r.Err, tt.wantErr)
			}
			limit := tt.maxDuration
			if limit == 0 {
				limit = 3 * time.Second
			}
			if elapsed > limit {
				t.Errorf("Run took %s, want at most %s", elapsed, limit)
			}
			if r.At.Before(before) || r.At.After(before.Add(elapsed)) {
				t.Errorf("At = %s, want within the run (%s + %s)", r.At, before, elapsed)
			}
			if r.Duration < 0 || r.Duration > elapsed {
				t.Errorf("Duration = %s, want 0..%s", r.Duration, elapsed)
			}
			if want := tt.c.WithDefaults(); r.Check.Type != want.Type || r.Check.Value != want.Value || r.Check.Timeout != want.Timeout || r.Check.Code != want.Code {
				t.Errorf("Result.Check = %+v, want the check with defaults %+v", r.Check, want)
			}
		})
	}
}

// TestRunKillsProcessGroup checks that a command still running at the timeout is killed with the
// children it started.
func TestRunKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	c := Check{
		Type:    TypeFile,
		Value:   "/bin/sh",
		Args:    []string{"-c", `/bin/sleep 10 & echo $! > "$0"; wait`, pidFile},
		Timeout: 300 * time.Millisecond,
	}
	r := Run(context.Background(), c)
	if r.Healthy || !strings.Contains(r.Err, "killed its process group") {
		t.Fatalf("Run = healthy %v, err %q; want killed at the timeout", r.Healthy, r.Err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %q: %v", data, err)
	}
	waitFor(t, 5*time.Second, "the background child to be killed", func() bool { return !processAlive(pid) })
}

// processAlive reports whether pid runs (a zombie, killed but not yet reaped, does not count).
func processAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := Run(ctx, Check{Type: TypeFile, Value: "/bin/sleep", Args: []string{"10"}})
	if r.Healthy || !strings.Contains(r.Err, "still running when the check was cancelled") {
		t.Fatalf("Run = healthy %v, err %q; want killed on cancellation", r.Healthy, r.Err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Run took %s after cancellation", d)
	}
}
