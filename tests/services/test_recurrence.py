"""Recurring rules on a zone's wall clock, across real clock changes of 2027: New York springs forward on
14 March (02:00 → 03:00) and falls back on 7 November (02:00 → 01:00); Tallinn on 28 March (03:00 → 04:00)
and 31 October (04:00 → 03:00). RRULE and cron give the same instants; a skipped time goes right after the
change, a repeated one once (its first showing), a date that does not exist is skipped and not counted."""

import time
from datetime import UTC, datetime
from itertools import islice

import pytest

from scheduling.recurrence import RuleError, occurrences, parse
from scheduling.wallclock import recipient_zone, to_instant, zone


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def first(n: int, tz: str, start: str, *, rrule=None, cron=None) -> list[str]:
    """The first `n` occurrences (UTC, as "YYYY-MM-DD HH:MM") of a rule starting at the wall time `start`."""
    wall = datetime.fromisoformat(start)
    rule = parse(rrule=rrule, cron=cron, start=wall, tz=zone(tz))
    found = islice(occurrences(rule, anchor=wall, since=to_instant(wall, zone(tz))), n)
    return [occurrence.at.strftime("%Y-%m-%d %H:%M") for occurrence in found]


BOTH = pytest.mark.parametrize("kind", ["rrule", "cron"])


def rule(kind: str, rrule: str, cron: str) -> dict:
    return {"rrule": rrule} if kind == "rrule" else {"cron": cron}


