package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/api"
	"github.com/a8fabric/a8/internal/store"
)

// MaxTraceGroups is the most trace groups (distinct trace values) a namespace holds at once. Trace
// values come from sidecars, so without a bound any number of them could pile up until they
// expire; when a new one would exceed the bound, the least recently changed group is deleted.
const MaxTraceGroups = 1000

// Recipes is the Redis store.Recipes. Per namespace (ns, ids and trace values escaped with KeyPart;
// the {ns} hash tag puts a namespace's keys in one cluster slot, so a script may touch several):
//
//	<prefix>:recipes:{ns}:recipe:<id>             string  recipe JSON; no expiry: kept until deleted
//	<prefix>:recipes:{ns}:recipes                 set     escaped ids of the recipes, at most MaxRecipes;
//	                                                      no expiry; ids whose key is gone (evicted by
//	                                                      maxmemory) are removed by the next create or list
//	<prefix>:recipes:{ns}:trace:<trace>:records   list    record JSON, oldest first; LTRIM to MaxRecords
//	<prefix>:recipes:{ns}:trace:<trace>:ids       zset    id -> arrival number of each record in records
//	                                                      (1 for the first record ever kept); trimmed
//	                                                      with records: the arrival numbers up to
//	                                                      dropped are those of the trimmed records
//	<prefix>:recipes:{ns}:trace:<trace>:inflight  zset    id -> arrival number of a start whose record
//	                                                      has not arrived; at most MaxRecords (the
//	                                                      oldest are removed)
//	<prefix>:recipes:{ns}:trace:<trace>:meta      hash    changes, dropped (records trimmed), seq (the
//	                                                      last arrival number of a start)
//	<prefix>:recipes:{ns}:traces                  zset    escaped trace -> order of its last change;
//	                                                      beyond MaxTraceGroups members the lowest is
//	                                                      popped and its four keys deleted
//
// Recipes never expire; CreateRecipe refuses one more than MaxRecipes with store.ErrCapacity.
// Every append that adds something to a trace group PEXPIREs its four keys, and the traces zset,
// to Retention: a group is gone when nothing was added to it for Retention, by Redis's own
// expiry. An append is one Lua script per batch (one round trip, atomic for every trace of the
// batch); reads are one MULTI/EXEC. Nothing here needs the replicas' clocks.
//
// The script skips a record whose id is in the group's ids zset (or came earlier in the batch),
// and a start whose id is in ids, in flight already, or among the batch's records; a group the
// batch adds nothing to is not written at all. Within a batch, each trace's starts are added
// before its records remove their ids from flight, so a request that began and ended within one
// batch is not left in flight; a start delivered after its record was trimmed (sidecars deliver in
// order, so only a misbehaving one does that) stays in flight until the bound drops it or its
// group expires.
//
// The in-flight set is a sorted set rather than a hash of start JSON: nothing reads the starts
// back, and the arrival order is what bounding it by dropping the oldest needs.
//
// Memory: store.RecipesOptions.MaxBytes is not enforced here. Redis's own maxmemory (and its
// maxmemory-policy) governs how much the records take; with the default noeviction policy, an
// append Redis has no memory for fails, and the sidecar retries it later. Set maxmemory on a
// Redis that holds records: at the defaults (MaxTraceGroups groups of MaxRecords records per
// namespace) a namespace may ask for tens of GB.
type Recipes struct {
	client goredis.UniversalClient
	prefix string
	opts   store.RecipesOptions
}

var _ store.Recipes = (*Recipes)(nil)

// RecipesOptions configure the Redis recipes store.
type RecipesOptions struct {
	// RecipesOptions bound what is kept (defaults: see store.RecipesOptions).
	store.RecipesOptions
	// Prefix starts every key name; default "a8". Replicas that share data share it.
	Prefix string
}

// NewRecipes returns a recipes store on client. Close does not close the client, which the caller
// owns.
func NewRecipes(client goredis.UniversalClient, opts RecipesOptions) *Recipes {
	if opts.Prefix == "" {
		opts.Prefix = "a8"
	}
	return &Recipes{client: client, prefix: opts.Prefix + ":recipes:", opts: opts.RecipesOptions.WithDefaults()}
}

func (s *Recipes) base(ns string) string { return s.prefix + "{" + KeyPart(ns) + "}:" }

// recipeBase is the prefix of ns's recipe keys; the escaped id completes it.
func (s *Recipes) recipeBase(ns string) string { return s.base(ns) + "recipe:" }
func (s *Recipes) indexKey(ns string) string   { return s.base(ns) + "recipes" }
func (s *Recipes) tracesKey(ns string) string  { return s.base(ns) + "traces" }

