"""`localTime` + `timeZone` in place of `scheduledAt`, wherever the session API creates a message (one,
and any serializer that composes LocalTimeFields, such as a bulk item): resolved to a UTC `scheduled_at`
and the IANA zone it was given in (`time_zone`), by the rule of wallclock.py."""

from collections.abc import Mapping
from datetime import datetime

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from ...validation import check_schedule_window
from ...wallclock import RECIPIENT, recipient_zone, to_instant, to_wall, zone
from ..fields import TextField, django_to_drf

TIME_FIELDS = {"scheduledAt", "localTime", "timeZone"}
REQUIRED = "This field is required."


class ParsedTextField(TextField):
    """Text checked as text first (no NUL, no lone surrogate), then read by `parse`: so an error that quotes
    the text never carries what cannot be sent back."""

    def run_validation(self, data=serializers.empty):
        return self.parse(super().run_validation(data))

    def parse(self, text: str):
        raise NotImplementedError


@extend_schema_field({"type": "string", "example": "2026-12-24T09:00:00"})
class WallTimeField(ParsedTextField):
    """An ISO 8601 date-time without an offset: a time on a clock, not yet an instant."""

    def parse(self, text):
        return parse_wall_time(text)

    def to_representation(self, value):
        return value.isoformat(timespec="seconds")


def parse_wall_time(data: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(data.strip())
    except ValueError:
        raise serializers.ValidationError(f'"{data}" is not a date-time, e.g. 2026-12-24T09:00:00.') from None
    if parsed.tzinfo is not None:
        raise serializers.ValidationError("must have no offset: the time zone is timeZone's.")
    return parsed


@extend_schema_field(OpenApiTypes.STR)
class TimeZoneField(ParsedTextField):
    """An IANA zone name, or "recipient" (resolved against the message's `to` by the serializer)."""

    def parse(self, name):
        if name == RECIPIENT:
            return name
        try:
            zone(name)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return name


def resolve_zone(name: str, to: str | None) -> str:
    """An IANA zone: `name` itself, or for "recipient" the one zone of the phone number `to`."""
    if name != RECIPIENT:
        return name
    found = recipient_zone(to) if to and not to.endswith("@g.us") else None
    if found is None:
        raise serializers.ValidationError(
            {"timeZone": ["the recipient's time zone cannot be told from its number (none or several); give one."]}
        )
    return found


class LocalTimeFields(serializers.Serializer):
    """Compose into a request serializer that has `to` and `scheduledAt` (source scheduled_at, not
    required): exactly one of scheduledAt or localTime + timeZone. Call `resolve_local_time` in validate."""

    localTime = WallTimeField(required=False, help_text="Instead of scheduledAt: a time without offset, in timeZone.")
    timeZone = TimeZoneField(
        required=False, max_length=64, help_text='With localTime: an IANA zone, or "recipient" (from the number).'
    )

    def to_internal_value(self, data):
        """A time is required: missing, it is reported with every other bad field, in the seed's words."""
        missing = isinstance(data, Mapping) and not TIME_FIELDS & data.keys()
        try:
            attrs = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if missing and isinstance(exc.detail, dict):
                exc.detail["scheduledAt"] = [ErrorDetail(REQUIRED, code="required")]
            raise
        if missing:
            raise serializers.ValidationError({"scheduledAt": [ErrorDetail(REQUIRED, code="required")]})
        return attrs

    def resolve_local_time(self, attrs: dict) -> dict:
        wall, name = attrs.pop("localTime", None), attrs.pop("timeZone", None)
        if wall is None and name is None:
            return {**attrs, "time_zone": ""}
        if "scheduled_at" in attrs:
            raise serializers.ValidationError({"localTime": ["give either scheduledAt or localTime, not both."]})
        if wall is None or name is None:
            missing = "localTime" if wall is None else "timeZone"
            raise serializers.ValidationError({missing: ["localTime and timeZone go together."]})
        time_zone = resolve_zone(name, attrs.get("to"))
        try:
            when = to_instant(wall, zone(time_zone))
        except OverflowError:  # the year 1 or 9999 moved out of range by the zone's offset
            raise serializers.ValidationError({"localTime": ["is out of range."]}) from None
        if self.context.get("new_time", True):
            try:
                django_to_drf(lambda instant: check_schedule_window(instant, timezone.now()), when)
            except serializers.ValidationError as exc:
                raise serializers.ValidationError({"localTime": exc.detail}) from None
        return {**attrs, "scheduled_at": when, "time_zone": time_zone}


def local_time_of(message) -> str | None:
    """What a clock in the message's zone shows at its scheduledAt; None for a message without a zone."""
    if not message.time_zone:
        return None
    return to_wall(message.scheduled_at, zone(message.time_zone)).isoformat(timespec="seconds")
