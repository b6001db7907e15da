"""The session API's request and answer bodies: the seed's fields, camelCase."""

from django.utils import timezone
from rest_framework import serializers

from ...models import MessageType
from ...validation import check_public_url, check_schedule_window, format_instant, normalise_recipient
from ..fields import HttpUrlField, InstantField, TextField, django_to_drf
from .local_time import LocalTimeFields, local_time_of

TEXT_MAX = 4096  # WhatsApp's limit for a text body
CAPTION_MAX = 1024  # and for a media caption
MEDIA_TYPES = [t for t in MessageType.values if t != MessageType.TEXT]


class ContentSerializer(serializers.Serializer):
    """What a message says and to whom: a scheduled message's, and a recurring series' for each occurrence."""

    to = TextField(help_text="Phone number in international format (e.g. 919988066776) or a group id `…@g.us`.")
    type = serializers.ChoiceField(
        choices=MessageType.choices,
        default=MessageType.TEXT,
        error_messages={
            "invalid_choice": f'"{{input}}" is not a message type; use one of {", ".join(MessageType.values)}.'
        },
    )
    text = TextField(required=False, max_length=TEXT_MAX, trim_whitespace=False)
    media = HttpUrlField(required=False, max_length=2000)
    caption = TextField(required=False, max_length=CAPTION_MAX, trim_whitespace=False)
    ignoreQuietHours = serializers.BooleanField(
        source="ignore_quiet_hours", required=False, help_text="Send even inside the session's quiet hours."
    )

    def validate_text(self, value):
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_media(self, value):
        django_to_drf(check_public_url, value)
        return value

    def validate_to(self, value):
        return django_to_drf(normalise_recipient, value)

    def validate(self, attrs):
        kind, media = attrs.get("type", MessageType.TEXT), attrs.get("media")
        errors = {}
        if kind == MessageType.TEXT and not attrs.get("text"):
            errors["text"] = "This field is required for text messages."
        if kind == MessageType.TEXT and media:
            errors["media"] = f"Media needs a media type: set type to one of {', '.join(MEDIA_TYPES)}."
        if kind != MessageType.TEXT and not media:
            errors["media"] = f"This field is required for {kind} messages."
        if attrs.get("caption") and not media:
            errors["caption"] = "A caption needs media."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ScheduleRequestSerializer(LocalTimeFields, ContentSerializer):
    scheduledAt = InstantField(
        source="scheduled_at",
        required=False,
        help_text="ISO 8601; an offset is honoured, a naive time is UTC. Required unless localTime and timeZone are"
        " given.",
    )

    def validate_scheduledAt(self, value):
        if self.context.get("new_time", True):
            django_to_drf(lambda when: check_schedule_window(when, timezone.now()), value)
        return value

    def validate(self, attrs):
        return self.resolve_local_time(super().validate(attrs))


class ResultSerializer(serializers.Serializer):
    messageId = serializers.CharField()


class ScheduledMessageSerializer(serializers.Serializer):
    """The seed's shape. Optional fields are left out when empty, so a text message reads exactly
    as the seed shows it; `type` appears when it is not `text`."""

    id = serializers.CharField()
    to = serializers.CharField()
    type = serializers.ChoiceField(choices=MessageType.choices, required=False)
    text = serializers.CharField(required=False)
    media = serializers.URLField(required=False)
    caption = serializers.CharField(required=False)
    scheduledAt = InstantField(source="scheduled_at")
    status = serializers.CharField()
    createdAt = InstantField(source="created_at")
    sentAt = InstantField(source="sent_at", required=False)
    result = ResultSerializer(required=False, help_text="Present once sent: the provider's message id.")
    error = serializers.CharField(required=False, help_text="Why the last attempt failed.")
    attempts = serializers.IntegerField(required=False)
    timeZone = serializers.CharField(required=False, help_text="The zone of its localTime, when it was given one.")
    localTime = serializers.CharField(required=False, help_text="scheduledAt on a clock in timeZone.")
    ignoreQuietHours = serializers.BooleanField(required=False)
    recurringId = serializers.CharField(required=False, help_text="The recurring series it is an occurrence of.")

    def to_representation(self, message):
        body = {
            "id": message.id,
            "to": message.to,
            "type": message.type if message.type != MessageType.TEXT else None,
            "text": message.text,
            "media": message.media,
            "caption": message.caption,
            "scheduledAt": format_instant(message.scheduled_at),
            "status": message.status,
            "createdAt": format_instant(message.created_at),
            "sentAt": format_instant(message.sent_at),
            "result": {"messageId": message.provider_message_id} if message.provider_message_id else None,
            "error": message.last_error,
            "attempts": message.attempts,
            "timeZone": message.time_zone,
            "localTime": local_time_of(message),
            "ignoreQuietHours": message.ignore_quiet_hours,
            "recurringId": message.recurring_id,
        }
        return {key: value for key, value in body.items() if value}


class ScheduledEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    scheduled = ScheduledMessageSerializer()


class ScheduledListEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    scheduled = ScheduledMessageSerializer(many=True)
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last.")


class CancelledEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=True)
    message = serializers.CharField()


class ErrorEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = serializers.CharField()
    details = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)
