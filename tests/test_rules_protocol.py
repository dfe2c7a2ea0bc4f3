"""The keyd <-> policy worker messages: round trips, the allow-tables, and strict rejection."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ProtocolViolation
from sandbox.policy_protocol import (
    MAX_ERROR_CHARS,
    MAX_JSON_DEPTH,
    VALIDATION_UNAVAILABLE,
    Init,
    Log,
    Notify,
    NotifyDone,
    Ready,
    Rule,
    RuleResult,
    StorageAck,
    StorageGet,
    StoragePut,
    StorageValue,
    ValidateResult,
    ValidateTx,
    ValidationMessage,
    check_json,
    parse_from_keyd,
    parse_from_worker,
)

FROM_KEYD: list[Any] = [
    Init(ruleset="function ApproveTx(){}", bignumber="var BigNumber;", timeout=1.0),
    Init(ruleset=None, bignumber="", timeout=2),
    Rule(id=1, fn="ApproveTx", request={"transaction": {"value": "0x0"}, "meta": {}}),
    Rule(id=2, fn="ApproveListing", request=None),
    Notify(id=3, fn="OnApprovedTx", request={"raw": "0x", "tx": None}),
    ValidateTx(id=4, tx={"to": None, "data": "0x"}, selector="transfer(address,uint256)",
               chain_id=1),
    ValidateTx(id=5, tx={}, selector=None, chain_id=None),
    StorageValue(id=6, value="", error=None),
    StorageValue(id=7, value=None, error="tampered"),
    StorageAck(id=8, ok=True, error=None),
    StorageAck(id=9, ok=False, error="disk full"),
]
FROM_WORKER: list[Any] = [
    Ready(),
    RuleResult(id=1, decision="Approve", error=None),
    RuleResult(id=1, decision="Reject", error=None),
    RuleResult(id=1, decision=None, error="rule timed out after 1s"),
    RuleResult(id=1, decision=None, error=None),
    NotifyDone(id=3, error=None),
    NotifyDone(id=3, error="storage unavailable"),
    ValidateResult(id=4, messages=(ValidationMessage("WARNING", "w"),
                                   ValidationMessage("CRITICAL", "c"),
                                   ValidationMessage("Info", "i")),
                   error=None, learned=(("0xa9059cbb", "transfer(address,uint256)"),)),
    ValidateResult(id=5, messages=(), error=VALIDATION_UNAVAILABLE),
    StorageGet(id=1, key="txs"),
    StoragePut(id=2, key="txs", value=""),
    Log(level="info", msg="JS:> hello"),
    Log(level="error", msg=""),
]


def wire(message: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(message.to_wire()))
    return body


@pytest.mark.parametrize("message", FROM_KEYD, ids=lambda m: type(m).__name__)
def test_keyd_messages_round_trip(message: Any) -> None:
    assert parse_from_keyd(wire(message)) == message


@pytest.mark.parametrize("message", FROM_WORKER, ids=lambda m: type(m).__name__)
def test_worker_messages_round_trip(message: Any) -> None:
    assert parse_from_worker(wire(message)) == message


@pytest.mark.parametrize("message", FROM_KEYD, ids=lambda m: type(m).__name__)
def test_worker_may_not_send_keyd_messages(message: Any) -> None:
    with pytest.raises(ProtocolViolation, match="may not send"):
        parse_from_worker(wire(message))


@pytest.mark.parametrize("message", FROM_WORKER, ids=lambda m: type(m).__name__)
def test_keyd_may_not_send_worker_messages(message: Any) -> None:
    with pytest.raises(ProtocolViolation, match="may not send"):
        parse_from_keyd(wire(message))


def test_wire_shapes_are_as_documented() -> None:
    assert wire(Rule(id=1, fn="ApproveTx", request=None)) == {
        "t": "rule", "id": 1, "fn": "ApproveTx", "request": None}
    assert wire(RuleResult(id=1, decision=None, error="x")) == {
        "t": "rule_result", "id": 1, "decision": None, "error": "x"}
    assert wire(ValidateResult(id=2, messages=(ValidationMessage("Info", "m"),), error=None,
                               learned=(("0x12345678", "f()"),))) == {
        "t": "validate_result", "id": 2, "messages": [{"type": "Info", "message": "m"}],
        "error": None, "learned": [["0x12345678", "f()"]]}
    assert wire(Ready()) == {"t": "ready"}


BAD_FROM_WORKER = [
    [],
    "rule_result",
    {},
    {"t": 1},
    {"t": "nope"},
    {"t": "ready", "extra": 1},
    {"t": "rule_result", "id": 1, "decision": "Approve"},
    {"t": "rule_result", "id": 1, "decision": "Approve", "error": None, "x": 1},
    {"t": "rule_result", "id": True, "decision": "Approve", "error": None},
    {"t": "rule_result", "id": -1, "decision": "Approve", "error": None},
    {"t": "rule_result", "id": 2**53, "decision": "Approve", "error": None},
    {"t": "rule_result", "id": 1.0, "decision": "Approve", "error": None},
    {"t": "rule_result", "id": 1, "decision": "approve", "error": None},
    {"t": "rule_result", "id": 1, "decision": "Approve", "error": "both"},
    {"t": "rule_result", "id": 1, "decision": None, "error": "x" * (MAX_ERROR_CHARS + 1)},
    {"t": "rule_result", "id": 1, "decision": None, "error": 5},
    {"t": "notify_done", "id": 1},
    {"t": "storage_get", "id": 1, "key": ""},
    {"t": "storage_get", "id": 1, "key": 5},
    {"t": "storage_get", "id": 1, "key": "\ud800"},
    {"t": "storage_put", "id": 1, "key": "k", "value": None},
    {"t": "storage_put", "id": 1, "key": "k" * 5000, "value": "v"},
    {"t": "log", "level": "debug", "msg": "x"},
    {"t": "log", "level": "info", "msg": ["x"]},
    {"t": "validate_result", "id": 1, "messages": {}, "error": None, "learned": []},
    {"t": "validate_result", "id": 1, "messages": [{"type": "Warn", "message": "m"}],
     "error": None, "learned": []},
    {"t": "validate_result", "id": 1, "messages": [{"type": "Info"}], "error": None,
     "learned": []},
    {"t": "validate_result", "id": 1, "messages": [], "error": None,
     "learned": [["a9059cbb", "transfer(address,uint256)"]]},
    {"t": "validate_result", "id": 1, "messages": [], "error": None, "learned": [["0xa9059cbb"]]},
    {"t": "validate_result", "id": 1, "messages": [], "error": None,
     "learned": [["0xA9059CBB", "x()"]]},
    {"t": "validate_result", "id": 1, "messages": [], "error": None,
     "learned": [["0xa9059cbb", ""]]},
    {"t": "validate_result", "id": 1, "messages": [{"type": "Info", "message": "m"}] * 257,
     "error": None, "learned": []},
]


@pytest.mark.parametrize("frame", BAD_FROM_WORKER)
def test_malformed_worker_frames_are_violations(frame: Any) -> None:
    with pytest.raises(ProtocolViolation):
        parse_from_worker(frame)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": [value]}
    return value


BAD_FROM_KEYD = [
    {"t": "init", "ruleset": 5, "bignumber": "", "timeout": 1},
    {"t": "init", "ruleset": None, "bignumber": None, "timeout": 1},
    {"t": "init", "ruleset": None, "bignumber": "", "timeout": 0},
    {"t": "init", "ruleset": None, "bignumber": "", "timeout": 61},
    {"t": "init", "ruleset": None, "bignumber": "", "timeout": True},
    {"t": "init", "ruleset": None, "bignumber": "", "timeout": "1"},
    {"t": "rule", "id": 1, "fn": "Approve Tx", "request": None},
    {"t": "rule", "id": 1, "fn": "x;alert(1)", "request": None},
    {"t": "rule", "id": 1, "fn": "", "request": None},
    {"t": "rule", "id": 1, "fn": "ApproveTx", "request": nested(MAX_JSON_DEPTH)},
    {"t": "rule", "id": 1, "fn": "ApproveTx"},
    {"t": "notify", "id": "1", "fn": "OnApprovedTx", "request": None},
    {"t": "validate_tx", "id": 1, "tx": [], "selector": None, "chain_id": None},
    {"t": "validate_tx", "id": 1, "tx": {}, "selector": 1, "chain_id": None},
    {"t": "validate_tx", "id": 1, "tx": {}, "selector": None, "chain_id": -1},
    {"t": "storage_value", "id": 1, "value": None, "error": None},
    {"t": "storage_value", "id": 1, "value": "v", "error": "e"},
    {"t": "storage_ack", "id": 1, "ok": True, "error": "e"},
    {"t": "storage_ack", "id": 1, "ok": False, "error": None},
    {"t": "storage_ack", "id": 1, "ok": 1, "error": None},
]


@pytest.mark.parametrize("frame", BAD_FROM_KEYD)
def test_malformed_keyd_frames_are_violations(frame: Any) -> None:
    with pytest.raises(ProtocolViolation):
        parse_from_keyd(frame)


def test_check_json_bounds() -> None:
    assert check_json(nested(MAX_JSON_DEPTH // 2 - 1)) is not None
    with pytest.raises(ProtocolViolation, match="deeply nested"):
        check_json(nested(MAX_JSON_DEPTH))
    with pytest.raises(ProtocolViolation, match="non-finite"):
        check_json({"v": float("inf")})
    with pytest.raises(ProtocolViolation, match="not JSON"):
        check_json({"v": b"bytes"})
    with pytest.raises(ProtocolViolation, match="non-string key"):
        check_json({1: "v"})
    with pytest.raises(ProtocolViolation, match="too large"):
        check_json([0] * 300_000)


def test_dataclasses_validate_on_construction() -> None:
    with pytest.raises(ProtocolViolation):
        RuleResult(id=1, decision="Maybe", error=None)  # type: ignore[arg-type]
    with pytest.raises(ProtocolViolation):
        ValidationMessage("WARN", "m")
    with pytest.raises(ProtocolViolation):
        ValidateResult(id=1, messages=[], error=None)  # type: ignore[arg-type]
    with pytest.raises(ProtocolViolation):
        Init(ruleset=None, bignumber="", timeout=float("inf"))


FRAME_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)
KINDS = st.sampled_from(["init", "rule", "notify", "validate_tx", "storage_value",
                         "storage_ack", "ready", "rule_result", "notify_done",
                         "validate_result", "storage_get", "storage_put", "log", "x"])


@settings(max_examples=300, deadline=None)
@given(KINDS, st.dictionaries(st.sampled_from(["id", "fn", "request", "decision", "error",
                                               "key", "value", "ok", "level", "msg",
                                               "messages", "learned", "tx", "selector",
                                               "chain_id", "ruleset", "bignumber",
                                               "timeout"]), FRAME_VALUES))
def test_hostile_frames_raise_only_protocol_violation(kind: str, body: dict[str, Any]) -> None:
    frame = {"t": kind, **body}
    for parse in (parse_from_keyd, parse_from_worker):
        with contextlib.suppress(ProtocolViolation):
            parse(frame)
