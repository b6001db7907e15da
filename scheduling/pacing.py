"""Fleet-wide pacing: a send rate per session and per transport, held by every worker on every host
through one Redis script, and a provider's 429 turned into a cooldown the whole fleet honours.

Each pacing key holds its theoretical arrival time (GCRA's TAT, in ms: the next slot at that rate, with
no burst) and the planned time of its latest send. A batch asks for all of its messages in one call, and
gets a time for each: within the next few ticks for those that may go (the sending thread waits for that
instant, so sends are spaced by the interval however the ticks fall), a later slot, evenly spaced, for
those that must wait (they are deferred to it, never held in a worker, and come back a little ahead of
it, so that their task has claimed them when it comes). Just before its request goes out, a paced send
passes a gate that keeps the fleet's actual sends an interval apart. A 429 moves the transport's slot,
next send and gate past the cooldown, so no worker sends there before it ends. Without Redis (the
zero-configuration file broker) nothing is paced.
"""

import logging
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from . import store
from .rates import parse_rate

logger = logging.getLogger(__name__)

# KEYS: the pacing keys of a batch, then for each its planned sends. A key's hash holds `tat` (GCRA's next free
# slot for a reservation), `cool` (no send before this: a 429's cooldown) and `gate` (the gate's own GCRA);
# its sorted set holds the instants of the sends planned in the next few ticks. ARGV: now (ms), the window
# (ms: how far ahead a send may be planned in this batch), the planning lead (ms), each key's interval (ms,
# 0 = no rate), then per message the indexes of its transport key, of its session key (0: none) and of the
# key it holds a slot on (0: none), and when it may go at the earliest (ms: that slot, or its due time).
# A message is planned not before that; a paced one also at least the lead ahead. One that must wait
# beyond the window for a key it does not hold takes a slot there, and only there: a future slot never
# blocks the present of a key it shares with others. One that may go within the window goes at the first
# instant that is an interval away from every send already planned on its keys (the worker waits for that
# instant), whatever order the batches come in: a late batch's sends are spaced, and never crowd the sends
# planned before them. Returns per message its time (ms) and the index of the key it waits on (0: it goes).
RESERVE = """
local now, lead, k = tonumber(ARGV[1]), tonumber(ARGV[3]), #KEYS / 2
local window = now + tonumber(ARGV[2])
local tat, cool, interval = {}, {}, {}
for i = 1, k do
  interval[i] = tonumber(ARGV[3 + i])
  local stored = redis.call('HMGET', KEYS[i], 'tat', 'cool')
  tat[i], cool[i] = tonumber(stored[1] or '0'), tonumber(stored[2] or '0')
  redis.call('ZREMRANGEBYSCORE', KEYS[k + i], '-inf', now - interval[i])
end

local function clear_of_planned(i, at)
  for _, planned in ipairs(redis.call('ZRANGEBYSCORE', KEYS[k + i], '(' .. (at - interval[i]), '+inf')) do
    local t = tonumber(planned)
    if t >= at + interval[i] then break end
    at = t + interval[i]
  end
  return at
end

local out, pos = {}, k + 4
while pos <= #ARGV do
  local keys, held = {tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])}, tonumber(ARGV[pos + 2])
  local at, by, paced = math.max(now, tonumber(ARGV[pos + 3])), 0, false
  pos = pos + 4
  for _, key in ipairs(keys) do
    if key > 0 and interval[key] > 0 then paced = true end
  end
  if paced then at = math.max(at, now + lead) end
  for _, key in ipairs(keys) do
    if key > 0 and cool[key] > at then at, by = cool[key], key end
    if key > 0 and key ~= held and interval[key] > 0 and tat[key] > at then at, by = tat[key], key end
  end
  local moved = true
  while moved and at <= window do
    moved = false
    for _, key in ipairs(keys) do
      if key > 0 and interval[key] > 0 then
        local clear = clear_of_planned(key, at)
        if clear > at then at, by, moved = clear, key, true end
      end
    end
  end
  if at <= window then
    for _, key in ipairs(keys) do
      if key > 0 and interval[key] > 0 then
        if key ~= held then tat[key] = math.max(tat[key], at) + interval[key] end
        redis.call('ZADD', KEYS[k + key], at, tostring(at))
      end
    end
    by = 0
  elseif by > 0 and interval[by] > 0 then
    -- it waits for `by`: a slot of its own there, after those reserved, so that many messages held back
    -- together (a backlog, holders come back late) spread out instead of all coming back at one instant
    at = math.max(at, tat[by])
    tat[by] = at + interval[by]
  end
  out[#out + 1] = math.ceil(at)
  out[#out + 1] = by
end
for i = 1, k do
  redis.call('HSET', KEYS[i], 'tat', tostring(tat[i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(math.max(tat[i], cool[i]) - now) + 60000)
  redis.call('PEXPIRE', KEYS[k + i], math.ceil(window - now) + 60000)
end
return out
"""

