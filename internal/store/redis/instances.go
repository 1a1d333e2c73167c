package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/a8fabric/a8/internal/store"
)

// Data model, per namespace:
//
//	<prefix>:registry:{ns}:instances  hash  id -> instance JSON (without heartbeat)
//	<prefix>:registry:{ns}:leases     hash  id -> "<last heartbeat ms> <ttl ms>" (ttl 0: never expires)
//	<prefix>:registry:{ns}:expiry     zset  id -> expiry ms (neverExpires for OUT_OF_SERVICE)
//	<prefix>:registry:{ns}:index      int   change index, INCR on every visible change
//	<prefix>:registry:{ns}:service:<name>  set  ids of the service's instances (live or not yet reaped)
//	<prefix>:registry:namespaces      set   namespaces that hold instances (for reaping)
//
// ns and <name> are escaped with KeyPart, so no name can reach into another tenant's keys.
//	<prefix>:registry:changes         pub/sub channel, "<index> <ns>" after every change
//
// Every operation is one Lua script, so it is atomic across replicas. Expiry is by score, not by
// Redis key TTL: reads filter out expired instances exactly, and a reap (run by every replica, which
// is harmless) removes them and raises the index so watchers learn of it, which key expiry cannot
// do without keyspace notifications that managed Redis services often disable.

const neverExpires = "1000000000000000" // ms, year 33658

const luaChunk = `
local function keyPart(s)
  return (string.gsub(s, '[%%{}:%c%s\128-\255]', function(c) return string.format('%%%02X', string.byte(c)) end))
end
local function unindex(svcbase, doc, id)
  if doc then
    local ok, v = pcall(cjson.decode, doc)
    if ok and type(v) == 'table' and type(v.service_name) == 'string' then
      redis.call('SREM', svcbase .. keyPart(v.service_name), id)
    end
  end
end
local function chunked(cmd, key, ids)
  local out = {}
  for i = 1, #ids, 1000 do
    local part = redis.call(cmd, key, unpack(ids, i, math.min(i + 999, #ids)))
    if type(part) == 'table' then
      for j = 1, #part do out[#out + 1] = part[j] end
    end
  end
  return out
end
`

// KEYS: instances, leases, expiry, index, namespaces, service set
// ARGV: id, doc, now, ttl ms, expiry, capacity, ns, channel, service set prefix
var registerScript = goredis.NewScript(luaChunk + `
local id, doc, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local exp = redis.call('ZSCORE', KEYS[3], id)
local live = exp and tonumber(exp) >= now
local lease = ARGV[3] .. ' ' .. ARGV[4]
local old = redis.call('HGET', KEYS[1], id)
if live then
  if old == doc then
    redis.call('HSET', KEYS[2], id, lease)
    redis.call('ZADD', KEYS[3], ARGV[5], id)
    return {0, tonumber(redis.call('GET', KEYS[4]) or '0')}
  end
elseif tonumber(ARGV[6]) >= 0 and redis.call('ZCOUNT', KEYS[3], now, '+inf') >= tonumber(ARGV[6]) then
  return {-1, redis.call('ZCOUNT', KEYS[3], now, '+inf')}
end
unindex(ARGV[9], old, id)
redis.call('SADD', KEYS[6], id)
redis.call('HSET', KEYS[1], id, doc)
redis.call('HSET', KEYS[2], id, lease)
redis.call('ZADD', KEYS[3], ARGV[5], id)
redis.call('SADD', KEYS[5], ARGV[7])
local idx = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[8], idx .. ' ' .. ARGV[7])
return {1, idx}
`)

// KEYS: leases, expiry; ARGV: id, now
var renewScript = goredis.NewScript(`
local exp = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not exp or tonumber(exp) < tonumber(ARGV[2]) then return 0 end
local lease = redis.call('HGET', KEYS[1], ARGV[1])
if not lease then return 0 end
local ttl = tonumber(string.match(lease, ' (%d+)$'))
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. string.format('%d', ttl))
if ttl > 0 then
  redis.call('ZADD', KEYS[2], string.format('%d', tonumber(ARGV[2]) + ttl), ARGV[1])
end
return 1
`)

