package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/auth"
	"github.com/a8fabric/a8/internal/httpapi"
	"github.com/a8fabric/a8/internal/rules"
	"github.com/a8fabric/a8/internal/store"
	"github.com/a8fabric/a8/resilience"
)

// Error ids of the recipes and records API.
const (
	ErrInvalidRecipe  = "error_invalid_recipe"   // the topology, scenarios or checks are wrong
	ErrRecipeNotFound = "error_recipe_not_found" // no recipe (and no records) with that id
	ErrInvalidRecords = "error_invalid_records"  // a sidecar's batch of records is malformed
	ErrNoRecipes      = "error_recipes_disabled" // the controller runs without a recipes store
	ErrRecipeCapacity = "error_recipe_capacity"  // the tenant runs as many recipes as it may
)

const (
	maxRecipeBytes = 1 << 20
	maxRecordBytes = 8 << 20 // a batch of records
	maxBatchItems  = 10_000
	// defaultCheckWait and maxCheckWait bound how long checks wait for the records of the test.
	defaultCheckWait = 30 * time.Second
	maxCheckWait     = 10 * time.Minute
	// settle is how long nothing must change (and nothing be in flight) before checks run: several
	// of the sidecars' delivery intervals (100ms), so that records in transit arrive.
	settle       = 600 * time.Millisecond
	pollInterval = 50 * time.Millisecond
	// maxConcurrentChecks bounds the checks waiting for records at once (each polls the store).
	maxConcurrentChecks = 64
)

// mountRecipes registers the resilience recipes API and the records API.
func (s *Server) mountRecipes(mux *http.ServeMux, route func(map[string]http.Handler) http.Handler) {
	mux.Handle("/api/v1/recipes", route(map[string]http.Handler{
		http.MethodGet:  http.HandlerFunc(s.listRecipes),
		http.MethodPost: http.HandlerFunc(s.createRecipe),
	}))
	mux.Handle("/api/v1/recipes/{id}", route(map[string]http.Handler{
		http.MethodGet:    http.HandlerFunc(s.getRecipe),
		http.MethodPost:   http.HandlerFunc(s.checkRecipe),
		http.MethodDelete: http.HandlerFunc(s.deleteRecipe),
	}))
	mux.Handle("/api/v1/recipes/{id}/records", route(map[string]http.Handler{
		http.MethodGet: http.HandlerFunc(s.recipeRecords),
	}))
	mux.Handle("/api/v1/records", route(map[string]http.Handler{
		http.MethodPost: http.HandlerFunc(s.addRecords),
	}))
}

// recipesStore returns the recipes store, or answers 501 when there is none.
func (s *Server) recipesStore(w http.ResponseWriter, r *http.Request) (store.Recipes, bool) {
	if s.cfg.Recipes == nil {
		writeError(w, r, http.StatusNotImplemented, ErrNoRecipes, "this controller keeps no recipes or records (it was started without a recipes store)")
		return nil, false
	}
	return s.cfg.Recipes, true
}

// readBody reads a body of at most limit bytes, answering a bad one.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	data, err := httpapi.ReadBody(w, r, limit)
	if err != nil {
		var be *httpapi.BodyError
		errors.As(err, &be)
		writeError(w, r, be.Status, be.Code(), be.Msg)
		return nil, false
	}
	return data, true
}

// createRecipe is POST /api/v1/recipes: the recipe becomes action rules tagged with its id (one
// atomic change), and the answer is 201 {"recipe_id"} with its Location.
func (s *Server) createRecipe(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	data, ok := readBody(w, r, maxRecipeBytes)
	if !ok {
		return
	}
	req, err := resilience.DecodeRecipeRequest(data)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidRecipe, err.Error())
		return
	}
	req = req.WithDefaults()
	id := newID()
	ruleSet, err := resilience.Rules(id, req)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidRecipe, "invalid recipe: "+err.Error())
		return
	}
	if err := rules.Validate(ruleSet); err != nil { // resilience.Rules validates; this is a guard against a bug
		writeError(w, r, http.StatusInternalServerError, ErrInternal, "the recipe's rules are invalid (a bug): "+err.Error())
		return
	}
	spec, err := json.Marshal(req)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, ErrInternal, err.Error())
		return
	}
	ns := auth.Namespace(r.Context())
	ids := assignIDs(ruleSet)
	// The recipe first (it may be refused: too many running), then its rules; if the rules cannot
	// be stored, the recipe goes again.
	switch err := rs.CreateRecipe(r.Context(), ns, store.Recipe{ID: id, Created: time.Now().UTC(), Spec: spec, RuleIDs: ids}); {
	case errors.Is(err, store.ErrCapacity):
		writeError(w, r, http.StatusForbidden, ErrRecipeCapacity, err.Error())
		return
	case err != nil:
		s.storeError(w, r, "storing the recipe", err)
		return
	}
	rev, err := s.store.Change(r.Context(), ns, store.RuleChange{Put: ruleSet})
	if err != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if derr := rs.DeleteRecipe(ctx, ns, id); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			s.log.Error("recipe without rules left behind: DELETE /api/v1/recipes/<id> removes it", "recipe", id, "error", derr)
		}
		s.storeError(w, r, "adding the recipe's rules", err)
		return
	}
	s.changed(r, "recipe "+id, rev, ids)
	w.Header().Set("Location", "/api/v1/recipes/"+id)
	httpapi.WriteJSON(w, http.StatusCreated, api.RecipeCreated{RecipeID: id})
}

