"""Property tests: what JavaScript sees is exactly the request, and storage round-trips strings."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy.rules import MemoryStorage, RulesEngine, load_bignumber_js
from sandbox.policy_protocol import Rule, parse_from_keyd

BIGNUMBER = load_bignumber_js()
# Strings as keyd produces them (valid Unicode: no lone surrogates).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

ECHO = RulesEngine("function Echo(r) { return JSON.stringify(r === undefined ? null : r); }",
                   BIGNUMBER, MemoryStorage(), lambda _line: None)


def numbers_as_floats(value: Any) -> Any:
    """JS has one number type: 7.0e16 comes back as the integer literal 70000000000000000."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [numbers_as_floats(v) for v in value]
    return {k: numbers_as_floats(v) for k, v in value.items()}


@SETTINGS
@given(JSON_VALUES)
def test_javascript_receives_exactly_the_request(request: Any) -> None:
    echoed = json.loads(ECHO.evaluate("Echo", request).value)
    assert numbers_as_floats(echoed) == numbers_as_floats(request)


@SETTINGS
@given(st.dictionaries(TEXT.filter(bool), TEXT, max_size=5))
def test_storage_round_trips_strings(entries: dict[str, str]) -> None:
    storage = MemoryStorage()
    ruleset = """
    function Store(r) {
      Object.keys(r).forEach(function (k) { storage.put(k, r[k]); });
      var out = {};
      Object.keys(r).forEach(function (k) { out[k] = storage.get(k); });
      return JSON.stringify(out);
    }"""
    engine = RulesEngine(ruleset, BIGNUMBER, storage, lambda _line: None)
    assert json.loads(engine.evaluate("Store", entries).value) == entries
    assert storage.data == {k: v for k, v in entries.items() if v != ""}


@SETTINGS
@given(st.integers(0, 2**53 - 1), st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,63}", fullmatch=True),
       JSON_VALUES)
def test_rule_frames_round_trip(msg_id: int, fn: str, request: Any) -> None:
    message = Rule(id=msg_id, fn=fn, request=request)
    wire = json.loads(json.dumps(message.to_wire()))
    assert parse_from_keyd(wire) == message
