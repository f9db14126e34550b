"""Error pages: API clients (/api/, /mara/) get JSON bodies, browsers get Django's HTML pages."""

from django.http import JsonResponse
from django.views import defaults

JSON_PREFIXES = ("/api/", "/mara/")


def _wants_json(request) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return defaults.server_error(request)