// recipeOf turns a stored recipe into its API form.
func recipeOf(rc store.Recipe) (api.Recipe, error) {
	var req api.RecipeRequest
	if err := json.Unmarshal(rc.Spec, &req); err != nil {
		return api.Recipe{}, fmt.Errorf("recipe %s: stored spec: %w", rc.ID, err)
	}
	return api.Recipe{ID: rc.ID, Created: rc.Created, RuleIDs: rc.RuleIDs, Topology: req.Topology, Scenarios: req.Scenarios,
		Header: req.Header, HeaderPattern: req.HeaderPattern}, nil
}

// listRecipes is GET /api/v1/recipes.
func (s *Server) listRecipes(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	list, err := rs.ListRecipes(r.Context(), auth.Namespace(r.Context()))
	if err != nil {
		s.storeError(w, r, "listing recipes", err)
		return
	}
	out := api.RecipeList{Recipes: []api.Recipe{}}
	for _, rc := range list {
		a, err := recipeOf(rc)
		if err != nil {
			s.storeError(w, r, "listing recipes", err)
			return
		}
		out.Recipes = append(out.Recipes, a)
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// getRecipe is GET /api/v1/recipes/{id}.
func (s *Server) getRecipe(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	rc, err := rs.Recipe(r.Context(), auth.Namespace(r.Context()), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, r, http.StatusNotFound, ErrRecipeNotFound, fmt.Sprintf("no recipe with id %q", id))
		return
	}
	if err != nil {
		s.storeError(w, r, "reading the recipe", err)
		return
	}
	a, err := recipeOf(rc)
	if err != nil {
		s.storeError(w, r, "reading the recipe", err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, a)
}

// known reports whether id names a recipe or has records (a trace value of hand-written rules);
// otherwise it answers 404.
func (s *Server) known(w http.ResponseWriter, r *http.Request, rs store.Recipes, id string) bool {
	ns := auth.Namespace(r.Context())
	_, err := rs.Recipe(r.Context(), ns, id)
	if err == nil {
		return true
	}
	if !errors.Is(err, store.ErrNotFound) {
		s.storeError(w, r, "reading the recipe", err)
		return false
	}
	c, err := rs.Counts(r.Context(), ns, id)
	if err != nil {
		s.storeError(w, r, "reading the records", err)
		return false
	}
	if c.Records == 0 && c.InFlight == 0 {
		writeError(w, r, http.StatusNotFound, ErrRecipeNotFound, fmt.Sprintf("no recipe with id %q, and no records traced with it", id))
		return false
	}
	return true
}

// recipeRecords is GET /api/v1/recipes/{id}/records: the records traced with the recipe's id.
func (s *Server) recipeRecords(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !s.known(w, r, rs, id) {
		return
	}
	recs, c, err := rs.Records(r.Context(), auth.Namespace(r.Context()), id)
	if err != nil {
		s.storeError(w, r, "reading the records", err)
		return
	}
	if recs == nil {
		recs = []api.Record{}
	}
	httpapi.WriteJSON(w, http.StatusOK, api.RecordList{Records: recs, InFlight: c.InFlight})
}

// checkRecipe is POST /api/v1/recipes/{id} with {"checklist": {"checks": [...]}}: it waits until
// the records of the test have arrived (nothing in flight and nothing new for a moment, or the
// wait runs out), then evaluates the checks on them: 200 {"results": [...]}.
func (s *Server) checkRecipe(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	data, ok := readBody(w, r, maxRecipeBytes)
	if !ok {
		return
	}
	req, err := resilience.DecodeChecksRequest(data)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidRecipe, err.Error())
		return
	}
	if err := resilience.ValidateChecks(req.Checklist.Checks); err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidRecipe, "invalid checks: "+err.Error())
		return
	}
	wait := defaultCheckWait
	if req.Wait != "" {
		d, err := time.ParseDuration(req.Wait)
		if err != nil || d < 0 {
			writeError(w, r, http.StatusBadRequest, ErrInvalidRecipe, fmt.Sprintf("wait: %q is not a duration such as 30s", req.Wait))
			return
		}
		wait = min(d, maxCheckWait)
	}
	select {
	case s.checks <- struct{}{}:
		defer func() { <-s.checks }()
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, r, http.StatusServiceUnavailable, ErrUnavailable, fmt.Sprintf("%d recipe checks are already waiting for records on this controller; ask again shortly", maxConcurrentChecks))
		return
	}
	ns := auth.Namespace(r.Context())
	rc, err := rs.Recipe(r.Context(), ns, id)
	var topology *api.Topology
	switch {
	case err == nil:
		if a, err := recipeOf(rc); err == nil {
			topology = &a.Topology
		}
	case errors.Is(err, store.ErrNotFound):
		// Checks may also read records traced by hand-written rules with this log_value; with
		// neither a recipe nor records yet, waiting would only end in "no requests recorded".
	default:
		s.storeError(w, r, "reading the recipe", err)
		return
	}
	if rc.ID == "" {
		// No such recipe: only records traced by hand-written rules can be checked. Give the ones
		// in transit a moment, and answer 404 if there are none.
		c, err := s.awaitRecords(r.Context(), rs, ns, id, min(wait, 2*settle))
		if err != nil {
			s.awaitFailed(w, r, err)
			return
		}
		if c.Records == 0 && c.InFlight == 0 {
			writeError(w, r, http.StatusNotFound, ErrRecipeNotFound, fmt.Sprintf("no recipe with id %q, and no records traced with it", id))
			return
		}
	}
	if _, err := s.awaitRecords(r.Context(), rs, ns, id, wait); err != nil {
		s.awaitFailed(w, r, err)
		return
	}
	recs, counts, err := rs.Records(r.Context(), ns, id)
	if err != nil {
		s.storeError(w, r, "reading the records", err)
		return
	}
	results := resilience.Evaluate(req.Checklist.Checks, recs, resilience.EvalOptions{Topology: topology, InFlight: counts.InFlight})
	s.log.Info("recipe checked", "namespace", ns, "recipe", id, "records", len(recs), "in_flight", counts.InFlight,
		"checks", len(results), "failed", failedCount(results))
	httpapi.WriteJSON(w, http.StatusOK, api.CheckResults{Results: results})
}