// KEYS: instances, leases, expiry, index; ARGV: id, now, ns, channel, service set prefix
var deregisterScript = goredis.NewScript(luaChunk + `
local exp = redis.call('ZSCORE', KEYS[3], ARGV[1])
if not exp then return 0 end
unindex(ARGV[5], redis.call('HGET', KEYS[1], ARGV[1]), ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local idx = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[4], idx .. ' ' .. ARGV[3])
if tonumber(exp) < tonumber(ARGV[2]) then return 0 end
return 1
`)

// KEYS: instances, leases, expiry, index, service set (or none: the whole namespace); ARGV: now
var listScript = goredis.NewScript(luaChunk + `
local ids
if KEYS[5] then
  ids = {}
  local now = tonumber(ARGV[1])
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[5])) do
    local exp = redis.call('ZSCORE', KEYS[3], id)
    if exp and tonumber(exp) >= now then ids[#ids + 1] = id end
  end
else
  ids = redis.call('ZRANGEBYSCORE', KEYS[3], ARGV[1], '+inf')
end
local idx = redis.call('GET', KEYS[4]) or '0'
return {idx, ids, chunked('HMGET', KEYS[1], ids), chunked('HMGET', KEYS[2], ids)}
`)

// KEYS: instances, leases, expiry, index, namespaces; ARGV: now, ns, channel, service set prefix
var reapScript = goredis.NewScript(luaChunk + `
if redis.call('ZCARD', KEYS[3]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
  return 0
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[1])
if #ids == 0 then return 0 end
local docs = chunked('HMGET', KEYS[1], ids)
for i = 1, #ids do unindex(ARGV[4], docs[i], ids[i]) end
chunked('HDEL', KEYS[1], ids)
chunked('HDEL', KEYS[2], ids)
chunked('ZREM', KEYS[3], ids)
local idx = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[3], idx .. ' ' .. ARGV[2])
return #ids
`)

// InstancesOptions configure the Redis instance store.
type InstancesOptions struct {
	// Prefix starts every key and channel name; default "a8". Replicas that share data share it.
	Prefix string
	// Clock is the time source (default time.Now). Replicas' clocks should agree to within a second.
	Clock store.Clock
	// Recheck is how often a waiting watch re-reads the index from Redis, in case a pub/sub message
	// was lost while the subscription reconnected. Default 5s.
	Recheck time.Duration
	Logger  *slog.Logger
}

// Instances is the Redis store.Instances.
type Instances struct {
	client  goredis.UniversalClient
	prefix  string
	channel string
	clock   store.Clock
	log     *slog.Logger
	feed    *feed
}

var _ store.Instances = (*Instances)(nil)

