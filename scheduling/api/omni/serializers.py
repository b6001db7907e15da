"""Messente's Omnimessage body, read into the core's terms (ChannelSpec per channel)."""

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

from ...services import ChannelSpec
from ...validation import check_public_url, check_schedule_window, normalise_phone, parse_instant
from ..fields import HttpUrlField, TextField, django_to_drf
from ..whatsapp_template import TemplateError, template_content

WHATSAPP_MEDIA = ["image", "video", "document"]
# The most each channel carries in one message: WhatsApp's 4,096 for a text body and 1,024 for a
# caption (the session API's limits too), Viber's 1,000 for a business message, and 1,600 for SMS,
# the most that SMS providers such as Twilio take in one (concatenated) message.
TEXT_MAX = {"sms": 1600, "viber": 1000, "whatsapp": 4096}
CAPTION_MAX = 1024
SENDER_MAX = 64
# A channel may wait this long for success before the next is tried: as far ahead as a message may be scheduled.
TTL_MAX_SECONDS = 30 * 24 * 3600


class ChannelError(Exception):
    def __init__(self, field, message, code="invalid"):
        self.field, self.message, self.code = field, message, code


class OmnimessageSerializer(serializers.Serializer):
    to = TextField(help_text="The recipient in E.164 format, e.g. +3725555555.")
    messages = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        help_text="Channel messages, tried in this order until one succeeds"
        f" ({settings.OMNIMESSAGE_MAX_CHANNELS} at most).",
    )
    dlr_url = HttpUrlField(required=False, max_length=2000)
    time_to_send = TextField(required=False, help_text="ISO 8601; naive means UTC; omitted means now.")
    priority = serializers.ChoiceField(choices=["low", "regular", "high"], required=False)
    text_store = serializers.ChoiceField(choices=["nostore", "plaintext", "sha256"], required=False)

    def validate_to(self, value):
        return django_to_drf(normalise_phone, value)

    def validate_dlr_url(self, value):
        django_to_drf(check_public_url, value)
        return value

    def validate_time_to_send(self, value):
        when = django_to_drf(parse_instant, value)
        django_to_drf(lambda moment: check_schedule_window(moment, timezone.now()), when)
        return when

    def validate_messages(self, messages):
        # One request must not fan out into many provider calls and delivery reports.
        if len(messages) > settings.OMNIMESSAGE_MAX_CHANNELS:
            raise serializers.ValidationError(
                f"At most {settings.OMNIMESSAGE_MAX_CHANNELS} channel messages in one omnimessage."
            )
        specs, errors = [], {}
        for index, message in enumerate(messages):
            try:
                specs.append(channel_spec(message))
            except ChannelError as error:
                errors[f"messages[{index}].{error.field}" if error.field else f"messages[{index}]"] = [
                    ErrorDetail(error.message, code=error.code)
                ]
        if errors:
            raise serializers.ValidationError(errors)
        return specs

    def to_internal_value(self, data):
        # Errors of messages[i].x come back nested under "messages": flatten them so each names its source.
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError(flatten(exc.detail)) from None


def flatten(detail):
    if not isinstance(detail, dict):
        return detail
    flat = {}
    for field, messages in detail.items():
        if isinstance(messages, dict):
            flat.update(flatten(messages))
        else:
            flat[field] = messages
    return flat


def channel_spec(message) -> ChannelSpec:
    if not isinstance(message, dict):
        raise ChannelError("", "Each message must be an object with a channel.")
    channel = message.get("channel")
    if channel is None:
        raise ChannelError("channel", "This field is required.", "required")
    if channel not in settings.OMNIMESSAGE_CHANNELS:
        raise ChannelError(
            "channel", f'"{channel}" is not supported; use one of {", ".join(settings.OMNIMESSAGE_CHANNELS)}.'
        )
    sender = optional_text(message, "sender", SENDER_MAX) or settings.OMNIMESSAGE_DEFAULT_SENDER
    return ChannelSpec(
        channel=channel, sender=sender, content=CONTENT[channel](message), ttl_seconds=ttl_seconds(message)
    )


