"""The OpenAPI 3 document at /api/schema/ and the interactive docs at /api/docs/."""

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_it_serves_a_valid_openapi_3_document(schema):
    validate(schema)

    assert schema["openapi"].startswith("3.")


def test_it_describes_the_seeds_paths(schema):
    assert {"/sessions/{session_id}/scheduled", "/sessions/{session_id}/scheduled/{scheduled_id}"} <= set(
        schema["paths"]
    )


def test_it_describes_the_seeds_methods_and_the_batches(schema):
    methods = {
        path: sorted(set(ops) - {"parameters"})
        for path, ops in schema["paths"].items()
        if path.startswith("/sessions/")
    }

    assert methods == {
        "/sessions/{session_id}/scheduled": ["get", "post"],
        "/sessions/{session_id}/scheduled/{scheduled_id}": ["delete", "get", "patch"],
        "/sessions/{session_id}/scheduled/bulk": ["post"],
        "/sessions/{session_id}/batches/{batch_id}": ["delete"],
        "/sessions/{session_id}/recurring": ["get", "post"],
        "/sessions/{session_id}/recurring/{recurring_id}": ["delete", "get", "patch"],
        "/sessions/{session_id}/recurring/{recurring_id}/pause": ["post"],
        "/sessions/{session_id}/recurring/{recurring_id}/resume": ["post"],
        "/sessions/{session_id}/quiet-hours": ["delete", "get", "put"],
    }


def test_it_documents_the_request_fields_of_the_seed_ours_and_the_local_time_in_place_of_scheduled_at(schema):
    request = schema["components"]["schemas"]["ScheduleRequest"]

    assert set(request["properties"]) == {
        "to",
        "type",
        "text",
        "media",
        "caption",
        "template",
        "scheduledAt",
        "expiresAt",
        "localTime",
        "timeZone",
        "ignoreQuietHours",
    }
    assert set(request["required"]) == {"to"}  # scheduledAt, or localTime and timeZone


def test_it_documents_a_recurring_series(schema):
    request = schema["components"]["schemas"]["RecurringRequest"]

    assert {"rrule", "cron", "timeZone", "startAt", "until", "count"} <= set(request["properties"])
    assert set(request["required"]) == {"to", "timeZone"}


def test_it_documents_both_ways_of_sending_the_key_and_the_omnimessage_basic_auth(schema):
    schemes = schema["components"]["securitySchemes"]

    assert sorted(
        (scheme["type"], scheme.get("in"), scheme.get("name"), scheme.get("scheme")) for scheme in schemes.values()
    ) == [
        ("apiKey", "header", "X-API-Key", None),
        ("http", None, None, "basic"),
        ("http", None, None, "bearer"),
    ]


def test_it_serves_the_schema_as_yaml_by_default(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


def test_it_serves_interactive_docs(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"swagger" in response.content.lower()


def test_it_documents_the_idempotency_key_on_every_creating_post(schema):
    creating = [
        ("/sessions/{session_id}/scheduled", "post"),
        ("/sessions/{session_id}/scheduled/bulk", "post"),
        ("/v1/omnimessage", "post"),
        ("/v1/omnimessages", "post"),
    ]

    for path, method in creating:
        operation = schema["paths"][path][method]
        assert ("Idempotency-Key", "header") in [(p["name"], p["in"]) for p in operation["parameters"]], path
        assert {"409", "422", "429"} <= set(operation["responses"]), path
        assert {"Idempotent-Replayed", "X-RateLimit-Remaining"} <= set(operation["responses"]["201"]["headers"])


def test_it_documents_the_rate_limit_headers_on_every_answer(schema):
    for path, operations in schema["paths"].items():
        if not path.startswith(("/sessions/", "/v1/")):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                assert "X-RateLimit-Limit" in response.get("headers", {}), (path, method, code)
            assert "Retry-After" in operation["responses"]["429"]["headers"], (path, method)
