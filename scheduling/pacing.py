"""Fleet-wide pacing: a send rate per session and per transport, held by every worker on every host
through one Redis script, and a provider's 429 turned into a cooldown the whole fleet honours.

Each pacing key holds its theoretical arrival time (GCRA's TAT, in ms: the next slot at that rate, with
no burst) and the planned time of its latest send. A batch asks for all of its messages in one call, and
gets a time for each: within the current tick for those that may go (the sending thread waits for that
instant, so sends are spaced by the interval however the ticks fall), a later slot, evenly spaced, for
those that must wait (they are deferred to it, never held in a worker). A 429 moves the transport's slot
and next send past the cooldown, so no worker sends there before it ends. Without Redis (the
zero-configuration file broker) nothing is paced.
"""

import logging
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from .rates import parse_rate

logger = logging.getLogger(__name__)

# KEYS: the pacing keys of a batch (hashes: `tat`, the next free slot for a reservation; `last`, the planned
# time of the key's latest send). ARGV: now (ms), the tick (ms), the planning lead (ms), each key's interval
# (ms, 0 = no rate), then per message the indexes of its transport key, of its session key (0: none) and of
# the key it holds a slot on (0: none). A paced message is planned at least the lead ahead. One that must
# wait beyond this tick for a key it does not hold takes a slot there, and only there: a future slot never
# blocks the present of a key it shares with others. One that may go within the tick goes at the first
# instant an interval after each of its keys' latest send (the worker waits for that instant), so late
# work never catches up in a burst. Returns per message its time (ms) and the index of the key it waits on
# (0: it goes then, within the tick).
RESERVE = """
local now, tick, lead, k = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), #KEYS
local tat, last, interval = {}, {}, {}
for i = 1, k do
  interval[i] = tonumber(ARGV[3 + i])
  local stored = redis.call('HMGET', KEYS[i], 'tat', 'last')
  tat[i], last[i] = tonumber(stored[1] or '0'), tonumber(stored[2] or '-1e15')
end
local out, pos = {}, k + 4
while pos <= #ARGV do
  local keys, held = {tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])}, tonumber(ARGV[pos + 2])
  pos = pos + 3
  local at, by = now, 0
  if interval[keys[1]] > 0 or keys[2] > 0 then at = now + lead end
  for _, key in ipairs(keys) do
    if key > 0 and key ~= held and tat[key] > at then at, by = tat[key], key end
  end
  if at <= now + lead + tick then
    for _, key in ipairs(keys) do
      if key > 0 and last[key] + interval[key] > at then at, by = last[key] + interval[key], key end
    end
  end
  if at <= now + lead + tick then
    for _, key in ipairs(keys) do
      if key > 0 then
        if key ~= held then tat[key] = math.max(tat[key], at) + interval[key] end
        last[key] = at
      end
    end
    by = 0
  else
    -- it waits for `by`: a slot of its own there, after those reserved, so that many messages held back
    -- together (a backlog, holders come back late) spread out instead of all coming back at one instant
    at = math.max(at, tat[by])
    tat[by] = at + interval[by]
  end
  out[#out + 1] = math.ceil(at)
  out[#out + 1] = by
end
for i = 1, k do
  redis.call('HSET', KEYS[i], 'tat', tostring(tat[i]), 'last', tostring(last[i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil(math.max(tat[i], last[i]) - now) + 60000)
end
return out
"""

# A 429's cooldown: the transport's next slot and its next send move to now + the wait, unless later already.
COOL_DOWN = """
local ends, interval = tonumber(ARGV[1]) + tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1e15')
redis.call('HSET', KEYS[1], 'tat', tostring(math.max(tat, ends)), 'last', tostring(math.max(last, ends - interval)))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 60000)
"""

DEFAULT_COOLDOWN_S = 1.0
# A paced send is planned at least this far ahead, so that the claim's commit and the thread's start are
# behind it when its instant comes: the sends keep their spacing instead of the jitter of getting there.
PLANNING_LEAD_MS = 50  # a 429 without Retry-After


@dataclass(frozen=True)
class Sender:
    """Who a message is paced as: its transport, its session's own rate if it has one, and the key it
    already holds a slot on ("transport" or "session"; "" for none)."""

    transport: str
    session_id: str
    session_rate: str
    holds: str = ""


@dataclass(frozen=True)
class Slot:
    at_ms: int  # when the message may go: within this tick (the sender waits for it), or later
    waits_on: str  # "" (it goes within this tick), "transport" or "session" (deferred to its slot)


def transport_key(transport: str) -> str:
    return f"pacing:transport:{transport}"


def slots(senders: list[Sender], now_ms: int) -> list[Slot]:
    """Each message's slot, reserved fleet-wide in one call."""
    if _client() is None or not senders:
        return [Slot(now_ms, "")] * len(senders)
    keys, intervals, args, names = [], [], [], {0: ""}

    def index(key: str, interval_ms: float, name: str) -> int:
        if key not in keys:
            keys.append(key)
            intervals.append(interval_ms)
        names[keys.index(key) + 1] = name
        return keys.index(key) + 1

    for sender in senders:
        transport = index(transport_key(sender.transport), transport_interval_ms(sender.transport), "transport")
        rate = parse_rate(sender.session_rate)
        session = index(f"pacing:session:{sender.session_id}", rate.interval_ms, "session") if rate else 0
        args += [transport, session, {"transport": transport, "session": session}.get(sender.holds, 0)]
    tick_ms = settings.DISPATCH_TICK.total_seconds() * 1000
    out = _script(RESERVE)(keys=keys, args=[now_ms, tick_ms, PLANNING_LEAD_MS, *intervals, *args])
    return [Slot(int(out[i]), names[int(out[i + 1])]) for i in range(0, len(out), 2)]


def cool_down(transport: str, seconds: float | None, now_ms: int) -> float:
    """A provider answered 429 for this transport: no worker sends there for `seconds` (its Retry-After)."""
    wait_s = seconds if seconds is not None else DEFAULT_COOLDOWN_S
    if _client() is None:
        return wait_s
    try:
        interval = transport_interval_ms(transport)
        _script(COOL_DOWN)(keys=[transport_key(transport)], args=[now_ms, round(wait_s * 1000), interval])
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
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


@cache
def _script(source: str):
    return _client().register_script(source)
