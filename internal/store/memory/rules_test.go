package memory_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/store/storetest"
)

func TestRules_Conformance(t *testing.T) {
	t.Run("persisted", func(t *testing.T) {
		storetest.TestRules(t, func(t *testing.T) store.Rules {
			s, err := memory.NewRules(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
	t.Run("in memory only", func(t *testing.T) {
		storetest.TestRules(t, func(t *testing.T) store.Rules {
			s, _ := memory.NewRules("")
			return s
		})
	})
}

// A store reopened on the same directory has every rule and revision of every tenant.
func TestRules_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := memory.NewRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(id string) api.Rule {
		return api.Rule{ID: id, Destination: "reviews", Route: &api.Route{Backends: []api.Backend{{Tags: []string{"version=v1"}}}}}
	}
	for _, ns := range []string{"default", "../escape", strings.Repeat("long", 100)} {
		if _, err := s.Change(ctx, ns, store.RuleChange{Put: []api.Rule{rule("a"), rule("b")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Change(ctx, ns, store.RuleChange{Delete: func(r *api.Rule) bool { return r.ID == "a" }}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// A write a crash interrupted leaves a temporary file; it was never acknowledged.
	if err := os.WriteFile(filepath.Join(dir, ".rules-123.tmp"), []byte("{half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := memory.NewRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "../escape", strings.Repeat("long", 100)} {
		rs, _ := s2.Get(ctx, ns)
		if len(rs.Rules) != 1 || rs.Rules[0].ID != "b" || rs.Revision != 2 {
			t.Fatalf("tenant %.20q after reopening: %+v", ns, rs)
		}
		if rev, _ := s2.Wait(ctx, ns, 0); rev != 2 {
			t.Fatalf("watch index after reopening = %d, want 2", rev)
		}
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".rules-*.tmp")); len(tmps) != 0 {
		t.Fatalf("leftover temporary files: %v", tmps)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	for _, e := range entries {
		if strings.Contains(e.Name(), "escape") {
			t.Fatalf("a namespace name reached outside the data directory: %s", e.Name())
		}
	}
}

func TestRules_DamagedFileStopsStartup(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules-0123.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := memory.NewRules(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("NewRules on a damaged file = %v", err)
	}
}

// A change that cannot be written is refused and leaves the rules as they were.
func TestRules_WriteFailureChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, _ := memory.NewRules(dir)
	ctx := context.Background()
	// The data directory disappears under the store (a lost mount, say); even root cannot write.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.Change(ctx, "ns", store.RuleChange{Put: []api.Rule{{ID: "a", Destination: "x"}}})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Change without a data directory = %v, want ErrUnavailable", err)
	}
	if rs, _ := s.Get(ctx, "ns"); len(rs.Rules) != 0 || rs.Revision != 0 {
		t.Fatalf("a failed write changed the rules: %+v", rs)
	}
}

// Two stores on one data directory would overwrite each other's files: the second is refused.
func TestRules_DataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := memory.NewRules(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := memory.NewRules(dir); err == nil || !strings.Contains(err.Error(), "in use by another a8 process") {
		t.Fatalf("second store on %s: %v", dir, err)
	}
	s.Close()
	s2, err := memory.NewRules(dir)
	if err != nil {
		t.Fatalf("reopening after Close: %v", err)
	}
	s2.Close()
}