// traceBase is the prefix of ns's trace group keys; the escaped trace and ":records", ":inflight",
// ":meta" or ":ids" complete it.
func (s *Recipes) traceBase(ns string) string { return s.base(ns) + "trace:" }

// traceKeys are the records, inflight, meta and ids keys of a trace group.
func (s *Recipes) traceKeys(ns, trace string) []string {
	b := s.traceBase(ns) + KeyPart(trace)
	return []string{b + ":records", b + ":inflight", b + ":meta", b + ":ids"}
}

func (s *Recipes) retentionMS() int64 { return max(s.opts.Retention.Milliseconds(), 1) }

// KEYS: recipe key, index; ARGV: doc, escaped id, recipe key prefix, max recipes
// Returns {0} when created, {1} when the id is taken, {2, n} when n recipes are there already.
// (PERSIST: an index written by a version whose recipes expired may still carry a TTL.)
var createRecipeScript = goredis.NewScript(`
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[3] .. m) == 0 then redis.call('SREM', KEYS[2], m) end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local n = redis.call('SCARD', KEYS[2])
if n >= tonumber(ARGV[4]) then return {2, n} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PERSIST', KEYS[2])
return {0}
`)

// KEYS: index; ARGV: recipe key prefix
var listRecipesScript = goredis.NewScript(`
local docs = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local doc = redis.call('GET', ARGV[1] .. m)
  if doc then docs[#docs + 1] = doc else redis.call('SREM', KEYS[1], m) end
end
return docs
`)

// KEYS: recipe key, index, records, inflight, meta, ids, traces; ARGV: escaped id
var deleteRecipeScript = goredis.NewScript(`
local n = redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
return n
`)

// KEYS: traces, then records, inflight, meta, ids of each trace of the batch
// ARGV: max records, retention ms, max groups, trace key prefix, then per trace: escaped trace,
// number of starts s, number of records r, s start ids, r record ids, r record docs
var appendScript = goredis.NewScript(`
local maxRec, ttl, maxGroups, base = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), ARGV[4]
-- cmd key list[1..#list], in calls of at most 1000 list members; returns the last reply
local function chunked(cmd, key, list)
  local last
  for i = 1, #list, 1000 do
    last = redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
  return last
end
-- ZADD key NX with scores from + 1, from + 2, ... for the members of list
local function zaddSeq(key, from, list)
  for i = 1, #list, 500 do
    local args = {'NX'}
    for j = i, math.min(i + 499, #list) do
      args[#args + 1] = string.format('%d', from + j)
      args[#args + 1] = list[j]
    end
    redis.call('ZADD', key, unpack(args))
  end
end
local a, k = 5, 2
while a <= #ARGV do
  local member, nst, nr = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local rk, fk, mk, ik = KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local s0, r0 = a + 3, a + 3 + nst -- the first start id, the first record id (its doc: r0 + nr)
  a, k = r0 + 2 * nr, k + 4
  -- The records not kept yet, each once.
  local inBatch, ids, docs = {}, {}, {}
  for i = 0, nr - 1 do
    local id = ARGV[r0 + i]
    if not inBatch[id] then
      inBatch[id] = true
      if not redis.call('ZSCORE', ik, id) then
        ids[#ids + 1], docs[#docs + 1] = id, ARGV[r0 + nr + i]
      end
    end
  end
  -- The starts of requests neither in flight nor recorded (kept, or in this batch), each once.
  local starts = {}
  for i = 0, nst - 1 do
    local id = ARGV[s0 + i]
    if not inBatch[id] then
      inBatch[id] = true
      if not redis.call('ZSCORE', fk, id) and not redis.call('ZSCORE', ik, id) then starts[#starts + 1] = id end
    end
  end
  if #ids > 0 or #starts > 0 then
    if #starts > 0 then
      zaddSeq(fk, redis.call('HINCRBY', mk, 'seq', #starts) - #starts, starts)
      local nf = redis.call('ZCARD', fk)
      if nf > maxRec then redis.call('ZREMRANGEBYRANK', fk, 0, nf - maxRec - 1) end
    end
    if #ids > 0 then
      chunked('ZREM', fk, ids)
      -- The arrival number of the last record kept: dropped + the length of records.
      zaddSeq(ik, (tonumber(redis.call('HGET', mk, 'dropped')) or 0) + redis.call('LLEN', rk), ids)
      local n = chunked('RPUSH', rk, docs)
      if n > maxRec then
        redis.call('LTRIM', rk, n - maxRec, -1)
        local dropped = redis.call('HINCRBY', mk, 'dropped', n - maxRec)
        redis.call('ZREMRANGEBYSCORE', ik, '-inf', dropped)
      end
    end
    redis.call('HINCRBY', mk, 'changes', 1)
    redis.call('PEXPIRE', rk, ttl)
    redis.call('PEXPIRE', fk, ttl)
    redis.call('PEXPIRE', mk, ttl)
    redis.call('PEXPIRE', ik, ttl)
    local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
    redis.call('ZADD', KEYS[1], string.format('%d', (tonumber(top[2]) or 0) + 1), member)
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end
while redis.call('ZCARD', KEYS[1]) > maxGroups do
  local m = redis.call('ZPOPMIN', KEYS[1])[1]
  redis.call('DEL', base .. m .. ':records', base .. m .. ':inflight', base .. m .. ':meta', base .. m .. ':ids')
end
return 1
`)

