"""Recurring rules, RRULE (RFC 5545) or cron, run in the wall-clock time of their zone.

Both kinds are evaluated on a naive wall clock (dateutil's rrule and cronsim do that right), and each wall
time becomes an instant by the one rule of wallclock.py: a skipped time right after the change, a repeated
one at its first showing. Dates that do not exist (30 February, the 31st of a short month) are never
produced by either, so they are skipped and not counted, as RFC 5545 says. Two wall times can meet at one
instant (02:30 and 03:30 on a spring-forward night): the series sends once then.
"""

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
from dateutil.rrule import rrulestr

from .rrules import RuleError, expanded_rrule
from .wallclock import to_instant, zone

__all__ = ["Occurrence", "Recurrence", "RuleError", "occurrences", "of_series", "parse", "series_occurrences"]

# Longer than any change of a clock: a wall time this much later can no longer be an earlier instant.
SETTLED_AFTER = timedelta(hours=3)


@dataclass(frozen=True)
class Recurrence:
    kind: str  # "rrule" or "cron"
    expanded: str  # an RRULE with every default taken from its start written out; or the cron expression
    tz: ZoneInfo


@dataclass(frozen=True)
class Occurrence:
    at: datetime  # UTC
    wall: datetime  # the rule's wall time (naive), which may be one the clocks skip


def parse(*, rrule: str | None, cron: str | None, start: datetime, tz: ZoneInfo) -> Recurrence:
    """`start` is the naive wall time the series starts at (RRULE's DTSTART)."""
    if (rrule is None) == (cron is None):
        raise RuleError("give either rrule or cron.")
    if cron is not None:
        return Recurrence("cron", _checked(_checked_cron, cron, start, "cron"), tz)
    return Recurrence("rrule", _checked(expanded_rrule, rrule, start, "rrule"), tz)


def _checked(check, text: str, start: datetime, field: str) -> str:
    try:
        return check(text, start)
    except RuleError as exc:
        raise RuleError(str(exc), field=field) from None


def occurrences(rule: Recurrence, *, anchor: datetime, since: datetime) -> Iterator[Occurrence]:
    """The rule's occurrences at or after the instant `since`, in order, each instant once. `anchor` is
    the series' start or a later occurrence's wall time (an RRULE's INTERVAL counts from it)."""
    walls = _walls(rule, anchor, max(anchor, since.astimezone(rule.tz).replace(tzinfo=None) - SETTLED_AFTER))
    waiting: list[tuple[datetime, datetime]] = []
    last = None
    for wall in walls:
        heapq.heappush(waiting, (to_instant(wall, rule.tz), wall))
        settled = to_instant(wall - SETTLED_AFTER, rule.tz)
        while waiting and waiting[0][0] <= settled:
            last = yield from _emit(heapq.heappop(waiting), since, last)
    while waiting:
        last = yield from _emit(heapq.heappop(waiting), since, last)


def _emit(candidate, since, last):
    at, wall = candidate
    if at >= since and at != last:
        yield Occurrence(at, wall)
    return at


def _walls(rule: Recurrence, anchor: datetime, start: datetime) -> Iterator[datetime]:
    """Wall times from `start` on. dateutil walks from the anchor, so the series keeps its anchor near."""
    if rule.kind == "cron":
        return CronSim(rule.expanded, start - timedelta(seconds=1))
    return rrulestr(rule.expanded, dtstart=anchor).xafter(start, inc=True)


def _checked_cron(text: str, start: datetime) -> str:
    fields = text.split()
    if len(fields) != 5:
        raise RuleError("five fields (minute hour day-of-month month day-of-week), e.g. 0 9 * * 1-5.")
    try:
        CronSim(text, start)
    except CronSimError as exc:
        raise RuleError(str(exc)) from None
    return " ".join(fields)


def of_series(series) -> Recurrence:
    """The rule a RecurringSeries row keeps (duck-typed: this module knows nothing of the models)."""
    return Recurrence("cron" if series.cron else "rrule", series.expanded_rule, zone(series.time_zone))


def series_anchor(series, *, since: datetime) -> datetime:
    """Where to walk the series' rule from for any search at or after `since`: its first wall time that such a
    search can need (an occurrence, so an RRULE's INTERVAL keeps its count), or its anchor if it has none."""
    anchor = datetime.fromisoformat(series.anchor_wall)
    start = max(anchor, since.astimezone(zone(series.time_zone)).replace(tzinfo=None) - SETTLED_AFTER)
    return next(iter(_walls(of_series(series), anchor, start)), anchor)


def series_occurrences(series, *, since: datetime) -> Iterator[Occurrence]:
    """A series' occurrences at or after `since`, up to its `until`; its count is the caller's to apply."""
    anchor = datetime.fromisoformat(series.anchor_wall)
    for occurrence in occurrences(of_series(series), anchor=anchor, since=since):
        if series.until is not None and occurrence.at > series.until:
            return
        yield occurrence
