//! The Lua scripts of the Redis store: every write that must be atomic, or
//! that depends on what the store holds (the lease, a conditional open, a
//! claim), runs as one script. Each script names every key it touches in
//! `KEYS`, and every key of a cluster shares one hash tag, so the scripts
//! run on Redis Cluster too. Only commands of Redis 2.8 are used, and
//! `redis.replicate_commands` (3.2) where a script reads `TIME` and then
//! writes.
//!
//! Values the scripts build are strings joined with a separator that no
//! part can hold: a space between numbers and a name, `\0` elsewhere.

use redis::Script;

/// Appends batches of samples and notes each host's latest sample. A batch
/// with an idempotency key is appended only if the key is not held; the
/// key is then kept (`PX`) with the batch's fingerprint.
///
/// KEYS: seq, by_seq, by_max, by_min, batch, batch_meta, latest, latest_ts,
/// then the idempotency keys of the batches that have one.
/// ARGV: the number of batches; per batch its count, min ts, max ts, data,
/// the index in KEYS of its idempotency key (0: none), the fingerprint, how
/// long to keep the key (ms), and the number of its hosts, each with its
/// name, latest ts in the batch and that sample's encoded fields. A host's
/// latest sample is noted unless its batch is a conflict.
/// Returns per batch `stored`, `replayed` (its key is held with the same
/// fingerprint: not appended again) or `conflict` (with another: not
/// appended).
pub const APPEND: &str = r"
local outcomes = {}
local i = 2
for b = 1, tonumber(ARGV[1]) do
  local count = tonumber(ARGV[i])
  local outcome = 'stored'
  local k = tonumber(ARGV[i + 4])
  if k > 0 then
    local held = redis.call('GET', KEYS[k])
    if held == ARGV[i + 5] then outcome = 'replayed'
    elseif held then outcome = 'conflict'
    else redis.call('SET', KEYS[k], ARGV[i + 5], 'PX', ARGV[i + 6]) end
  end
  if outcome == 'stored' and count > 0 then
    local last = redis.call('INCRBY', KEYS[1], count)
    local first = last - count + 1
    redis.call('ZADD', KEYS[2], first, first)
    redis.call('ZADD', KEYS[3], ARGV[i + 2], first)
    redis.call('ZADD', KEYS[4], ARGV[i + 1], first)
    redis.call('HSET', KEYS[5], first, ARGV[i + 3])
    redis.call('HSET', KEYS[6], first, last .. ' ' .. count .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  end
  outcomes[b] = outcome
  local hosts = tonumber(ARGV[i + 7])
  i = i + 8
  for h = 1, hosts do
    local host, ts = ARGV[i], ARGV[i + 1]
    if outcome ~= 'conflict' then
      local known = redis.call('HGET', KEYS[8], host)
      if (not known) or tonumber(known) <= tonumber(ts) then
        redis.call('HSET', KEYS[8], host, ts)
        redis.call('HSET', KEYS[7], host, ARGV[i + 2])
      end
    end
    i = i + 3
  end
end
return outcomes
";

/// Keeps an idempotency key unless it is held: `stored`, `replayed` (held
/// with the same fingerprint) or `conflict`.
///
/// KEYS: the key. ARGV: the fingerprint, how long to keep it (ms).
pub const ONCE: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return 'replayed' end
if held then return 'conflict' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 'stored'
";

/// Writes what a compaction or a deletion of samples changes, in one step:
/// batches removed and added, blocks removed and written, rollup rows
/// written or removed, the compaction marks; and, for a deletion, drops the
/// hosts whose latest sample is older than its bound.
///
/// KEYS: by_seq, by_max, by_min, batch, batch_meta, block, block_meta,
/// block_by_start, rollup:60000, rollup_by_start:60000, rollup:600000,
/// rollup_by_start:600000, compacted_seq, rolled_up_until, latest,
/// latest_ts, rollup:3600000, rollup_by_start:3600000.
/// ARGV, in groups each led by its count: batch firsts to remove; batches
/// to add (first, last, count, min, max, data); block fields to remove;
/// blocks to write (field, start, `min max count max_seq`, data); rollup
/// rows (1 for minutes, 2 for ten minutes, 3 for hours; field, start,
/// data or empty to remove). Then the highest
/// sequence number compacted (or empty), the time rolled up until (or
/// empty), and the bound under which hosts are dropped (or empty).
pub const WRITE_FOLD: &str = r"
local i = 1
local function group() local n = tonumber(ARGV[i]); i = i + 1; return n end
for r = 1, group() do
  local first = ARGV[i]
  redis.call('ZREM', KEYS[1], first)
  redis.call('ZREM', KEYS[2], first)
  redis.call('ZREM', KEYS[3], first)
  redis.call('HDEL', KEYS[4], first)
  redis.call('HDEL', KEYS[5], first)
  i = i + 1
end
for a = 1, group() do
  local first, last, count, min, max = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  redis.call('ZADD', KEYS[1], first, first)
  redis.call('ZADD', KEYS[2], max, first)
  redis.call('ZADD', KEYS[3], min, first)
  redis.call('HSET', KEYS[4], first, ARGV[i + 5])
  redis.call('HSET', KEYS[5], first, last .. ' ' .. count .. ' ' .. min .. ' ' .. max)
  i = i + 6
end
for r = 1, group() do
  redis.call('ZREM', KEYS[8], ARGV[i])
  redis.call('HDEL', KEYS[6], ARGV[i])
  redis.call('HDEL', KEYS[7], ARGV[i])
  i = i + 1
end
for b = 1, group() do
  local field = ARGV[i]
  redis.call('ZADD', KEYS[8], ARGV[i + 1], field)
  redis.call('HSET', KEYS[7], field, ARGV[i + 2])
  redis.call('HSET', KEYS[6], field, ARGV[i + 3])
  i = i + 4
end
for r = 1, group() do
  local rows, index = KEYS[9], KEYS[10]
  if ARGV[i] == '2' then rows, index = KEYS[11], KEYS[12] end
  if ARGV[i] == '3' then rows, index = KEYS[17], KEYS[18] end
  if ARGV[i + 3] == '' then
    redis.call('HDEL', rows, ARGV[i + 1])
    redis.call('ZREM', index, ARGV[i + 1])
  else
    redis.call('HSET', rows, ARGV[i + 1], ARGV[i + 3])
    redis.call('ZADD', index, ARGV[i + 2], ARGV[i + 1])
  end
  i = i + 4
end
local function raise(key, value)
  if value ~= '' then
    local known = redis.call('GET', key)
    if (not known) or tonumber(known) < tonumber(value) then redis.call('SET', key, value) end
  end
end
raise(KEYS[13], ARGV[i])
raise(KEYS[14], ARGV[i + 1])
if ARGV[i + 2] ~= '' then
  local bound = tonumber(ARGV[i + 2])
  local seen = redis.call('HGETALL', KEYS[16])
  for h = 1, #seen, 2 do
    if tonumber(seen[h + 1]) < bound then
      redis.call('HDEL', KEYS[16], seen[h])
      redis.call('HDEL', KEYS[15], seen[h])
    end
  end
end
return 1
";

/// Reads, as of one moment, what a scan of samples needs: the batches
/// whose latest sample is at or after `from` and which start before the
/// cursor, and the blocks of the periods that can hold `[from, to]`.
///
/// KEYS: by_max, batch_meta, batch, block_by_start, block_meta, block.
/// ARGV: from, to, cursor, the earliest period start (exclusive), a host
/// (or empty for all).
/// Returns {batches, blocks}: batches as first, meta, data, ...; blocks as
/// field, meta, data, ...
pub const READ_RANGE: &str = r"
local cursor = tonumber(ARGV[3])
local host = ARGV[5]
local batches = {}
for _, first in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  if tonumber(first) < cursor then
    batches[#batches + 1] = first
    batches[#batches + 1] = redis.call('HGET', KEYS[2], first)
    batches[#batches + 1] = redis.call('HGET', KEYS[3], first)
  end
end
local blocks = {}
for _, field in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '(' .. ARGV[4], ARGV[2])) do
  if host == '' or string.sub(field, -(#host + 1)) == '\0' .. host then
    blocks[#blocks + 1] = field
    blocks[#blocks + 1] = redis.call('HGET', KEYS[5], field)
    blocks[#blocks + 1] = redis.call('HGET', KEYS[6], field)
  end
end
return {batches, blocks}
";

/// Reads, as of one moment, the batches that hold samples appended at or
/// after a cursor, and the highest sequence number compacted.
///
/// KEYS: by_seq, batch_meta, batch, compacted_seq. ARGV: the cursor.
/// Returns {compacted, first, meta, data, ...}.
pub const READ_SINCE: &str = r"
local out = {redis.call('GET', KEYS[4]) or '0'}
local firsts = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '-inf', 'LIMIT', 0, 1)
for _, first in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  firsts[#firsts + 1] = first
end
for _, first in ipairs(firsts) do
  out[#out + 1] = first
  out[#out + 1] = redis.call('HGET', KEYS[2], first)
  out[#out + 1] = redis.call('HGET', KEYS[3], first)
end
return out
";

/// Takes the lease if nobody else holds it, with a new token.
///
/// KEYS: lease, lease_token. ARGV: node, ttl in ms.
/// Returns the token, or nil while another node holds the lease.
pub const ACQUIRE: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  local holder = string.sub(held, string.find(held, ' ', 1, true) + 1)
  if holder ~= ARGV[1] then return false end
end
local token = redis.call('INCR', KEYS[2])
if held then
  redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'NX', 'PX', ARGV[2])
end
return token
";

/// Extends the lease if it is still the one given (compare and extend).
///
/// KEYS: lease. ARGV: `token node`, ttl in ms. Returns 1, or 0 if lost.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Gives the lease (or any other key held the same way) up if it is still
/// the one given.
///
/// KEYS: lease. ARGV: `token node`.
/// Reads the cluster's identity, writing the given one if there is none.
///
/// KEYS: identity, identity_lost, lost_open. ARGV: a new identity's line.
/// Returns the identity's line, the recorded loss (JSON, or empty) and the
/// lost open incidents' records.
pub const IDENTITY: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1])
  current = ARGV[1]
end
return {current, redis.call('GET', KEYS[2]) or '', redis.call('HVALS', KEYS[3])}
";

pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
";

/// Lua: `stale(tick, lease)`, the last tick recorded (KEYS[`at`], as
/// `tick token`) when `tick` may not be recorded under `lease` (`token
/// node`): only a later tick, or the same under the same lease (a retry),
/// may; `false` otherwise. `record_tick(key, tick, lease)` records it.
/// `queue(keys, kind, target, record, id, due)`: adds one delivery to the
/// outbox; `keys` are outbox_seq, outbox, outbox_key, outbox_next,
/// outbox_ids and pending.
macro_rules! queue_function {
    () => {
        r"
local function queue(keys, kind, target, record, id, due)
  local d = redis.call('INCR', keys[1])
  redis.call('HSET', keys[2], d, kind .. '\0' .. target .. '\0' .. record)
  redis.call('HSET', keys[3], d, id .. '\0' .. target)
  redis.call('HSET', keys[4], d, due)
  redis.call('ZADD', keys[5], d, d)
  redis.call('HINCRBY', keys[6], id, 1)
end
"
    };
}

macro_rules! tick_functions {
    () => {
        r"
local function token_of(lease) return string.sub(lease, 1, string.find(lease, ' ', 1, true) - 1) end
local function stale(key, tick, lease)
  local last = redis.call('GET', key)
  if not last then return false end
  local space = string.find(last, ' ', 1, true)
  local at, token = tonumber(string.sub(last, 1, space - 1)), string.sub(last, space + 1)
  if tick > at or (tick == at and token == token_of(lease)) then return false end
  return string.sub(last, 1, space - 1)
end
local function record_tick(key, tick, lease)
  redis.call('SET', key, string.format('%d', tick) .. ' ' .. token_of(lease))
end
"
    };
}

/// Keeps the leader's published states, and records its tick as the last
/// one, if its lease is current and the tick comes after the last one.
///
/// KEYS: lease, states, last_tick. ARGV: `token node`, the states, the tick.
/// Returns `{'ok'}`, `{'fenced'}`, or `{'stale', last}`.
pub const PUBLISH: &str = concat!(
    tick_functions!(),
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'fenced'} end
local last = stale(KEYS[3], tonumber(ARGV[3]), ARGV[1])
if last then return {'stale', last} end
redis.call('SET', KEYS[2], ARGV[2])
record_tick(KEYS[3], tonumber(ARGV[3]), ARGV[1])
return {'ok'}
"
);

/// Records one tick's transitions under a lease, all or nothing.
///
/// KEYS: lease, incident, open, last_end, resolved, outbox_seq, outbox,
/// outbox_key, outbox_next, outbox_ids, pending, last_tick, pair_states.
/// ARGV: `token node`; the number of transitions, each as kind (`opened`,
/// `resolved`), id, pair (`rule\0host`), the incident's record, its end
/// time (empty while open), the tick, the number of its targets and their
/// names; then the number of pair changes, each as pair, `PENDING CLEAR`
/// (` ` for neither: the pair's state is removed) and its tick. A recorded
/// transition removes its pair's state before the changes apply.
/// Returns `{'ok'}`, `{'fenced'}`, `{'stale', last}` when the tick (the
/// latest of the transitions') does not come after the last one recorded,
/// or `{'open', pair, id}` when an incident would open beside another open
/// one of its pair.
pub const RECORD: &str = concat!(
    tick_functions!(),
    queue_function!(),
    r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'fenced'} end
local transitions = {}
local tick = false
local i = 3
for n = 1, tonumber(ARGV[2]) do
  local t = {kind = ARGV[i], id = ARGV[i + 1], pair = ARGV[i + 2],
    record = ARGV[i + 3], ending = ARGV[i + 4], tick = ARGV[i + 5], targets = {}}
  for k = 1, tonumber(ARGV[i + 6]) do t.targets[k] = ARGV[i + 6 + k] end
  i = i + 7 + #t.targets
  transitions[n] = t
  local at = tonumber(t.tick)
  if (not tick) or at > tick then tick = at end
end
local changes = {}
for n = 1, tonumber(ARGV[i]) do
  changes[n] = {pair = ARGV[i + 1], state = ARGV[i + 2]}
  local at = tonumber(ARGV[i + 3])
  if (not tick) or at > tick then tick = at end
  i = i + 3
end
if tick then
  local last = stale(KEYS[12], tick, ARGV[1])
  if last then return {'stale', last} end
end
local function recorded(t)
  if t.kind == 'opened' then return redis.call('HEXISTS', KEYS[2], t.id) == 1 end
  return redis.call('ZSCORE', KEYS[5], t.id) ~= false
end
for _, t in ipairs(transitions) do
  if t.kind == 'opened' and not recorded(t) then
    local other = redis.call('HGET', KEYS[3], t.pair)
    if other and other ~= t.id then return {'open', t.pair, other} end
  end
end
for _, t in ipairs(transitions) do
  if not recorded(t) then
    redis.call('HDEL', KEYS[13], t.pair)
    redis.call('HSET', KEYS[2], t.id, t.record)
    if t.kind == 'opened' then
      redis.call('HSET', KEYS[3], t.pair, t.id)
    else
      if redis.call('HGET', KEYS[3], t.pair) == t.id then redis.call('HDEL', KEYS[3], t.pair) end
      redis.call('HSET', KEYS[4], t.pair, t.ending)
      redis.call('ZADD', KEYS[5], t.ending, t.id)
    end
    for _, target in ipairs(t.targets) do
      queue({KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}, t.kind, target, t.record, t.id, t.tick)
    end
  end
end
for _, c in ipairs(changes) do
  if c.state == ' ' then redis.call('HDEL', KEYS[13], c.pair)
  else redis.call('HSET', KEYS[13], c.pair, c.state) end
end
if tick then record_tick(KEYS[12], tick, ARGV[1]) end
return {'ok'}
"
);

/// Claims due deliveries for a node, oldest first, at most a given number
/// per target, skipping any with an older delivery of the same incident to
/// the same target still waiting.
///
/// Claims run on Redis's clock (`TIME`): the claim's end, and whether
/// another node's claim ran out, are never read from a caller's clock.
/// Whether a delivery is due is (its time was set on a node's clock).
///
/// KEYS: outbox_ids, outbox_key, outbox_next, claims, outbox_dead.
/// ARGV: now (the caller's clock), node, how long the claim lasts (ms),
/// the most to claim per target, optionally the one target to claim for
/// (empty or absent: every target), and the targets not to claim for (one
/// per line).
/// Returns the claimed deliveries' ids. Dead deliveries are not claimed,
/// and hold back the later ones of their incident and target.
pub const CLAIM: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local clock = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local now, node, per_target = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[4])
local only = ARGV[5] or ''
local skip = {}
for name in string.gmatch(ARGV[6] or '', '[^\n]+') do skip[name] = true end
local till = string.format('%d', clock + tonumber(ARGV[3]))
local claimed, seen, taken = {}, {}, {}
if per_target == 0 then return claimed end
for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = redis.call('HGET', KEYS[2], d)
  local target = string.sub(key, string.find(key, '\0', 1, true) + 1)
  if not seen[key] then
    seen[key] = true
    if (only == '' or only == target) and not skip[target] and (taken[target] or 0) < per_target
        and redis.call('HEXISTS', KEYS[5], d) == 0
        and tonumber(redis.call('HGET', KEYS[3], d)) <= now then
      local claim = redis.call('HGET', KEYS[4], d)
      local free = true
      if claim then
        local space = string.find(claim, ' ', 1, true)
        free = string.sub(claim, space + 1) == node or tonumber(string.sub(claim, 1, space - 1)) <= clock
      end
      if free then
        redis.call('HSET', KEYS[4], d, till .. ' ' .. node)
        claimed[#claimed + 1] = d
        taken[target] = (taken[target] or 0) + 1
      end
    end
  end
end
return claimed
";

/// The earliest time a waiting delivery, not blocked by an older one, is
/// due or its claim runs out (on Redis's clock, which the nodes keep
/// theirs close to); nil when none waits. Dead ones are left out
/// (and hold back the later ones of their incident and target).
///
/// KEYS: outbox_ids, outbox_key, outbox_next, claims, outbox_dead.
pub const NEXT_DUE: &str = r"
local earliest, seen = false, {}
for _, d in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = redis.call('HGET', KEYS[2], d)
  if not seen[key] and redis.call('HEXISTS', KEYS[5], d) == 1 then
    seen[key] = true
  elseif not seen[key] then
    seen[key] = true
    local at = tonumber(redis.call('HGET', KEYS[3], d))
    local claim = redis.call('HGET', KEYS[4], d)
    if claim then
      local till = tonumber(string.sub(claim, 1, string.find(claim, ' ', 1, true) - 1))
      if till > at then at = till end
    end
    if (not earliest) or at < earliest then earliest = at end
  end
end
if earliest then return tostring(earliest) end
return false
";

/// Records a hook call and removes its delivery, or schedules its retry.
///
/// KEYS: calls, outbox, outbox_key, outbox_next, outbox_attempts,
/// outbox_ids, claims, pending, outbox_dead, outbox_held.
/// ARGV: delivery, incident id, the call's record, then what becomes of
/// the delivery: empty (done: removed), `dead` (given up on), or the time
/// of its next try.
pub const FINISH: &str = r"
local d, id = ARGV[1], ARGV[2]
local calls = redis.call('HGET', KEYS[1], id)
if calls then calls = calls .. '\n' .. ARGV[3] else calls = ARGV[3] end
redis.call('HSET', KEYS[1], id, calls)
redis.call('HDEL', KEYS[7], d)
if redis.call('HEXISTS', KEYS[2], d) == 1 then
  -- Called: no longer held by a silence.
  redis.call('HDEL', KEYS[10], d)
  if ARGV[4] == 'dead' then
    redis.call('HINCRBY', KEYS[5], d, 1)
    redis.call('HSET', KEYS[9], d, 1)
  elseif ARGV[4] ~= '' then
    redis.call('HINCRBY', KEYS[5], d, 1)
    redis.call('HSET', KEYS[4], d, ARGV[4])
  else
    redis.call('HDEL', KEYS[9], d)
    redis.call('HDEL', KEYS[10], d)
    redis.call('HDEL', KEYS[2], d)
    redis.call('HDEL', KEYS[3], d)
    redis.call('HDEL', KEYS[4], d)
    redis.call('HDEL', KEYS[5], d)
    redis.call('ZREM', KEYS[6], d)
    if redis.call('HINCRBY', KEYS[8], id, -1) <= 0 then redis.call('HDEL', KEYS[8], id) end
  end
end
return 1
";

/// Holds a delivery back without a call: due again at a time, its claim
/// freed, marked held (by silences), or not marked for an empty mark (a
/// grouped message not due yet).
///
/// KEYS: outbox, outbox_next, claims, outbox_held. ARGV: delivery, the
/// time it is due again, what holds it.
pub const HOLD: &str = r"
local d = ARGV[1]
if redis.call('HEXISTS', KEYS[1], d) == 1 then
  redis.call('HSET', KEYS[2], d, ARGV[2])
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], d, ARGV[3]) end
  redis.call('HDEL', KEYS[3], d)
end
return 1
";

/// Records an incident's acknowledgement unless it has one and, when it
/// is the first, queues an `acknowledged` delivery for each target given;
/// returns the one kept, or false for no such incident.
///
/// KEYS: incident, acks, outbox_seq, outbox, outbox_key, outbox_next,
/// outbox_ids, pending. ARGV: the incident id, the acknowledgement (JSON),
/// its time, the number of targets and their names.
pub const ACKNOWLEDGE: &str = concat!(
    queue_function!(),
    r"
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return false end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  for k = 1, tonumber(ARGV[4]) do
    queue({KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]}, 'acknowledged', ARGV[4 + k], record, ARGV[1], ARGV[3])
  end
end
return redis.call('HGET', KEYS[2], ARGV[1])
"
);

/// Queues a reminder of an incident for a target, due now, and sets its
/// next one.
///
/// KEYS: outbox_seq, outbox, outbox_key, outbox_next, outbox_ids, pending,
/// reminders. ARGV: incident id, target, the incident's record, now, the
/// next reminder's time.
pub const REMIND: &str = concat!(
    queue_function!(),
    r"
queue(KEYS, 'reminder', ARGV[2], ARGV[3], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[7], ARGV[1] .. '\0' .. ARGV[2], ARGV[5])
return 1
"
);

/// Records when a group was last sent, keeping the latest.
///
/// KEYS: group_sent. ARGV: target NUL key, the time.
pub const GROUP_SENT: &str = r"
local known = redis.call('HGET', KEYS[1], ARGV[1])
if (not known) or tonumber(known) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
";

/// Makes every held delivery that is not dead due now. Returns how many
/// were waiting past it.
///
/// KEYS: outbox_held, outbox_next, outbox_dead. ARGV: now.
pub const RELEASE_HELD: &str = r"
local now, released = tonumber(ARGV[1]), 0
for _, d in ipairs(redis.call('HKEYS', KEYS[1])) do
  local at = redis.call('HGET', KEYS[2], d)
  if not at then
    redis.call('HDEL', KEYS[1], d)
  elseif redis.call('HEXISTS', KEYS[3], d) == 0 and tonumber(at) > now then
    redis.call('HSET', KEYS[2], d, ARGV[1])
    released = released + 1
  end
end
return released
";

/// Brings back an incident's dead deliveries, due now. Returns how many.
///
/// KEYS: outbox_key, outbox_dead, outbox_next. ARGV: the incident id, now.
pub const RETRY_DEAD: &str = r"
local prefix = ARGV[1] .. '\0'
local revived = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local d, key = entries[i], entries[i + 1]
  if string.sub(key, 1, #prefix) == prefix and redis.call('HEXISTS', KEYS[2], d) == 1 then
    redis.call('HDEL', KEYS[2], d)
    redis.call('HSET', KEYS[3], d, ARGV[2])
    revived = revived + 1
  end
end
return revived
";

/// Deletes resolved incidents that ended before a time and have no
/// delivery waiting, with their hook calls. Returns how many.
///
/// KEYS: resolved, incident, calls, pending, acks. ARGV: the time.
pub const DELETE_INCIDENTS: &str = r"
local deleted = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])) do
  if redis.call('HEXISTS', KEYS[4], id) == 0 then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HDEL', KEYS[5], id)
    deleted = deleted + 1
  end
