"""What clients and operators do to a recurring series: create, change (future occurrences only), pause,
resume, stop. The occurrences themselves are made by the pump (occurrences.py).

An occurrence already made is an ordinary pending message: a change of the series edits it (or cancels
it, when the new rule no longer has its time), pausing or stopping cancels it, each through the message
services, so its history and webhooks say so.
"""

from datetime import datetime
from itertools import islice, takewhile

from django.db import transaction
from django.utils import timezone

from .. import recurrence
from ..models import MessageStatus, RecurringSeries, RecurringStatus, Session
from ..recurrence import RuleError
from ..wallclock import to_instant, zone
from .messages import NotAllowed, message_cancel, message_update

RULE_FIELDS = {"rrule", "cron", "time_zone", "start_wall", "until", "count"}
CONTENT_FIELDS = {"to", "type", "text", "media", "caption", "template", "ignore_quiet_hours"}


def recurring_create(*, session: Session, start_wall: datetime, actor: str = "api", **fields) -> RecurringSeries:
    """A new active series; RuleError when its rule never fires within its limits."""
    series = RecurringSeries(session=session, start_wall=start_wall.isoformat(), **fields)
    _set_rule(series)
    _restart(series, timezone.now())
    if series.status != RecurringStatus.ACTIVE:
        raise _no_occurrence(series)
    series.save(force_insert=True)
    return series


def _no_occurrence(series: RecurringSeries) -> RuleError:
    """The error for a series that would never send: its limits, or its rule alone (a date that never comes)."""
    if series.until is not None or series.count is not None:
        return RuleError("the rule has no occurrence from startAt (or now) within until and count.", field="until")
    return RuleError(
        "the rule has no occurrence from startAt (or now): it names no date that exists.",
        field="rrule" if series.rrule else "cron",
    )


def recurring_update(*, series: RecurringSeries, actor: str = "api", **changes) -> RecurringSeries:
    """Change the content or the rule; what was sent stays as it was. RuleError as for a new series."""
    with transaction.atomic():
        _lock(series, refuse={RecurringStatus.STOPPED}, action="change")
        if "start_wall" in changes:
            changes["start_wall"] = changes["start_wall"].isoformat()
        for name, value in changes.items():
            setattr(series, name, value)
        if changes.keys() & RULE_FIELDS:
            _set_rule(series)
        now = timezone.now()
        if series.status != RecurringStatus.PAUSED:  # a paused one starts again when it resumes
            _restart(series, now)
        content = {name: value for name, value in changes.items() if name in CONTENT_FIELDS}
        _edit_made(series, content, rule_changed=bool(changes.keys() & RULE_FIELDS), actor=actor)
        _save(series)
    return series


def recurring_pause(*, series: RecurringSeries, actor: str = "api") -> RecurringSeries:
    """No occurrence is made while paused, and those already made (pending) are cancelled."""
    with transaction.atomic():
        _lock(series, refuse={RecurringStatus.STOPPED, RecurringStatus.FINISHED}, action="pause")
        series.status = RecurringStatus.PAUSED
        _cancel_made(series, actor)
        _save(series)
    return series


def recurring_resume(*, series: RecurringSeries, actor: str = "api") -> RecurringSeries:
    """Go on with the first occurrence from now that was not made yet."""
    with transaction.atomic():
        _lock(series, refuse={RecurringStatus.STOPPED, RecurringStatus.FINISHED}, action="resume")
        if series.status == RecurringStatus.PAUSED:
            _restart(series, timezone.now())
            _save(series)
    return series


def recurring_stop(*, series: RecurringSeries, actor: str = "api") -> RecurringSeries:
    """For good: no more occurrences, and those made and still pending are cancelled. Stopping again is harmless."""
    with transaction.atomic():
        _lock(series, refuse=set(), action="stop")
        if series.status != RecurringStatus.STOPPED:
            series.status, series.next_at = RecurringStatus.STOPPED, None
            _cancel_made(series, actor)
            _save(series)
    return series


def _lock(series: RecurringSeries, *, refuse: set, action: str) -> None:
    current = RecurringSeries.objects.select_for_update().get(pk=series.pk)
    for field in current._meta.concrete_fields:
        setattr(series, field.attname, getattr(current, field.attname))
    if series.status in refuse:
        raise NotAllowed(f"Cannot {action} a recurring series with status '{series.status}'", message=series)


def _set_rule(series: RecurringSeries) -> None:
    start = datetime.fromisoformat(series.start_wall)
    rule = recurrence.parse(
        rrule=series.rrule or None, cron=series.cron or None, start=start, tz=zone(series.time_zone)
    )
    series.expanded_rule, series.anchor_wall = rule.expanded, series.start_wall


def _restart(series: RecurringSeries, now: datetime) -> None:
    """Make the series' next occurrence the first from now (or from its start) that its count allows;
    the unique constraint keeps those made already from being made again."""
    since = max(now, to_instant(datetime.fromisoformat(series.start_wall), zone(series.time_zone)))
    left = None if series.count is None else series.count - series.created_count
    first = next(islice(recurrence.series_occurrences(series, since=since), left), None)
    series.next_at = first.at if first else None
    series.status = RecurringStatus.ACTIVE if first else RecurringStatus.FINISHED


def _pending_made(series: RecurringSeries):
    return series.occurrences.select_related("session").filter(status=MessageStatus.PENDING).order_by("occurrence_at")


def _cancel_made(series: RecurringSeries, actor: str) -> None:
    for message in _pending_made(series):
        _cancel(series, message, actor)


def _cancel(series, message, actor) -> None:
    try:
        message_cancel(message=message, actor=actor)
    except NotAllowed:  # claimed by a worker meanwhile: it is being sent
        return
    series.created_count -= 1  # not sent: the series' count has it again


def _edit_made(series: RecurringSeries, content: dict, *, rule_changed: bool, actor: str) -> None:
    """The occurrences made and still pending take the new content; with a new rule, those it no longer
    has are cancelled."""
    made = list(_pending_made(series))
    if not made:
        return
    kept = _occurrences_between(series, made[0].occurrence_at, made[-1].occurrence_at) if rule_changed else None
    for message in made:
        if kept is not None and message.occurrence_at not in kept:
            _cancel(series, message, actor)
        elif changes := {name: value for name, value in content.items() if getattr(message, name) != value}:
            try:
                message_update(message=message, actor=actor, **changes)
            except NotAllowed:  # claimed by a worker meanwhile: it goes as it was
                continue


def _occurrences_between(series: RecurringSeries, first: datetime, last: datetime) -> set:
    found = recurrence.series_occurrences(series, since=first)
    return {occurrence.at for occurrence in takewhile(lambda occurrence: occurrence.at <= last, found)}


def _save(series: RecurringSeries) -> None:
    series.version += 1
    series.save()
