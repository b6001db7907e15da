"""Fields both API styles read requests with: instants, text that is only text, http(s) URLs."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..validation import format_instant, parse_instant


def django_to_drf(function, value):
    try:
        return function(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


@extend_schema_field(OpenApiTypes.DATETIME)
class InstantField(serializers.Field):
    """Any ISO 8601 date-time in; UTC with milliseconds and `Z` out."""

    def to_internal_value(self, data):
        return django_to_drf(parse_instant, data)

    def to_representation(self, value):
        return format_instant(value)


class TextOnly:
    """DRF's CharField turns 12345 into "12345": a number where text belongs is refused instead."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TextField(TextOnly, serializers.CharField):
    """Text, and only text (NULs and lone surrogates refused, as by every DRF CharField)."""


class HttpUrlField(TextOnly, serializers.URLField):
    """An http(s) URL, with one message for anything else (not DRF's "Enter a valid URL." beside ours)."""

    default_error_messages = {"invalid": "must be an http(s) URL."}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.validators[-1] = URLValidator(schemes=["http", "https"], message=self.error_messages["invalid"])
