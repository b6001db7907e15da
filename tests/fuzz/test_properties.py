"""Property-based tests (hypothesis) of the parsing and formatting rules in scheduling/validation.py.

Every API style and the admin go through these functions, so their contracts are checked over
generated inputs rather than a handful of examples:

- parse_instant: an aware datetime's isoformat() parses back to the same instant, in UTC; a naive
  one means UTC; any text either parses or raises django's ValidationError, nothing else.
- normalise_phone / normalise_recipient: the output is E.164 digits (or a group id), normalising it
  again changes nothing, and any text either normalises or raises ValidationError.
- format_instant: always `YYYY-MM-DDTHH:MM:SS.mmmZ`, and it parses back within a millisecond.
- the list's cursor (scheduling/api/session/pagination.py): what the service writes reads back to the same
  position; any other text is a 400 `Invalid cursor.`, on PostgreSQL too, never a query error.
"""

import base64
import re
import string
from datetime import UTC, datetime, timedelta, timezone

import phonenumbers
import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError as BadRequest

from scheduling.api.session.pagination import decode_cursor, encode_cursor
from scheduling.validation import (
    GROUP_ID,
    format_instant,
    is_message_id,
    normalise_phone,
    normalise_recipient,
    parse_instant,
)

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
DIGITS = re.compile(r"^[0-9]+$")
MS = timedelta(milliseconds=1)

# Offsets as Python writes them: whole minutes mostly, but timezone() allows seconds and microseconds too.
fixed_offsets = st.builds(
    lambda minutes, seconds, micros: timezone(timedelta(minutes=minutes, seconds=seconds, microseconds=micros)),
    st.integers(-1439, 1439),
    st.sampled_from([0, 0, 0, 15, 59]),
    st.sampled_from([0, 0, 0, 1, 999_999]),
)
any_timezone = st.one_of(fixed_offsets, st.timezones(), st.just(UTC))

# Instants whose UTC value is representable whatever the offset (year 1 at +05:00 is year 0 in UTC).
naive_inner = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31, 23, 59, 59, 999_999))
aware = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31, 23, 59, 59, 999_999), timezones=any_timezone
)
# The instants the service formats in practice: creation, schedule (at most 30 days ahead), sending.
modern_aware = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=any_timezone)

iso_like_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789-:T+Z.,WtzW ", max_size=40),
    st.from_regex(
        r"\A[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}(:[0-9]{1,2}(:[0-9]{1,2}(\.[0-9]{1,9})?)?)?)?"
        r"(Z|[+-][0-9]{2}(:?[0-9]{2}(:?[0-9]{2}(\.[0-9]{1,6})?)?)?)?\Z"
    ),
    aware.map(lambda d: d.isoformat()),
)


def instant(moment: datetime) -> datetime:
    """The UTC instant an aware datetime's isoformat() names: its wall time minus its utcoffset().

    Not `moment.astimezone(UTC)` or `==`: for a wall time in a DST gap or fold, Python's inter-zone
    comparison is always unequal (PEP 495), though the written offset names one exact instant.
    """
    return (moment.replace(tzinfo=None) - moment.utcoffset()).replace(tzinfo=UTC)


# --- parse_instant ---------------------------------------------------------------------------------


@FUZZ
@given(aware)
def test_an_aware_datetime_round_trips_to_the_same_instant_in_utc(moment):
    parsed = parse_instant(moment.isoformat())

    assert parsed == instant(moment)
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.tzinfo is UTC


@FUZZ
@given(aware, st.sampled_from(["T", " "]), st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]))
def test_any_isoformat_spelling_parses_to_the_same_instant(moment, sep, timespec):
    text = moment.isoformat(sep=sep, timespec=timespec)
    precision = {
        "auto": timedelta(0),
        "microseconds": timedelta(0),
        "milliseconds": MS,
        "seconds": timedelta(seconds=1),
    }

    parsed = parse_instant(text)

    assert timedelta(0) <= instant(moment) - parsed < precision[timespec] or instant(moment) == parsed


@FUZZ
@given(aware)
def test_a_utc_time_written_with_z_parses(moment):
    utc = instant(moment)

    assert parse_instant(utc.replace(tzinfo=None).isoformat() + "Z") == utc


@FUZZ
@given(naive_inner)
def test_a_naive_time_means_utc(moment):
    assert parse_instant(moment.isoformat()) == moment.replace(tzinfo=UTC)


@FUZZ
@given(aware, st.text(alphabet=" \t\n", max_size=3), st.text(alphabet=" \t\n", max_size=3))
def test_surrounding_whitespace_is_ignored(moment, before, after):
    assert parse_instant(before + moment.isoformat() + after) == instant(moment)


@FUZZ
@given(iso_like_text)
@example("9999-12-31T23:59:59-23:59")  # shifted past year 9999 by the offset
@example("0001-01-01T00:00:00+23:59")  # shifted before year 1
@example("2026-02-30T10:00:00Z")
@example("2026-02-01T24:00:00Z")
@example("\x00")
@example("")
def test_any_text_parses_or_raises_validation_error_only(text):
    try:
        parsed = parse_instant(text)
    except ValidationError:
        return
    assert parsed.tzinfo is UTC


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.lists(st.text(), max_size=2),
        st.dictionaries(st.text(), st.text(), max_size=2),
        st.binary(max_size=10),
    )
)
def test_anything_but_text_raises_validation_error(value):
    with pytest.raises(ValidationError):
        parse_instant(value)


# --- normalise_phone / normalise_recipient ---------------------------------------------------------

