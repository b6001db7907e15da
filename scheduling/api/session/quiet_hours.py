"""A session's quiet hours: `GET/PUT/DELETE /sessions/{id}/quiet-hours`."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from ... import services
from .local_time import TimeZoneField
from .serializers import ErrorEnvelope
from .views import ERRORS, SessionView


class ClockTimeField(serializers.TimeField):
    """A time on a clock, "21:00" or "21:00:30"; shown back the same way."""

    default_error_messages = {"invalid": 'must be a time on a clock, e.g. "21:00".'}

    def to_internal_value(self, value):
        if not isinstance(value, str):  # DRF would take a datetime's time; JSON has none to give
            self.fail("invalid")
        return super().to_internal_value(value)

    def to_representation(self, value):
        return value.isoformat(timespec="seconds" if value.second else "minutes")


class QuietHoursSerializer(serializers.Serializer):
    start = ClockTimeField(help_text='When they begin, e.g. "21:00".')
    end = ClockTimeField(help_text='When they end, e.g. "08:00" (before start: the window spans midnight).')
    timeZone = TimeZoneField(
        max_length=64, help_text='An IANA zone, or "recipient" (each message in its recipient\'s zone).'
    )

    def validate(self, attrs):
        if attrs["start"] == attrs["end"]:
            raise serializers.ValidationError({"end": ["must differ from start."]})
        return attrs


class QuietHoursEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    quietHours = QuietHoursSerializer(allow_null=True, help_text="null: none.")


def shown(session) -> Response:
    hours = None
    if session.quiet_start is not None:
        hours = QuietHoursSerializer(
            {"start": session.quiet_start, "end": session.quiet_end, "timeZone": session.quiet_time_zone}
        ).data
    return Response({"success": True, "quietHours": hours})


class QuietHoursView(SessionView):
    @extend_schema(operation_id="get_quiet_hours", responses={200: QuietHoursEnvelope, **ERRORS})
    def get(self, request, session_id):
        return shown(self.session_of(request, session_id))

    @extend_schema(
        operation_id="set_quiet_hours",
        request=QuietHoursSerializer,
        description="A message falling due inside the window waits until it ends (unless it says ignoreQuietHours).",
        responses={200: QuietHoursEnvelope, 413: ErrorEnvelope, **ERRORS},
    )
    def put(self, request, session_id):
        session = self.session_of(request, session_id)
        form = QuietHoursSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        hours = form.validated_data
        services.session_set_quiet_hours(
            session=session, start=hours["start"], end=hours["end"], time_zone=hours["timeZone"]
        )
        return shown(session)

    @extend_schema(operation_id="clear_quiet_hours", request=None, responses={200: QuietHoursEnvelope, **ERRORS})
    def delete(self, request, session_id):
        session = self.session_of(request, session_id)
        services.session_set_quiet_hours(session=session, start=None, end=None)
        return shown(session)
