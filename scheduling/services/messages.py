"""What clients and operators change on a message: schedule, edit or reschedule, cancel, send now, retry.

A change that its status does not allow raises NotAllowed with the text the APIs answer (409) and
the admin shows.
"""

import copy
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import MessageEvent, ScheduledMessage, Session
from ..models import MessageStatus as Status
from ..quiethours import quiet_until
from ..validation import format_instant
from .handovers import enqueue_handed_over, handover_fields
from .transitions import transition


class NotAllowed(Exception):
    """The message is not in a state that allows this action. Each API answers it its own way (the session
    API 409, Messente's cancel 404), from the text and the message's id and status carried here."""

    def __init__(self, text: str, *, message: ScheduledMessage):
        super().__init__(text)
        self.message_id, self.status = message.pk, message.status


def message_schedule(*, session: Session, scheduled_at: datetime, actor: str = "api", **content) -> ScheduledMessage:
    message = new_message(session, scheduled_at=scheduled_at, now=timezone.now(), **content)
    with transaction.atomic():
        message.save(force_insert=True)
        enqueue_handed_over([message])
        MessageEvent.objects.create(
            message=message, to_status=Status.PENDING, actor=actor, detail=scheduled_detail(message)
        )
    return message


def new_message(
    session: Session, *, scheduled_at: datetime, now: datetime, expires_at: datetime | None = None, **content
) -> ScheduledMessage:
    """A pending message as it is first stored (not saved yet), with its deadline, its due time (after the
    quiet hours its time falls in) and its hand-over fields."""
    message = ScheduledMessage(
        session=session,
        scheduled_at=scheduled_at,
        expires_at=expires_at or default_deadline(session, scheduled_at),
        expiry_from_client=expires_at is not None,
        **content,
    )
    message.due_at, _ = due_with_quiet_hours(message)
    for name, value in handover_fields(message.id, message.version, message.due_at, now).items():
        setattr(message, name, value)
    return message


def default_deadline(session: Session, scheduled_at: datetime) -> datetime | None:
    """scheduledAt plus the session's max lateness, or the setting's; None: no deadline."""
    if session.max_lateness_seconds is not None:
        return scheduled_at + timedelta(seconds=session.max_lateness_seconds)
    lateness = settings.DISPATCH_MAX_LATENESS
    return None if lateness is None else scheduled_at + lateness


def due_with_quiet_hours(message: ScheduledMessage) -> tuple[datetime, str]:
    """When a message at its scheduled time falls due: then, or when the quiet hours it falls in end (known
    now, so that it is not claimed only to be put back); and what its history says of that ("" if not held)."""
    held_until = quiet_until(message, message.scheduled_at)
    if held_until is None:
        return message.scheduled_at, ""
    return held_until, f"held for quiet hours until {format_instant(held_until)}"


def scheduled_detail(message: ScheduledMessage, scheduled: str = "scheduled") -> str:
    """The history of a new message: scheduled, and held for quiet hours if its time falls in them."""
    if message.due_at == message.scheduled_at:
        return scheduled
    return f"{scheduled}; held for quiet hours until {format_instant(message.due_at)}"


# An omnimessage's content lives in its channels (ChannelAttempt.content); the message row holds a copy
# of the first channel's, for the session API's list. Only what applies to every channel may change.
OMNIMESSAGE_CONTENT_FIELDS = {"type", "text", "media", "caption", "template"}


def message_check_changeable(*, message: ScheduledMessage) -> None:
    """NotAllowed unless the message is still pending: asked before an edit is validated, so that a sent
    message answers "no longer pending" rather than complaining about its (past) time."""
    if message.status != Status.PENDING:
        raise refused("change", message)


def message_update(*, message: ScheduledMessage, actor: str = "api", **changes) -> ScheduledMessage:
    """Edit or reschedule a pending message; the task queued for the old version becomes a no-op."""
    if not changes:
        return message
    if message.channel_count and OMNIMESSAGE_CONTENT_FIELDS & changes.keys():
        raise NotAllowed(
            "Cannot change the content of an omnimessage here: it is set per channel. Only scheduledAt and to can "
            "change; to send other content, cancel it and schedule a new omnimessage",
            message=message,
        )
    detail = "edited: " + ", ".join(sorted(changes))
    if changes.keys() & {"scheduled_at", "ignore_quiet_hours"}:  # a new time, or quiet hours now (not) for it
        edited = copy.copy(message)
        for name, value in changes.items():
            setattr(edited, name, value)
        changes["due_at"], held = due_with_quiet_hours(edited)
        detail = "; ".join(filter(None, [detail, held]))
    changes.update(_deadline_changes(message, changes))
    with transaction.atomic():
        if not transition(
            message, target=Status.PENDING, allowed_from={Status.PENDING}, actor=actor, detail=detail, **changes
        ):
            raise refused("change", message)
    return message


def _deadline_changes(message: ScheduledMessage, changes: dict) -> dict:
    """A new expiresAt is the client's; a new time moves a deadline that came from the max lateness, and must
    stay before the client's own."""
    if changes.get("expires_at") is not None:
        return {"expiry_from_client": True}
    if "scheduled_at" not in changes:
        return {}
    if not message.expiry_from_client:
        return {"expires_at": default_deadline(message.session, changes["scheduled_at"])}
    if message.expires_at <= changes["scheduled_at"]:
        raise NotAllowed(
            f"Cannot reschedule the message to {format_instant(changes['scheduled_at'])}: it expires at "
            f"{format_instant(message.expires_at)}; give it a later expiresAt too",
            message=message,
        )
    return {}


def message_cancel(*, message: ScheduledMessage, actor: str = "api") -> ScheduledMessage:
    """pending → cancelled. Cancelling a cancelled message again is harmless."""
    if message.status == Status.CANCELLED:
        return message
    with transaction.atomic():
        if not transition(
            message, target=Status.CANCELLED, allowed_from={Status.PENDING}, actor=actor, detail="cancelled"
        ):
            message.refresh_from_db()
            if message.status == Status.CANCELLED:
                return message
            raise refused("cancel", message)
    return message


def message_send_now(*, message: ScheduledMessage, actor: str) -> ScheduledMessage:
    now = timezone.now()
    with transaction.atomic():
        if not transition(
            message, target=Status.PENDING, allowed_from={Status.PENDING}, actor=actor, detail="send now", due_at=now
        ):
            raise refused("send now", message)
    return message


def message_retry(*, message: ScheduledMessage, actor: str) -> ScheduledMessage:
    """failed → pending, due now, with a fresh attempt budget (the history keeps the old attempts)."""
    now = timezone.now()
    with transaction.atomic():
        retried = transition(
            message,
            target=Status.PENDING,
            allowed_from={Status.FAILED},
            actor=actor,
            detail="retry requested",
            due_at=now,
            attempts=0,
            last_error="",
        )
        if not retried:
            raise refused("retry", message)
    return message


REFUSALS = {
    "cancel": "only pending messages can be cancelled",
    "change": "only pending messages can be changed",
    "send now": "only pending messages can be sent now",
    "retry": "only failed messages can be retried",
}


def refused(action: str, message: ScheduledMessage) -> NotAllowed:
    """Why `action` cannot be done to the message now, in the words the APIs and the admin show."""
    allowed = Status.FAILED if action == "retry" else Status.PENDING
    if message.status == allowed:
        return NotAllowed(f"Cannot {action} the message: it was changed at the same time, try again", message=message)
    return NotAllowed(f"Cannot {action} a message with status '{message.status}'; {REFUSALS[action]}", message=message)
