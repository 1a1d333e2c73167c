package file_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/catalog/file"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
)

const weather = `{"instances": [
  {"service_name": "weather", "endpoint": {"type": "https", "value": "api.weather.example:443"}, "tags": ["version=v1", "external"], "metadata": {"owner": "ops"}},
  {"service_name": "weather", "endpoint": {"type": "http", "value": "10.9.0.2:80"}, "tags": ["version=v2"], "status": "out_of_service", "ttl": 5}
]}`

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// write writes a namespace file with a given modification time.
func write(t *testing.T, dir, ns, content string, mod time.Time) {
	t.Helper()
	p := filepath.Join(dir, ns+".json")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func newCatalog(t *testing.T, dir string) (*file.Catalog, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	c, err := file.New(file.Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return c, &logs
}

func endpoints(c catalog.Catalog, ns string) string {
	var out []string
	for _, in := range c.Snapshot().Tenant(ns).Instances {
		out = append(out, in.Endpoint.Value)
	}
	return strings.Join(out, ",")
}

func TestFile_Load(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "default", weather, epoch)
	write(t, dir, "team-b", `{"instances": [{"service_name": "db", "endpoint": {"type": "tcp", "value": "10.8.0.1:5432"}}]}`, epoch)
	write(t, dir, ".hidden", `not even json`, epoch)
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a namespace"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := newCatalog(t, dir)
	c.Check(false)
	if st := c.Status(); !st.OK || st.Instances != 3 {
		t.Fatalf("status = %+v", st)
	}
	got := c.Snapshot().Tenant("default").Instances
	if len(got) != 2 {
		t.Fatalf("default: %+v", got)
	}
	byValue := map[string]store.Instance{}
	for _, in := range got {
		byValue[in.Endpoint.Value] = in
	}
	v1, v2 := byValue["api.weather.example:443"], byValue["10.9.0.2:80"]
	if v1.ID != registry.InstanceID("weather", "https", "api.weather.example:443") || v1.Status != "UP" || v1.TTL != 0 ||
		strings.Join(v1.Tags, ",") != "version=v1,external" || string(v1.Metadata) != `{"owner":"ops"}` || v1.Endpoint.Type != "https" {
		t.Fatalf("v1 = %+v", v1)
	}
	if v2.Status != "OUT_OF_SERVICE" || v2.TTL != 0 {
		t.Fatalf("v2 = %+v: status upper-cased as the registry does, and no lease", v2)
	}
	if endpoints(c, "team-b") != "10.8.0.1:5432" {
		t.Fatalf("team-b: %s", endpoints(c, "team-b"))
	}
	if ns := c.Snapshot().Namespaces(); strings.Join(ns, ",") != "default,team-b" {
		t.Fatalf("namespaces = %v", ns)
	}
}

func TestFile_Changes(t *testing.T) {
	dir := t.TempDir()
	one := `{"instances": [{"service_name": "s", "endpoint": {"type": "http", "value": "10.0.0.1:80"}}]}`
	two := `{"instances": [{"service_name": "s", "endpoint": {"type": "http", "value": "10.0.0.2:80"}}]}` // same size
	write(t, dir, "default", one, epoch)
	c, logs := newCatalog(t, dir)
	c.Check(false)
	gen := c.Snapshot().Tenant("default").Generation

	// Same size and time: the quick check cannot see it, the full one does.
	write(t, dir, "default", two, epoch)
	c.Check(false)
	if endpoints(c, "default") != "10.0.0.1:80" {
		t.Fatalf("quick check read an unchanged-looking file: %s", endpoints(c, "default"))
	}
	c.Check(true)
	if endpoints(c, "default") != "10.0.0.2:80" || c.Snapshot().Tenant("default").Generation != gen+1 {
		t.Fatalf("full check: %s gen %d", endpoints(c, "default"), c.Snapshot().Tenant("default").Generation)
	}
	// A new time is seen by the quick check.
	write(t, dir, "default", one, epoch.Add(time.Second))
	c.Check(false)
	if endpoints(c, "default") != "10.0.0.1:80" {
		t.Fatalf("new mtime not seen: %s", endpoints(c, "default"))
	}
	// Touching the file without changing it is no change.
	gen = c.Snapshot().Tenant("default").Generation
	write(t, dir, "default", one, epoch.Add(2*time.Second))
	c.Check(false)
	if g := c.Snapshot().Tenant("default").Generation; g != gen {
		t.Fatalf("touch moved the generation %d → %d", gen, g)
	}

	// Broken versions keep the last good content and say why, in the status and the log.
	broken := []struct {
		name, content, want string
	}{
		{"not JSON", `{"instances": [`, "default.json"},
		{"unknown field", `{"instances": [{"service": "s", "endpoint": {"type": "http", "value": "10.0.0.3:80"}}]}`, "instances[0].service: unknown field; known fields here: endpoint, metadata"},
		{"invalid entry", `{"instances": [{"service_name": "s", "endpoint": {"type": "smtp", "value": "10.0.0.3:80"}}]}`, `instances[0].endpoint.type: "smtp" is not one of`},
		{"no endpoint", `{"instances": [{"service_name": "s"}]}`, `instances[0].endpoint: required`},
		{"duplicate", `{"instances": [{"service_name": "s", "endpoint": {"type": "http", "value": "10.0.0.3:80"}}, {"service_name": "s", "endpoint": {"type": "http", "value": "10.0.0.3:80"}}]}`, "instances[0] and instances[1] are the same instance"},
	}
	for i, tc := range broken {
		t.Run(tc.name, func(t *testing.T) {
			write(t, dir, "default", tc.content, epoch.Add(time.Duration(10+i)*time.Second))
			c.Check(false)
			st := c.Status()
			if st.OK || !strings.Contains(st.Detail, "namespace default: ") || !strings.Contains(st.Detail, tc.want) || !strings.Contains(st.Detail, "keeping its content of") {
				t.Fatalf("status = %+v; want the reason %q", st, tc.want)
			}
			if endpoints(c, "default") != "10.0.0.1:80" {
				t.Fatalf("broken file changed the content: %s", endpoints(c, "default"))
			}
			if !strings.Contains(logs.String(), "keeping its last good content") {
				t.Fatalf("log: %s", logs.String())
			}
		})
	}
	// Fixed: in use again, and OK.
	write(t, dir, "default", two, epoch.Add(time.Minute))
	c.Check(false)
	if st := c.Status(); !st.OK || endpoints(c, "default") != "10.0.0.2:80" {
		t.Fatalf("after the fix: %+v %s", st, endpoints(c, "default"))
	}
	// Removed: the namespace is emptied.
	if err := os.Remove(filepath.Join(dir, "default.json")); err != nil {
		t.Fatal(err)
	}
	c.Check(false)
	if endpoints(c, "default") != "" || !c.Status().OK {
		t.Fatalf("after removal: %s %+v", endpoints(c, "default"), c.Status())
	}
}

// A directory that cannot be listed keeps the content and says so.
func TestFile_DirectoryAway(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "catalog")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "default", weather, epoch)
	c, _ := newCatalog(t, dir)
	c.Check(false)
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	c.Check(false)
	if st := c.Status(); st.OK || !strings.Contains(st.Detail, "cannot list the directory") || st.Instances != 2 {
		t.Fatalf("status = %+v", st)
	}
	if err := os.Rename(dir+".moved", dir); err != nil {
		t.Fatal(err)
	}
	c.Check(false)
	if st := c.Status(); !st.OK || st.Instances != 2 {
		t.Fatalf("status back = %+v", st)
	}
}

