"""A session's send rate holds at the provider with two workers sending, and a paced session never slows an
unpaced one due at the same instant. Real Celery workers, Redis, PostgreSQL and a local provider."""

import time

import pytest

from scheduling import services
from scheduling.models import MessageStatus, ScheduledMessage

from .. import support
from ..factories import in_seconds, schedule_via_services

pytestmark = [pytest.mark.dispatch, pytest.mark.rabbitmq]

RATE = 10  # per second


def arrivals(provider, ids, timeout):
    """Arrival times at the provider of each of `ids` (first arrival), once all have arrived."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        seen = {}
        for request in list(provider.received):
            key = request.headers.get("Idempotency-Key")
            if key in ids:
                seen.setdefault(key, request.at)
        if len(seen) == len(ids):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"{len(ids) - len(seen)} of {len(ids)} never reached the provider")


def most_in_one_second(times):
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


def test_a_sessions_rate_holds_fleet_wide_and_an_unpaced_session_is_not_slowed(dispatch, provider, service_env):
    paced = services.session_create(name="paced", send_rate=f"{RATE}/s")
    unpaced = services.session_create(name="unpaced")
    second_worker = support.worker(service_env, "w2").start()
    try:
        due = in_seconds(2.5)
        paced_ids = [schedule_via_services(paced.session, due).id for _ in range(30)]
        unpaced_ids = [schedule_via_services(unpaced.session, due).id for _ in range(30)]
        assert time.time() < due.timestamp()  # all written before they fall due
        paced_at = arrivals(provider, set(paced_ids), timeout=15)
        unpaced_at = arrivals(provider, set(unpaced_ids), timeout=5)
    finally:
        second_worker.stop()

    assert most_in_one_second(paced_at.values()) <= RATE + 1  # GCRA: evenly spaced, no burst beyond one
    span = max(paced_at.values()) - min(paced_at.values())
    assert (len(paced_at) - 1) / span == pytest.approx(RATE, rel=0.1)  # and not slower than the rate either
    assert max(unpaced_at.values()) - due.timestamp() < 1.0  # the other session went out at its time
    assert min(paced_at.values()) >= due.timestamp()  # never early
    waited = ScheduledMessage.objects.filter(pk__in=paced_ids, events__detail__startswith="paced (session 10/s)")
    assert waited.distinct().count() >= 25  # each wait is in the message's history
    assert set(ScheduledMessage.objects.filter(pk__in=paced_ids).values_list("status", flat=True)) == {
        MessageStatus.SENT
    }
