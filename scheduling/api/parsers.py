from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.utils import json

# Our bodies nest five levels at most (a bulk's channel's WhatsApp text); far deeper JSON only costs us.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"Malformed JSON - nested more than {MAX_JSON_DEPTH} levels deep"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"


class LimitedJSONParser(BaseParser):
    """JSON with a size and a nesting limit, both enforced before anything else reads the body.

    Not a subclass of DRF's JSONParser: for those, DRF first reads the whole body through Django's
    `request.body`, whose own 2.5 MB limit answers with an HTML 400 instead of our JSON 413.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer
    setting = "API_MAX_BODY_BYTES"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, self.setting)
        declared = parser_context["request"].META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes")
        try:
            data = json.loads(
                raw.decode(parser_context.get("encoding", settings.DEFAULT_CHARSET)),
                parse_constant=json.strict_constant,
            )
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        except ValueError as exc:  # also UnicodeDecodeError
            raise ParseError(f"Malformed JSON - {exc}") from None
        if nests_deeper_than(data, MAX_JSON_DEPTH):
            raise ParseError(TOO_DEEP)
        return data


def nests_deeper_than(data, most: int) -> bool:
    """Whether lists and objects nest more than `most` levels, found level by level (no recursion,
    which is what a deep document would exhaust)."""
    level = [data]
    for _ in range(most):
        level = [
            child
            for node in level
            if isinstance(node, (list, dict))
            for child in (node.values() if isinstance(node, dict) else node)
        ]
    return any(isinstance(node, (list, dict)) for node in level)


class BulkJSONParser(LimitedJSONParser):
    """The same, with the larger limit of a bulk request."""

    setting = "API_MAX_BULK_BODY_BYTES"


class ScheduleBulkJSONParser(LimitedJSONParser):
    """The same, with the limit of a bulk of the session API (SCHEDULE_BULK_MAX messages)."""

    setting = "SCHEDULE_BULK_MAX_BODY_BYTES"
