"""Fleet-wide counters for /metrics, kept in Redis so that every worker process adds to the same ones.

Workers are many processes on many hosts; a per-process prometheus_client registry would show each
scrape one process's share. Counters here are cheap Redis increments (one pipeline per event) and, like
any Prometheus counter, may reset (a flushed broker): rate() copes. Without Redis (the zero-configuration
file broker) events are not counted; the database-derived figures still are.
"""

import logging
from functools import cache

import redis

from . import store

logger = logging.getLogger(__name__)

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
SENDS = "metrics:sends"  # field "transport|outcome" -> count
LATENESS = "metrics:lateness"  # field "le" -> count of observations in that bucket (not cumulative)
LATENESS_SUM = "metrics:lateness_sum"
WEBHOOKS = "metrics:webhook_attempts"  # field outcome -> count
PACING = "metrics:pacing_delay"  # field "le" -> count of deferrals in that bucket (not cumulative)
PACING_SUM = "metrics:pacing_delay_sum"


@cache
def _client():
    return store.shared(timeout=1)


def _record(*increments):
    client = _client()
    if client is None:
        return
    try:
        pipe = client.pipeline(transaction=False)
        for key, field, amount in increments:
            if isinstance(amount, float):
                pipe.hincrbyfloat(key, field, amount)
            else:
                pipe.hincrby(key, field, amount)
        pipe.execute()
    except redis.RedisError:
        logger.warning("metrics not recorded: Redis unavailable")  # never fail a send over a metric


def count_send(*, transport: str, outcome: str) -> None:
    """A send that did not go out: outcome retry, rate_limited or failed (those that did: count_sent)."""
    _record((SENDS, f"{transport}|{outcome}", 1))


def count_sent(transports_and_lateness: list[tuple[str, float]]) -> None:
    """Sends the provider accepted, (transport, lateness in seconds after scheduledAt) each: one pipeline."""
    increments = []
    for transport, lateness in transports_and_lateness:
        increments += [(SENDS, f"{transport}|sent", 1), *_histogram(LATENESS, LATENESS_SUM, [lateness])]
    if increments:
        _record(*increments)


def count_paced(delays: list[float]) -> None:
    """Messages deferred to their pacing slot: how long each was made to wait (seconds)."""
    if delays:
        _record(*_histogram(PACING, PACING_SUM, delays))


def _histogram(key: str, sum_key: str, values: list[float]) -> list:
    increments = [(key, next((str(b) for b in LATENESS_BUCKETS if value <= b), "+Inf"), 1) for value in values]
    return [*increments, (sum_key, "sum", float(sum(max(value, 0.0) for value in values)))]


def count_webhook_attempt(*, outcome: str) -> None:
    _record((WEBHOOKS, outcome, 1))


def read_all() -> dict:
    client = _client()
    if client is None:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in (SENDS, LATENESS, LATENESS_SUM, WEBHOOKS, PACING, PACING_SUM):
        pipe.hgetall(key)
    sends, lateness, lateness_sum, webhooks, pacing, pacing_sum = pipe.execute()
    decode = lambda table: {k.decode(): float(v) for k, v in table.items()}  # noqa: E731
    return {
        "sends": decode(sends),
        "lateness": decode(lateness),
        "lateness_sum": decode(lateness_sum).get("sum", 0.0),
        "webhooks": decode(webhooks),
        "pacing": decode(pacing),
        "pacing_sum": decode(pacing_sum).get("sum", 0.0),
    }