func failedCount(rs []api.CheckResult) int {
	n := 0
	for _, r := range rs {
		if !r.Result {
			n++
		}
	}
	return n
}

// errDraining ends a wait for records when the controller shuts down: the checks are not run on
// what arrived so far, which could fail them for want of records.
var errDraining = errors.New("the controller is shutting down")

// awaitFailed answers a failed wait for records.
func (s *Server) awaitFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case r.Context().Err() != nil: // the client left
	case errors.Is(err, errDraining):
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusServiceUnavailable, ErrUnavailable, "the controller is shutting down before the records of the test arrived; the checks were not run: ask again (the recipe and its records are kept)")
	default:
		s.storeError(w, r, "waiting for the records", err)
	}
}

// awaitRecords waits until nothing is in flight under the trace value and nothing was added for
// settle (at least settle from now, so that deliveries in transit land), or wait passes.
func (s *Server) awaitRecords(ctx context.Context, rs store.Recipes, ns, trace string, wait time.Duration) (store.RecordCounts, error) {
	deadline := time.Now().Add(wait)
	c, err := rs.Counts(ctx, ns, trace)
	if err != nil {
		return c, err
	}
	last, quietSince := c.Changes, time.Now()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		now := time.Now()
		if (c.InFlight == 0 && c.Records > 0 && now.Sub(quietSince) >= settle) || !now.Before(deadline) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-s.draining.Done():
			return c, errDraining
		case <-t.C:
		}
		if c, err = rs.Counts(ctx, ns, trace); err != nil {
			return c, err
		}
		if c.Changes != last {
			last, quietSince = c.Changes, time.Now()
		}
	}
}

