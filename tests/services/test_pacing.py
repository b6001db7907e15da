"""Pacing, fleet-wide through Redis: a session's send rate and a transport's, what a batch does with the
messages that must wait (deferred to their slot, never held in a worker), and a provider's 429 turned into
a cooldown that every worker honours. Checked in this process against the real database, Redis and a local
provider; the fleet test (tests/fleet/test_pacing.py) checks the rate at the provider."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import metrics, pacing, services
from scheduling.models import MessageStatus, ScheduledMessage
from scheduling.rates import parse_rate
from scheduling.services.handovers import tick_end
from scheduling.services.pacer import NotNow, Plan, wait_for_turn

from ..factories import campaign, in_seconds
from ..support import Reply
from .test_dispatch_decisions import session_sending_to


@pytest.mark.parametrize(
    ("text", "interval_ms"),
    [("20/s", 50), ("30/min", 2000), ("1000/h", 3600), ("2.5/sec", 400), ("80 / second", 12.5), ("1/minute", 60000)],
)
def test_a_rate_is_read_as_the_time_between_two_sends(text, interval_ms):
    assert parse_rate(text).interval_ms == pytest.approx(interval_ms)


@pytest.mark.parametrize("text", ["fast", "20", "0/s", "20/fortnight", "-3/min", "/s", "1e3/s"])
def test_a_rate_that_cannot_be_read_is_refused_saying_how_to_write_one(text):
    with pytest.raises(ValueError, match="like 20/s or 30/min"):
        parse_rate(text)


def paced_session(provider, settings, transport, rate):
    session = session_sending_to(provider, settings, transport=transport)
    session.send_rate = rate
    session.save()
    return session


def send_due_now():
    services.messages_send_due(until=tick_end(timezone.now()), worker="test")


def by_status(ids):
    return dict(ScheduledMessage.objects.filter(pk__in=ids).values_list("id", "status"))


def test_a_session_over_its_rate_sends_what_fits_and_defers_the_rest_to_evenly_spaced_slots(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = paced_session(provider, settings, "paced-session-transport", "5/s")
    ids = campaign(session, 10, in_seconds(-1))

    send_due_now()

    statuses = by_status(ids)
    # The batch sends what its window (500 ms) holds: at +50, +250 and +450 ms.
    assert list(statuses.values()).count(MessageStatus.SENT) == 3
    waiting = ScheduledMessage.objects.filter(pk__in=ids, status=MessageStatus.PENDING).order_by("paced_for")
    slots = [message.paced_for for message in waiting]
    assert len(slots) == 7
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(slots, slots[1:], strict=False)]
    assert gaps == pytest.approx([0.2] * 6, abs=0.002)  # one every 200 ms: 5/s
    # Each is due 250-500 ms ahead of its slot, so that its task has claimed it when the slot comes.
    assert all(0.25 <= (message.paced_for - message.due_at).total_seconds() < 0.5 for message in waiting)
    assert waiting[0].events.last().detail.startswith("paced (session 5/s): waits 0.")
    assert len(provider.received) == 3


def test_a_deferred_message_goes_at_its_slot_without_asking_its_session_again(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = paced_session(provider, settings, "slot-keeper", "4/s")
    ids = campaign(session, 3, in_seconds(-1))
    send_due_now()
    later = ScheduledMessage.objects.filter(pk__in=ids, status=MessageStatus.PENDING).order_by("due_at").last()
    campaign(session, 5, in_seconds(-1))  # more of the session's messages, due before that slot

    assert later.paced_on == "session"
    slot_reached = timezone.now() - timedelta(milliseconds=1)  # as when its tick comes
    ScheduledMessage.objects.filter(pk=later.pk).update(due_at=slot_reached, paced_for=slot_reached)
    send_due_now()

    assert ScheduledMessage.objects.get(pk=later.pk).status == MessageStatus.SENT


def test_a_deferred_message_is_claimed_ahead_of_its_slot_and_sent_at_it(transactional_db, settings, provider, queue):
    provider.reset()
    session = paced_session(provider, settings, "on-the-dot", "4/s")
    ids = campaign(session, 3, in_seconds(-1))
    send_due_now()  # two go (+50 and +300 ms), the third waits for its slot
    [deferred] = ScheduledMessage.objects.filter(pk__in=ids, status=MessageStatus.PENDING)

    time.sleep(max(0.0, (deferred.due_at - timezone.now()).total_seconds()))
    send_due_now()  # its task, at its due time: before the slot

    [arrival] = provider.requests_for(deferred.pk)
    slot = deferred.paced_for.timestamp()
    assert slot <= arrival.at < slot + 0.1  # never before its slot, and not a slot late
    assert ScheduledMessage.objects.get(pk=deferred.pk).status == MessageStatus.SENT


def test_the_gate_lets_a_keys_sends_through_an_interval_apart_fleet_wide(transactional_db):
    gate = ((f"pacing:transport:gate-{time.time()}", 100.0),)  # 10/s
    assert pacing.gate_wait(gate) == 0  # counted as gone
    assert 0.09 < pacing.gate_wait(gate) <= 0.1  # another worker's send, at once: it must wait
    time.sleep(0.1)
    assert pacing.gate_wait(gate) == 0


def test_at_most_two_and_a_half_percent_over_the_rate_pass_the_gate_in_a_second(transactional_db):
    gate = ((f"pacing:transport:burst-{time.time()}", 20.0),)  # 50/s
    passed, end = [], time.monotonic() + 1.0
    while time.monotonic() < end:
        if pacing.gate_wait(gate) == 0:
            passed.append(time.monotonic())
        time.sleep(0.001)
    assert 45 <= len(passed) <= 51  # 50/s and a tolerance of one send, never more


def test_a_send_that_reaches_the_gate_late_gives_way_to_those_on_time(transactional_db):
    gate = ((f"pacing:session:late-{time.time()}", 100.0),)
    assert pacing.gate_wait(gate) == 0  # a send on time, on another worker, just went

    with pytest.raises(NotNow):  # this one was planned 200 ms ago: taking the next turn would push the rest back
        wait_for_turn(Plan(timezone.now() - timedelta(milliseconds=200), gate))
    wait_for_turn(Plan(timezone.now() + timedelta(milliseconds=100), gate))  # the next one on time goes


def test_a_send_the_gate_would_hold_too_long_goes_back_to_pending_without_an_attempt(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = paced_session(provider, settings, "held-at-the-gate", "1/min")
    [held] = campaign(session, 1, in_seconds(-1))
    assert pacing.gate_wait(((f"pacing:session:{session.pk}", 60000.0),)) == 0  # another fleet sharing its Redis
    before = metrics.read_all().get("pacing", {})

    send_due_now()

    message = ScheduledMessage.objects.get(pk=held)
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)
    assert timedelta(seconds=59) < message.due_at - timezone.now() <= timedelta(seconds=60)
    assert message.events.last().detail.startswith("paced at its send: its rate's spacing leaves it 59.")
    assert provider.received == []
    assert sum(metrics.read_all()["pacing"].values()) - sum(before.values()) == 1  # in the pacing delay histogram


def test_a_transports_rate_paces_every_session_sending_through_it(transactional_db, settings, provider, queue):
    provider.reset()
    first = session_sending_to(provider, settings, transport="paced-transport", RATE="4/s")
    second = services.session_create(name="second", transport="paced-transport").session
    ids = campaign(first, 4, in_seconds(-1)) + campaign(second, 4, in_seconds(-1))

    send_due_now()

    assert list(by_status(ids).values()).count(MessageStatus.SENT) == 2  # at +50 and +300 ms
    slots = sorted(ScheduledMessage.objects.filter(pk__in=ids, status=MessageStatus.PENDING).values_list("paced_for"))
    assert (slots[-1][0] - slots[0][0]).total_seconds() == pytest.approx(5 * 0.25, abs=0.002)


def test_pacing_one_session_never_holds_up_anothers_sends(transactional_db, settings, provider, queue):
    provider.reset()
    paced = paced_session(provider, settings, "shared-carrier", "1/min")
    unpaced = services.session_create(name="unpaced", transport="shared-carrier").session
    held = campaign(paced, 50, in_seconds(-2))
    free = campaign(unpaced, 50, in_seconds(-1))

    send_due_now()

    assert set(by_status(free).values()) == {MessageStatus.SENT}
    assert list(by_status(held).values()).count(MessageStatus.SENT) == 1


def test_a_providers_429_cools_its_transport_down_for_the_whole_fleet_and_is_not_an_attempt(
    transactional_db, settings, provider, queue
):
    provider.reset()
    session = session_sending_to(provider, settings, transport="rate-limited-carrier")
    [refused] = campaign(session, 1, in_seconds(-1))
    provider.script(
        "campaign 0", Reply(429, {"error": {"code": 130429, "message": "Rate limit hit"}}, {"Retry-After": "2"})
    )

    send_due_now()

    message = ScheduledMessage.objects.get(pk=refused)
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)
    assert timedelta(seconds=1.9) <= message.due_at - timezone.now() <= timedelta(seconds=2)
    assert "provider rate limit: transport rate-limited-carrier cools down 2.0 s fleet-wide" in (
        message.events.last().detail
    )
    [next_one] = campaign(session, 1, in_seconds(-1))  # another worker's message for the same transport
    send_due_now()
    assert ScheduledMessage.objects.get(pk=next_one).paced_for >= message.due_at - timedelta(milliseconds=5)
    assert len(provider.received) == 1  # nothing more reached the provider during the cooldown


def test_whatsapps_rate_limit_code_is_a_rate_limit_even_without_a_429(transactional_db, settings, provider, queue):
    provider.reset()
    session = session_sending_to(provider, settings, transport="whatsapp-400-130429")
    [refused] = campaign(session, 1, in_seconds(-1))
    provider.script("campaign 0", Reply(400, {"error": {"code": 130429, "message": "(#130429) Rate limit hit"}}))

    send_due_now()

    message = ScheduledMessage.objects.get(pk=refused)
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)  # not failed as a 4xx refusal


def test_the_pacing_delay_is_measured_for_every_deferred_message(transactional_db, settings, provider, queue):
    provider.reset()
    before = metrics.read_all().get("pacing", {})
    session = paced_session(provider, settings, "measured-pace", "2/s")
    campaign(session, 5, in_seconds(-1))

    send_due_now()

    after = metrics.read_all()["pacing"]
    assert sum(after.values()) - sum(before.values()) == 4  # all but the one sent at once