# The last guard against bunching. A send planned on time can still start late (a busy core, a slow commit),
# and the sends planned after it, starting on time, would then reach the provider closer together than the
# interval. So just before its request goes out, a paced send passes this gate: GCRA again, on the sends that
# actually go, by Redis's clock (one clock for the whole fleet), with a burst tolerance of whole intervals
# within GATE_BURST_MS, so that a send a little late does not delay every send after it. It says how long
# to wait (ms), or 0 when the send may go (and is counted). KEYS: the message's paced keys; ARGV: per key,
# its interval and its tolerance (ms).
GATE = """
local time = redis.call('TIME')
local now, wait, gate = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000, 0, {}
for i = 1, #KEYS do
  gate[i] = tonumber(redis.call('HGET', KEYS[i], 'gate') or '0')
  wait = math.max(wait, gate[i] - tonumber(ARGV[2 * i]) - now)
end
if wait > 0 then return tostring(wait) end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'gate', tostring(math.max(gate[i], now) + tonumber(ARGV[2 * i - 1])))
  if redis.call('PTTL', KEYS[i]) < 60000 then redis.call('PEXPIRE', KEYS[i], 60000) end
end
return '0'
"""
# At most 2.5 % over the rate pass the gate in any second (rate + 1 at 50/s, exactly the rate at 20/s): the
# rest of the 5 % a provider's cap is usually set above our rate is left for the jitter after the gate.
GATE_BURST_MS = 25

# A 429's cooldown: no send is planned on the transport, nor a slot reserved there, before now + the wait, and
# its gate lets none through before then (ARGV: now by this worker's clock, the wait, the interval and the
# gate's tolerance; ms; the gate counts by Redis's clock, as it always does).
COOL_DOWN = """
local time = redis.call('TIME')
local ends = tonumber(ARGV[1]) + tonumber(ARGV[2])
local gate_ends = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000 + tonumber(ARGV[2]) + tonumber(ARGV[4])
local stored = redis.call('HMGET', KEYS[1], 'tat', 'cool', 'gate')
local tat, cool, gate = tonumber(stored[1] or '0'), tonumber(stored[2] or '0'), tonumber(stored[3] or '0')
redis.call('HSET', KEYS[1], 'tat', tostring(math.max(tat, ends)), 'cool', tostring(math.max(cool, ends)),
  'gate', tostring(math.max(gate, gate_ends)))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 60000)
"""

DEFAULT_COOLDOWN_S = 1.0  # a 429 without Retry-After
# A paced send is planned at least this far ahead, so that the claim's commit and the thread's start are
# behind it when its instant comes: the sends keep their spacing instead of the jitter of getting there.
PLANNING_LEAD_MS = 50
# A message deferred to a slot is due at least this long before it, so that its task (which may start a few
# hundred ms late on a busy fleet) has claimed it when the slot comes, and it goes at its slot, not after it:
# each slot missed is lost to the rate. Deferred messages whose slots fall in one CLAIM_GROUP_MS share their
# due time, and so their task: a paced campaign costs a task per group, not per message.
CLAIM_AHEAD_MS = 250
CLAIM_GROUP_MS = 250
# A batch plans the sends that may go within this window (their threads wait for their instants), and
# defers the rest; a deferred message's batch claims it within the window of its slot.
WINDOW_MS = CLAIM_AHEAD_MS + CLAIM_GROUP_MS


@dataclass(frozen=True)
class Sender:
    """Who a message is paced as: its transport, its session's own rate if it has one, the key it already
    holds a slot on ("transport" or "session"; "" for none), and when it may go at the earliest (ms): that
    slot, or its due time (a tick's task takes what falls due within the tick, and sends each at its time)."""

    transport: str
    session_id: str
    session_rate: str
    holds: str = ""
    not_before_ms: int = 0