EXAMPLE_NUMBERS = sorted(
    {
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)
e164 = st.sampled_from(EXAMPLE_NUMBERS)


@st.composite
def spelled_number(draw):
    """A valid number as people write it: +E.164, bare digits, 00 prefix, international format, punctuation."""
    number = draw(e164)
    parsed = phonenumbers.parse(number, None)
    spelling = draw(st.sampled_from(["e164", "digits", "00", "international", "punctuated"]))
    if spelling == "e164":
        text = number
    elif spelling == "digits":
        text = number[1:]
    elif spelling == "00":
        text = "00" + number[1:]
    elif spelling == "international":
        text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    else:
        separators = draw(
            st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), min_size=len(number) - 1, max_size=len(number) - 1)
        )
        text = "+" + "".join(digit + sep for digit, sep in zip(number[1:], separators, strict=True))
    padding = st.text(alphabet=" \t", max_size=2)
    return number, draw(padding) + text + draw(padding)


phone_like_text = st.one_of(
    st.text(),
    st.text(alphabet=string.digits + "+-() .#*x", max_size=30),
    st.from_regex(r"\A\+?(00)?[0-9 ]{0,20}\Z"),
    e164.map(lambda n: n[:-1]),
    e164.map(lambda n: n + "0"),  # one digit short or long
    spelled_number().map(lambda pair: pair[1]),
)


@FUZZ
@given(spelled_number())
def test_a_valid_number_however_written_becomes_its_e164_digits(pair):
    number, text = pair

    assert normalise_phone(text) == number[1:]
    assert normalise_recipient(text) == number[1:]


@FUZZ
@given(phone_like_text)
@example("+1 (800) FLOWERS")  # vanity letters
@example("+９１ ９９８８０ ６６７７６")  # full-width digits
@example("0000")
@example("+")
@example("   ")
def test_phone_output_is_digits_and_idempotent_and_errors_are_validation_errors(text):
    try:
        digits = normalise_phone(text)
    except ValidationError:
        return
    assert DIGITS.match(digits), digits
    assert normalise_phone(digits) == digits
    assert normalise_phone("+" + digits) == digits


@FUZZ
@given(st.one_of(phone_like_text, st.from_regex(r"\A[0-9]{3,34}(-[0-9]{3,22})?@g\.us\Z"), st.text()))
@example("120363025246125888@g.us")
@example("919988066776-1600000000@g.us")
def test_recipient_output_is_digits_or_a_group_id_and_idempotent(text):
    try:
        recipient = normalise_recipient(text)
    except ValidationError:
        return
    assert DIGITS.match(recipient) or GROUP_ID.match(recipient), recipient
    assert normalise_recipient(recipient) == recipient


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.text(), max_size=2), st.binary(max_size=10)))
def test_recipient_that_is_not_text_raises_validation_error(value):
    with pytest.raises(ValidationError):
        normalise_recipient(value)


# --- format_instant --------------------------------------------------------------------------------


@FUZZ
@given(modern_aware)
def test_format_instant_is_utc_with_milliseconds_and_parses_back_within_a_millisecond(moment):
    text = format_instant(moment)

    assert INSTANT.match(text), text
    assert timedelta(0) <= instant(moment) - parse_instant(text) < MS


@FUZZ
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.just(UTC)))
def test_format_instant_is_well_formed_for_every_year(moment):
    text = format_instant(moment)

    assert INSTANT.match(text), text
    assert timedelta(0) <= moment - parse_instant(text) < MS


def test_format_instant_of_nothing_is_none():
    assert format_instant(None) is None


@FUZZ
@given(modern_aware)
def test_format_then_parse_then_format_is_stable(moment):
    text = format_instant(moment)

    assert format_instant(parse_instant(text)) == text


# --- The list's cursor -----------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()


message_ids = st.from_regex(r"\Asched_[A-Za-z0-9_-]{1,34}\Z")
cursor_like_text = st.one_of(
    st.text(),
    st.binary(max_size=80).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    st.text(max_size=60).map(b64),  # base64 of anything: NULs, surrogates, DRF's own "o=…&p=…" form
    st.tuples(iso_like_text, st.text(max_size=40)).map(lambda pair: b64(f"{pair[0]} {pair[1]}")),
    st.tuples(aware.map(lambda d: d.isoformat()), message_ids).map(lambda pair: b64(f"{pair[0]} {pair[1]}")),
)


@FUZZ
@given(aware, message_ids)
def test_a_cursor_the_service_wrote_reads_back_to_the_same_position(moment, message_id):
    stored = instant(moment)  # the database gives scheduled_at back in UTC

    assert decode_cursor(encode_cursor(stored, message_id)) == (stored, message_id)


@FUZZ
@given(cursor_like_text)
@example(b64("o=0&p=garbage"))
@example(b64("2026-02-01T15:00:00+00:00 sched_\x00x"))
@example(b64("2026-02-01T15:00:00 sched_abc"))  # naive: not one the service writes
@example(b64("\ud800 sched_abc"))
def test_any_other_cursor_is_refused_as_bad_input(raw):
    try:
        position = decode_cursor(raw)
    except BadRequest as refused:
        assert refused.detail == {"cursor": ["Invalid cursor."]}
        return
    if not raw:
        assert position is None  # no cursor: the first page
        return
    moment, message_id = position
    assert moment.utcoffset() is not None
    assert is_message_id(message_id)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cursor_like_text)
@example(b64("o=0&p=garbage"))
@example(b64("9999-12-31T23:59:59+00:00 sched_end"))
@example(b64("0001-01-01T00:00:00-23:59 sched_start"))
def test_the_list_answers_any_cursor_with_a_page_or_a_400_on_postgresql(api, scheduled_url, raw):
    response = api.get(scheduled_url, {"cursor": raw})

    assert response.status_code in (200, 400), response.content
    if response.status_code == 400:
        assert response.json() == {
            "success": False,
            "error": "cursor: Invalid cursor.",
            "details": {"cursor": ["Invalid cursor."]},
        }
