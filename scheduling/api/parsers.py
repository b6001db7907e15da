import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .errors import PayloadTooLarge


class LimitedJSONParser(JSONParser):
    """JSON with a size limit (DRF streams the body past Django's DATA_UPLOAD_MAX_MEMORY_SIZE)."""

    setting = "API_MAX_BODY_BYTES"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = getattr(settings, self.setting)
        request = parser_context["request"]
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes")
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except ParseError as exc:
            raise ParseError(str(exc.detail).replace("JSON parse error", "Malformed JSON")) from None



class BulkJSONParser(LimitedJSONParser):
    """The same, with the larger limit of a bulk request."""

    setting = "API_MAX_BULK_BODY_BYTES"