func TestFile_NeedsDir(t *testing.T) {
	if _, err := file.New(file.Config{}); err == nil || !strings.Contains(err.Error(), "--fs_catalog") {
		t.Fatalf("New without a directory = %v", err)
	}
}

// Run follows the directory: a change shows in the merged store and wakes its watchers within the
// check interval.
func TestFile_RunWakesWatchers(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "default", `{"instances": []}`, epoch)
	c, err := file.New(file.Config{Dir: dir, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	s := catalog.Merge(memory.NewInstances(nil), c)
	deadline := time.Now().Add(5 * time.Second)
	for !c.Status().OK {
		if time.Now().After(deadline) {
			t.Fatal("the catalog never synced")
		}
		time.Sleep(5 * time.Millisecond)
	}
	l, err := s.List(ctx, "default", "")
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan uint64, 1)
	go func() {
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		idx, _ := s.Wait(wctx, "default", l.Index)
		woke <- idx
	}()
	write(t, dir, "default", weather, epoch.Add(time.Second))
	if idx := <-woke; idx == l.Index {
		t.Fatal("the watcher was not woken by the file change")
	}
	if l, _ := s.List(ctx, "default", "weather"); len(l.Instances) != 2 {
		t.Fatalf("merged list: %+v", l.Instances)
	}
}
