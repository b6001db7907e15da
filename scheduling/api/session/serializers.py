"""The session API's request and answer bodies: the seed's fields, camelCase."""

from django.utils import timezone
from rest_framework import serializers

from ...models import MessageType
from ...validation import check_public_url, check_schedule_window, format_instant, normalise_recipient
from ..fields import HttpUrlField, InstantField, TextField, django_to_drf
from ..whatsapp_template import TemplateDocument, TemplateField
from .local_time import LocalTimeFields, local_time_of

TEXT_MAX = 4096  # WhatsApp's limit for a text body
CAPTION_MAX = 1024  # and for a media caption
MEDIA_TYPES = [MessageType.IMAGE, MessageType.VIDEO, MessageType.DOCUMENT]


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
    template = TemplateField(required=False, help_text="For type template: a WhatsApp template message.")
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
        kind = attrs.get("type", MessageType.TEXT)
        errors = template_errors(attrs) if kind == MessageType.TEMPLATE else content_errors(kind, attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def content_errors(kind: str, attrs: dict) -> dict:
    media, errors = attrs.get("media"), {}
    if kind == MessageType.TEXT and not attrs.get("text"):
        errors["text"] = "This field is required for text messages."
    if kind == MessageType.TEXT and media:
        errors["media"] = f"Media needs a media type: set type to one of {', '.join(MEDIA_TYPES)}."
    if kind != MessageType.TEXT and not media:
        errors["media"] = f"This field is required for {kind} messages."
    if attrs.get("caption") and not media:
        errors["caption"] = "A caption needs media."
    if attrs.get("template"):
        errors["template"] = "A template needs type template."
    return errors


def template_errors(attrs: dict) -> dict:
    """A template message is the template alone: its text and media are the approved template's."""
    errors = {field: "Not allowed with a template." for field in ("text", "media", "caption") if attrs.get(field)}
    if not attrs.get("template"):
        errors["template"] = "This field is required for template messages."
    return errors


class ScheduleRequestSerializer(LocalTimeFields, ContentSerializer):
    scheduledAt = InstantField(
        source="scheduled_at",
        required=False,
        help_text="ISO 8601; an offset is honoured, a naive time is UTC. Required unless localTime and timeZone are"
        " given.",
    )

    expiresAt = InstantField(
        source="expires_at",
        required=False,
        help_text="Not sent by then (an outage, a pause, retries, pacing, quiet hours), it expires instead: after"
        " scheduledAt.",
    )

    def validate_scheduledAt(self, value):
        if self.context.get("new_time", True):
            django_to_drf(lambda when: check_schedule_window(when, timezone.now()), value)
        return value

    def validate_expiresAt(self, value):
        if self.context.get("new_expiry", True):
            django_to_drf(lambda when: check_schedule_window(when, timezone.now()), value)
        return value

    def validate(self, attrs):
        attrs = self.resolve_local_time(super().validate(attrs))
        if attrs.get("expires_at") and attrs.get("scheduled_at") and attrs["expires_at"] <= attrs["scheduled_at"]:
            raise serializers.ValidationError({"expiresAt": "Must be after scheduledAt."})
        return attrs


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
    template = TemplateDocument(required=False)
    scheduledAt = InstantField(source="scheduled_at")
    expiresAt = InstantField(
        source="expires_at", required=False, help_text="Its deadline: its own expiresAt, or from the max lateness."
    )
    status = serializers.CharField()
    createdAt = InstantField(source="created_at")
    sentAt = InstantField(source="sent_at", required=False)
    result = ResultSerializer(required=False, help_text="Present once sent: the provider's message id.")
    error = serializers.CharField(required=False, help_text="Why the last attempt failed.")
    attempts = serializers.IntegerField(required=False)
    batchId = serializers.CharField(required=False, help_text="The bulk request it came in.")
    timeZone = serializers.CharField(required=False, help_text="The zone of its localTime, when it was given one.")
    localTime = serializers.CharField(required=False, help_text="scheduledAt on a clock in timeZone.")
    ignoreQuietHours = serializers.BooleanField(required=False)
    recurringId = serializers.CharField(required=False, help_text="The recurring series it is an occurrence of.")

    def to_representation(self, message):
        body = {
            "id": message.id,
            **content_of(message, shown=True),
            "scheduledAt": format_instant(message.scheduled_at),
            "expiresAt": format_instant(message.expires_at),
            "status": message.status,
            "createdAt": format_instant(message.created_at),
            "sentAt": format_instant(message.sent_at),
            "result": {"messageId": message.provider_message_id} if message.provider_message_id else None,
            "error": message.last_error,
            "attempts": message.attempts,
            "batchId": message.batch_id,
            "timeZone": message.time_zone,
            "localTime": local_time_of(message),
            "recurringId": message.recurring_id,
        }
        return {key: value for key, value in body.items() if value}


def content_of(row, *, shown: bool = False) -> dict:
    """A message's or a recurring series' content as the API spells it (ContentSerializer's fields); `shown`:
    as an answer shows it, where the default type (text) goes without saying."""
    return {
        "to": row.to,
        "type": None if shown and row.type == MessageType.TEXT else row.type,
        "text": row.text,
        "media": row.media,
        "caption": row.caption,
        "template": row.template,
        "ignoreQuietHours": row.ignore_quiet_hours,
    }


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


class RateLimitedEnvelope(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text='"Rate limit exceeded"')
    retryAfter = serializers.IntegerField(help_text="Seconds until a request is allowed again (also Retry-After).")
