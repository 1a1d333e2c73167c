package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/cli"
	"github.com/a8fabric/a8/internal/netutil"
)

func TestRun_CatalogFlagErrors(t *testing.T) {
	tests := []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{[]string{"registry", "--k8s_namespaces", "shop="}, nil, `--k8s_namespaces "shop="`},
		{[]string{"up", "--k8s_namespaces", "*=x"}, nil, `--k8s_namespaces "*=x"`},
		{[]string{"registry", "--k8s_namespaces", "shop"}, nil, "no --k8s_url given and not running in a pod"},
		{[]string{"registry", "--eureka_url", "eureka:8761"}, nil, `--eureka_url "eureka:8761"`},
		{[]string{"up"}, map[string]string{"A8_EUREKA_URL": "http://a/eureka,ftp://b"}, `--eureka_url "ftp://b"`},
		{[]string{"registry", "--eureka_url", "http://e/eureka", "--eureka_poll", "10ms"}, nil, "--eureka_poll 10ms"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a pod, even if the tests run in one
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			args := append(tc.args, "--api_port", "0")
			if tc.args[0] == "up" {
				args = append(args, "--data_dir", t.TempDir())
			}
			err := run(context.Background(), args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v; want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// a8 up with a file catalog and a remote Eureka: their services show in the registry API, in
// a8ctl service-list and in /uptime; their instances cannot be deleted through the API.
func TestRun_UpWithCatalogs(t *testing.T) {
	dir := t.TempDir()
	catalogDir := filepath.Join(dir, "catalog")
	if err := os.Mkdir(catalogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	external := `{"instances": [{"service_name": "weather", "endpoint": {"type": "https", "value": "api.weather.example:443"}, "tags": ["version=v1"]}]}`
	if err := os.WriteFile(filepath.Join(catalogDir, "default.json"), []byte(external), 0o644); err != nil {
		t.Fatal(err)
	}
	eurekaSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"applications":{"versions__delta":"1","apps__hashcode":"UP_1_","application":[{"name":"RATINGS","instance":{
			"instanceId":"ratings-1","hostName":"ratings-1","app":"RATINGS","ipAddr":"10.3.0.1","status":"UP",
			"port":{"$":9080,"@enabled":"true"},"securePort":{"$":443,"@enabled":"false"},"vipAddress":"ratings",
			"metadata":{"amalgam8.tags":"version=v2"}}}]}}`)
	}))
	defer eurekaSrv.Close()

	port, err := netutil.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"up", "--api_port", fmt.Sprint(port), "--data_dir", dir, "--log_format", "json",
			"--fs_catalog", catalogDir, "--eureka_url", eurekaSrv.URL + "/eureka"}, &out, &out)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run = %v\n%s", err, out.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("a8 up did not stop")
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get("/api/v1/services")
		if code == 200 && strings.Contains(body, "weather") && strings.Contains(body, "ratings") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("services: %d %s\n%s", code, body, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctx, []string{"--registry_url", base, "service-list"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("a8ctl service-list: %d %s", code, stderr.String())
	}
	for _, want := range []string{"weather", "version=v1(1)", "ratings", "version=v2(1)"} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("service-list lacks %q:\n%s", want, stdout.String())
		}
	}

	var up struct {
		UPTIME struct {
			Properties struct {
				Catalogs map[string]struct {
					OK        bool
					Instances int
				}
			}
		}
	}
	_, body := get("/uptime")
	if err := json.Unmarshal([]byte(body), &up); err != nil {
		t.Fatal(err)
	}
	if c := up.UPTIME.Properties.Catalogs; !c["file"].OK || c["file"].Instances != 1 || !c["eureka"].OK || c["eureka"].Instances != 1 {
		t.Fatalf("/uptime: %s", body)
	}

	req, _ := http.NewRequest("DELETE", base+"/api/v1/instances/RATINGS:ratings-1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(data), "belongs to the eureka catalog") {
		t.Fatalf("DELETE a Eureka catalog instance: %d %s", resp.StatusCode, data)
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines may write while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
