"""Reads."""

import re
from datetime import datetime, timedelta
from itertools import islice

from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from .models import MessageStatus, PumpHeartbeat, RecurringSeries, RecurringStatus, ScheduledMessage, Session
from .recurrence import series_occurrences
from .validation import is_message_id

RECURRING_ID = re.compile(r"rec_[A-Za-z0-9_-]{1,36}")


def db_now() -> datetime:
    """One clock for every host: the database's, so a skewed worker or pump cannot send early."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def dispatch_front(now: datetime) -> datetime:
    """How far the fleet has got: the latest due time among the messages it is sending right now
    (under a live lease), or `now` when it sends nothing. A campaign draining late keeps it behind."""
    in_flight = ScheduledMessage.objects.filter(status=MessageStatus.SENDING, lease_until__gt=now)
    latest = in_flight.aggregate(latest=Max("due_at"))["latest"]
    return now if latest is None else min(latest, now)


def message_list(
    *,
    session: Session,
    status: str | None = None,
    batch_id: str | None = None,
    after: tuple[datetime, str] | None = None,
    recurring_id: str | None = None,
):
    """The session's messages in (scheduled_at, id) order; with `after`, only those past that position;
    with `batch_id` or `recurring_id`, only that batch's messages or that series' occurrences."""
    messages = ScheduledMessage.objects.filter(session=session)
    if status:
        messages = messages.filter(status=status)
    if batch_id:
        messages = messages.filter(batch_id=batch_id)
    if recurring_id is not None:
        messages = (
            messages.filter(recurring_id=recurring_id) if RECURRING_ID.fullmatch(recurring_id) else messages.none()
        )
    if after is not None:
        when, message_id = after
        # The leading `>=` bounds the index range; the OR then drops the ties up to and including the last seen.
        messages = messages.filter(Q(scheduled_at__gte=when) & (Q(scheduled_at__gt=when) | Q(pk__gt=message_id)))
    return messages.order_by("scheduled_at", "id")


def message_get(*, session: Session, message_id: str) -> ScheduledMessage | None:
    if not is_message_id(message_id):  # e.g. a NUL from the path, which PostgreSQL cannot even compare
        return None
    return ScheduledMessage.objects.select_related("session").filter(session=session, pk=message_id).first()


def recurring_list(*, session: Session, after: tuple[datetime, str] | None = None):
    """The session's series, oldest first; with `after`, only those past that (created_at, id) position."""
    series = RecurringSeries.objects.filter(session=session)
    if after is not None:
        when, series_id = after
        series = series.filter(Q(created_at__gte=when) & (Q(created_at__gt=when) | Q(pk__gt=series_id)))
    return series.order_by("created_at", "id")


def recurring_get(*, session: Session, recurring_id: str) -> RecurringSeries | None:
    if not RECURRING_ID.fullmatch(recurring_id):
        return None
    return RecurringSeries.objects.filter(session=session, pk=recurring_id).first()


def recurring_next_occurrences(series: RecurringSeries, *, now: datetime, limit: int) -> list[datetime]:
    """What an active series will still send, the earliest `limit`: the occurrences made and pending, then
    those its rule has from its next one on, within its count and until."""
    if series.status != RecurringStatus.ACTIVE:
        return []
    made = series.occurrences.filter(status=MessageStatus.PENDING, occurrence_at__gte=now)
    upcoming = list(made.order_by("occurrence_at").values_list("occurrence_at", flat=True)[:limit])
    if series.next_at is None:
        return upcoming
    left = (
        limit - len(upcoming)
        if series.count is None
        else min(limit - len(upcoming), series.count - series.created_count)
    )
    return upcoming + [o.at for o in islice(series_occurrences(series, since=series.next_at), max(0, left))]


def omnimessage_get(*, session: Session, omnimessage_id: str) -> ScheduledMessage | None:
    """One of the session's omnimessages (a scheduled message with channels)."""
    message = message_get(session=session, message_id=omnimessage_id)
    return message if message is not None and message.channel_count else None


def omnimessage_channels(message: ScheduledMessage, *, reached_only: bool = False):
    """Its channels in the order they are tried; `reached_only`: those tried so far (and the one now)."""
    channels = message.channels.all()  # ordered by position (the model says so)
    return channels.filter(position__lte=message.current_channel) if reached_only else channels


def pump_heartbeat_age() -> float | None:
    latest = PumpHeartbeat.objects.aggregate(latest=Max("beat_at"))["latest"]
    return None if latest is None else (timezone.now() - latest).total_seconds()


def message_counts_by_status() -> dict:
    counts = dict(ScheduledMessage.objects.values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in MessageStatus.values}


def oldest_due_pending(now: datetime) -> datetime | None:
    return ScheduledMessage.objects.filter(status=MessageStatus.PENDING, due_at__lte=now).aggregate(m=Min("due_at"))[
        "m"
    ]


def pending_due_between(start: datetime, end: datetime) -> int:
    return ScheduledMessage.objects.filter(status=MessageStatus.PENDING, due_at__gte=start, due_at__lt=end).count()


def paced_waiting(now: datetime) -> int:
    return ScheduledMessage.objects.filter(status=MessageStatus.PENDING, paced_for__gt=now).count()


DASHBOARD_COLUMNS = [
    "pending",
    "sending",
    "sent",
    "cancelled",
    "failed",
    "expired",
    "due_next_hour",
    "late",
    "failed_last_day",
]


def dashboard_rows(now: datetime) -> list[dict]:
    """Per session: counts by status, due within the hour, late (pending a minute past due), failed today."""
    pending = Q(messages__status=MessageStatus.PENDING)
    counts = {status: Count("messages", filter=Q(messages__status=status)) for status in MessageStatus.values}
    rows = Session.objects.annotate(
        **counts,
        due_next_hour=Count(
            "messages", filter=pending & Q(messages__due_at__gte=now, messages__due_at__lt=now + timedelta(hours=1))
        ),
        late=Count("messages", filter=pending & Q(messages__due_at__lt=now - timedelta(minutes=1))),
        failed_last_day=Count(
            "messages",
            filter=Q(messages__status=MessageStatus.FAILED, messages__updated_at__gte=now - timedelta(days=1)),
        ),
    ).order_by("name")
    return [
        {
            "session_id": s.pk,
            "session_name": s.name,
            "paused": s.paused_at is not None,
            **{column: getattr(s, column) for column in DASHBOARD_COLUMNS},
        }
        for s in rows
    ]


def dashboard_totals(rows: list[dict]) -> dict:
    return {column: sum(row[column] for row in rows) for column in DASHBOARD_COLUMNS}
