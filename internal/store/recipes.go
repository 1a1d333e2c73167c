package store

import (
	"context"
	"encoding/json"
	"errors"
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
	Dropped  int // records dropped because the bound was reached
	InFlight int // requests started (RecordStart) whose Record has not arrived
	// Changes rises whenever anything under the trace value is added: a start or a record. Checks
	// wait until it stops rising and nothing is in flight.
	Changes int64
}

// Recipes stores resilience recipes and the request records of traced requests, per namespace.
// Records are grouped by their trace value (a recipe's id); a group expires when nothing was added
// to it for the store's retention period, and holds at most the store's per-trace bound of records
// (the oldest are dropped first). Recipes expire after the same retention period.
type Recipes interface {
	// CreateRecipe stores a new recipe; ErrExists if its id is taken.
	CreateRecipe(ctx context.Context, ns string, r Recipe) error
	// Recipe returns a recipe; ErrNotFound if there is none with that id.
	Recipe(ctx context.Context, ns, id string) (Recipe, error)
	// ListRecipes returns the namespace's recipes, oldest first.
	ListRecipes(ctx context.Context, ns string) ([]Recipe, error)
	// DeleteRecipe removes a recipe and the records of its id; ErrNotFound if there was neither.
	DeleteRecipe(ctx context.Context, ns, id string) error

	// AppendRecords adds a sidecar's batch: each start marks a request in flight under its trace
	// value, each record is kept under its trace value and ends the request of the same id. Starts
	// and records without a trace value are ignored.
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
	// Retention is how long a recipe, and the records of a trace value, are kept after the last
	// change (default 24h).
	Retention time.Duration
}

// WithDefaults fills unset options.
func (o RecipesOptions) WithDefaults() RecipesOptions {
	if o.MaxRecords <= 0 {
		o.MaxRecords = 100_000
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	return o
}
