// Package file is the file catalog (Amalgam8's --fs_catalog): a directory holding one file per
// namespace, <dir>/<namespace>.json = {"instances": [<registration bodies>]}, each entry as the body
// of POST /api/v1/instances. Entries get the registry's ids and never expire.
//
// Changes are found by polling, with no file-notification dependency: every Interval (1s) the
// directory is listed and each file's size and modification time compared with the last read;
// every FullInterval (30s) every file is read again whatever its metadata says, for edits that
// keep both (a same-size rewrite within the file system's time resolution). A file that cannot be
// read or parsed keeps its last good content in force; the catalog's status and the log say why.
// A file that is removed empties its namespace.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/catalog"
	"github.com/a8fabric/a8/internal/registry"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/strictjson"
)

// MaxFileBytes bounds one namespace file.
const MaxFileBytes = 16 << 20

// Config configures a file catalog.
type Config struct {
	// Dir holds the <namespace>.json files. Required.
	Dir string
	// Interval is how often file sizes and times are checked (default 1s); FullInterval how often
	// every file is read anyway (default 30s).
	Interval, FullInterval time.Duration
	// Logger receives the catalog's logs; nil discards them.
	Logger *slog.Logger
	// Clock is the time source (default time.Now).
	Clock store.Clock
}

// Catalog is the file catalog.
type Catalog struct {
	*catalog.Feed
	cfg Config
	log *slog.Logger

	// Owned by the goroutine that runs Check.
	files  map[string]*fileState // by namespace
	dirErr error                 // why the directory could not be listed last time
}

var _ catalog.Catalog = (*Catalog)(nil)

// fileState is what is known of one namespace file.
type fileState struct {
	size    int64
	modTime time.Time
	good    []store.Instance // the last content that parsed
	goodAt  time.Time
	err     error // why the file's current version is not in use; nil if it is
}