@dataclass(frozen=True)
class Slot:
    at_ms: int  # when the message may go: within this tick (the sender waits for it), or later
    waits_on: str  # "" (it goes within this tick), "transport" or "session" (deferred to its slot)
    gate: tuple = ()  # ((key, interval ms), …) of each rate it is paced by: its send passes `gate_wait` first


def transport_key(transport: str) -> str:
    return f"pacing:transport:{transport}"


def slots(senders: list[Sender], now_ms: int) -> list[Slot]:
    """Each message's slot, reserved fleet-wide in one call."""
    if _client() is None or not senders:
        return [Slot(max(now_ms, sender.not_before_ms), "") for sender in senders]
    keys, intervals, args, names = [], [], [], {0: ""}

    def index(key: str, interval_ms: float, name: str) -> int:
        if key not in keys:
            keys.append(key)
            intervals.append(interval_ms)
        names[keys.index(key) + 1] = name
        return keys.index(key) + 1

    gates = []
    for sender in senders:
        transport = index(transport_key(sender.transport), transport_interval_ms(sender.transport), "transport")
        rate = parse_rate(sender.session_rate)
        session = index(f"pacing:session:{sender.session_id}", rate.interval_ms, "session") if rate else 0
        held = {"transport": transport, "session": session}.get(sender.holds, 0)
        args += [transport, session, held, sender.not_before_ms]
        gates.append(tuple((keys[i - 1], intervals[i - 1]) for i in (transport, session) if i and intervals[i - 1]))
    planned = [f"{key}:planned" for key in keys]
    out = _script(RESERVE)(keys=[*keys, *planned], args=[now_ms, WINDOW_MS, PLANNING_LEAD_MS, *intervals, *args])
    return [
        Slot(int(out[i]), names[int(out[i + 1])], gate) for i, gate in zip(range(0, len(out), 2), gates, strict=True)
    ]


def claim_ms(slot_ms: int) -> int:
    """When a message deferred to `slot_ms` is due: its group's start, CLAIM_AHEAD_MS or more before it."""
    return (slot_ms - CLAIM_AHEAD_MS) // CLAIM_GROUP_MS * CLAIM_GROUP_MS


def gate_tolerance_ms(interval_ms: float) -> float:
    """The gate's burst tolerance at this interval: the whole intervals within GATE_BURST_MS."""
    return interval_ms * (GATE_BURST_MS // interval_ms) if interval_ms else 0.0


def gate_wait(gate: tuple) -> float:
    """Seconds this paced send must still wait for its keys' spacing (0: it may go now, and is counted as
    gone). Without Redis, or while Redis cannot be reached, it goes: the plan already spaced it."""
    if not gate or _client() is None:
        return 0.0
    args = [value for _, interval in gate for value in (interval, gate_tolerance_ms(interval))]
    try:
        return float(_script(GATE)(keys=[key for key, _ in gate], args=args)) / 1000
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("could not reach Redis to check a paced send's spacing; it goes as planned", exc_info=True)
        return 0.0


def cool_down(transport: str, seconds: float | None, now_ms: int) -> float:
    """A provider answered 429 for this transport: no worker sends there for `seconds` (its Retry-After)."""
    wait_s = seconds if seconds is not None else DEFAULT_COOLDOWN_S
    if _client() is None:
        return wait_s
    try:
        interval = transport_interval_ms(transport)
        args = [now_ms, round(wait_s * 1000), interval, gate_tolerance_ms(interval)]
        _script(COOL_DOWN)(keys=[transport_key(transport)], args=args)
    except (redis.ConnectionError, redis.TimeoutError):
        logger.warning("could not reach Redis to cool transport %s down fleet-wide", transport, exc_info=True)
    return wait_s


def transport_interval_ms(transport: str) -> float:
    rate = parse_rate(transport_rate_text(transport))
    return rate.interval_ms if rate else 0.0


def transport_rate_text(transport: str) -> str:
    """The transport's OPTIONS["RATE"] ("" when it has none)."""
    return str(settings.TRANSPORTS.get(transport, {}).get("OPTIONS", {}).get("RATE") or "")


@cache
def _client():
    return store.shared(timeout=2)


@cache
def _script(source: str):
    return _client().register_script(source)
