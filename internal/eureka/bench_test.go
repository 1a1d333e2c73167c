package eureka_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/a8fabric/a8/internal/eureka"
	"github.com/a8fabric/a8/internal/store/memory"
)

var changes atomic.Int64

// discard is a ResponseWriter that counts what is written.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

// BenchmarkGetApps serves GET apps of a namespace of 1,000 Eureka-registered instances (in 50
// apps), in the handler, without the network. "cached": the registry did not change since the last
// answer, the common case of clients polling every 30 s. "changed": one instance changes before
// every request, so each answer lists, diffs and renders again.
//
//	go test -run '^$' -bench GetApps -benchmem ./internal/eureka/
func BenchmarkGetApps(b *testing.B) {
	const n = 1000
	s, err := eureka.New(eureka.Config{Store: memory.NewInstances(nil)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	register := func(i, port int) {
		app := fmt.Sprintf("APP%02d", i%50)
		body := instanceJSON(app, fmt.Sprintf("%s-%d", strings.ToLower(app), i), fmt.Sprintf("10.0.%d.%d", i/250, i%250), port,
			`"metadata":{"amalgam8.tags":"version=v1","zone":"us-east-1a"}`,
			`"homePageUrl":"http://host/","statusPageUrl":"http://host/info","healthCheckUrl":"http://host/health"`)
		req := httptest.NewRequest("POST", "/eureka/v2/apps/"+app, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := &discard{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.code != http.StatusNoContent {
			b.Fatalf("register: %d", w.code)
		}
	}
	for i := range n {
		register(i, 8080)
	}
	get := func(b *testing.B, accept, encoding string) int {
		req := httptest.NewRequest("GET", "/eureka/v2/apps/", nil)
		req.Header.Set("Accept", accept)
		if encoding != "" {
			req.Header.Set("Accept-Encoding", encoding)
		}
		w := &discard{h: http.Header{}}
		s.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("GET apps: %d", w.code)
		}
		return w.n
	}
	for _, tc := range []struct{ name, accept, encoding string }{
		{"json", "application/json", ""},
		{"xml", "application/xml", ""},
		{"json+gzip", "application/json", "gzip"},
	} {
		b.Run("cached/"+tc.name, func(b *testing.B) {
			size := get(b, tc.accept, tc.encoding)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				get(b, tc.accept, tc.encoding)
			}
		})
		b.Run("changed/"+tc.name, func(b *testing.B) {
			size := get(b, tc.accept, tc.encoding)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				c := int(changes.Add(1))
				register(c%n, 10000+c%50000) // a new port: a MODIFIED instance
				b.StartTimer()
				get(b, tc.accept, tc.encoding)
			}
		})
	}
}

// BenchmarkEncodeApplications is the rendering alone: 1,000 instances to JSON and XML.
func BenchmarkEncodeApplications(b *testing.B) {
	apps := &eureka.Applications{VersionsDelta: 1, AppsHashcode: "UP_1000_"}
	for a := range 50 {
		app := &eureka.Application{Name: fmt.Sprintf("APP%02d", a)}
		for i := range 20 {
			in := goldenInstance()
			in.InstanceID = fmt.Sprintf("app%02d-%d", a, i)
			in.App = app.Name
			in.ActionType = ""
			app.Instances = append(app.Instances, in)
		}
		apps.Applications = append(apps.Applications, app)
	}
	for _, asJSON := range []bool{true, false} {
		name := map[bool]string{true: "json", false: "xml"}[asJSON]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(eureka.EncodeApplications(apps, asJSON))))
			b.ReportAllocs()
			for range b.N {
				eureka.EncodeApplications(apps, asJSON)
			}
		})
	}
}
