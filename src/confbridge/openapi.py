"""The OpenAPI document, true to what the API answers.

Refusals (`errors.DomainError` and the database refusals) are `{"detail": "<message>", ...}`
with a string, while FastAPI documents only its own validation error, whose `detail` is a list.
Routes declare the refusals of their own domain (`responses={409: ...}`); the answers every
route of a kind can give are added here by one rule each, so that they cannot be forgotten:

- a route behind a credential (`security`): 401 (none, or not valid) and 403 (valid, but not
  for this: a role, a terminal, a node);
- a route with path parameters, or input naming another object (`..._id`, `..._ids`): 404 (no
  such object);
- a route that writes: 409 (the change conflicts with existing data: a duplicate, a reference in
  use; `errors` maps every integrity refusal of the database to it);
- a route with parameters or a body: 422, either FastAPI's list of validation errors or a
  domain refusal with a string;
- a route that reads the database: 503 while the database is unavailable.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

ERROR_SCHEMA = "ErrorMessage"
VALIDATION_SCHEMA = "HTTPValidationError"
# Routes that answer without touching the database (no 503 for an unavailable one).
NO_DATABASE_PATHS = frozenset({"/healthz"})
WRITES = frozenset({"post", "put", "patch", "delete"})

COMMON_REFUSALS: dict[str, str] = {
    "401": "no valid credential (missing, expired, revoked, or of another kind)",
    "403": "the credential is valid but may not do this (role, terminal or node)",
    "404": "no such object (or not visible to this credential)",
    "409": "the change conflicts with existing data",
    "422": "invalid input: FastAPI's list of validation errors, or a refusal with a message",
    "503": "the database is unavailable, or no media server can take the request; retry later",
}


class ErrorMessage(BaseModel):
    """A refusal: `detail` says what is wrong; some carry more fields (the clashes of a
    booking, `retry_after_s`)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="what is wrong, in one sentence")


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}


def _unprocessable_content() -> dict[str, Any]:
    return {
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": f"#/components/schemas/{VALIDATION_SCHEMA}"},
                    {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"},
                ]
            }
        }
    }


def _has_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def _names_an_object(name: str) -> bool:
    return name.endswith(("_id", "_ids"))


def _body_fields(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    fields: list[str] = []
    for media in content.values():
        schema = media.get("schema", {})
        reference = schema.get("$ref", "")
        if reference.startswith("#/components/schemas/"):
            schema = components.get(reference.rsplit("/", 1)[1], {})
        fields += list(schema.get("properties", {}))
    return fields


def _may_miss_an_object(operation: dict[str, Any], components: dict[str, Any]) -> bool:
    parameters = operation.get("parameters", [])
    if any(p.get("in") == "path" for p in parameters):
        return True
    names = [p.get("name", "") for p in parameters] + _body_fields(operation, components)
    return any(_names_an_object(name) for name in names)


def _implied_refusals(
    path: str, method: str, operation: dict[str, Any], components: dict[str, Any]
) -> list[str]:
    codes: list[str] = []
    if operation.get("security"):
        codes += ["401", "403"]
    if _may_miss_an_object(operation, components):
        codes.append("404")
    if method in WRITES:
        codes.append("409")
    if _has_input(operation):
        codes.append("422")
    if path not in NO_DATABASE_PATHS:
        codes.append("503")
    return codes


def _own_content(response: dict[str, Any]) -> bool:
    """The route gave this answer a body of its own (`responses={503: {"model": ...}}`)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema) and schema.get("$ref") != f"#/components/schemas/{VALIDATION_SCHEMA}"


def document_refusals(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the implied refusals to every operation of `schema` and give every 4xx/5xx answer
    the shape it really has; returns `schema`, changed in place."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = ErrorMessage.model_json_schema()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code in _implied_refusals(path, method, operation, components):
                responses.setdefault(code, {"description": COMMON_REFUSALS[code]})
            for code, response in responses.items():
                if not code.startswith(("4", "5")) or _own_content(response):
                    continue
                if code == "422":
                    if VALIDATION_SCHEMA not in components:
                        continue  # no validated input anywhere: only domain refusals
                    response["content"] = _unprocessable_content()
                else:
                    response["content"] = _error_content()
    return schema


def install(app: FastAPI) -> None:
    """Serve the document with the refusals documented (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_refusals(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
