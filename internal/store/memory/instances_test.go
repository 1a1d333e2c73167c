package memory_test

import (
	"testing"

	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/internal/store/memory"
	"github.com/a8fabric/a8/internal/store/storetest"
)

func TestInstances_Conformance(t *testing.T) {
	storetest.TestInstances(t, func(t *testing.T, clock store.Clock) store.Instances {
		return memory.NewInstances(clock)
	})
}

func BenchmarkInstances(b *testing.B) {
	storetest.BenchmarkInstances(b, func(*testing.B) store.Instances { return memory.NewInstances(nil) })
}
