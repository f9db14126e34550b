"""OpenAPI post-processing: document the error answers every operation can give.

drf-spectacular documents what each view declares (its successes, and the 400/409 some writes name). A client,
and a fuzzer checking responses against the schema, also meets the errors the framework adds around every view;
this hook writes them into each operation unless the view already documented that status:

- 400 when the operation takes query parameters or a body (invalid filter, page bounds or body);
- 401 and 403 when it requires authentication (no or a bad token; a role without the permission);
- 404 when its path names an object (another customer's object answers 404 too);
- 429 (a rate limit) and 503 (database or task queue unavailable, `core.middleware`) everywhere.

It also marks optional query parameters `allowEmptyValue`: as everywhere in django-filter, `?site=` (an empty
value, what an HTML form sends for a field left blank) means the filter is not applied.
"""

from __future__ import annotations

ERROR = {
    "type": "object",
    "description": "An error: `detail` says what went wrong; `code` names it when the API sets one.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Field name (or `non_field_errors` / `detail`) -> messages.",
    "additionalProperties": True,
}
STATUS_TEXT = {
    "400": ("Invalid input (query parameters or body), with messages per field.", "ValidationError"),
    "401": ("No or invalid credentials.", "Error"),
    "403": ("Signed in, but this role may not do this.", "Error"),
    "404": ("No such object, or not one of yours.", "Error"),
    "429": ("Too many requests; retry after the `Retry-After` seconds.", "Error"),
    "503": ("The database or the task queue is unavailable; retry after `Retry-After` seconds.", "Error"),
}
METHODS = {"get", "put", "post", "patch", "delete"}


def _needs_auth(operation: dict, default_security: list | None) -> bool:
    security = operation.get("security", default_security) or []
    return bool(security) and {} not in security


def document_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular POSTPROCESSING_HOOKS entry (after its enum hook)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR)
    schemas.setdefault("ValidationError", VALIDATION_ERROR)
    for path, item in result.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            parameters = [*item.get("parameters", []), *operation.get("parameters", [])]
            for parameter in parameters:
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter.setdefault("allowEmptyValue", True)
            statuses = ["429", "503"]
            if any(p.get("in") == "query" for p in parameters) or "requestBody" in operation:
                statuses.append("400")
            if _needs_auth(operation, result.get("security")):
                statuses += ["401", "403"]
            if "{" in path:
                statuses.append("404")
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                if status in responses:
                    continue
                description, component = STATUS_TEXT[status]
                responses[status] = {
                    "description": description,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}},
                }
    return result