end
return deleted
";

/// The scripts, loaded once (their hashes are computed here; Redis learns
/// each at its first use).
pub struct Scripts {
    pub append: Script,
    pub once: Script,
    pub write_fold: Script,
    pub read_range: Script,
    pub read_since: Script,
    pub acquire: Script,
    pub renew: Script,
    pub release: Script,
    pub identity: Script,
    pub record: Script,
    pub publish: Script,
    pub claim: Script,
    pub next_due: Script,
    pub finish: Script,
    pub retry_dead: Script,
    pub delete_incidents: Script,
    pub hold: Script,
    pub release_held: Script,
    pub group_sent: Script,
    pub acknowledge: Script,
    pub remind: Script,
}

impl Scripts {
    pub fn new() -> Scripts {
        Scripts {
            append: Script::new(APPEND),
            once: Script::new(ONCE),
            write_fold: Script::new(WRITE_FOLD),
            read_range: Script::new(READ_RANGE),
            read_since: Script::new(READ_SINCE),
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            identity: Script::new(IDENTITY),
            record: Script::new(RECORD),
            publish: Script::new(PUBLISH),
            claim: Script::new(CLAIM),
            next_due: Script::new(NEXT_DUE),
            finish: Script::new(FINISH),
            retry_dead: Script::new(RETRY_DEAD),
            delete_incidents: Script::new(DELETE_INCIDENTS),
            hold: Script::new(HOLD),
            release_held: Script::new(RELEASE_HELD),
            group_sent: Script::new(GROUP_SENT),
            acknowledge: Script::new(ACKNOWLEDGE),
            remind: Script::new(REMIND),
        }
    }
}