// New returns a file catalog of cfg.Dir. It reads nothing until Run.
func New(cfg Config) (*Catalog, error) {
	if cfg.Dir == "" {
		return nil, errors.New("file catalog: no directory given (--fs_catalog)")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.FullInterval <= 0 {
		cfg.FullInterval = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Catalog{Feed: catalog.NewFeed(cfg.Clock), cfg: cfg, log: cfg.Logger, files: map[string]*fileState{}}, nil
}

// Name implements catalog.Catalog.
func (c *Catalog) Name() string { return "file" }

// Run implements catalog.Catalog.
func (c *Catalog) Run(ctx context.Context) error {
	c.Check(true)
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	lastFull := c.cfg.Clock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		full := c.cfg.Clock().Sub(lastFull) >= c.cfg.FullInterval
		if full {
			lastFull = c.cfg.Clock()
		}
		c.Check(full)
	}
}

// Check looks at the directory once, reading the files that changed (every file if full), and
// publishes the result. Run calls it; tests may too, but not while Run runs.
func (c *Catalog) Check(full bool) {
	entries, err := os.ReadDir(c.cfg.Dir)
	if err != nil {
		// Keep what was read before: a directory briefly away (a remount) should not empty the
		// registry of its external services.
		if c.dirErr == nil || c.dirErr.Error() != err.Error() {
			c.log.Error("file catalog: cannot list the directory; serving the last content read", "dir", c.cfg.Dir, "error", err)
		}
		c.dirErr = err
		c.Failed(fmt.Sprintf("cannot list the directory %s: %v; serving the last content read", c.cfg.Dir, err))
		return
	}
	if c.dirErr != nil {
		c.log.Info("file catalog: directory readable again", "dir", c.cfg.Dir)
		c.dirErr = nil
	}
	seen := map[string]bool{}
	changed := false
	for _, de := range entries {
		name := de.Name()
		if de.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		ns := strings.TrimSuffix(name, ".json")
		if ns == "" {
			continue
		}
		seen[ns] = true
		if c.checkFile(ns, filepath.Join(c.cfg.Dir, name), full) {
			changed = true
		}
	}
	for ns := range c.files {
		if !seen[ns] {
			c.log.Info("file catalog: namespace file removed; its instances are gone", "namespace", ns, "file", filepath.Join(c.cfg.Dir, ns+".json"))
			delete(c.files, ns)
			changed = true
		}
	}
	if changed {
		content := make(map[string][]store.Instance, len(c.files))
		for ns, f := range c.files {
			content[ns] = f.good
		}
		c.Replace(content)
	}
	c.report()
}

// checkFile reads one namespace file if it changed (or full), and reports whether the content to
// publish changed.
func (c *Catalog) checkFile(ns, path string, full bool) bool {
	f := c.files[ns]
	if f == nil {
		f = &fileState{size: -1}
		c.files[ns] = f
	}
	fi, err := os.Stat(path)
	if err != nil {
		c.setErr(f, ns, path, err)
		return false
	}
	if !full && f.err == nil && fi.Size() == f.size && fi.ModTime().Equal(f.modTime) {
		return false
	}
	list, err := read(path)
	f.size, f.modTime = fi.Size(), fi.ModTime()
	if err != nil {
		c.setErr(f, ns, path, err)
		return false
	}
	if f.err != nil {
		c.log.Info("file catalog: file fixed; its content is in use again", "namespace", ns, "file", path)
	}
	f.err = nil
	same := slices.EqualFunc(list, f.good, func(a, b store.Instance) bool { return a.Equal(&b) })
	if !same || f.goodAt.IsZero() {
		c.log.Info("file catalog: loaded", "namespace", ns, "file", path, "instances", len(list))
	}
	f.good, f.goodAt = list, c.cfg.Clock()
	return !same
}

// setErr records why a file's current version is not in use, logging it once per distinct error.
func (c *Catalog) setErr(f *fileState, ns, path string, err error) {
	if f.err == nil || f.err.Error() != err.Error() {
		if f.goodAt.IsZero() {
			c.log.Error("file catalog: file not usable; the namespace has no file instances until it is fixed", "namespace", ns, "file", path, "error", err)
		} else {
			c.log.Error("file catalog: file not usable; keeping its last good content", "namespace", ns, "file", path, "error", err, "last_good", f.goodAt)
		}
	}
	f.err = err
}

// report sets the status from the files' states: not OK while any file is not in use, naming it.
func (c *Catalog) report() {
	var problems []string
	for ns, f := range c.files {
		if f.err == nil {
			continue
		}
		kept := "no content yet"
		if !f.goodAt.IsZero() {
			kept = fmt.Sprintf("keeping its content of %s (%d instances)", f.goodAt.UTC().Format(time.RFC3339), len(f.good))
		}
		problems = append(problems, fmt.Sprintf("namespace %s: %v; %s", ns, f.err, kept))
	}
	if len(problems) == 0 {
		c.Synced()
		return
	}
	slices.Sort(problems)
	c.Failed(strings.Join(problems, "; "))
}

// document is a namespace file.
type document struct {
	Instances []api.InstanceRegistration `json:"instances"`
}

// read parses and validates one namespace file.
func read(path string) ([]store.Instance, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB; split the instances or trim metadata", path, MaxFileBytes>>20)
	}
	var doc document
	if err := strictjson.Unmarshal(data, &doc, ""); err != nil {
		return nil, fmt.Errorf("%s: %w (want {\"instances\": [registration bodies as for POST /api/v1/instances]})", path, err)
	}
	list := make([]store.Instance, 0, len(doc.Instances))
	first := map[string]int{}
	for i := range doc.Instances {
		in, err := registry.CatalogInstance(&doc.Instances[i])
		if err != nil {
			return nil, fmt.Errorf("%s: instances[%d].%w", path, i, err)
		}
		if j, dup := first[in.ID]; dup {
			return nil, fmt.Errorf("%s: instances[%d] and instances[%d] are the same instance (service_name %q, endpoint %s %s): remove one",
				path, j, i, in.ServiceName, in.Endpoint.Type, in.Endpoint.Value)
		}
		first[in.ID] = i
		list = append(list, in)
	}
	slices.SortFunc(list, func(a, b store.Instance) int {
		if a.ServiceName != b.ServiceName {
			return strings.Compare(a.ServiceName, b.ServiceName)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list, nil
}