// deleteRecipe is DELETE /api/v1/recipes/{id}: removes the recipe's rules, the recipe and its
// records. The rules are those the recipe made: tagged with its id, with ids "<recipe id>-<n>".
// A rule a user tagged with the same string is left alone.
func (s *Server) deleteRecipe(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	ns := auth.Namespace(r.Context())
	found := false
	rev, err := s.store.Change(r.Context(), ns, store.RuleChange{Delete: func(rule *api.Rule) bool {
		if recipeRule(rule, id) {
			found = true
			return true
		}
		return false
	}})
	if err != nil {
		s.storeError(w, r, "deleting the recipe's rules", err)
		return
	}
	s.changed(r, "delete recipe "+id, rev, nil)
	switch err := rs.DeleteRecipe(r.Context(), ns, id); {
	case errors.Is(err, store.ErrNotFound):
		if !found {
			writeError(w, r, http.StatusNotFound, ErrRecipeNotFound, fmt.Sprintf("no recipe with id %q", id))
			return
		}
	case err != nil:
		s.storeError(w, r, "deleting the recipe", err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// recipeRule reports whether rule is one that recipe id made.
func recipeRule(rule *api.Rule, id string) bool {
	return strings.HasPrefix(rule.ID, id+"-") && slices.Contains(rule.Tags, id)
}

// addRecords is POST /api/v1/records: a sidecar's batch of traced requests' starts and records.
// The body is decoded item by item, so that a batch of more items than allowed is refused without
// being held in memory.
func (s *Server) addRecords(w http.ResponseWriter, r *http.Request) {
	rs, ok := s.recipesStore(w, r)
	if !ok {
		return
	}
	b, err := decodeBatch(http.MaxBytesReader(w, r.Body, maxRecordBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			writeError(w, r, http.StatusRequestEntityTooLarge, httpapi.CodeTooLarge, fmt.Sprintf("a batch of records is at most %d bytes", maxRecordBytes))
		case errors.Is(err, errTooManyItems):
			writeError(w, r, http.StatusRequestEntityTooLarge, ErrInvalidRecords, err.Error())
		default:
			writeError(w, r, http.StatusBadRequest, ErrInvalidRecords, "invalid batch of records: "+err.Error())
		}
		return
	}
	if err := checkBatch(&b); err != nil {
		writeError(w, r, http.StatusBadRequest, ErrInvalidRecords, "invalid batch of records: "+err.Error())
		return
	}
	if err := rs.AppendRecords(r.Context(), auth.Namespace(r.Context()), b); err != nil {
		s.storeError(w, r, "storing records", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

var errTooManyItems = fmt.Errorf("a batch holds at most %d starts and records", maxBatchItems)

// decodeBatch decodes {"started": [...], "records": [...]} strictly, stopping at the
// maxBatchItems+1st item.
func decodeBatch(body io.Reader) (api.RecordBatch, error) {
	var b api.RecordBatch
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := expectDelim(dec, '{'); err != nil {
		return b, err
	}
	items := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return b, err
		}
		switch key, _ := tok.(string); key {
		case "started":
			err = decodeItems(dec, "started", &b.Started, &items)
		case "records":
			err = decodeItems(dec, "records", &b.Records, &items)
		default:
			return b, fmt.Errorf("unknown field %q: a batch has started and records", key)
		}
		if err != nil {
			return b, err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return b, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return b, errors.New("data after the batch")
	}
	return b, nil
}

func decodeItems[T any](dec *json.Decoder, field string, out *[]T, items *int) error {
	if err := expectDelim(dec, '['); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	for i := 0; dec.More(); i++ {
		if *items++; *items > maxBatchItems {
			return errTooManyItems
		}
		var v T
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		*out = append(*out, v)
	}
	return expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, found %v", want, tok)
	}
	return nil
}

// maxRecordField bounds every string of a start or record (paths included; sidecars cut longer
// ones), so that a batch's size says what it costs to keep.
const maxRecordField = 2048

// checkBatch refuses traced records without id and fields past maxRecordField.
func checkBatch(b *api.RecordBatch) error {
	long := func(ss ...string) bool {
		for _, s := range ss {
			if len(s) > maxRecordField {
				return true
			}
		}
		return false
	}
	for i, st := range b.Started {
		if long(st.ID, st.Src, st.Dst, st.RequestID, st.TraceKey, st.TraceValue) {
			return fmt.Errorf("started[%d]: a field is longer than %d bytes", i, maxRecordField)
		}
	}
	for i := range b.Records {
		rc := &b.Records[i]
		if rc.ID == "" && rc.TraceValue != "" {
			return fmt.Errorf("records[%d].id: required for a traced record", i)
		}
		if long(rc.ID, rc.Src, rc.Dst, rc.Method, rc.Path, rc.Protocol, rc.RequestID, rc.UpstreamHost, rc.ResponseFlags, rc.TraceKey, rc.TraceValue) {
			return fmt.Errorf("records[%d]: a field is longer than %d bytes", i, maxRecordField)
		}
	}
	return nil
}