@BOTH
def test_a_time_new_york_skips_is_sent_right_after_the_change_read_with_the_offset_before_it(kind):
    daily = rule(kind, "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "30 2 * * *")

    # 02:30 EST; 02:30 does not exist on the 14th: 02:30 read as EST (-05:00) is 03:30 EDT; then 02:30 EDT
    assert first(3, "America/New_York", "2027-03-13T00:00", **daily) == [
        "2027-03-13 07:30",
        "2027-03-14 07:30",
        "2027-03-15 06:30",
    ]


@BOTH
def test_a_time_tallinn_skips_is_sent_right_after_the_change_read_with_the_offset_before_it(kind):
    daily = rule(kind, "FREQ=DAILY;BYHOUR=3;BYMINUTE=30", "30 3 * * *")

    # 03:30 EET (+02:00); on the 28th 03:30 EET is 04:30 EEST; then 03:30 EEST (+03:00)
    assert first(3, "Europe/Tallinn", "2027-03-27T00:00", **daily) == [
        "2027-03-27 01:30",
        "2027-03-28 01:30",
        "2027-03-29 00:30",
    ]


@BOTH
def test_a_time_new_york_shows_twice_is_sent_once_at_its_first_showing(kind):
    daily = rule(kind, "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "30 1 * * *")

    # 01:30 EDT on the 7th (not 01:30 EST an hour later), then 01:30 EST
    assert first(3, "America/New_York", "2027-11-06T00:00", **daily) == [
        "2027-11-06 05:30",
        "2027-11-07 05:30",
        "2027-11-08 06:30",
    ]


@BOTH
def test_a_time_tallinn_shows_twice_is_sent_once_at_its_first_showing(kind):
    daily = rule(kind, "FREQ=DAILY;BYHOUR=3;BYMINUTE=30", "30 3 * * *")

    assert first(3, "Europe/Tallinn", "2027-10-30T00:00", **daily) == [
        "2027-10-30 00:30",
        "2027-10-31 00:30",  # 03:30 EEST, the first of the two
        "2027-11-01 01:30",
    ]


@BOTH
def test_an_hourly_rule_sends_once_an_hour_through_spring_forward_never_twice_at_one_instant(kind):
    hourly = rule(kind, "FREQ=HOURLY;BYMINUTE=0", "0 * * * *")

    # 00:00 and 01:00 EST, 02:00 (skipped) at 03:00 EDT, where 03:00 itself also falls: sent once, then 04:00 EDT
    assert first(4, "America/New_York", "2027-03-14T00:00", **hourly) == [
        "2027-03-14 05:00",
        "2027-03-14 06:00",
        "2027-03-14 07:00",
        "2027-03-14 08:00",
    ]


@BOTH
def test_an_hourly_rule_sends_the_repeated_hour_of_fall_back_once(kind):
    hourly = rule(kind, "FREQ=HOURLY;BYMINUTE=0", "0 * * * *")

    # 00:00 EDT, 01:00 EDT, (01:00 EST is the same wall time: not again), 02:00 EST
    assert first(4, "America/New_York", "2027-11-07T00:00", **hourly) == [
        "2027-11-07 04:00",
        "2027-11-07 05:00",
        "2027-11-07 07:00",
        "2027-11-07 08:00",
    ]


def test_two_wall_times_that_land_in_the_wrong_order_across_the_gap_are_both_sent_in_time_order():
    # 02:30 is skipped and goes at 03:30 EDT; 03:00 exists and goes at 03:00 EDT, before it. Neither is dropped.
    assert first(3, "America/New_York", "2027-03-14T00:00", rrule="FREQ=DAILY;BYHOUR=2,3;BYMINUTE=0,30") == [
        "2027-03-14 07:00",
        "2027-03-14 07:30",
        "2027-03-15 06:00",
    ]


@pytest.mark.parametrize(
    ("rrule", "cron"),
    [
        ("FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0", "0 9 * * 1,3"),
        ("FREQ=DAILY;BYHOUR=1,2,3,4;BYMINUTE=15,45", "15,45 1-4 * * *"),
        ("FREQ=MINUTELY;INTERVAL=20", "*/20 * * * *"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=2;BYMINUTE=30", "30 2 1,15 * *"),
    ],
)
@pytest.mark.parametrize(
    ("tz", "start"),
    [
        ("America/New_York", "2027-03-13T00:00"),
        ("America/New_York", "2027-11-06T00:00"),
        ("Europe/Tallinn", "2027-03-27T00:00"),
        ("Europe/Tallinn", "2027-10-30T00:00"),
    ],
)
def test_rrule_and_cron_give_the_same_instants_across_every_change(rrule, cron, tz, start):
    assert first(40, tz, start, rrule=rrule) == first(40, tz, start, cron=cron)


@BOTH
def test_the_31st_is_skipped_in_months_without_one_and_not_counted(kind):
    monthly = rule(kind, "FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=9;BYMINUTE=0", "0 9 31 * *")

    assert first(5, "Europe/Tallinn", "2027-01-01T00:00", **monthly) == [
        "2027-01-31 07:00",
        "2027-03-31 06:00",  # EEST from 28 March
        "2027-05-31 06:00",
        "2027-07-31 06:00",
        "2027-08-31 06:00",
    ]


@BOTH
def test_a_leap_day_rule_fires_only_in_leap_years(kind):
    leap_day = rule(kind, "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9;BYMINUTE=0", "0 9 29 2 *")

    assert first(3, "America/New_York", "2027-01-01T00:00", **leap_day) == [
        "2028-02-29 14:00",
        "2032-02-29 14:00",
        "2036-02-29 14:00",
    ]


def test_the_last_day_of_each_month_follows_leap_years():
    assert first(3, "UTC", "2028-01-01T00:00", rrule="FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=9;BYMINUTE=0") == [
        "2028-01-31 09:00",
        "2028-02-29 09:00",
        "2028-03-31 09:00",
    ]


def test_a_monthly_rule_from_the_31st_keeps_the_31st():
    # RFC 5545: a monthly rule takes its day from DTSTART, and months without that day have no occurrence
    assert first(3, "UTC", "2027-01-31T09:00", rrule="FREQ=MONTHLY") == [
        "2027-01-31 09:00",
        "2027-03-31 09:00",
        "2027-05-31 09:00",
    ]


def test_a_rule_without_a_time_takes_it_from_its_start():
    assert first(2, "Europe/Tallinn", "2027-06-02T09:15", rrule="FREQ=WEEKLY") == [
        "2027-06-02 06:15",  # a Wednesday, 09:15 EEST
        "2027-06-09 06:15",
    ]


@pytest.mark.parametrize(
    "rrule", ["FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR", "FREQ=DAILY;INTERVAL=3;BYHOUR=8", "FREQ=MINUTELY;INTERVAL=7"]
)
def test_a_later_anchor_on_an_occurrence_keeps_the_rules_interval(rrule):
    tz, start = zone("Europe/Tallinn"), datetime(2027, 3, 20, 10, 0)
    parsed = parse(rrule=rrule, cron=None, start=start, tz=tz)
    from_start = list(islice(occurrences(parsed, anchor=start, since=to_instant(start, tz)), 30))

    later = from_start[9]
    from_later = list(islice(occurrences(parsed, anchor=later.wall, since=later.at), 20))

    assert from_later == from_start[9:29]


@pytest.mark.parametrize(
    "rrule",
    ["FREQ=SECONDLY", "FREQ=SECONDLY;INTERVAL=30", "FREQ=MINUTELY;BYSECOND=0,30", "FREQ=DAILY;BYSECOND=1,2"],
)
def test_a_rule_firing_more_often_than_once_a_minute_is_refused(rrule):
    with pytest.raises(RuleError, match="more often than once a minute"):
        parse(rrule=rrule, cron=None, start=datetime(2027, 1, 1), tz=zone("UTC"))


def test_a_cron_with_a_seconds_field_is_refused():
    with pytest.raises(RuleError, match="five fields"):
        parse(rrule=None, cron="*/30 * * * * *", start=datetime(2027, 1, 1), tz=zone("UTC"))


@pytest.mark.parametrize("rrule", ["FREQ=MINUTELY", "FREQ=SECONDLY;INTERVAL=120"])
def test_once_a_minute_is_allowed(rrule):
    assert first(3, "UTC", "2027-01-01T00:00", rrule=rrule)[1:] in (
        ["2027-01-01 00:01", "2027-01-01 00:02"],
        ["2027-01-01 00:02", "2027-01-01 00:04"],
    )


@pytest.mark.parametrize(
    ("rrule", "cron", "message"),
    [
        ("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", None, "never fire"),
        ("FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31", None, "never fire"),
        ("FREQ=MINUTELY;INTERVAL=7;BYDAY=MO", None, "cannot be combined"),
        ("FREQ=HOURLY;BYSETPOS=3;BYMINUTE=0,30", None, "BYSETPOS needs"),
        (None, "0 9 30 2 *", "day-of-month"),
    ],
)
def test_a_rule_that_could_never_fire_is_refused_at_once(rrule, cron, message):
    started = time.monotonic()

    with pytest.raises(RuleError, match=message):
        parse(rrule=rrule, cron=cron, start=datetime(2027, 1, 1), tz=zone("UTC"))

    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(("part", "field"), [("COUNT=3", "count"), ("UNTIL=20271231T000000Z", "until")])
def test_count_and_until_belong_to_the_series_not_the_rule_text(part, field):
    with pytest.raises(RuleError, match=f"give {part.split('=')[0]} as the series' {field}"):
        parse(rrule=f"FREQ=DAILY;{part}", cron=None, start=datetime(2027, 1, 1), tz=zone("UTC"))


@pytest.mark.parametrize(
    ("number", "expected"),
    [("12125551234", "America/New_York"), ("18005551234", None), ("120363025246125888@g.us", None)],
)
def test_a_recipients_zone_is_known_only_when_the_number_has_exactly_one(number, expected):
    assert recipient_zone(number) == expected
