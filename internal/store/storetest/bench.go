package storetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a8fabric/a8/internal/store"
)

// BenchmarkInstances runs the store.Instances benchmarks against the stores newStore returns.
func BenchmarkInstances(b *testing.B, newStore func(b *testing.B) store.Instances) {
	ctx := context.Background()
	inst := func(i int) store.Instance {
		return store.Instance{
			ID: fmt.Sprintf("%016x", i), ServiceName: fmt.Sprintf("svc%d", i%100),
			Endpoint: store.Endpoint{Type: "http", Value: fmt.Sprintf("10.%d.%d.%d:9080", i>>16&255, i>>8&255, i&255)},
			Status:   "UP", Tags: []string{"version=v1"}, Metadata: []byte(`{"zone":"a"}`), TTL: time.Minute,
		}
	}
	b.Run("Register", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Register(ctx, "bench", inst(int(n.Add(1))), -1); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("Renew", func(b *testing.B) {
		s := newStore(b)
		const n = 10000
		for i := range n {
			if _, err := s.Register(ctx, "bench", inst(i), -1); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		var k atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Renew(ctx, "bench", inst(int(k.Add(1)%n)).ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("ListService1000", func(b *testing.B) {
		s := newStore(b)
		// One service of 1,000 instances in a tenant of 10,000.
		for i := range 10000 {
			in := inst(i)
			if i < 1000 {
				in.ServiceName = "big"
			}
			if _, err := s.Register(ctx, "bench", in, -1); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			l, err := s.List(ctx, "bench", "big")
			if err != nil || len(l.Instances) != 1000 {
				b.Fatalf("List = %d, %v", len(l.Instances), err)
			}
		}
	})
}
