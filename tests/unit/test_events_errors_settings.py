"""Schema, error classification and settings: the rules every handler shares."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError
from orderflow.errors import ErrorKind, PoisonRecordError, TransientError, classify, describe
from orderflow.events import OrderStatus, parse_event, parse_task
from orderflow.settings import IngestSettings, ReplaySettings, SettingsError, load_settings

GOOD = {
    "event_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "order_id": "o-1",
    "version": 1,
    "type": "OrderPaid",
    "occurred_at": "2024-01-01T00:00:00Z",
    "customer_id": "c-1",
    "amount_cents": 1250,
}


def test_given_a_valid_event_when_parsed_from_bytes_then_fields_and_status_are_typed():
    event = parse_event(json.dumps(GOOD).encode())

    assert event.status is OrderStatus.PAID
    assert event.occurred_at.tzinfo is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount_cents": -1}, "amount_cents"),
        ({"version": 0}, "version"),
        ({"version": "2"}, "version"),
        ({"type": "OrderLost"}, "type"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"order_id": ""}, "order_id"),
        ({"occurred_at": "2024-01-01T00:00:00"}, "occurred_at"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_given_a_bad_field_when_parsed_then_poison_with_a_one_line_reason_naming_it(change, field):
    with pytest.raises(PoisonRecordError) as caught:
        parse_event({**GOOD, **change})

    assert field in caught.value.reason
    assert "\n" not in caught.value.reason


def test_given_bytes_that_are_not_json_when_parsed_then_poison():
    with pytest.raises(PoisonRecordError, match="Invalid JSON"):
        parse_event(b"{not json")


def test_given_a_task_of_unknown_kind_when_parsed_then_poison():
    with pytest.raises(PoisonRecordError, match="unknown task kind"):
        parse_task('{"kind": "refund"}')


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (PoisonRecordError("bad"), ErrorKind.POISON),
        (TransientError("later"), ErrorKind.TRANSIENT),
        (
            ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem"),
            ErrorKind.TRANSIENT,
        ),
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "Invoke"), ErrorKind.TRANSIENT),
        (ClientError({"Error": {"Code": "ValidationException"}}, "PutItem"), ErrorKind.POISON),
        (ConnectTimeoutError(endpoint_url="https://x"), ErrorKind.TRANSIENT),
        (ConnectionError("reset"), ErrorKind.TRANSIENT),
        (TimeoutError(), ErrorKind.TRANSIENT),
        (json.JSONDecodeError("bad", "{", 0), ErrorKind.POISON),
        (KeyError("a bug of ours"), ErrorKind.TRANSIENT),
    ],
)
def test_given_an_error_when_classified_then_transient_unless_the_record_is_bad(error, kind):
    assert classify(error) is kind


def test_given_a_client_error_when_described_then_code_and_message_on_one_line():
    error = ClientError({"Error": {"Code": "Throttling", "Message": "Rate\nexceeded"}}, "Send")

    assert describe(error).startswith("Throttling: ")
    assert "\n" not in describe(error)


def test_given_a_missing_variable_when_settings_load_then_the_error_names_it(monkeypatch):
    monkeypatch.delenv("ORDERS_TABLE", raising=False)
    monkeypatch.setenv("FAILURE_QUEUE_URL", "https://sqs/ingest-failures")
    load_settings.cache_clear()

    with pytest.raises(SettingsError, match="missing environment variable ORDERS_TABLE"):
        load_settings(IngestSettings)
    load_settings.cache_clear()


def test_given_an_invalid_number_when_settings_load_then_the_error_names_the_variable(
    monkeypatch,
):
    monkeypatch.setenv("RECOVERY_TABLE", "recovery")
    monkeypatch.setenv("MAX_REPLAY_ATTEMPTS", "many")
    load_settings.cache_clear()

    with pytest.raises(SettingsError, match="invalid environment variable MAX_REPLAY_ATTEMPTS"):
        load_settings(ReplaySettings)
    load_settings.cache_clear()


def test_given_settings_when_loaded_twice_then_read_once(monkeypatch):
    monkeypatch.setenv("RECOVERY_TABLE", "recovery")
    monkeypatch.delenv("MAX_REPLAY_ATTEMPTS", raising=False)
    load_settings.cache_clear()

    first = load_settings(ReplaySettings)
    monkeypatch.setenv("RECOVERY_TABLE", "changed")

    assert load_settings(ReplaySettings) is first
    assert first.max_replay_attempts == 3
    load_settings.cache_clear()
