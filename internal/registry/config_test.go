package registry

import (
	"net/url"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/store/memory"
)

func TestConfig_WaitBounds(t *testing.T) {
	c := Config{Store: memory.NewInstances(nil)}
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		wait string
		want time.Duration
	}{{"", 30 * time.Second}, {"10s", 10 * time.Second}, {"90", 90 * time.Second}, {"1h", 5 * time.Minute}} {
		w, err := httpapi.ParseWatch(url.Values{"index": {"1"}, "wait": {tc.wait}}, c.DefaultWait, c.MaxWait)
		if err != nil || w.Wait != tc.want || !w.Blocking {
			t.Errorf("wait=%q: %+v, %v; want %v", tc.wait, w, err, tc.want)
		}
	}
	for range 1000 { // jitter never takes a wait past the 5 minute cap
		if d := httpapi.Jitter(5*time.Minute, c.MaxWait); d != 5*time.Minute {
			t.Fatalf("jittered(5m) = %v", d)
		}
		if d := httpapi.Jitter(time.Minute, c.MaxWait); d < time.Minute || d > time.Minute+time.Minute/16 {
			t.Fatalf("jittered(1m) = %v", d)
		}
	}
}

func TestConfig_Validation(t *testing.T) {
	for name, c := range map[string]Config{
		"no store":          {},
		"fractional ttl":    {Store: memory.NewInstances(nil), DefaultTTL: 1500 * time.Millisecond},
		"min above max":     {Store: memory.NewInstances(nil), MinTTL: time.Hour},
		"default below min": {Store: memory.NewInstances(nil), DefaultTTL: 5 * time.Second},
		"bad capacity":      {Store: memory.NewInstances(nil), NamespaceCapacity: -2},
	} {
		if err := c.setDefaults(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
