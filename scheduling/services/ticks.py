"""What a tick's task does (docs/ARCHITECTURE.md, the path of a message): claim a batch of what is due
by the tick, send it side by side, record the outcomes in bulk.

A task that claims a full batch first hands the rest of the tick to another task, so every free worker
process joins a campaign; one that finds nothing left is a no-op. Omnimessages, whose channels are tried
one after another, take the one-message path (dispatch.py).
"""

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import handover, inflight, metrics
from ..models import MessageStatus as Status
from ..models import ScheduledMessage
from ..quiethours import split_quiet
from ..transports import OutgoingMessage, SendResult, TransportError, get_transport
from ..validation import format_instant
from .dispatch import message_dispatch, report_send_failure, send_again_later
from .expiry import expire_late
from .handovers import enqueue_handed_over
from .outgoing import check_media_destination, log_context, outgoing_message, transport_name
from .pacer import NotNow, Plan, pace, wait_for_turn
from .transitions import Postponement, claim_batch, claim_locked, due_by, lock_due, postpone_locked, record_sent

logger = logging.getLogger("scheduling.services")


def messages_send_due(*, until: datetime, worker: str) -> None:
    """Send what is due by `until` (a tick's end): a batch claimed at once and sent side by side; what
    its pacing says must wait goes back to pending, due a little ahead of its slot; what falls in quiet
    hours (made quiet since it was scheduled) at their end; and what is past its deadline expires."""
    actor = f"worker:{worker}"
    with transaction.atomic():
        due = lock_due(until, limit=settings.DISPATCH_SEND_BATCH)
        free, quiet = split_quiet(expire_late(due, actor=actor), timezone.now())
        go, wait = pace(free)
        claimed = claim_locked(list(go), actor=actor)
        postponed = postpone_locked(
            [*wait, *(_held_for_quiet_hours(message, end) for message, end in quiet)], actor=actor
        )
    sending = start_sends(claimed, plans={message.pk: plan for message, plan in go.items()})
    try:  # the bookkeeping waits for no send: they are planned to the ms
        enqueue_handed_over(postponed)  # committed, so their tasks find them
        if len(due) == settings.DISPATCH_SEND_BATCH:
            _hand_on_the_rest(until)
        metrics.count_paced([(row.slot - timezone.now()).total_seconds() for row in wait])
    finally:  # sends under way are always recorded
        finish_sends(sending, actor)
    for message_id, version, due_at in _omnimessages_due(until):
        _sleep_until(due_at)  # within this tick
        message_dispatch(message_id=message_id, version=version, worker=worker)


def _held_for_quiet_hours(message: ScheduledMessage, end: datetime) -> Postponement:
    return Postponement(message, end, f"held for quiet hours until {format_instant(end)}")


def message_dispatch_batch(*, batch: list[tuple[str, int]], worker: str) -> None:
    """Messages named in one task (a batch task of an earlier version): one claim, sent side by side."""
    actor = f"worker:{worker}"
    claimed = claim_batch(batch, actor=actor)
    for message_id, version in batch:  # omnimessages, paused sessions, stale or lost races: the one-message path
        if message_id not in claimed:
            message_dispatch(message_id=message_id, version=version, worker=worker)
    finish_sends(start_sends(list(claimed.values())), actor)


def _hand_on_the_rest(until: datetime) -> None:
    try:
        handover.enqueue_send_due(until, shared=False)
    except handover.BROKER_ERRORS:
        # Nothing is lost: the next tick's task claims everything due by its own end, and the pump re-hands.
        logger.warning("could not hand the rest of a tick on: the broker is unreachable", exc_info=True)


def _omnimessages_due(until: datetime) -> list[tuple[str, int, datetime]]:
    due = ScheduledMessage.objects.filter(
        status=Status.PENDING, due_at__lte=due_by(until), channel_count__gt=0, session__paused_at=None
    )
    return list(due.order_by("due_at").values_list("id", "version", "due_at")[: settings.DISPATCH_SEND_BATCH])


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - timezone.now()).total_seconds()))


