"""API request limits, fleet-wide: one Redis script per request, shared by every web process on every host.

GCRA with a burst of the whole limit: "100/min" lets a client make 100 requests at once, then one every
0.6 s, and all 100 again after a quiet minute; no window edge lets 200 through in a second. The time is
Redis's own (TIME), so web hosts with skewed clocks count alike. Without Redis (the zero-configuration
file broker), or while it cannot be reached, requests are not limited: a limit is never worth a refusal
of a request that would otherwise succeed.
"""

import logging
import math
from dataclasses import dataclass
from functools import cache

import redis

from . import store
from .rates import Rate

logger = logging.getLogger(__name__)

# KEYS[1]: the client's key (its theoretical arrival time, ms). ARGV: the period (ms) and the requests it
# allows. Returns: allowed (1/0), requests left now, ms until the whole limit is back, ms until the next
# request is allowed (0 when this one was).
TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local period, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local interval = period / limit
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local wait = 0
if tat + interval - now <= period then
  tat = tat + interval
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now))
else
  wait = tat + interval - now - period
end
return {wait == 0 and 1 or 0, math.floor((period - (tat - now)) / interval), math.ceil(tat - now), math.ceil(wait)}
"""


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # until the whole limit is available again
    retry_after_s: int  # until the next request is allowed; 0 when this one was

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


def take(client_key: str, rate: Rate) -> Allowance | None:
    """Count one request of `client_key` against `rate`; None when Redis cannot say (not limited)."""
    if _client() is None:
        return None
    limit = int(rate.count)
    try:
        allowed, remaining, reset_ms, wait_ms = _script()(
            keys=[f"ratelimit:{client_key}"], args=[rate.period_s * 1000, limit]
        )
    except redis.RedisError:
        logger.warning("API rate limit not applied: Redis unavailable")
        return None
    return Allowance(bool(allowed), limit, max(0, remaining), math.ceil(reset_ms / 1000), math.ceil(wait_ms / 1000))


@cache
def _client():
    return store.shared(timeout=1)  # plain or Sentinel; None in the zero-configuration mode


@cache
def _script():
    return _client().register_script(TAKE)
