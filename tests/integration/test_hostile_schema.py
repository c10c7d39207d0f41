"""Schemathesis against the app's own OpenAPI schema: no 5xx, no answer the schema does not describe.

The schema is the one ``create_app`` builds (and the live API serves, which the first test checks);
it is loaded at collection so that each operation is its own test. Requests go over HTTP to the
real ``maie api`` process of the session, with a valid key.
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from maie.api import create_app
from maie.config import Settings
from tests.fixtures.services import HEADERS_A

#: The app's schema, built without starting it (the lifespan, which connects to Redis, never runs).
APP_SCHEMA = create_app(
    Settings.from_env({}, env_file=None), redis_url="redis://127.0.0.1:9/0"
).openapi_schema.to_schema()

schema = schemathesis.openapi.from_dict(APP_SCHEMA)


def test_the_live_api_serves_this_schema(api):
    served = httpx.get(f"{api.url}/schema/openapi.json", timeout=10).json()
    assert served["paths"] == APP_SCHEMA["paths"]


@schema.parametrize()
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_honours_its_schema(case, api):
    excluded = []
    if case.operation.path == "/v1/process":
        # Whether an upload is accepted depends on its bytes being decodable audio (and on an LLM
        # backend for the default features), which no OpenAPI schema can say: a schema-valid PNG
        # is rightly refused with 415. Every other check still applies to it.
        excluded.append(positive_data_acceptance)
    case.call_and_validate(base_url=api.url, headers=HEADERS_A, excluded_checks=excluded)
