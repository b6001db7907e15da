"""Django's own error pages (400, 404, 500: outside any API view) in the shape of the API style the path
belongs to, so that a client of either never has to parse HTML."""

from django.http import JsonResponse

from .omni import errors as omni_errors


def bad_request(request, exception=None):
    return _in_api_style(request, 400, omni_errors.INVALID, "Bad request")


def not_found(request, exception=None):
    return _in_api_style(request, 404, omni_errors.NOT_FOUND, "Not found")


def server_error(request):
    return _in_api_style(request, 500, omni_errors.INTERNAL, "Internal server error")


def _in_api_style(request, status_code, messente_title_code, error):
    """Messente's error body under its /v1/ paths (its clients parse nothing else), ours elsewhere."""
    if request.path.startswith("/v1/"):
        return JsonResponse({"errors": [omni_errors.item(*messente_title_code, error, None)]}, status=status_code)
    return JsonResponse({"success": False, "error": error}, status=status_code)
