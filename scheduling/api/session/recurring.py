"""The session API's recurring series: request and answer bodies (camelCase outside, snake_case inside)."""

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from ... import recurrence
from ...models import MessageType, RecurringSeries
from ...validation import format_instant
from ...wallclock import to_instant, to_wall, zone
from ..fields import TextField
from ..whatsapp_template import TemplateDocument
from .local_time import TimeZoneField, resolve_zone
from .serializers import ContentSerializer, content_of

START_MAX_AHEAD = timedelta(days=3650)
COUNT_MAX = 1_000_000


class RecurringRequestSerializer(ContentSerializer):
    rrule = TextField(required=False, max_length=500, help_text="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9.")
    cron = TextField(required=False, max_length=200, help_text="Five fields, e.g. 0 9 * * 1-5.")
    timeZone = TimeZoneField(max_length=64, help_text='The rule\'s wall clock: an IANA zone, or "recipient".')
    startAt = TextField(
        required=False,
        help_text="ISO 8601: with an offset an instant, without one a time on the clock of timeZone. Default: now.",
    )
    until = TextField(required=False, help_text="The last instant an occurrence may have (as startAt).")
    count = serializers.IntegerField(required=False, min_value=1, max_value=COUNT_MAX, help_text="How many to send.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        rrule, cron = attrs.pop("rrule", None), attrs.pop("cron", None)
        time_zone = resolve_zone(attrs.pop("timeZone"), attrs.get("to"))
        tz = zone(time_zone)
        start = _start_wall(attrs.pop("startAt", None), tz, new=self.context.get("new_start", True))
        until = _until(attrs.pop("until", None), tz)
        if until is not None and until < to_instant(start, tz):
            raise serializers.ValidationError({"until": ["must not be before startAt."]})
        try:
            recurrence.parse(rrule=rrule, cron=cron, start=start, tz=tz)
        except recurrence.RuleError as exc:
            raise serializers.ValidationError({exc.field or "rrule": [str(exc)]}) from None
        return {
            **attrs,
            "rrule": rrule or "",
            "cron": cron or "",
            "time_zone": time_zone,
            "start_wall": start,
            "until": until,
            "count": attrs.get("count"),
        }


def _start_wall(value: str | None, tz, *, new: bool) -> datetime:
    """The series' DTSTART on the clock of `tz`; `new`: given now (a series' own start may have been long ago)."""
    now = timezone.now()
    if value is None:  # this minute: a rule that leaves out its seconds (or minutes) takes them from the start
        return to_wall(now, tz).replace(second=0, microsecond=0)
    start = _wall(value, tz, "startAt")
    if new and not now - settings.SCHEDULE_MAX_AHEAD <= _instant(start, tz, "startAt") <= now + START_MAX_AHEAD:
        days = settings.SCHEDULE_MAX_AHEAD.days
        raise serializers.ValidationError({"startAt": [f"must be at most {days} days in the past, 10 years ahead."]})
    return start


def _until(value: str | None, tz) -> datetime | None:
    """The last instant: given as one (with an offset), or as a time on the clock of `tz`."""
    if value is None:
        return None
    try:
        given = datetime.fromisoformat(value.strip())
        until = to_instant(given, tz) if given.tzinfo is None else given.astimezone(UTC)
    except (ValueError, OverflowError):
        raise serializers.ValidationError({"until": [f'"{value}" is not an ISO 8601 date-time.']}) from None
    if until > timezone.now() + START_MAX_AHEAD:
        raise serializers.ValidationError({"until": ["must be at most 10 years ahead."]})
    return until


def _wall(value: str, tz, field: str) -> datetime:
    """A wall time in `tz`: given as one (no offset), or as the instant an offset makes it."""
    try:
        parsed = datetime.fromisoformat(value.strip())
        wall = parsed if parsed.tzinfo is None else to_wall(parsed, tz)
    except (ValueError, OverflowError):
        raise serializers.ValidationError({field: [f'"{value}" is not an ISO 8601 date-time.']}) from None
    return wall.replace(microsecond=0)


def _instant(wall: datetime, tz, field: str) -> datetime:
    try:
        return to_instant(wall, tz)
    except OverflowError:
        raise serializers.ValidationError({field: ["is out of range."]}) from None


def current_values(series: RecurringSeries, changes: dict) -> dict:
    """The series as a request would give it, under `changes` (rrule replaces cron and the other way)."""
    values = {
        **content_of(series),
        "rrule": series.rrule,
        "cron": series.cron,
        "timeZone": series.time_zone,
        "startAt": series.start_wall,
        "until": series.until.isoformat() if series.until else None,
        "count": series.count,
    }
    if {"rrule", "cron"} & changes.keys():
        values.pop("rrule"), values.pop("cron")
    return {key: value for key, value in values.items() if value}


class RecurringSerializer(serializers.Serializer):
    """A series as the API shows it; optional fields left out when empty, as for messages."""

    id = serializers.CharField()
    to = serializers.CharField()
    type = serializers.ChoiceField(choices=MessageType.choices, required=False)
    text = serializers.CharField(required=False)
    media = serializers.URLField(required=False)
    caption = serializers.CharField(required=False)
    template = TemplateDocument(required=False)
    ignoreQuietHours = serializers.BooleanField(required=False)
    rrule = serializers.CharField(required=False)
    cron = serializers.CharField(required=False)
    timeZone = serializers.CharField()
    startAt = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False)
    count = serializers.IntegerField(required=False)
    status = serializers.CharField()
    occurrencesMade = serializers.IntegerField(help_text="Occurrences made so far (each a scheduled message).")
    nextOccurrences = serializers.ListField(child=serializers.DateTimeField(), help_text="The next ones, UTC.")
    createdAt = serializers.DateTimeField()

    def to_representation(self, series):
        upcoming = self.context.get("next", {}).get(series.pk, [])
        body = {
            "id": series.id,
            **content_of(series, shown=True),
            "rrule": series.rrule,
            "cron": series.cron,
            "timeZone": series.time_zone,
            "startAt": format_instant(to_instant(datetime.fromisoformat(series.start_wall), zone(series.time_zone))),
            "until": format_instant(series.until),
            "count": series.count,
        }
        body = {key: value for key, value in body.items() if value}
        return {
            **body,
            "status": series.status,
            "occurrencesMade": series.created_count,
            "nextOccurrences": [format_instant(at) for at in upcoming],
            "createdAt": format_instant(series.created_at),
        }


class RecurringEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    recurring = RecurringSerializer()


class RecurringListEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    recurring = RecurringSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last.")
