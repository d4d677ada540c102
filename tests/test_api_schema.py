"""schemathesis against the OpenAPI document the server serves: generated requests (a bounded
number per operation) find no 5xx and no answer that breaks the document (status codes, content
types, response schemas)."""
from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.serve import prepared, serving
from tradeflow.server.openapi import document

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    store = f"duckdb:///{tmp_path_factory.mktemp('schema')}/schema.duckdb"
    key = prepared(store, [("XAUUSD", 0.01)], ["fuzz"])["fuzz"]
    with serving(store) as s:
        s.key = key
        yield s


# the document as the server module builds it; test_the_served_document_is_this_one holds the
# served one to it (schemathesis' lazy fixture loader fails with this pytest version)
schema = schemathesis.openapi.from_dict(document())


TESTED: list[str] = []  # the operations given a test below


def operation_test(label: str):
    """schemathesis' test of one operation. (One test per operation, not one
    ``schema.parametrize()`` for all: with pytest 9 its items share one node id, so
    pytest-xdist ran only one of them.)"""
    TESTED.append(label)

    @pytest.mark.filterwarnings("ignore:Skipped test cases with unsupported payload media types")
    @schema.include(name=label).parametrize()
    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def test(case, served):
        case.call_and_validate(base_url=served.url, headers={"X-API-Key": served.key},
                               checks=CHECKS, timeout=60)

    return test


test_post_market_data = operation_test("POST /api/v1/market-data")
test_post_market_data_batch = operation_test("POST /api/v1/market-data/batch")
test_post_trades = operation_test("POST /api/v1/trades")
test_get_bars = operation_test("GET /api/v1/bars")
test_get_footprint = operation_test("GET /api/v1/footprint")
test_get_profile = operation_test("GET /api/v1/profile")
test_get_instrument = operation_test("GET /api/v1/instrument")
test_get_study = operation_test("GET /api/v1/studies/{name}")


def test_every_operation_of_the_document_is_tested():
    labels = [r.ok().label for r in schema.get_all_operations()]
    assert sorted(TESTED) == sorted(labels)


def test_the_served_document_is_this_one(served):
    import httpx

    doc = httpx.get(f"{served.api}/openapi.json").json()
    assert doc == json.loads(json.dumps(document()))
    assert doc["openapi"] == "3.1.0"
    assert {"/api/v1/market-data", "/api/v1/market-data/batch", "/api/v1/trades",
            "/api/v1/bars", "/api/v1/footprint", "/api/v1/profile",
            "/api/v1/studies/{name}"} <= set(doc["paths"])