@dataclass(frozen=True)
class Sending:
    messages: list[ScheduledMessage]
    transports: list[str]
    calls: inflight.SideBySide


def start_sends(messages: list[ScheduledMessage], plans: dict | None = None) -> Sending:
    """Start sending messages this worker has claimed, side by side, each at its pacing plan if it has one."""
    plans = plans or {}
    transports = [transport_name(message, None) for message in messages]
    calls = [
        partial(_send, name, outgoing_message(message), plans.get(message.pk))
        for message, name in zip(messages, transports, strict=True)
    ]
    return Sending(messages, transports, inflight.SideBySide(calls))


def finish_sends(sending: Sending, actor: str) -> None:
    """Wait for the sends; record the accepted ones in bulk, each failure on its own (rare: a retry later,
    or failed), and hand back what could not start in time or was paced back at its send."""
    outcomes = sending.calls.outcomes(start_within=settings.SEND_TIME_LIMIT / 3)
    accepted, later = [], []
    for message, transport, outcome in zip(sending.messages, sending.transports, outcomes, strict=True):
        if not outcome.started:
            later.append((message, timezone.now(), "batch ran out of time; handed over again"))
        elif isinstance(outcome.error, NotNow):
            later.append((message, timezone.now() + timedelta(seconds=outcome.error.seconds), str(outcome.error)))
        elif isinstance(outcome.error, PastDeadline):  # back to pending: the next claim expires it
            later.append((message, timezone.now(), "its deadline came before its send"))
        elif outcome.error is not None:
            _record_failure(message, transport, outcome.error, actor)
        else:
            accepted.append((message, outcome.value.message_id, outcome.finished_at))
    _record_accepted(accepted, dict(zip((m.pk for m in sending.messages), sending.transports, strict=True)), actor)
    _hand_back(later, actor)
    metrics.count_paced([o.error.seconds for o in outcomes if isinstance(o.error, NotNow)])


class PastDeadline(Exception):
    """The message's deadline came while its send waited for its turn: it must not go."""


def _send(transport: str, outgoing: OutgoingMessage, plan: Plan | None) -> SendResult:
    if plan is not None:  # its instant is within the pacing window, so the wait is short (pacer.py)
        wait_for_turn(plan)
        if plan.deadline is not None and timezone.now() >= plan.deadline:
            raise PastDeadline
    check_media_destination(outgoing)
    return get_transport(transport).send(outgoing)


def _record_accepted(accepted: list, transports: dict, actor: str) -> None:
    recorded = {message.pk for message in record_sent(accepted, actor=actor)} if accepted else set()
    counted = []
    for message, provider_id, _ in accepted:
        if message.pk not in recorded:  # the lease ran out first and the pump took the message back
            logger.error("sent but not recorded: lease lost (provider id %s)", provider_id, extra=log_context(message))
            continue
        lateness = (message.sent_at - message.scheduled_at).total_seconds()
        counted.append((transports[message.pk], lateness))
        logger.info(
            "message sent",
            extra=log_context(message, transport=transports[message.pk], lateness_ms=int(lateness * 1000)),
        )
    metrics.count_sent(counted)


def _record_failure(message: ScheduledMessage, transport: str, error: BaseException, actor: str) -> None:
    if not isinstance(error, TransportError):
        # A bug, not the provider: try again later like a temporary error, and say so loudly.
        logger.error("send raised %r", error, exc_info=error, extra=log_context(message, transport=transport))
        error = TransportError(f"Unexpected error while sending: {error.__class__.__name__}")
    report_send_failure(message, None, transport, error, actor)


def _hand_back(messages: list[tuple[ScheduledMessage, datetime, str]], actor: str) -> None:
    """Sends that did not go (the batch ran out of time, or the gate paced them back): pending again,
    due then, for another task; not counted as attempts."""
    for message, due_at, why in messages:
        with transaction.atomic():
            send_again_later(message, actor, due_at, why, attempts=message.attempts - 1)
