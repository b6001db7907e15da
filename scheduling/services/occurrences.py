"""The pump's part of recurring series: each occurrence becomes an ordinary scheduled message shortly
before it enters the dispatch horizon (RECURRING_LEAD ahead of it), never months ahead.

Exactly once per occurrence: a series is taken with FOR UPDATE SKIP LOCKED, so one pump makes its
occurrences at a time, and the unique constraint on (series, occurrence) turns any second attempt (a
series moved back by an edit or a resume, a race) into a row that is simply not inserted.
"""

import logging
from datetime import datetime
from itertools import islice

from django.conf import settings
from django.db import transaction

from ..models import MessageEvent, RecurringSeries, RecurringStatus, ScheduledMessage
from ..models import MessageStatus as Status
from ..recurrence import Occurrence, series_anchor, series_occurrences
from .handovers import enqueue_handed_over
from .messages import new_message, scheduled_detail

logger = logging.getLogger("scheduling.services")


def occurrences_materialise(now: datetime) -> int:
    """Make the occurrences of active series due by the horizon plus the lead; how many were made."""
    until = now + settings.DISPATCH_HORIZON + settings.RECURRING_LEAD
    made = 0
    with transaction.atomic():
        due = (
            RecurringSeries.objects.select_related("session")
            .select_for_update(skip_locked=True, of=("self",))
            .filter(status=RecurringStatus.ACTIVE, next_at__lte=until)
            .order_by("next_at")[: settings.RECURRING_PUMP_BATCH]
        )
        for series in due:
            made += _materialise(series, now, until)
    if made:
        logger.info("recurring series: %d occurrence(s) made", made)
    return made


def _materialise(series: RecurringSeries, now: datetime, until: datetime) -> int:
    remaining = None if series.count is None else series.count - series.created_count
    anchor = series_anchor(series, since=series.next_at)  # every later search starts at or after this one
    found = series_occurrences(series, since=series.next_at)
    ready, following = [], None
    for occurrence in islice(found, remaining):
        if occurrence.at > until:
            following = occurrence
            break
        ready.append(occurrence)
    series.anchor_wall = anchor.isoformat()  # near the series' position: see the model
    missed = [o for o in ready if o.at < now - settings.RECURRING_MAX_LATENESS]
    if missed:
        logger.warning(
            "recurring series %s: %d occurrence(s) missed by over the lateness limit", series.pk, len(missed)
        )
    made = occurrences_insert(series, [o for o in ready if o not in missed], now)
    series.created_count += made + len(missed)
    series.next_at = following.at if following else None
    if following is None or series.created_count == series.count:
        series.status, series.next_at = RecurringStatus.FINISHED, None
    series.version += 1
    series.save(update_fields=["anchor_wall", "created_count", "next_at", "status", "version", "updated_at"])
    return made


def occurrences_insert(series: RecurringSeries, occurrences: list[Occurrence], now: datetime) -> int:
    """Insert these occurrences as pending messages (those not made already) with their history; how many."""
    made = [_message(series, occurrence, now) for occurrence in occurrences]
    ScheduledMessage.objects.bulk_create(made, ignore_conflicts=True)
    inserted = set(ScheduledMessage.objects.filter(pk__in=[m.pk for m in made]).values_list("pk", flat=True))
    MessageEvent.objects.bulk_create(
        MessageEvent(
            message=message,
            to_status=Status.PENDING,
            actor="pump",
            detail=scheduled_detail(message, f"scheduled: an occurrence of {series.pk}"),
        )
        for message in made
        if message.pk in inserted
    )
    enqueue_handed_over([message for message in made if message.pk in inserted])  # those already within the horizon
    return len(inserted)


def _message(series: RecurringSeries, occurrence: Occurrence, now: datetime) -> ScheduledMessage:
    """The occurrence's message: the series' content, at the occurrence's instant, held for quiet hours and
    given a deadline as any message is."""
    return new_message(
        series.session,
        scheduled_at=occurrence.at,
        now=now,
        to=series.to,
        type=series.type,
        text=series.text,
        media=series.media,
        caption=series.caption,
        template=series.template,
        ignore_quiet_hours=series.ignore_quiet_hours,
        time_zone=series.time_zone,
        recurring=series,
        occurrence_at=occurrence.at,
    )
