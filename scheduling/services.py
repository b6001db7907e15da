"""Every write, and every status transition, of scheduled messages and their sessions.

Status changes go through `_transition` only: one guarded UPDATE (matching status and version)
whose row count says whether this caller won, plus one history row in the same transaction.
`_claim_batch`, beside it, is its form for claiming several messages handed over together.
"""

import base64
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, F, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from . import handover, metrics, outbound, selectors, webhooks
from .models import (
    ApiCredential,
    ApiKey,
    ChannelAttempt,
    ChannelStatus,
    DeliveryStatus,
    MessageEvent,
    MessageStatus,
    PumpHeartbeat,
    ScheduledMessage,
    Session,
    WebhookAttempt,
    WebhookDelivery,
)
from .transports import OutgoingMessage, TransportError, get_transport
from .validation import format_instant

logger = logging.getLogger(__name__)

Status = MessageStatus
API_KEY_PREFIX = "wask_"
API_KEY_LOOKUP_CHARS = 12
# The shapes api_key_create and api_credential_create make: anything else is refused before a query,
# so that a NUL (which PostgreSQL cannot hold) in a header answers 401, not 500.
API_KEY_SHAPE = re.compile(r"wask_[A-Za-z0-9_-]{43}")
API_USERNAME_SHAPE = re.compile(r"om_[0-9a-f]{16}")
LAST_USED_RESOLUTION = timedelta(minutes=1)


class NotAllowed(Exception):
    """The message is not in a state that allows this action (HTTP 409)."""


# --- Sessions and keys ------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSession:
    session: Session
    api_key: str  # shown once, never stored
    api_username: str  # the Messente-compatible API's basic auth
    api_password: str  # shown once, never stored


def session_create(*, name: str, webhook_url: str = "", transport: str = "default") -> NewSession:
    with transaction.atomic():
        session = Session.objects.create(
            name=name, webhook_url=webhook_url, transport=transport, webhook_secret=new_webhook_secret()
        )
        _, api_key = api_key_create(session=session, label="initial")
        credential, password = api_credential_create(session=session)
    return NewSession(session=session, api_key=api_key, api_username=credential.username, api_password=password)


def new_webhook_secret() -> str:
    # Standard Webhooks form: `whsec_` + base64 of the key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def session_rotate_webhook_secret(*, session: Session) -> str:
    """A new signing secret, in force at once; returned to be shown once."""
    session.webhook_secret = new_webhook_secret()
    Session.objects.filter(pk=session.pk).update(webhook_secret=session.webhook_secret)
    return session.webhook_secret


def session_enable_webhooks(*, session: Session) -> None:
    """Lift the stop a 410 Gone put on the session's endpoint."""
    session.webhook_disabled_at = None
    Session.objects.filter(pk=session.pk).update(webhook_disabled_at=None)


def session_pause(*, session: Session) -> None:
    """Hold all sending for the session: due messages stay pending until it resumes."""
    session.paused_at = timezone.now()
    Session.objects.filter(pk=session.pk, paused_at__isnull=True).update(paused_at=session.paused_at)


def session_resume(*, session: Session) -> None:
    """Resume sending; what fell due meanwhile goes out at the pump's next pass (late, never lost)."""
    session.paused_at = None
    Session.objects.filter(pk=session.pk).update(paused_at=None)


def api_key_rotate(*, session: Session, label: str = "") -> str:
    """A new key, and every older key of the session revoked at once; returned to be shown once."""
    with transaction.atomic():
        ApiKey.objects.filter(session=session, revoked_at__isnull=True).update(revoked_at=timezone.now())
        _, raw = api_key_create(session=session, label=label)
    return raw


def api_key_create(*, session: Session, label: str = "") -> tuple[ApiKey, str]:
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        session=session, prefix=raw[:API_KEY_LOOKUP_CHARS], hashed_key=_hash_key(raw), label=label
    )
    return api_key, raw


def api_key_revoke(*, api_key: ApiKey) -> None:
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """The live key matching `raw`, compared in constant time; None when there is none."""
    if not API_KEY_SHAPE.fullmatch(raw):
        return None
    hashed = _hash_key(raw)
    candidates = ApiKey.objects.select_related("session").filter(
        prefix=raw[:API_KEY_LOOKUP_CHARS], revoked_at__isnull=True
    )
    match = next((key for key in candidates if hmac.compare_digest(key.hashed_key, hashed)), None)
    if match is not None:
        _touch_last_used(match)
    return match


def _hash_key(raw: str) -> str:
    # Keys carry 256 random bits, so a fast hash is safe here (no dictionary to attack).
    return hashlib.sha256(raw.encode()).hexdigest()


