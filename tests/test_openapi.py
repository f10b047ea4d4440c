"""The OpenAPI document is true: generated requests to every operation get only answers the
document lists, in the shape it gives, and never a server error."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from confbridge.openapi import document_refusals
from confbridge.sites.models import Site

# Bounded, and the same examples on every run: this guards the document, it does not hunt.
EXAMPLES_PER_OPERATION = 12


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from an app built for this purpose only."""
    from confbridge.main import create_app
    from tests.support.factories import make_settings

    with tempfile.TemporaryDirectory() as data_dir:
        settings = make_settings(f"sqlite:///{data_dir}/unused.sqlite3", Path(data_dir))
        document = create_app(settings).openapi()
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


@schemathesis.check
def no_server_failure(ctx: schemathesis.CheckContext, response: schemathesis.Response, case):
    """500 is a fault of ours; 503 (no database, no media server) is a documented answer."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.text[:300]}")


CHECKS = [
    no_server_failure,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_openapi_every_answer_is_documented(
    app: Any, admin: dict[str, str], sites: dict[str, Site], method: str, path: str
) -> None:
    """Generated requests, signed in as an admin, over a database with a province's sites."""
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def answers_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=admin, checks=CHECKS)

    answers_as_documented()


def test_openapi_refusals_have_their_real_shape(client) -> None:
    """Domain refusals carry a string `detail`; validation errors a list: both documented."""
    document = client.get("/openapi.json").json()
    refused = document["paths"]["/api/v1/series/{series_id}"]["get"]["responses"]
    assert refused["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorMessage"
    }
    shapes = refused["422"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/HTTPValidationError"} in shapes
    assert {"$ref": "#/components/schemas/ErrorMessage"} in shapes
    assert document["components"]["schemas"]["ErrorMessage"]["properties"]["detail"] == {
        "description": "what is wrong, in one sentence",
        "title": "Detail",
        "type": "string",
    }


def test_openapi_implied_refusals_follow_the_operation() -> None:
    document = document_refusals(
        {
            "paths": {
                "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
                "/things/{id}": {
                    "get": {
                        "security": [{"bearer": []}],
                        "parameters": [{"in": "path", "name": "id"}],
                        "responses": {"409": {"description": "the thing is busy"}},
                    }
                },
            }
        }
    )
    assert set(document["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    thing = document["paths"]["/things/{id}"]["get"]["responses"]
    assert set(thing) == {"401", "403", "404", "409", "422", "503"}
    assert thing["409"]["description"] == "the thing is busy"  # a route's own words are kept
