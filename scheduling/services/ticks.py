"""What a tick's task does (docs/ARCHITECTURE.md, the path of a message): claim a batch of what is due
by the tick, send it side by side, record the outcomes in bulk.

A task that claims a full batch first hands the rest of the tick to another task, so every free worker
process joins a campaign; one that finds nothing left is a no-op. Omnimessages, whose channels are tried
one after another, take the one-message path (dispatch.py).
"""

import logging
import time
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import handover, inflight, metrics
from ..models import MessageStatus as Status
from ..models import ScheduledMessage
from ..quiethours import split_quiet
from ..transports import OutgoingMessage, SendResult, TransportError, get_transport
from .dispatch import message_dispatch, report_send_failure, send_again_later
from .outgoing import check_media_destination, log_context, outgoing_message, transport_name
from .pacer import pace
from .transitions import claim_batch, claim_locked, defer_locked, hold_locked, lock_due, record_sent

logger = logging.getLogger("scheduling.services")


def messages_send_due(*, until: datetime, worker: str) -> None:
    """Send what is due by `until` (a tick's end): a batch claimed at once and sent side by side; what
    its pacing says must wait goes back to pending at its slot, and what falls in quiet hours (made
    quiet since it was scheduled) at their end."""
    actor = f"worker:{worker}"
    with transaction.atomic():
        due = lock_due(until, limit=settings.DISPATCH_SEND_BATCH)
        free, held = split_quiet(due, timezone.now())
        go, wait = pace(free)
        claimed = claim_locked(list(go), actor=actor)
        if wait:
            defer_locked(wait, actor=actor)
        if held:
            hold_locked(held, actor=actor)
    if len(due) == settings.DISPATCH_SEND_BATCH:
        _hand_on_the_rest(until)
    metrics.count_paced([(slot - timezone.now()).total_seconds() for _, slot, _, _ in wait])
    send_claimed(claimed, actor, send_at={message.pk: at for message, at in go.items()})
    for message_id, version in _omnimessages_due(until):
        message_dispatch(message_id=message_id, version=version, worker=worker)


def message_dispatch_batch(*, batch: list[tuple[str, int]], worker: str) -> None:
    """Messages named in one task (a batch task of an earlier version): one claim, sent side by side."""
    actor = f"worker:{worker}"
    claimed = claim_batch(batch, actor=actor)
    for message_id, version in batch:  # omnimessages, paused sessions, stale or lost races: the one-message path
        if message_id not in claimed:
            message_dispatch(message_id=message_id, version=version, worker=worker)
    send_claimed(list(claimed.values()), actor)


def _hand_on_the_rest(until: datetime) -> None:
    try:
        handover.enqueue_send_due(until, shared=False)
    except handover.BROKER_ERRORS:
        # Nothing is lost: the next tick's task claims everything due by its own end, and the pump re-hands.
        logger.warning("could not hand the rest of a tick on: the broker is unreachable", exc_info=True)


def _omnimessages_due(until: datetime) -> list[tuple[str, int]]:
    due = ScheduledMessage.objects.filter(
        status=Status.PENDING, due_at__lte=min(until, timezone.now()), channel_count__gt=0, session__paused_at=None
    )
    return list(due.order_by("due_at").values_list("id", "version")[: settings.DISPATCH_SEND_BATCH])


def send_claimed(messages: list[ScheduledMessage], actor: str, send_at: dict | None = None) -> None:
    """Send messages this worker has claimed, side by side (each at its pacing instant, if it has one);
    record the accepted ones in bulk, each failure on its own (rare: a retry later, or failed), and hand
    back what could not start in time."""
    send_at = send_at or {}
    if not messages:
        return
    transports = [transport_name(message, None) for message in messages]
    calls = [
        partial(_send, name, outgoing_message(message), send_at.get(message.pk))
        for message, name in zip(messages, transports, strict=True)
    ]
    outcomes = inflight.call_side_by_side(calls, start_within=settings.SEND_TIME_LIMIT / 3)
    accepted, not_started = [], []
    for message, transport, outcome in zip(messages, transports, outcomes, strict=True):
        if not outcome.started:
            not_started.append(message)
        elif outcome.error is not None:
            _record_failure(message, transport, outcome.error, actor)
        else:
            accepted.append((message, outcome.value.message_id, outcome.finished_at))
    _record_accepted(accepted, dict(zip((m.pk for m in messages), transports, strict=True)), actor)
    _hand_back(not_started, actor)


def _send(transport: str, outgoing: OutgoingMessage, at: datetime | None) -> SendResult:
    if at is not None:  # paced: its instant is within this tick, so the wait is short (at most DISPATCH_TICK)
        time.sleep(max(0.0, (at - timezone.now()).total_seconds()))
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


def _hand_back(messages: list[ScheduledMessage], actor: str) -> None:
    """Sends a batch could not start within its time: pending again, due now, for another task."""
    for message in messages:
        with transaction.atomic():
            send_again_later(
                message,
                actor,
                timezone.now(),
                "batch ran out of time; handed over again",
                attempts=message.attempts - 1,
            )