// NewInstances returns a store on client and subscribes to the change channel, so watchers of this
// replica learn of changes made through others. Close stops the subscription; the client stays open.
func NewInstances(client goredis.UniversalClient, opts InstancesOptions) *Instances {
	if opts.Prefix == "" {
		opts.Prefix = "a8"
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Instances{
		client:  client,
		prefix:  opts.Prefix + ":registry:",
		channel: opts.Prefix + ":registry:changes",
		clock:   opts.Clock,
		log:     opts.Logger,
	}
	s.feed = newFeed(client, s.channel, func(ns string) string { return s.keys(ns)[3] }, opts.Recheck, opts.Logger)
	return s
}

func (s *Instances) keys(ns string) []string {
	base := s.prefix + "{" + KeyPart(ns) + "}:"
	return []string{base + "instances", base + "leases", base + "expiry", base + "index"}
}

// serviceSets is the key prefix of ns's per-service id sets; the Lua scripts append the service
// name escaped the same way (see keyPart in luaChunk).
func (s *Instances) serviceSets(ns string) string { return s.prefix + "{" + KeyPart(ns) + "}:service:" }

func (s *Instances) nowMS() int64 { return s.clock().UnixMilli() }

// Register implements store.Instances.
func (s *Instances) Register(ctx context.Context, ns string, inst store.Instance, capacity int) (store.Instance, error) {
	inst.LastHeartbeat = time.Time{}
	doc, err := json.Marshal(&inst)
	if err != nil {
		return store.Instance{}, fmt.Errorf("encode instance %s: %w", inst.ID, err)
	}
	now := s.nowMS()
	ttl := inst.Lease().Milliseconds()
	expiry := neverExpires
	if inst.Lease() != 0 {
		ttl = max(ttl, 1)
		expiry = strconv.FormatInt(now+ttl, 10)
	}
	keys := append(s.keys(ns), s.prefix+"namespaces", s.serviceSets(ns)+KeyPart(inst.ServiceName))
	res, err := registerScript.Run(ctx, s.client, keys,
		inst.ID, doc, now, ttl, expiry, capacity, ns, s.channel, s.serviceSets(ns)).Int64Slice()
	if err != nil {
		return store.Instance{}, storeErr(ctx, "register", err)
	}
	if res[0] < 0 {
		return store.Instance{}, fmt.Errorf("namespace %q holds %d instances: %w", ns, res[1], store.ErrCapacity)
	}
	inst.LastHeartbeat = time.UnixMilli(now).UTC()
	return inst, nil
}

// Renew implements store.Instances.
func (s *Instances) Renew(ctx context.Context, ns, id string) error {
	k := s.keys(ns)
	ok, err := renewScript.Run(ctx, s.client, []string{k[1], k[2]}, id, s.nowMS()).Int()
	if err != nil {
		return storeErr(ctx, "renew", err)
	}
	if ok == 0 {
		return store.ErrNotFound
	}
	return nil
}

// Deregister implements store.Instances.
func (s *Instances) Deregister(ctx context.Context, ns, id string) error {
	ok, err := deregisterScript.Run(ctx, s.client, s.keys(ns), id, s.nowMS(), ns, s.channel, s.serviceSets(ns)).Int()
	if err != nil {
		return storeErr(ctx, "deregister", err)
	}
	if ok == 0 {
		return store.ErrNotFound
	}
	return nil
}

// List implements store.Instances.
func (s *Instances) List(ctx context.Context, ns, service string) (store.InstanceList, error) {
	keys := s.keys(ns)
	if service != "" {
		keys = append(keys, s.serviceSets(ns)+KeyPart(service))
	}
	res, err := listScript.Run(ctx, s.client, keys, s.nowMS()).Slice()
	if err != nil {
		return store.InstanceList{}, storeErr(ctx, "list", err)
	}
	if len(res) != 4 {
		return store.InstanceList{}, fmt.Errorf("redis list: unexpected reply of %d parts", len(res))
	}
	idxStr, _ := res[0].(string)
	idx, _ := strconv.ParseUint(idxStr, 10, 64)
	docs, _ := res[2].([]any)
	leases, _ := res[3].([]any)
	out := make([]store.Instance, 0, len(docs))
	for i, d := range docs {
		doc, ok := d.(string)
		if !ok {
			continue // removed between the reads of one script cannot happen; tolerate a torn record
		}
		var in store.Instance
		if err := json.Unmarshal([]byte(doc), &in); err != nil {
			s.log.Warn("skipping undecodable instance record", "namespace", ns, "error", err)
			continue
		}
		if service != "" && in.ServiceName != service {
			continue
		}
		if i < len(leases) {
			if l, ok := leases[i].(string); ok {
				beat, _, _ := strings.Cut(l, " ")
				if ms, err := strconv.ParseInt(beat, 10, 64); err == nil {
					in.LastHeartbeat = time.UnixMilli(ms).UTC()
				}
			}
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b store.Instance) int {
		if c := cmp.Compare(a.ServiceName, b.ServiceName); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return store.InstanceList{Instances: out, Index: idx}, nil
}

// Wait implements store.Instances.
func (s *Instances) Wait(ctx context.Context, ns string, after uint64) (uint64, error) {
	return s.feed.wait(ctx, ns, after)
}

// Reap implements store.Instances.
func (s *Instances) Reap(ctx context.Context) (int, error) {
	names, err := s.client.SMembers(ctx, s.prefix+"namespaces").Result()
	if err != nil {
		return 0, storeErr(ctx, "list namespaces", err)
	}
	total := 0
	for _, ns := range names {
		n, err := reapScript.Run(ctx, s.client, append(s.keys(ns), s.prefix+"namespaces"), s.nowMS(), ns, s.channel, s.serviceSets(ns)).Int()
		if err != nil {
			return total, storeErr(ctx, "reap", err)
		}
		total += n
	}
	return total, nil
}

// Ping implements store.Instances.
func (s *Instances) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return storeErr(ctx, "ping", err)
	}
	return nil
}

// Close stops the change subscription. It does not close the client, which the caller owns.
func (s *Instances) Close() error {
	s.feed.close()
	return nil
}
