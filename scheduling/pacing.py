"""Fleet-wide pacing: a send rate per session and per transport, held by every worker on every host
through one Redis script, and a provider's 429 turned into a cooldown the whole fleet honours.

Each pacing key holds its theoretical arrival time (GCRA's TAT, in ms): the next instant a send may go
at that rate. A batch asks for all of its messages in one call, and gets a slot for each: now for those
that may go, a later instant, evenly spaced, for those that must wait (they are deferred to their slot,
never held in a worker). A message goes at a slot free on both of its keys (its session's and its
transport's). A 429 moves the transport's TAT past the cooldown, so no worker sends there before it.
Without Redis (the zero-configuration file broker) nothing is paced.
"""

import logging
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings

from .rates import parse_rate

logger = logging.getLogger(__name__)

# KEYS: the pacing keys of a batch. ARGV: now (ms), each key's interval (ms, 0 = no rate), then per message
# the indexes of its transport key, of its session key (0: none) and of the key it holds a slot on (0: none).
# A message whose keys all allow now goes, and takes a turn on each; one that must wait takes a slot on the
# key that holds it back the longest, and only there: a slot in the future never blocks the present of a
# key it shares with others. Returns each message's slot (ms) and the index of the key it waits on (0: goes).
RESERVE = """
local now, k = tonumber(ARGV[1]), #KEYS
local tat, interval = {}, {}
for i = 1, k do
  interval[i] = tonumber(ARGV[1 + i])
  tat[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
local out, pos = {}, k + 2
while pos <= #ARGV do
  local keys, held = {tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])}, tonumber(ARGV[pos + 2])
  pos = pos + 3
  local slot, by = now, 0
  for _, key in ipairs(keys) do
    if key > 0 and key ~= held and tat[key] > slot then slot, by = tat[key], key end
  end
  if by == 0 then
    for _, key in ipairs(keys) do
      if key > 0 and key ~= held then tat[key] = math.max(tat[key], now) + interval[key] end
    end
  else
    tat[by] = slot + interval[by]
  end
  out[#out + 1] = math.ceil(slot)
  out[#out + 1] = by
end
for i = 1, k do
  if tat[i] > now then redis.call('SET', KEYS[i], tostring(tat[i]), 'PX', math.ceil(tat[i] - now) + 1000) end
end
return out
"""

# A 429's cooldown: the transport's TAT moves to now + the wait, unless it is later already.
COOL_DOWN = """
local ends = tonumber(ARGV[1]) + tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[1]) or '0') < ends then
  redis.call('SET', KEYS[1], tostring(ends), 'PX', tonumber(ARGV[2]) + 1000)
end
"""

DEFAULT_COOLDOWN_S = 1.0  # a 429 without Retry-After


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
    at_ms: int  # when the message may go (now, or later)
    waits_on: str  # "" (it goes now), "transport" or "session"


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
        transport = index(f"pace:transport:{sender.transport}", transport_interval_ms(sender.transport), "transport")
        rate = parse_rate(sender.session_rate)
        session = index(f"pace:session:{sender.session_id}", rate.interval_ms, "session") if rate else 0
        args += [transport, session, {"transport": transport, "session": session}.get(sender.holds, 0)]
    out = _script(RESERVE)(keys=keys, args=[now_ms, *intervals, *args])
    return [Slot(int(out[i]), names[int(out[i + 1])]) for i in range(0, len(out), 2)]


def cool_down(transport: str, seconds: float | None, now_ms: int) -> float:
    """A provider answered 429 for this transport: no worker sends there for `seconds` (its Retry-After)."""
    wait_s = seconds if seconds is not None else DEFAULT_COOLDOWN_S
    if _client() is None:
        return wait_s
    try:
        _script(COOL_DOWN)(keys=[f"pace:transport:{transport}"], args=[now_ms, round(wait_s * 1000)])
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
