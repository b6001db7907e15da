"""RRULE text (RFC 5545) made safe to run: only the parts a recurring series may have, at most once a
minute, nothing that could make dateutil search for centuries, and every default it would take from
DTSTART written out, so that the rule keeps its meaning from any later anchor."""

from datetime import datetime

from dateutil.rrule import rrulestr

FREQUENCIES = ["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY"]
DATE_PARTS = ["BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY"]
KNOWN_PARTS = {"FREQ", "INTERVAL", "WKST", "BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND", *DATE_PARTS}
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


class RuleError(ValueError):
    """A rule that cannot run here; the text says why, for the client, and `field` which field is wrong."""

    def __init__(self, text: str, field: str = ""):
        super().__init__(text)
        self.field = field


def expanded_rrule(text: str, start: datetime) -> str:
    parts = _rrule_parts(text)
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        raise RuleError(f"FREQ must be one of {', '.join(FREQUENCIES)}.")
    _check_once_a_minute(freq, parts)
    _check_bounded_search(freq, parts)
    _check_some_date_matches(freq, parts, start)
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


def _check_some_date_matches(freq: str, parts: dict, start: datetime) -> None:
    """A rule of a day or finer whose date filters no date meets (BYMONTH=2;BYMONTHDAY=30) would have dateutil
    walk every day to the year 9999: asked of a yearly rule with the same filters instead, it answers at once."""
    dates = {name: value for name, value in parts.items() if name in DATE_PARTS}
    if FREQUENCIES.index(freq) < 3 or not dates:
        return
    if any(character.isdigit() for character in dates.get("BYDAY", "")):
        raise RuleError("BYDAY with a number (1MO, -1FR) needs FREQ=MONTHLY or YEARLY.")
    yearly = ";".join(["FREQ=YEARLY", *(f"{name}={value}" for name, value in dates.items()), "BYHOUR=0;BYMINUTE=0"])
    try:
        found = rrulestr(yearly + ";BYSECOND=0", dtstart=start.replace(hour=0, minute=0, second=0)).after(
            start, inc=True
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise RuleError(str(exc)) from None
    if found is None:
        raise RuleError("no date meets its BY parts (30 February, the 31st of April …): it would never fire.")


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
