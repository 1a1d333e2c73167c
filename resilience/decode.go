package resilience

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/strictjson"
)

// Problem is one thing wrong with a recipe: where (a path such as
// scenarios.gremlins[0].delaytime) and why.
type Problem struct {
	Path   string
	Reason string
}

// String returns "path: reason".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Reason
	}
	return p.Path + ": " + p.Reason
}

// ValidationError lists everything wrong with a topology, scenarios or a recipe.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, separated by "; ".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// problems collects problems under path prefixes.
type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Reason: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}

// decode reads data, JSON or YAML (the same keys), strictly into v: unknown fields and wrongly
// typed values are errors with their path. The error is a *strictjson.Error, or says that data is
// neither JSON nor YAML.
func decode(data []byte, v any) error {
	js, err := rules.ToJSON(data)
	if err != nil {
		return err
	}
	if u, ok := v.(json.Unmarshaler); ok {
		// strictjson leaves types that decode themselves to them; call it directly so that the
		// error keeps its type (a *strictjson.Error with the path).
		if err := strictjson.Unmarshal(js, new(any), ""); err != nil {
			return err
		}
		return u.UnmarshalJSON(js)
	}
	return strictjson.Unmarshal(js, v, "")
}

// DecodeTopology reads a topology file, JSON or YAML, strictly, and checks it on its own: service
// names, duplicates, dependencies naming listed services. Errors carry the field path, e.g.
// `dependencies.reviews:version=v2[0]: "ratings" is not a service of the topology`.
func DecodeTopology(data []byte) (api.Topology, error) {
	var t api.Topology
	if err := decode(data, &t); err != nil {
		return api.Topology{}, fmt.Errorf("topology: %w", err)
	}
	var ps problems
	indexTopology(&ps, "", t)
	if err := ps.err(); err != nil {
		return api.Topology{}, err
	}
	return t, nil
}

// DecodeScenarios reads a scenarios file ({"gremlins": [...]}), JSON or YAML, strictly, and checks
// each gremlin on its own (what needs no topology: the scenario, its parameters, durations,
// probabilities and error codes). Errors carry the field path, e.g.
// `gremlins[0].delaytime: "7x" is not a duration`.
func DecodeScenarios(data []byte) (api.Scenarios, error) {
	var s api.Scenarios
	if err := decode(data, &s); err != nil {
		return api.Scenarios{}, fmt.Errorf("scenarios: %w", err)
	}
	var ps problems
	for i := range s.Gremlins {
		checkGremlin(&ps, fmt.Sprintf("gremlins[%d]", i), &s.Gremlins[i])
	}
	if err := ps.err(); err != nil {
		return api.Scenarios{}, err
	}
	return s, nil
}

// DecodeChecklist reads a checks file ({"log_server"?, "checks": [...]}), JSON or YAML, strictly:
// an unknown assertion, a parameter the assertion does not take, a missing required parameter or
// a value out of range is an error naming the check and the parameter, e.g.
// `checks[1].statuss: unknown parameter of http_status (...)`.
func DecodeChecklist(data []byte) (api.Checklist, error) {
	var l api.Checklist
	if err := decode(data, &l); err != nil {
		return api.Checklist{}, fmt.Errorf("checklist: %w", err)
	}
	return l, nil
}

// DecodeRecipeRequest reads the body of POST /api/v1/recipes (JSON or YAML) strictly. It does not
// validate the recipe: Rules does, with every problem listed.
func DecodeRecipeRequest(data []byte) (api.RecipeRequest, error) {
	var r api.RecipeRequest
	if err := decode(data, &r); err != nil {
		return api.RecipeRequest{}, fmt.Errorf("recipe: %w", err)
	}
	return r, nil
}

// DecodeChecksRequest reads the body of POST /api/v1/recipes/{id} (JSON or YAML) strictly; error
// paths start at the body, e.g. checklist.checks[0].max_latency.
func DecodeChecksRequest(data []byte) (api.ChecksRequest, error) {
	var r api.ChecksRequest
	if err := decode(data, &r); err != nil {
		return api.ChecksRequest{}, fmt.Errorf("checks request: %w", err)
	}
	return r, nil
}

// ValidateChecks checks every check (a known assertion, its required parameters and no others,
// values in range) and returns every problem at once in a *ValidationError, with paths such as
// checks[1].status. Decoding a Checklist already does this (and stops at the first problem);
// ValidateChecks is for checks made in Go, or a second look.
func ValidateChecks(checks []api.Check) error {
	var ps problems
	for i := range checks {
		if err := checks[i].Validate(); err != nil {
			path := fmt.Sprintf("checks[%d]", i)
			var se *strictjson.Error
			if errors.As(err, &se) {
				ps = append(ps, Problem{Path: strictjson.JoinPath(path, se.Path), Reason: se.Reason})
			} else {
				ps.add(path, "%v", err)
			}
		}
	}
	return ps.err()
}