// CreateRecipe implements store.Recipes.
func (s *Recipes) CreateRecipe(ctx context.Context, ns string, r store.Recipe) error {
	if r.ID == "" {
		return errors.New("create recipe: the recipe has no id")
	}
	doc, err := json.Marshal(&r)
	if err != nil {
		return fmt.Errorf("encode recipe %q: %w", r.ID, err)
	}
	id := KeyPart(r.ID)
	res, err := createRecipeScript.Run(ctx, s.client, []string{s.recipeBase(ns) + id, s.indexKey(ns)},
		doc, id, s.recipeBase(ns), s.opts.MaxRecipes).Int64Slice()
	if err != nil {
		return storeErr(ctx, "create recipe", err)
	}
	switch {
	case len(res) == 1 && res[0] == 0:
		return nil
	case len(res) == 1 && res[0] == 1:
		return fmt.Errorf("recipe %q: %w", r.ID, store.ErrExists)
	case len(res) == 2 && res[0] == 2:
		return store.RecipeCapacityError(r.ID, int(res[1]))
	}
	return fmt.Errorf("create recipe %q: unexpected reply %v from Redis", r.ID, res)
}

// Recipe implements store.Recipes.
func (s *Recipes) Recipe(ctx context.Context, ns, id string) (store.Recipe, error) {
	doc, err := s.client.Get(ctx, s.recipeBase(ns)+KeyPart(id)).Bytes()
	if errors.Is(err, goredis.Nil) {
		return store.Recipe{}, fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Recipe{}, storeErr(ctx, "get recipe", err)
	}
	var r store.Recipe
	if err := json.Unmarshal(doc, &r); err != nil {
		return store.Recipe{}, fmt.Errorf("recipe %q in Redis is not valid JSON: %w", id, err)
	}
	return r, nil
}

// ListRecipes implements store.Recipes: oldest first by Created, then by id.
func (s *Recipes) ListRecipes(ctx context.Context, ns string) ([]store.Recipe, error) {
	docs, err := listRecipesScript.Run(ctx, s.client, []string{s.indexKey(ns)}, s.recipeBase(ns)).StringSlice()
	if err != nil {
		return nil, storeErr(ctx, "list recipes", err)
	}
	out := make([]store.Recipe, 0, len(docs))
	for _, doc := range docs {
		var r store.Recipe
		if err := json.Unmarshal([]byte(doc), &r); err != nil {
			return nil, fmt.Errorf("a recipe of namespace %q in Redis is not valid JSON: %w", ns, err)
		}
		out = append(out, r)
	}
	store.SortRecipes(out)
	return out, nil
}