def ttl_seconds(message) -> int | None:
    """`ttl` is seconds and `validity` minutes; only one of them may be given."""
    ttl, validity = message.get("ttl"), message.get("validity")
    if ttl is not None and validity is not None:
        raise ChannelError("ttl", "Give ttl (seconds) or validity (minutes), not both.")
    for name, value, scale in (("ttl", ttl, 1), ("validity", validity, 60)):
        if value is not None:
            most = TTL_MAX_SECONDS // scale
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
                raise ChannelError(name, f"Must be a whole number from 1 to {most} (30 days).")
            return value * scale
    return None


def sms_content(message) -> dict:
    return {"type": "text", "text": required_text(message, "text", TEXT_MAX["sms"])}


def viber_content(message) -> dict:
    for unsupported in ("video", "template", "carousel"):
        if message.get(unsupported) is not None:
            raise ChannelError(unsupported, "Viber video, template and carousel messages are not supported here.")
    image = message.get("image_url")
    if image is not None:
        return {
            "type": "image",
            "media": public_url(image, "image_url"),
            "caption": optional_text(message, "text", TEXT_MAX["viber"]),
        }
    return {"type": "text", "text": required_text(message, "text", TEXT_MAX["viber"])}


def whatsapp_content(message) -> dict:
    given = [
        kind for kind in ("text", *WHATSAPP_MEDIA, "audio", "sticker", "template") if message.get(kind) is not None
    ]
    if len(given) != 1:
        raise ChannelError(
            "text",
            "Give exactly one of text, image, video, document or template.",
            "required" if not given else "invalid",
        )
    kind, part = given[0], message[given[0]]
    if not isinstance(part, dict):
        raise ChannelError(kind, "Must be an object.")
    if kind == "text":
        return {"type": "text", "text": required_text(part, "body", TEXT_MAX["whatsapp"], field="text.body")}
    if kind == "template":
        return {"type": "template", "template": whatsapp_template(part)}
    if kind not in WHATSAPP_MEDIA:
        raise ChannelError(kind, f"WhatsApp {kind} messages are not supported here.")
    if not part.get("link"):
        raise ChannelError(f"{kind}.link", "A media link is required (media ids are not supported).", "required")
    return {
        "type": kind,
        "media": public_url(part["link"], f"{kind}.link"),
        "caption": optional_text(part, "caption", CAPTION_MAX, field=f"{kind}.caption"),
    }


def whatsapp_template(part) -> dict:
    """Messente's WhatsAppTemplate is the Cloud API's template object: read as the session API reads one."""
    try:
        return template_content(part)
    except TemplateError as error:
        raise ChannelError(f"template.{error.path}" if error.path else "template", error.message, error.code) from None


CONTENT = {"sms": sms_content, "viber": viber_content, "whatsapp": whatsapp_content}


def required_text(container, key, max_length, field=None):
    value = container.get(key)
    if value is None:
        raise ChannelError(field or key, "This field is required.", "required")
    text = checked(TextField(max_length=max_length, trim_whitespace=False), value, field or key)
    if not text.strip():
        raise ChannelError(field or key, "This field may not be blank.")
    return text


def optional_text(container, key, max_length, field=None):
    value = container.get(key)
    if value is None:
        return ""
    return checked(TextField(max_length=max_length, allow_blank=True, trim_whitespace=False), value, field or key)


def public_url(value, field):
    checked(HttpUrlField(max_length=2000), value, field)
    try:
        django_to_drf(check_public_url, value)
    except serializers.ValidationError as exc:
        raise ChannelError(field, " ".join(map(str, exc.detail))) from None
    return value


def checked(drf_field, value, field):
    """Run one DRF field's checks (type, NULs, surrogates, length) on a channel's value."""
    try:
        return drf_field.run_validation(value)
    except serializers.ValidationError as exc:
        raise ChannelError(field, " ".join(map(str, exc.detail))) from None


class BulkOmnimessageSerializer(serializers.Serializer):
    messages = serializers.ListField(
        child=serializers.JSONField(),
        allow_empty=False,
        help_text="Omnimessages, each as POST /v1/omnimessage takes one (OMNIMESSAGE_BULK_MAX, 500, at most).",
    )

    def validate_messages(self, messages):
        if len(messages) > settings.OMNIMESSAGE_BULK_MAX:
            raise serializers.ValidationError(f"At most {settings.OMNIMESSAGE_BULK_MAX} omnimessages in one request.")
        return messages