def _touch_last_used(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


# --- Scheduling and client-side changes -------------------------------------------------------


def message_schedule(*, session: Session, scheduled_at: datetime, actor: str = "api", **content) -> ScheduledMessage:
    now = timezone.now()
    message = ScheduledMessage(session=session, scheduled_at=scheduled_at, due_at=scheduled_at, **content)
    with transaction.atomic():
        for name, value in _handover_fields(message.id, message.version, message.due_at, now).items():
            setattr(message, name, value)
        message.save(force_insert=True)
        _enqueue_after_commit(message)
        MessageEvent.objects.create(message=message, to_status=Status.PENDING, actor=actor, detail="scheduled")
    return message


# An omnimessage's content lives in its channels (ChannelAttempt.content); the message row holds a copy
# of the first channel's, for the session API's list. Only what applies to every channel may change.
OMNIMESSAGE_CONTENT_FIELDS = {"type", "text", "media", "caption"}


def message_check_changeable(*, message: ScheduledMessage) -> None:
    """NotAllowed unless the message is still pending: asked before an edit is validated, so that a sent
    message answers "no longer pending" rather than complaining about its (past) time."""
    if message.status != Status.PENDING:
        raise NotAllowed(_refusal("change", message))


def message_update(*, message: ScheduledMessage, actor: str = "api", **changes) -> ScheduledMessage:
    """Edit or reschedule a pending message; the task queued for the old version becomes a no-op."""
    if not changes:
        return message
    if message.channel_count and OMNIMESSAGE_CONTENT_FIELDS & changes.keys():
        raise NotAllowed(
            "Cannot change the content of an omnimessage here: it is set per channel. Only scheduledAt and to can "
            "change; to send other content, cancel it and schedule a new omnimessage"
        )
    old_task_id = message.task_id
    detail = "edited: " + ", ".join(sorted(changes))
    if "scheduled_at" in changes:
        changes["due_at"] = changes["scheduled_at"]
    with transaction.atomic():
        if not _transition(message, target=Status.PENDING, allowed_from={Status.PENDING}, actor=actor, detail=detail, **changes):
            raise NotAllowed(_refusal("change", message))
        handover.after_commit(handover.revoke, old_task_id)
    return message


def message_cancel(*, message: ScheduledMessage, actor: str = "api") -> ScheduledMessage:
    """pending → cancelled. Cancelling a cancelled message again is harmless."""
    if message.status == Status.CANCELLED:
        return message
    with transaction.atomic():
        if not _transition(message, target=Status.CANCELLED, allowed_from={Status.PENDING}, actor=actor, detail="cancelled"):
            message.refresh_from_db()
            if message.status == Status.CANCELLED:
                return message
            raise NotAllowed(_refusal("cancel", message))
        handover.after_commit(handover.revoke, message.task_id)
    return message


def message_send_now(*, message: ScheduledMessage, actor: str) -> ScheduledMessage:
    now = timezone.now()
    with transaction.atomic():
        if not _transition(message, target=Status.PENDING, allowed_from={Status.PENDING}, actor=actor, detail="send now", due_at=now):
            raise NotAllowed(_refusal("send now", message))
    return message


def message_retry(*, message: ScheduledMessage, actor: str) -> ScheduledMessage:
    """failed → pending, due now, with a fresh attempt budget (the history keeps the old attempts)."""
    now = timezone.now()
    with transaction.atomic():
        retried = _transition(
            message, target=Status.PENDING, allowed_from={Status.FAILED}, actor=actor, detail="retry requested",
            due_at=now, attempts=0, last_error="",
        )
        if not retried:
            raise NotAllowed(_refusal("retry", message))
    return message


REFUSALS = {
    "cancel": "only pending messages can be cancelled",
    "change": "only pending messages can be changed",
    "send now": "only pending messages can be sent now",
    "retry": "only failed messages can be retried",
}


def _refusal(action: str, message: ScheduledMessage) -> str:
    allowed = Status.FAILED if action == "retry" else Status.PENDING
    if message.status == allowed:
        return f"Cannot {action} the message: it was changed at the same time, try again"
    return f"Cannot {action} a message with status '{message.status}'; {REFUSALS[action]}"


# --- Dispatch (DESIGN.md section 3) -----------------------------------------------------------


def message_dispatch(*, message_id: str, version: int, worker: str) -> None:
    """Claim, send, record. A task for another version, or a lost race, does nothing."""
    message = ScheduledMessage.objects.select_related("session").filter(pk=message_id).first()
    if message is None or message.version != version or message.status != Status.PENDING:
        return
    if message.session.paused_at is not None:
        # Leave it pending and un-handed: the pump hands it over again once the session resumes.
        ScheduledMessage.objects.filter(pk=message.pk, version=version).update(handed_over_at=None)
        return
    actor = f"worker:{worker}"
    attempt = current_channel(message)
    if attempt is not None and attempt.deadline and timezone.now() >= attempt.deadline:
        with transaction.atomic():
            _give_up_channel(message, attempt, ChannelStatus.EXPIRED, "no success within the channel's ttl", actor)
        return
    with transaction.atomic():
        claimed = _transition(
            message, target=Status.SENDING, allowed_from={Status.PENDING}, actor=actor, detail="claimed",
            attempts=message.attempts + 1, lease_until=timezone.now() + settings.DISPATCH_LEASE,
        )
        if claimed and attempt is not None and attempt.started_at is None:
            _channel_started(attempt)
    if claimed:
        _send_claimed(message, attempt, actor)


def message_dispatch_batch(*, batch: list[tuple[str, int]], worker: str) -> None:
    """Send messages handed over together (due at the same instant): one claim for all, then each
    is sent and recorded in turn, as message_dispatch does for one. The rest of a batch that takes
    too long goes back to be handed over one by one, so a batch always ends within its time limit."""
    actor = f"worker:{worker}"
    claimed = _claim_batch(batch, actor=actor)
    for message_id, version in batch:  # omnimessages, paused sessions, stale or lost races: the one-message path
        if message_id not in claimed:
            message_dispatch(message_id=message_id, version=version, worker=worker)
    budget_ends = time.monotonic() + settings.SEND_TIME_LIMIT / 3
    waiting = list(claimed.values())
    while waiting and time.monotonic() < budget_ends:
        _send_claimed(waiting.pop(0), None, actor)
    for message in waiting:
        with transaction.atomic():
            _transition(message, target=Status.PENDING, allowed_from={Status.SENDING}, actor=actor, due_at=timezone.now(),
                        lease_until=None, attempts=message.attempts - 1, detail="batch ran out of time; handed over alone")


def _send_claimed(message: ScheduledMessage, attempt: ChannelAttempt | None, actor: str) -> None:
    """Send a message this worker has claimed (status sending) and record the outcome."""
    transport = transport_name(message, attempt)
    outgoing = outgoing_message(message, attempt)
    try:
        _check_media_destination(outgoing)
        result = get_transport(transport).send(outgoing)
    except TransportError as error:
        outcome = _record_send_failure(message, attempt, error, actor)
        metrics.count_send(transport=transport, outcome=outcome)
        logger.warning("send %s: %s", outcome, error, extra=_log_context(message, transport=transport))
        return
    with transaction.atomic():
        recorded = _transition(
            message, target=Status.SENT, allowed_from={Status.SENDING}, actor=actor, detail=f"provider id {result.message_id}",
            sent_at=timezone.now(), provider_message_id=result.message_id, lease_until=None, last_error="",
        )
        if not recorded:  # the lease ran out first and the pump took the message back: cannot happen within time limits
            logger.error("sent but not recorded: lease lost (provider id %s)", result.message_id, extra=_log_context(message))
            return
        if attempt is not None:
            _channel_report(message, attempt, ChannelStatus.ACK)
    lateness = (message.sent_at - message.scheduled_at).total_seconds()
    metrics.count_send(transport=transport, outcome="sent", lateness=lateness)
    logger.info("message sent", extra=_log_context(message, transport=transport, lateness_ms=int(lateness * 1000)))


def _check_media_destination(outgoing: OutgoingMessage) -> None:
    """The provider (often a gateway inside our network) fetches the media: its host is checked now,
    as a webhook's is when connecting, since the name may resolve elsewhere than when it was scheduled."""
    if not outgoing.media or settings.WEBHOOK_ALLOW_PRIVATE:
        return
    try:
        outbound.check_destination(outgoing.media)
    except outbound.ForbiddenDestination as refused:
        raise TransportError(f"Media URL {refused}", permanent=True) from None


def _log_context(message: ScheduledMessage, **more) -> dict:
    return {"message_id": message.id, "session_id": str(message.session_id), **more}


def outgoing_message(message: ScheduledMessage, attempt: ChannelAttempt | None = None) -> OutgoingMessage:
    if attempt is None:
        return OutgoingMessage(
            idempotency_key=message.id, to=message.to, type=message.type,
            text=message.text, media=message.media, caption=message.caption,
        )
    return OutgoingMessage(
        idempotency_key=str(attempt.channel_message_id), to=message.to, channel=attempt.channel,
        sender=attempt.sender, **attempt.content,
    )


def transport_name(message: ScheduledMessage, attempt: ChannelAttempt | None) -> str:
    if attempt is None:
        return message.session.transport
    return message.session.channel_transports.get(attempt.channel) or settings.CHANNEL_TRANSPORTS[attempt.channel]


def current_channel(message: ScheduledMessage) -> ChannelAttempt | None:
    """The omnimessage channel being tried now; None for a session-API message."""
    if not message.channel_count:
        return None
    return message.channels.filter(position=message.current_channel).first()


def _record_send_failure(message: ScheduledMessage, attempt: ChannelAttempt | None, error: TransportError, actor: str) -> str:
    """Fail, fall back to the next channel, or schedule a retry; say which ("failed" or "retry")."""
    now = timezone.now()
    with transaction.atomic():
        if error.permanent or message.attempts >= settings.DISPATCH_MAX_ATTEMPTS:
            reason = str(error) if error.permanent else f"{error} (gave up after {message.attempts} attempts)"
            if attempt is not None:
                _give_up_channel(message, attempt, ChannelStatus.FAILED, reason, actor)
                return "failed"
            _transition(
                message, target=Status.FAILED, allowed_from={Status.SENDING}, actor=actor, detail=reason,
                last_error=reason, lease_until=None,
            )
            return "failed"
        due_at = now + timedelta(seconds=retry_delay(message.attempts, error.retry_after))
        if attempt is not None and attempt.deadline:
            due_at = min(due_at, attempt.deadline)  # at the deadline the channel expires and the next one goes
        _transition(
            message, target=Status.PENDING, allowed_from={Status.SENDING}, actor=actor,
            detail=f"temporary error, retry in {(due_at - now).total_seconds():.1f} s: {error}",
            last_error=str(error), lease_until=None, due_at=due_at,
        )
    return "retry"


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    """Exponential back-off with equal jitter; a provider's Retry-After is a floor."""
    ceiling = min(settings.DISPATCH_RETRY_MAX, settings.DISPATCH_RETRY_BASE * 2 ** max(0, attempts - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


@dataclass(frozen=True)
class PumpPass:
    moved: int  # messages and webhook deliveries handed over or recovered
    broker_reachable: bool


def dispatch_pump_once() -> PumpPass:
    """Hand over what has entered the horizon, re-hand lost hand-overs, recover expired leases.
    While the broker cannot be reached, only the leases (database work) are seen to.

    Safe in several replicas: rows are claimed with FOR UPDATE SKIP LOCKED on PostgreSQL.
    """
    now = selectors.db_now()
    lost_work = handover.broker_lost_work()
    if lost_work is None:
        return PumpPass(moved=_recover_expired_leases(now), broker_reachable=False)
    if lost_work:
        _hand_over_everything_again(now)
        handover.broker_keeps_work()
    return PumpPass(moved=_hand_over_all_due(now) + _recover_expired_leases(now), broker_reachable=True)


def _hand_over_all_due(now: datetime) -> int:
    backlog = handover.broker_backlog()
    messages = _hand_over_due(
        ScheduledMessage.objects.filter(status=Status.PENDING, session__paused_at__isnull=True), _enqueue_sends, now,
        backlog=backlog, front=selectors.dispatch_front(now),
        task_id=Concat(Value("send-"), F("id"), Value("-v"), Cast("version", CharField())),
    )
    deliveries = _hand_over_due(
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING), _enqueue_deliveries, now, backlog=backlog
    )
    return messages + deliveries


def _hand_over_everything_again(now: datetime) -> None:
    """The broker may have lost every task it held (a new, flushed or failed-over Redis, or a worker
    that reconnected and dropped its ETA tasks): mark every outstanding hand-over as not made, so this
    very pass makes them again. A task that was not lost after all finds its message claimed: a no-op."""
    with transaction.atomic():
        messages = ScheduledMessage.objects.select_for_update(skip_locked=True).filter(
            status=Status.PENDING, handed_over_at__lt=now
        )
        message_rows = list(messages.values_list("id", "version"))
        ScheduledMessage.objects.filter(pk__in=[row[0] for row in message_rows]).update(handed_over_at=None)
        MessageEvent.objects.bulk_create(
            MessageEvent(message_id=message_id, from_status=Status.PENDING, to_status=Status.PENDING, actor="pump",
                         detail=f"the broker may have lost the hand-over of version {version} (new or flushed"
                                " broker, or a worker reconnected); handing over again")
            for message_id, version in message_rows
        )
        deliveries = WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, handed_over_at__lt=now)
        delivery_count = deliveries.update(handed_over_at=None)
    if message_rows or delivery_count:
        logger.warning("the broker may have lost its tasks: handing over %d message(s) and %d webhook delivery(ies)"
                       " again", len(message_rows), delivery_count)


def _hand_over_due(pending, enqueue, now: datetime, *, backlog: int | None, front: datetime | None = None,
                   **bookkeeping) -> int:
    """Enqueue pending rows due within the horizon that were never handed over, or whose hand-over
    is still pending well past its time (lost with a flushed broker or a killed worker).

    A late task is most likely still waiting, not lost, while the broker has a backlog, or while
    the fleet is still sending messages due before it (`front`: a campaign draining late, its tasks
    held by the workers): re-handing it then would only add duplicates to work that is already behind.
    """
    stale = now - settings.DISPATCH_STALE_AFTER
    unhanded = Q(handed_over_at__isnull=True)
    lost = Q(due_at__lt=(front or now) - settings.DISPATCH_STALE_AFTER, handed_over_at__lt=stale)
    with transaction.atomic():
        due = list(
            pending.select_for_update(skip_locked=True, of=("self",))
            .filter(due_at__lte=now + settings.DISPATCH_HORIZON)
            .filter(unhanded if backlog else unhanded | lost)
            .order_by("due_at")
            .values_list("id", "version", "due_at", "handed_over_at")[: settings.DISPATCH_PUMP_BATCH]
        )
        if not due:
            return 0
        pending.model.objects.filter(pk__in=[row[0] for row in due]).update(handed_over_at=now, **bookkeeping)
        lost = [row for row in due if row[3] is not None]
        if lost:
            logger.warning("re-handing %d %s row(s) whose hand-over was lost", len(lost), pending.model.__name__)
        if pending.model is ScheduledMessage:
            _log_lost_handovers(lost)
        handover.after_commit(enqueue, due, undo=partial(_forget_handovers, pending.model, [row[0] for row in due], now))
    return len(due)


# A group of messages due together is split into at least this many batches (while it has that many
# messages): more than a small fleet has pool processes, so all of them start on it at once.
BATCHES_PER_GROUP = 16


def _enqueue_sends(rows) -> None:
    """Messages due at the same instant (a campaign) go in batches: one task, one claim for many. So do
    those already past their time (the backlog after a broker outage or a paused session): all are due now."""
    now = timezone.now()
    for group in _same_due_batches(rows, settings.DISPATCH_SEND_BATCH, now):
        if len(group) == 1:
            row_id, version, due_at, _ = group[0]
            handover.enqueue_send(row_id, version, due_at)
        else:
            handover.enqueue_send_batch([(row[0], row[1]) for row in group], group[0][2])


def _same_due_batches(rows, most: int, now: datetime):
    """Split rows (ordered by due time) into batches of one due time each, every time up to `now` counting
    as now. A small group stays in small batches, so that all of the fleet's processes start on it at
    once; a campaign of thousands goes `most` at a time."""
    for _, same_due in groupby(rows, key=lambda row: max(row[2], now)):
        group = list(same_due)
        size = max(1, min(most, len(group) // BATCHES_PER_GROUP))
        for start in range(0, len(group), size):
            yield group[start:start + size]


def _enqueue_deliveries(rows) -> None:
    for row_id, version, due_at, _ in rows:
        handover.enqueue_webhook(row_id, version, due_at)


def _log_lost_handovers(rows) -> None:
    MessageEvent.objects.bulk_create(
        MessageEvent(message_id=row[0], from_status=Status.PENDING, to_status=Status.PENDING, actor="pump",
                     detail=f"hand-over of version {row[1]} presumed lost (broker flushed or worker killed); handed over again")
        for row in rows
    )


def _recover_expired_leases(now: datetime) -> int:
    """A worker died mid-send. Resend only where the transport deduplicates; otherwise fail loudly."""
    expired = ScheduledMessage.objects.select_related("session").filter(status=Status.SENDING, lease_until__lt=now)
    recovered = 0
    for message in expired[: settings.DISPATCH_PUMP_BATCH]:
        with transaction.atomic():
            recovered += _recover_one(message, now)
    return recovered


def _recover_one(message: ScheduledMessage, now: datetime) -> bool:
    try:
        resendable = get_transport(transport_name(message, current_channel(message))).idempotent
    except TransportError:
        resendable = False
    if resendable and message.attempts < settings.DISPATCH_MAX_ATTEMPTS:
        return _transition(
            message, target=Status.PENDING, allowed_from={Status.SENDING}, actor="pump", due_at=now, lease_until=None,
            detail="lease expired (worker lost mid-send); resending with the same idempotency key",
        )
    reason = (
        "Outcome unknown: the worker stopped while sending and the transport cannot deduplicate, "
        "so the message was not sent again"
    )
    return _transition(
        message, target=Status.FAILED, allowed_from={Status.SENDING}, actor="pump", detail=reason,
        last_error=reason, lease_until=None,
    )


# --- The one guarded place where a status changes ---------------------------------------------


def _transition(message: ScheduledMessage, *, target: str, allowed_from: set, actor: str, detail: str = "", **changes) -> bool:
    """Move `message` to `target` if it is still in the status and version we read; say whether we won.

    Must run inside a transaction, so that the history row (and any hand-over) commits with it.
    """
    if message.status not in allowed_from:
        return False
    now = timezone.now()
    fields = {"status": target, "version": message.version + 1, "updated_at": now, **changes}
    if target == Status.PENDING:
        due_at = fields.get("due_at", message.due_at)
        fields.update(_handover_fields(message.pk, fields["version"], due_at, now))
    won = ScheduledMessage.objects.filter(pk=message.pk, status=message.status, version=message.version).update(**fields)
    if not won:
        return False
    from_status = message.status
    for name, value in fields.items():
        setattr(message, name, value)
    MessageEvent.objects.create(
        message=message, from_status=from_status, to_status=target, attempt=message.attempts, actor=actor, detail=detail
    )
    if target == Status.PENDING:
        _enqueue_after_commit(message)
    if target in WEBHOOK_EVENTS:
        _record_webhook(message, WEBHOOK_EVENTS[target], now)
    return True


def _claim_batch(batch: list[tuple[str, int]], *, actor: str) -> dict[str, ScheduledMessage]:
    """`_transition(target=SENDING)` for a batch: lock the rows still pending at the version they were
    handed over for (skipping rows another transaction holds), move them all in one UPDATE, and write
    one history row each. Omnimessages and paused sessions are left to the one-message path."""
    versions = dict(batch)
    now = timezone.now()
    with transaction.atomic():
        # Rows by primary key only, the rest checked here: given `status='pending'` too, the planner may
        # pick the pending-rows index right after a campaign's bulk insert (stale statistics) and read
        # every pending row for each batch.
        rows = ScheduledMessage.objects.select_related("session").select_for_update(skip_locked=True, of=("self",))
        claimed = {
            message.pk: message for message in rows.filter(pk__in=versions)
            if message.status == Status.PENDING and message.version == versions[message.pk]
            and not message.channel_count and message.session.paused_at is None
        }
        if not claimed:
            return {}
        fields = {"status": Status.SENDING, "updated_at": now, "lease_until": now + settings.DISPATCH_LEASE}
        ScheduledMessage.objects.filter(pk__in=claimed).update(version=F("version") + 1, attempts=F("attempts") + 1, **fields)
        for message in claimed.values():
            message.version, message.attempts = message.version + 1, message.attempts + 1
            for name, value in fields.items():
                setattr(message, name, value)
        MessageEvent.objects.bulk_create(
            MessageEvent(message=message, from_status=Status.PENDING, to_status=Status.SENDING, attempt=message.attempts,
                         actor=actor, detail="claimed (batch)")
            for message in claimed.values()
        )
    return claimed


def _handover_fields(message_id: str, version: int, due_at: datetime, now: datetime) -> dict:
    """A message due within the horizon goes straight to Celery; the rest waits for the pump."""
    if due_at > now + settings.DISPATCH_HORIZON:
        return {"handed_over_at": None, "task_id": ""}
    return {"handed_over_at": now, "task_id": handover.send_task_id(message_id, version)}


def _enqueue_after_commit(message: ScheduledMessage) -> None:
    if message.handed_over_at is not None:
        handover.after_commit(handover.enqueue_send, message.pk, message.version, message.due_at,
                              undo=partial(_forget_handovers, ScheduledMessage, [message.pk], message.handed_over_at))


def _forget_handovers(model, ids: list, handed_over_at: datetime) -> None:
    """The broker never got these hand-overs: mark the rows not handed over (unless they have been
    handed over again since), so the pump's next pass after the broker is back hands them over."""
    model.objects.filter(pk__in=ids, handed_over_at=handed_over_at).update(handed_over_at=None)


# --- Webhooks: an outbox written with the change it reports, delivered by workers (DESIGN.md 6) ---

WEBHOOK_EVENTS = {Status.SENT: "message.sent", Status.FAILED: "message.failed", Status.CANCELLED: "message.cancelled"}
WEBHOOK_STATUS_WORD = {Status.SENT: "success", Status.FAILED: "failed", Status.CANCELLED: "cancelled"}


def _record_webhook(message: ScheduledMessage, event: str, now: datetime) -> None:
    session = message.session
    if not session.webhook_url or session.webhook_disabled_at:
        return
    _queue_delivery(message, event, session.webhook_url, webhook_payload(message, event, now), now)


def _queue_delivery(message: ScheduledMessage, event: str, url: str, payload: dict, now: datetime) -> None:
    """The outbox row, in the caller's transaction; its first attempt is handed over on commit."""
    delivery = WebhookDelivery.objects.create(
        session=message.session, message=message, event=event, url=url, payload=payload, due_at=now, handed_over_at=now,
    )
    handover.after_commit(handover.enqueue_webhook, delivery.pk, delivery.version,
                          undo=partial(_forget_handovers, WebhookDelivery, [delivery.pk], now))


def webhook_payload(message: ScheduledMessage, event: str, now: datetime) -> dict:
    """`message.sent` is the seed's body exactly; the other events keep its shape."""
    payload = {
        "event": event,
        "sessionId": str(message.session_id),
        "timestamp": format_instant(now),
        "scheduledId": message.id,
        "status": WEBHOOK_STATUS_WORD[message.status],
        "result": {"messageId": message.provider_message_id, "to": whatsapp_jid(message.to)},
    }
    if message.status != Status.SENT:
        payload["result"] = {"to": whatsapp_jid(message.to)}
    if message.status == Status.FAILED:
        payload["error"] = message.last_error
    return payload


def whatsapp_jid(recipient: str) -> str:
    return recipient if "@" in recipient else f"{recipient}@s.whatsapp.net"


def webhook_deliver(*, delivery_id: str, version: int) -> None:
    """One attempt: claim, POST signed, log the attempt, then delivered / retry later / give up."""
    delivery = WebhookDelivery.objects.select_related("session").filter(pk=delivery_id).first()
    if delivery is None or delivery.version != version or delivery.status != DeliveryStatus.PENDING:
        return
    now = timezone.now()
    # The claim parks the row a lease ahead: if this worker dies, the pump re-hands it then.
    if not _delivery_transition(delivery, attempts=delivery.attempts + 1, due_at=now + settings.DISPATCH_LEASE, handed_over_at=now):
        return
    outcome = webhooks.post(
        webhook_id=delivery.id, url=delivery.url, secret=delivery.session.webhook_secret, payload=delivery.payload,
        timeout=settings.WEBHOOK_TIMEOUT, allow_private=settings.WEBHOOK_ALLOW_PRIVATE,
    )
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, started_at=now, duration_ms=outcome.duration_ms,
            status_code=outcome.status_code, error=outcome.error, response_excerpt=outcome.response_excerpt,
        )
        result = _record_attempt_outcome(delivery, outcome)
    metrics.count_webhook_attempt(outcome=result)
    logger.info(
        "webhook attempt %s: %s", result, outcome.error or outcome.status_code,
        extra={"delivery_id": delivery.id, "message_id": delivery.message_id, "session_id": str(delivery.session_id),
               "event": delivery.event, "status_code": outcome.status_code, "duration_ms": outcome.duration_ms},
    )


def _record_attempt_outcome(delivery: WebhookDelivery, outcome: webhooks.AttemptOutcome) -> str:
    """Delivered, gone (410), exhausted, or a retry later; returns which, for metrics and logs."""
    now = timezone.now()
    result = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        _delivery_transition(delivery, status=DeliveryStatus.DELIVERED, delivered_at=now, **result)
        return "delivered"
    if outcome.gone:
        _delivery_transition(delivery, status=DeliveryStatus.GONE, **result)
        Session.objects.filter(pk=delivery.session_id).update(webhook_disabled_at=now)
        return "gone"
    if delivery.attempts > len(settings.WEBHOOK_RETRY_SCHEDULE):
        _delivery_transition(delivery, status=DeliveryStatus.EXHAUSTED, **result)
        return "exhausted"
    due_at = now + timedelta(seconds=webhook_retry_delay(delivery.attempts, outcome.retry_after))
    _delivery_reschedule(delivery, due_at, now, **result)
    return "retry"


def webhook_retry_delay(attempts: int, retry_after: float | None = None) -> float:
    planned = settings.WEBHOOK_RETRY_SCHEDULE[attempts - 1]
    return max(planned * random.uniform(0.9, 1.1), retry_after or 0.0)


def webhook_redeliver(*, delivery: WebhookDelivery) -> None:
    """Operator's "redeliver": the same event (same webhook-id) again, with a fresh retry budget."""
    now = timezone.now()
    with transaction.atomic():
        _delivery_reschedule(delivery, now, now, status=DeliveryStatus.PENDING, attempts=0)


def _delivery_reschedule(delivery: WebhookDelivery, due_at: datetime, now: datetime, **fields) -> None:
    """Next attempt at `due_at`: short waits go to Celery with an ETA once the write has won and
    committed; long ones wait in the database for the pump."""
    within_horizon = due_at <= now + settings.DISPATCH_HORIZON
    if _delivery_transition(delivery, due_at=due_at, handed_over_at=now if within_horizon else None, **fields) and within_horizon:
        handover.after_commit(handover.enqueue_webhook, delivery.pk, delivery.version, due_at,
                              undo=partial(_forget_handovers, WebhookDelivery, [delivery.pk], now))


def _delivery_transition(delivery: WebhookDelivery, **fields) -> bool:
    """The one guarded write of a delivery: it applies only to the version we read."""
    fields["version"] = delivery.version + 1
    won = WebhookDelivery.objects.filter(pk=delivery.pk, version=delivery.version).update(**fields)
    if won:
        for name, value in fields.items():
            setattr(delivery, name, value)
    return bool(won)


# --- Omnimessages: channels tried in order, each reported to the dlr_url (Messente's API) ---------

CHANNEL_ERR = {ChannelStatus.ACK: 0, ChannelStatus.FAILED: 1, ChannelStatus.EXPIRED: 2, ChannelStatus.DELETED: 0}


@dataclass(frozen=True)
class ChannelSpec:
    channel: str
    sender: str
    content: dict  # type, text, media, caption: what OutgoingMessage carries
    ttl_seconds: int | None = None


def omnimessage_schedule(
    *, session: Session, to: str, channels: list[ChannelSpec], scheduled_at: datetime,
    dlr_url: str = "", priority: str = "", text_store: str = "",
) -> ScheduledMessage:
    first = channels[0].content
    with transaction.atomic():
        message = message_schedule(
            session=session, scheduled_at=scheduled_at, actor="api:omnimessage", to=to, type=first["type"],
            text=first.get("text", ""), media=first.get("media", ""), caption=first.get("caption", ""),
            dlr_url=dlr_url, priority=priority, text_store=text_store, channel_count=len(channels),
        )
        ChannelAttempt.objects.bulk_create(
            ChannelAttempt(message=message, position=position, channel=spec.channel, sender=spec.sender,
                           content=spec.content, ttl_seconds=spec.ttl_seconds)
            for position, spec in enumerate(channels)
        )
    return message


def omnimessage_cancel(*, message: ScheduledMessage) -> None:
    """Messente's cancel: only a message still waiting for its time (else NotAllowed)."""
    if message.status != Status.PENDING:
        raise NotAllowed(_refusal("cancel", message))
    with transaction.atomic():
        message_cancel(message=message, actor="api:omnimessage")
        attempt = current_channel(message)
        if attempt is not None:
            _channel_report(message, attempt, ChannelStatus.DELETED)


def _channel_started(attempt: ChannelAttempt) -> None:
    attempt.started_at = timezone.now()
    ChannelAttempt.objects.filter(pk=attempt.pk, started_at__isnull=True).update(started_at=attempt.started_at)


def _give_up_channel(message: ScheduledMessage, attempt: ChannelAttempt, status: str, reason: str, actor: str) -> None:
    """This channel failed or expired: fall back to the next one, or fail the message after the last."""
    _channel_report(message, attempt, status, reason)
    detail = f"{attempt.channel} {status.lower()}: {reason}"
    changes = {"actor": actor, "last_error": reason, "lease_until": None}
    if message.channels.filter(position=attempt.position + 1).exists():
        _transition(
            message, target=Status.PENDING, allowed_from={Status.PENDING, Status.SENDING}, detail=f"{detail}; next channel",
            current_channel=attempt.position + 1, attempts=0, due_at=timezone.now(), **changes,
        )
    else:
        _transition(message, target=Status.FAILED, allowed_from={Status.PENDING, Status.SENDING}, detail=detail, **changes)


def _channel_report(message: ScheduledMessage, attempt: ChannelAttempt, status: str, error: str = "") -> None:
    """Record a channel's status and queue its delivery report, in the caller's transaction."""
    attempt.status, attempt.error, attempt.err, attempt.status_at = status, error, CHANNEL_ERR[status], timezone.now()
    attempt.save(update_fields=["status", "error", "err", "status_at"])
    if message.dlr_url:
        _queue_delivery(message, "omnimessage.dlr", message.dlr_url, delivery_report(message, attempt), attempt.status_at)


def delivery_report(message: ScheduledMessage, attempt: ChannelAttempt) -> dict:
    """Messente's delivery-report fields (also one entry of the status endpoint)."""
    return {
        "status": attempt.status or None,
        "channel": attempt.channel,
        "message_id": str(attempt.channel_message_id),
        "error": attempt.error or None,
        "err": attempt.err,
        "timestamp": format_instant(attempt.status_at or attempt.started_at),
        "sender": attempt.sender,
        "to": f"+{message.to}",
        "omnimessage_id": message.id,
    }


def api_credential_create(*, session: Session) -> tuple[ApiCredential, str]:
    """Basic-auth username and password for the Messente-compatible API; the password is shown once."""
    password = secrets.token_urlsafe(24)
    credential = ApiCredential.objects.create(
        session=session, username=f"om_{secrets.token_hex(8)}", hashed_password=_hash_key(password)
    )
    return credential, password


def api_credential_revoke(*, credential: ApiCredential) -> None:
    ApiCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def api_credential_authenticate(*, username: str, password: str) -> ApiCredential | None:
    if not API_USERNAME_SHAPE.fullmatch(username):
        return None
    credential = ApiCredential.objects.select_related("session").filter(username=username, revoked_at__isnull=True).first()
    if credential is None or not hmac.compare_digest(credential.hashed_password, _hash_key(password)):
        return None
    return credential


def pump_heartbeat(*, name: str) -> None:
    PumpHeartbeat.objects.update_or_create(pk=name, defaults={"beat_at": timezone.now()})
