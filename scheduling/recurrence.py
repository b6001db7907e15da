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

from .wallclock import to_instant, zone

FREQUENCIES = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"]
DATE_PARTS = ["BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"]
KNOWN_PARTS = {"FREQ", "INTERVAL", "WKST", "BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND", *DATE_PARTS}
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
# Longer than any change of a clock: a wall time this much later can no longer be an earlier instant.
SETTLED_AFTER = timedelta(hours=3)


class RuleError(ValueError):
    """A rule that cannot run here; the text says why, for the client, and `field` which field is wrong."""

    def __init__(self, text: str, field: str = ""):
        super().__init__(text)
        self.field = field


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
    return Recurrence("rrule", _checked(_expanded_rrule, rrule, start, "rrule"), tz)


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


def _expanded_rrule(text: str, start: datetime) -> str:
    parts = _rrule_parts(text)
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise RuleError(f"FREQ must be one of {', '.join(FREQUENCIES)}.")
    _check_once_a_minute(freq, parts)
    _check_bounded_search(freq, parts)
    parts.update({name: value for name, value in _defaults(freq, parts, start).items() if name not in parts})
    expanded = ";".join(f"{name}={value}" for name, value in parts.items())
    try:
        rrulestr(expanded, dtstart=start)
    except (ValueError, TypeError, IndexError) as exc:
        raise RuleError(str(exc)) from None
    return expanded


def _rrule_parts(text: str) -> dict:
    body = text.strip().removeprefix("RRULE:")
    parts = {}
    for item in body.split(";"):
        name, _, value = item.partition("=")
        name = name.strip().upper()
        if name in ("UNTIL", "COUNT", "DTSTART"):
            raise RuleError(f"give {name} as the series' {'startAt' if name == 'DTSTART' else name.lower()}.")
        if name not in KNOWN_PARTS or not value.strip() or name in parts:
            raise RuleError(f'"{item}" is not an RRULE part (RFC 5545), e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9.')
        parts[name] = value.strip().upper()
    return parts


def _check_once_a_minute(freq: str, parts: dict) -> None:
    """Every occurrence on the same second of its minute, so no two within a minute (the offsets of zones
    are whole minutes): SECONDLY only in whole minutes, and one BYSECOND."""
    interval = _whole_number(parts.get("INTERVAL", "1"), "INTERVAL")
    if (freq == "SECONDLY" and interval % 60) or len(parts.get("BYSECOND", "0").split(",")) > 1:
        raise RuleError("fires more often than once a minute.")


def _check_bounded_search(freq: str, parts: dict) -> None:
    """Refuse what could make dateutil search for centuries without finding an occurrence: a rule finer
    than a day with an INTERVAL and a coarser filter (it may never meet the filter), and BYSETPOS in a
    period of a day or less (the position may not exist)."""
    level = FREQUENCIES.index(freq)
    coarser = [*DATE_PARTS, "BYHOUR", "BYMINUTE"][: len(DATE_PARTS) + max(0, level - 4)]
    if level > 3 and _whole_number(parts.get("INTERVAL", "1"), "INTERVAL") > 1:
        if found := [name for name in coarser if name in parts]:
            raise RuleError(f"FREQ={freq} with an INTERVAL cannot be combined with {', '.join(found)}.")
    if level >= 3 and "BYSETPOS" in parts:
        raise RuleError("BYSETPOS needs FREQ=WEEKLY, MONTHLY or YEARLY.")


def _whole_number(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise RuleError(f"{name} must be a whole number from 1.")
    return int(value)


def _defaults(freq: str, parts: dict, start: datetime) -> dict:
    """What RFC 5545 takes from DTSTART when the rule leaves it out: written out, so that the rule keeps its
    meaning from any later anchor."""
    level, defaults = FREQUENCIES.index(freq), {}
    if not any(name in parts for name in DATE_PARTS[1:]):
        if freq == "YEARLY":
            defaults = {"BYMONTH": start.month, "BYMONTHDAY": start.day}
        elif freq == "MONTHLY":
            defaults = {"BYMONTHDAY": start.day}
        elif freq == "WEEKLY":
            defaults = {"BYDAY": WEEKDAYS[start.weekday()]}
    for name, value, finest in (("BYHOUR", start.hour, 3), ("BYMINUTE", start.minute, 4)):
        if level <= finest:
            defaults[name] = value
    if level <= 5:
        defaults["BYSECOND"] = start.second
    return defaults


def of_series(series) -> Recurrence:
    """The rule a RecurringSeries row keeps (duck-typed: this module knows nothing of the models)."""
    return Recurrence("cron" if series.cron else "rrule", series.expanded_rule, zone(series.time_zone))


def series_occurrences(series, *, since: datetime) -> Iterator[Occurrence]:
    """A series' occurrences at or after `since`, up to its `until`; its count is the caller's to apply."""
    anchor = datetime.fromisoformat(series.anchor_wall)
    for occurrence in occurrences(of_series(series), anchor=anchor, since=since):
        if series.until is not None and occurrence.at > series.until:
            return
        yield occurrence
