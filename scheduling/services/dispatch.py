"""Sending (docs/ARCHITECTURE.md, the path of a message): claim, send through the session's transport,
record the outcome.

A task for another version, or one that lost the race for the claim, does nothing. A temporary error
is retried later from the database (back-off with jitter); a permanent one fails the message, or, for
an omnimessage, gives way to its next channel.
"""

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import metrics, pacing
from ..models import ChannelAttempt, ChannelStatus, ScheduledMessage
from ..models import MessageStatus as Status
from ..transports import TransportError, get_transport
from .expiry import message_expire_if_late
from .omnimessages import channel_report, channel_started, current_channel, give_up_channel
from .outgoing import check_media_destination, log_context, outgoing_message, transport_name
from .transitions import transition

logger = logging.getLogger("scheduling.services")


def message_dispatch(*, message_id: str, version: int, worker: str) -> None:
    """Claim, send, record. A task for another version, or a lost race, does nothing."""
    message = ScheduledMessage.objects.select_related("session").filter(pk=message_id).first()
    if message is None or message.version != version or message.status != Status.PENDING:
        return
    if message.session.paused_at is not None:
        return  # it stays pending; resuming the session marks it for the pump to hand over again
    actor = f"worker:{worker}"
    if message_expire_if_late(message, actor=actor):
        return
    attempt = current_channel(message)
    if attempt is not None and attempt.deadline and timezone.now() >= attempt.deadline:
        with transaction.atomic():
            give_up_channel(message, attempt, ChannelStatus.EXPIRED, "no success within the channel's ttl", actor)
        return
    with transaction.atomic():
        claimed = transition(
            message,
            target=Status.SENDING,
            allowed_from={Status.PENDING},
            actor=actor,
            detail="claimed",
            attempts=message.attempts + 1,
            lease_until=timezone.now() + settings.DISPATCH_LEASE,
        )
        if claimed and attempt is not None and attempt.started_at is None:
            channel_started(attempt)
    if claimed:
        _send_claimed(message, attempt, actor)


def _send_claimed(message: ScheduledMessage, attempt: ChannelAttempt | None, actor: str) -> None:
    """Send a message this worker has claimed (status sending) and record the outcome."""
    transport = transport_name(message, attempt)
    outgoing = outgoing_message(message, attempt)
    try:
        check_media_destination(outgoing)
        result = get_transport(transport).send(outgoing)
    except TransportError as error:
        report_send_failure(message, attempt, transport, error, actor)
        return
    with transaction.atomic():
        recorded = transition(
            message,
            target=Status.SENT,
            allowed_from={Status.SENDING},
            actor=actor,
            detail=f"provider id {result.message_id}",
            sent_at=timezone.now(),
            provider_message_id=result.message_id,
            lease_until=None,
            last_error="",
        )
        if not recorded:  # the lease ran out first and the pump took the message back: cannot happen within time limits
            logger.error(
                "sent but not recorded: lease lost (provider id %s)", result.message_id, extra=log_context(message)
            )
            return
        if attempt is not None:
            channel_report(message, attempt, ChannelStatus.ACK)
    lateness = (message.sent_at - message.scheduled_at).total_seconds()
    metrics.count_sent([(transport, lateness)])
    logger.info("message sent", extra=log_context(message, transport=transport, lateness_ms=int(lateness * 1000)))


def report_send_failure(
    message: ScheduledMessage, attempt: ChannelAttempt | None, transport: str, error: TransportError, actor: str
) -> None:
    """Record a failed send (record_send_failure), count it and log it."""
    outcome = record_send_failure(message, attempt, error, actor)
    metrics.count_send(transport=transport, outcome=outcome)
    logger.warning("send %s: %s", outcome, error, extra=log_context(message, transport=transport))


def record_send_failure(
    message: ScheduledMessage, attempt: ChannelAttempt | None, error: TransportError, actor: str
) -> str:
    """Fail, fall back to the next channel, or schedule a retry; say which ("failed", "retry" or
    "rate_limited")."""
    now = timezone.now()
    if error.rate_limited:
        return _wait_out_rate_limit(message, attempt, error, actor, now)
    with transaction.atomic():
        if error.permanent or message.attempts >= settings.DISPATCH_MAX_ATTEMPTS:
            reason = str(error) if error.permanent else f"{error} (gave up after {message.attempts} attempts)"
            if attempt is not None:
                give_up_channel(message, attempt, ChannelStatus.FAILED, reason, actor)
                return "failed"
            transition(
                message,
                target=Status.FAILED,
                allowed_from={Status.SENDING},
                actor=actor,
                detail=reason,
                last_error=reason,
                lease_until=None,
            )
            return "failed"
        due_at = now + timedelta(seconds=retry_delay(message.attempts, error.retry_after))
        if attempt is not None and attempt.deadline:
            due_at = min(due_at, attempt.deadline)  # at the deadline the channel expires and the next one goes
        detail = f"temporary error, retry in {(due_at - now).total_seconds():.1f} s: {error}"
        send_again_later(message, actor, due_at, detail, last_error=str(error))
    return "retry"


def _wait_out_rate_limit(
    message: ScheduledMessage, attempt: ChannelAttempt | None, error: TransportError, actor: str, now
) -> str:
    """A provider's 429: its sender (the transport) cools down fleet-wide for the Retry-After, and the
    message goes again after it, through pacing; the refused attempt is not counted."""
    transport = transport_name(message, attempt)
    wait_s = pacing.cool_down(transport, error.retry_after, round(now.timestamp() * 1000))
    due_at = now + timedelta(seconds=wait_s)
    if attempt is not None and attempt.deadline:
        due_at = min(due_at, attempt.deadline)
    detail = f"provider rate limit: transport {transport} cools down {wait_s:.1f} s fleet-wide: {error}"
    with transaction.atomic():
        send_again_later(message, actor, due_at, detail, last_error=str(error), attempts=message.attempts - 1)
    return "rate_limited"


def send_again_later(message: ScheduledMessage, actor: str, due_at, detail: str, **changes) -> bool:
    """sending -> pending, due at `due_at`: a retry, a rate limit waited out, a batch out of time."""
    return transition(
        message,
        target=Status.PENDING,
        allowed_from={Status.SENDING},
        actor=actor,
        detail=detail,
        lease_until=None,
        due_at=due_at,
        **changes,
    )


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Exponential back-off with equal jitter; a provider's Retry-After is a floor."""
    ceiling = min(settings.DISPATCH_RETRY_MAX, settings.DISPATCH_RETRY_BASE * 2 ** max(0, attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)
