"""Schemathesis against the app's own OpenAPI schema: no 5xx, no answer the schema does not describe.

The schema is the one ``create_app`` builds (and the live API serves, which the first test checks);
it is loaded at collection so that each operation is its own test. Requests go over HTTP to the
real ``maie api`` process of the session, with a valid key (left out where the test is a missing key).
"""

from __future__ import annotations

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import allow_header_conformance, positive_data_acceptance

from maie.api import create_app
from maie.config import Settings
from tests.fixtures.services import KEY_A

#: The app's schema, built without starting it (the lifespan, which connects to Redis, never runs).
APP_SCHEMA = create_app(
    Settings.from_env({}, env_file=None),
    redis_url="redis://127.0.0.1:9/0",
    database_url="postgresql://127.0.0.1:9/maie",
).openapi_schema.to_schema()

#: A valid key for the schema's ApiKey scheme: schemathesis sends it, or leaves it out on purpose
#: when it tests that a route refuses requests without one.
CONFIG = SchemathesisConfig.from_dict({"auth": {"openapi": {"ApiKey": {"api_key": KEY_A}}}})

schema = schemathesis.openapi.from_dict(APP_SCHEMA, config=CONFIG)

#: Operations whose acceptance depends on more than a schema can say, so that a schema-valid
#: request may rightly be refused; every other check still applies to them.
SEMANTIC_VALIDATION = {
    # The upload must be decodable audio (a schema-valid PNG gets 415), and the default features
    # need an LLM backend.
    ("POST", "/v1/process"),
    ("POST", "/v1/batches"),
    # The same for OpenAI's audio routes, whose `model` must also name a model that is there.
    ("POST", "/openai/v1/audio/transcriptions"),
    ("POST", "/openai/v1/audio/translations"),
    # `status` takes task statuses, repeated or comma-joined, in any case: described in words; and
    # `submitted_before` must be later than `submitted_after`, which a schema cannot say.
    ("GET", "/v1/tasks"),
    ("GET", "/v1/search"),
}

#: Paths whose methods are served by more than one handler: Litestar 2.25's automatic OPTIONS
#: answers an `Allow` naming only some of them (the route works for every method; only that
#: header is short), so the Allow check is left out for them alone.
SHARED_PATH_OPTIONS = {"/v1/batches/{batch_id}"}


def test_the_live_api_serves_this_schema(api):
    served = httpx.get(f"{api.url}/schema/openapi.json", timeout=10).json()
    assert served["paths"] == APP_SCHEMA["paths"]


@schema.parametrize()
@settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_api_honours_its_schema(case, api):
    excluded = []
    if (case.operation.method.upper(), case.operation.path) in SEMANTIC_VALIDATION:
        excluded.append(positive_data_acceptance)
    if case.operation.path in SHARED_PATH_OPTIONS:
        excluded.append(allow_header_conformance)
    case.call_and_validate(base_url=api.url, excluded_checks=excluded)