// DeleteRecipe implements store.Recipes.
func (s *Recipes) DeleteRecipe(ctx context.Context, ns, id string) error {
	keys := append([]string{s.recipeBase(ns) + KeyPart(id), s.indexKey(ns)}, s.traceKeys(ns, id)...)
	keys = append(keys, s.tracesKey(ns))
	n, err := deleteRecipeScript.Run(ctx, s.client, keys, KeyPart(id)).Int()
	if err != nil {
		return storeErr(ctx, "delete recipe", err)
	}
	if n == 0 {
		return fmt.Errorf("recipe %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// traceBatch is the part of a batch under one trace value.
type traceBatch struct {
	trace   string
	starts  []string // ids
	records []int    // indexes in the batch's Records
}

// AppendRecords implements store.Recipes, in one round trip (one script) for the whole batch.
func (s *Recipes) AppendRecords(ctx context.Context, ns string, b api.RecordBatch) error {
	var groups []*traceBatch
	byTrace := map[string]*traceBatch{}
	group := func(trace string) *traceBatch {
		g := byTrace[trace]
		if g == nil {
			g = &traceBatch{trace: trace}
			byTrace[trace] = g
			groups = append(groups, g)
		}
		return g
	}
	for i := range b.Started {
		if st := &b.Started[i]; st.TraceValue != "" {
			g := group(st.TraceValue)
			g.starts = append(g.starts, st.ID)
		}
	}
	for i := range b.Records {
		if rec := &b.Records[i]; rec.TraceValue != "" {
			g := group(rec.TraceValue)
			g.records = append(g.records, i)
		}
	}
	if len(groups) == 0 {
		return nil
	}
	keys := make([]string, 0, 1+4*len(groups))
	keys = append(keys, s.tracesKey(ns))
	args := make([]any, 0, 4+3*len(groups)+len(b.Started)+2*len(b.Records))
	args = append(args, s.opts.MaxRecords, s.retentionMS(), MaxTraceGroups, s.traceBase(ns))
	for _, g := range groups {
		keys = append(keys, s.traceKeys(ns, g.trace)...)
		args = append(args, KeyPart(g.trace), len(g.starts), len(g.records))
		for _, id := range g.starts {
			args = append(args, id)
		}
		for _, i := range g.records {
			args = append(args, b.Records[i].ID)
		}
		for _, i := range g.records {
			doc, err := json.Marshal(&b.Records[i])
			if err != nil {
				return fmt.Errorf("encode record %q: %w", b.Records[i].ID, err)
			}
			args = append(args, doc)
		}
	}
	if err := appendScript.Run(ctx, s.client, keys, args...).Err(); err != nil {
		return storeErr(ctx, "append records", err)
	}
	return nil
}

// Records implements store.Recipes.
func (s *Recipes) Records(ctx context.Context, ns, trace string) ([]api.Record, store.RecordCounts, error) {
	var docs *goredis.StringSliceCmd
	counts, err := s.counts(ctx, ns, trace, func(p goredis.Pipeliner, key string) {
		docs = p.LRange(ctx, key, 0, -1)
	})
	if err != nil {
		return nil, store.RecordCounts{}, storeErr(ctx, "read records", err)
	}
	out := make([]api.Record, len(docs.Val()))
	for i, doc := range docs.Val() {
		if err := json.Unmarshal([]byte(doc), &out[i]); err != nil {
			return nil, store.RecordCounts{}, fmt.Errorf("record %d of trace %q in Redis is not valid JSON: %w", i, trace, err)
		}
	}
	counts.Records = len(out)
	return out, counts, nil
}

// Counts implements store.Recipes, in one round trip.
func (s *Recipes) Counts(ctx context.Context, ns, trace string) (store.RecordCounts, error) {
	var n *goredis.IntCmd
	counts, err := s.counts(ctx, ns, trace, func(p goredis.Pipeliner, key string) {
		n = p.LLen(ctx, key)
	})
	if err != nil {
		return store.RecordCounts{}, storeErr(ctx, "count records", err)
	}
	counts.Records = int(n.Val())
	return counts, nil
}

// counts reads a trace group's counts, and with records whatever it queues on the records key, in
// one MULTI/EXEC. Records is left for the caller to fill in.
func (s *Recipes) counts(ctx context.Context, ns, trace string, records func(p goredis.Pipeliner, key string)) (store.RecordCounts, error) {
	k := s.traceKeys(ns, trace)
	var inflight *goredis.IntCmd
	var meta *goredis.SliceCmd
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		records(p, k[0])
		inflight = p.ZCard(ctx, k[1])
		meta = p.HMGet(ctx, k[2], "changes", "dropped")
		return nil
	})
	if err != nil {
		return store.RecordCounts{}, err
	}
	c := store.RecordCounts{InFlight: int(inflight.Val())}
	m := meta.Val()
	if v, ok := m[0].(string); ok {
		c.Changes, _ = strconv.ParseInt(v, 10, 64)
	}
	if v, ok := m[1].(string); ok {
		c.Dropped, _ = strconv.Atoi(v)
	}
	return c, nil
}

// Ping implements store.Recipes.
func (s *Recipes) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeErr(ctx, "ping", err)
	}
	return nil
}

// Close implements store.Recipes. It does not close the client, which the caller owns.
func (s *Recipes) Close() error { return nil }
