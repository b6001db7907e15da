"""A WhatsApp template message, read the same way for both API styles: the WhatsApp Cloud API's template
object (which Messente's WhatsAppTemplate copies), checked and kept in the session API's form,
`{"name", "language": "en_US", "components": [...]}`. Only the parts the Cloud API sends are kept.

https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#template-object
"""

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..validation import check_public_url
from .fields import HttpUrlField, TextField, django_to_drf

NAME = re.compile(r"[a-z0-9_]+")  # Meta: lowercase letters, digits and underscores
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")  # en, en_US, fil, pt_BR
COMPONENT_TYPES = ("header", "body", "button")
BUTTON_SUB_TYPES = ("quick_reply", "url", "copy_code")
MEDIA = ("image", "video", "document")
PARAMETER_TYPES = ("text", "currency", "date_time", *MEDIA, "payload", "coupon_code")
COMPONENTS_MAX = 12  # a header, a body and up to ten buttons
PARAMETERS_MAX = 50
TEXT_MAX = 1024
TEXT_LIMITS = {"text": TEXT_MAX, "payload": TEXT_MAX, "coupon_code": 15}  # the Cloud API's for a coupon code


class TemplateError(Exception):
    def __init__(self, path: str, message: str, code: str = "invalid"):
        super().__init__(f"{path}: {message}" if path else message)
        self.path, self.message, self.code = path, message, code


def template_content(value) -> dict:
    """The template as kept and sent, or TemplateError naming the part that is wrong."""
    template = _object(value, "")
    name = _text(template.get("name"), "name", 512)
    if not NAME.fullmatch(name):
        raise TemplateError("name", "Must be the template's name: lowercase letters, digits and underscores.")
    language = template.get("language")
    if isinstance(language, dict):  # the Cloud API's and Messente's {"code": "en_US", "policy": "deterministic"}
        language = language.get("code")
    language = _text(language, "language", 16)
    if not LANGUAGE.fullmatch(language):
        raise TemplateError("language", "Must be a language code such as en or en_US.")
    components = template.get("components", [])
    if not isinstance(components, list) or len(components) > COMPONENTS_MAX:
        raise TemplateError("components", f"Must be a list of at most {COMPONENTS_MAX} components.")
    return {
        "name": name,
        "language": language,
        "components": [_component(part, f"components[{i}]") for i, part in enumerate(components)],
    }


def _component(value, path: str) -> dict:
    part = _object(value, path)
    kind = _one_of(part.get("type"), COMPONENT_TYPES, f"{path}.type")
    component = {"type": kind}
    if kind == "button":
        component["sub_type"] = _one_of(part.get("sub_type"), BUTTON_SUB_TYPES, f"{path}.sub_type")
        index = part.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= 9:
            raise TemplateError(f"{path}.index", "Must be a whole number from 0 to 9.")
        component["index"] = index
    parameters = part.get("parameters")
    if not isinstance(parameters, list) or not 1 <= len(parameters) <= PARAMETERS_MAX:
        raise TemplateError(f"{path}.parameters", f"Must be a list of 1 to {PARAMETERS_MAX} parameters.")
    component["parameters"] = [_parameter(p, f"{path}.parameters[{i}]") for i, p in enumerate(parameters)]
    return component


def _parameter(value, path: str) -> dict:
    parameter = _object(value, path)
    kind = _one_of(parameter.get("type"), PARAMETER_TYPES, f"{path}.type")
    if kind in TEXT_LIMITS:
        return {"type": kind, kind: _text(parameter.get(kind), f"{path}.{kind}", TEXT_LIMITS[kind])}
    part = _object(parameter.get(kind), f"{path}.{kind}")
    if kind in MEDIA:
        media = {"link": _public_url(part.get("link"), f"{path}.{kind}.link")}
        if kind == "document" and part.get("filename") is not None:
            media["filename"] = _text(part["filename"], f"{path}.document.filename", 255)
        return {"type": kind, kind: media}
    fallback = _text(part.get("fallback_value"), f"{path}.{kind}.fallback_value", TEXT_MAX)
    if kind == "date_time":
        return {"type": kind, kind: {"fallback_value": fallback}}
    code, amount = part.get("code"), str(part.get("amount_1000", ""))
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{3}", code):
        raise TemplateError(f"{path}.currency.code", "Must be an ISO 4217 currency code such as EUR.")
    if not re.fullmatch(r"-?[0-9]{1,15}", amount):
        raise TemplateError(f"{path}.currency.amount_1000", "Must be the amount times 1000, a whole number.")
    return {"type": kind, kind: {"fallback_value": fallback, "code": code, "amount_1000": int(amount)}}


def _object(value, path: str) -> dict:
    if value is None:
        raise TemplateError(path, "This field is required.", "required")
    if not isinstance(value, dict):
        raise TemplateError(path, "Must be an object.")
    return value


def _one_of(value, choices: tuple, path: str) -> str:
    if value not in choices:
        raise TemplateError(path, f"Must be one of {', '.join(choices)}.", "required" if value is None else "invalid")
    return value


def _text(value, path: str, most: int) -> str:
    if value is None:
        raise TemplateError(path, "This field is required.", "required")
    try:
        return TextField(max_length=most).run_validation(value)
    except serializers.ValidationError as exc:
        raise TemplateError(path, " ".join(map(str, exc.detail))) from None


def _public_url(value, path: str) -> str:
    if value is None:
        raise TemplateError(path, "This field is required (media ids are not supported).", "required")
    try:
        url = HttpUrlField(max_length=2000).run_validation(value)
        django_to_drf(check_public_url, url)
    except serializers.ValidationError as exc:
        raise TemplateError(path, " ".join(map(str, exc.detail))) from None
    return url


class TemplateDocument(serializers.Serializer):
    """A WhatsApp template as the OpenAPI schema shows it (template_content reads it)."""

    name = serializers.CharField(help_text="The approved template's name, e.g. order_confirmation.")
    language = serializers.CharField(help_text="Its language code, e.g. en_US.")
    components = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="The Cloud API's components: header, body and button, each with its parameters.",
    )


@extend_schema_field(TemplateDocument)
class TemplateField(serializers.Field):
    """The session API's `template`: read by template_content, an error naming the part that is wrong."""

    def to_internal_value(self, data):
        try:
            return template_content(data)
        except TemplateError as error:
            raise serializers.ValidationError(str(error)) from None

    def to_representation(self, value):
        return value
