package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/a8fabric/a8/api"
)

// ErrExists means a record with that id is already stored.
var ErrExists = errors.New("already exists")

// Recipe is a resilience recipe the controller is running: its request as posted (topology,
// scenarios, header and pattern, as JSON) and the ids of the action rules it created.
type Recipe struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Spec    json.RawMessage `json:"spec"`
	RuleIDs []string        `json:"rule_ids"`
}

// RecordCounts describes the records kept under one trace value.
type RecordCounts struct {
	Records  int // records kept (at most the store's per-trace bound)
	Dropped  int // records dropped because a bound was reached (MaxRecords; MaxBytes in memory)
	InFlight int // requests started (RecordStart) whose Record has not arrived
	// Changes rises by one for every batch (AppendRecords) that added something new under the
	// trace value: a record whose id was not kept yet, or a start of a request neither in flight nor
	// recorded. A batch that only repeats what is kept (a sidecar resending a batch after a
	// timeout) changes nothing, Changes included. Checks wait until it stops rising and nothing is
	// in flight.
	Changes int64
}

// Recipes stores resilience recipes and the request records of traced requests, per namespace.
//
// Recipes are kept until DeleteRecipe: their fault rules live in the rules store until the recipe
// is deleted, so a recipe never expires while it runs. A namespace holds at most the store's
// MaxRecipes; creating one more fails with ErrCapacity.
//
// Records are grouped by their trace value (a recipe's id); a group expires when nothing was added
// to it for the store's retention period, and holds at most the store's per-trace bound of records
// (the oldest are dropped first). Appending is idempotent per record id within a group: a record
// whose id the group keeps already is skipped, so a resent batch is stored once. A group remembers
// the ids of the records it keeps, and may forget an id once its record was dropped by a bound.
type Recipes interface {
	// CreateRecipe stores a new recipe; ErrExists if its id is taken, else ErrCapacity (with how
	// many are running) if the namespace holds MaxRecipes recipes already.
	CreateRecipe(ctx context.Context, ns string, r Recipe) error
	// Recipe returns a recipe; ErrNotFound if there is none with that id.
	Recipe(ctx context.Context, ns, id string) (Recipe, error)
	// ListRecipes returns the namespace's recipes, oldest first.
	ListRecipes(ctx context.Context, ns string) ([]Recipe, error)
	// DeleteRecipe removes a recipe and the records of its id; ErrNotFound if there was neither.
	DeleteRecipe(ctx context.Context, ns, id string) error

	// AppendRecords adds a sidecar's batch: each start marks a request in flight under its trace
	// value, each record is kept under its trace value and ends the request of the same id. Starts
	// and records without a trace value are ignored. A record whose id the group keeps already (or
	// that came earlier in the same batch) is skipped; a start whose record the group keeps already
	// does not go in flight. A group the batch adds nothing new to is left as it was: its Changes
	// does not rise and its retention is not renewed.
	AppendRecords(ctx context.Context, ns string, b api.RecordBatch) error
	// Records returns the records kept under a trace value, oldest first (by arrival), and its
	// counts. An unknown trace value has no records and zero counts, without error.
	Records(ctx context.Context, ns, trace string) ([]api.Record, RecordCounts, error)
	// Counts returns the counts alone, cheaply: checks poll it while they wait.
	Counts(ctx context.Context, ns, trace string) (RecordCounts, error)

	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// RecipesOptions bound what a Recipes store keeps.
type RecipesOptions struct {
	// MaxRecords is the most records kept per trace value (default 100,000).
	MaxRecords int
	// Retention is how long the records of a trace value are kept after the last batch that added
	// something to them (default 24h). Recipes do not expire: they are kept until deleted.
	Retention time.Duration
	// MaxRecipes is the most recipes a namespace holds at once (default 1,000).
	MaxRecipes int
	// MaxBytes is an approximate budget of the memory the records (and in-flight starts) of a
	// namespace may take, in bytes (default 256 MiB). Only the memory store enforces it (see
	// memory.Recipes); in Redis, Redis's own maxmemory governs.
	MaxBytes int64
}

// WithDefaults fills unset options.
func (o RecipesOptions) WithDefaults() RecipesOptions {
	if o.MaxRecords <= 0 {
		o.MaxRecords = 100_000
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.MaxRecipes <= 0 {
		o.MaxRecipes = 1000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	return o
}

// SortRecipes puts recipes in the order ListRecipes returns them: oldest first by Created, then
// by id.
func SortRecipes(rs []Recipe) {
	slices.SortFunc(rs, func(a, b Recipe) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// RecipeCapacityError is the error of a CreateRecipe of id refused because the namespace holds
// running recipes already, as many as MaxRecipes allows: it wraps ErrCapacity and says to delete
// some.
func RecipeCapacityError(id string, running int) error {
	return fmt.Errorf("create recipe %q: %d recipes are running in this namespace, the most it may hold; "+
		"delete some before creating another: %w", id, running, ErrCapacity)
}
