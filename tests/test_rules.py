"""The JavaScript rules engine: the reference's cases, the spec's examples, hardening and bounds."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clef.errors import StorageTampered
from policy.rules import (
    MAX_LOG_LINES_PER_CALL,
    Evaluation,
    MemoryStorage,
    RuleError,
    RuleFunctionMissing,
    RulesEngine,
    load_bignumber_js,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES = json.loads((SHARED / "conformance" / "geth" / "rules-cases.json").read_text())
BIGNUMBER = load_bignumber_js()
BIGNUMBER_SHA256 = "fb35ca94127980c307be5c3e501ea777d986a032d5f7408a82ed9991a037a2b2"


def engine(ruleset: str, storage: Any = None, timeout: float = 1.0,
           logs: list[str] | None = None) -> RulesEngine:
    sink = logs if logs is not None else []
    return RulesEngine(ruleset, BIGNUMBER, storage if storage is not None else MemoryStorage(),
                       sink.append, timeout)


def case(case_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in CASES["rules_cases"] if c["id"] == case_id)
    return found


def outcome(expected: str) -> str | None:
    """Map a rules-cases.json expectation to what call() returns."""
    if expected.startswith("Approve"):
        return "Approve"
    if expected.startswith("Reject"):
        return "Reject"
    return None


# ---- the bundled bignumber.js ----------------------------------------------------------------


def test_bundled_bignumber_is_the_npm_release() -> None:
    """policy/data/bignumber.js is byte-identical to bignumber.js 11.1.5 dist/bignumber.js."""
    data = (Path(__file__).resolve().parents[1] / "policy" / "data" / "bignumber.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == BIGNUMBER_SHA256
    assert b"bignumber.js v11.1.5" in data[:200]
    licence = Path(__file__).resolve().parents[1] / "policy" / "data" / "bignumber.js.LICENSE"
    assert "MIT License" in licence.read_text()


# ---- rules-cases.json --------------------------------------------------------------------------


def test_engine_contract_is_the_one_implemented() -> None:
    contract = CASES["engine_contract"]
    assert "fresh JS VM per call" in contract["invocation"]
    assert set(contract["outcomes"]) == {"Approve", "Reject", "manual"}


def test_list_approve() -> None:
    c = case("list-approve")
    e = engine(c["ruleset_js"])
    for call in c["calls"]:
        assert e.call(call["function"], call["request"]) == call["expected"]


def test_tx_approve_by_from_and_its_reject_and_manual_variants() -> None:
    c = case("tx-approve-by-from")
    logs: list[str] = []
    e = engine(c["ruleset_js"], logs=logs)
    call = c["calls"][0]
    assert e.call(call["function"], call["request"]) == "Approve"
    assert "JS:> transaction.from 0x0000000000000000000000000000000000001337" in logs
    dead = json.loads(json.dumps(call["request"]))
    dead["transaction"]["from"] = "0x000000000000000000000000000000000000dEaD"
    assert e.call("ApproveTx", dead) == "Reject"
    other = json.loads(json.dumps(call["request"]))
    other["transaction"]["from"] = "0x1111111111111111111111111111111111111111"
    assert e.call("ApproveTx", other) is None


def test_empty_ruleset_forwards_everything() -> None:
    c = case("empty-ruleset-forwards-everything")
    e = engine(c["ruleset_js"])
    for call in c["calls"]:
        fn, request = call["function"], call["request"]
        if fn in ("ApproveSignData", "ApproveTx", "ApproveListing"):
            assert e.call(fn, request) is None
            with pytest.raises(RuleFunctionMissing):
                e.evaluate(fn, request)
        elif fn == "OnApprovedTx":
            # Notifications to a ruleset without the function complete (nothing to record).
            assert e.notify(fn, request) is True
        # ApproveNewAccount, ShowInfo, ShowError never reach the engine (keyd forwards them).


def test_missing_function() -> None:
    c = case("missing-function")
    e = engine(c["ruleset_js"])
    call = c["calls"][0]
    assert e.call(call["function"], call["request"]) is None
    with pytest.raises(RuleFunctionMissing, match="MissingMethod is not defined"):
        e.evaluate(call["function"], call["request"])
    # The functions that do exist in that ruleset still work.
    assert e.call("ApproveTx", {}) == "Reject"


def test_storage_semantics() -> None:
    c = case("storage-semantics")
    logs: list[str] = []
    storage = MemoryStorage()
    e = engine(c["ruleset_js"], storage, logs=logs)
    call = c["calls"][0]
    assert e.evaluate(call["function"], call["request"]).value == call["expected_return_string"]
    assert logs == ["JS:> 18"]  # console.log(new BigNumber(2).plus(16))
    assert storage.data == {"mykey": '{"an":"object"}'}
    assert e.call(call["function"], call["request"]) is None  # not "Approve"/"Reject": manual


def test_rate_limit_window_shares_storage_across_calls() -> None:
    c = case("rate-limit-window")
    storage = MemoryStorage()
    e = engine(c["ruleset_js"], storage)
    for call in c["calls"]:
        if call["function"] == "OnApprovedTx":
            assert e.notify("OnApprovedTx", call["request"]) is True
        else:
            assert e.call("ApproveTx", call["request"]) == outcome(call["expected"])
    assert e.evaluate("ApproveTx", c["calls"][-1]["request"]).value == "Nope"
    recorded = json.loads(storage.data["txs"])
    assert [t["value"] for t in recorded] == ["300000000000000000"] * 3


def test_fresh_vm_per_call() -> None:
    c = case("fresh-vm-per-call")
    e = engine(c["ruleset_js"])
    request = c["calls"][0]["request"]
    assert [e.call("ApproveTx", request) for _ in c["calls"]] == ["Reject", "Reject"]


def test_sign_data_by_message_content() -> None:
    c = case("sign-data-by-message-content")
    e = engine(c["ruleset_js"])
    request = c["calls"][0]["request"]
    assert e.call("ApproveSignData", request) == "Approve"
    no_bazonk = json.loads(json.dumps(request))
    no_bazonk["messages"][0]["value"] = "baz foo"
    assert e.call("ApproveSignData", no_bazonk) == "Reject"
    other = json.loads(json.dumps(request))
    other["address"] = "0x0000000000000000000000000000000000000001"
    assert e.call("ApproveSignData", other) is None
    assert e.call("ApproveListing", {"accounts": [], "meta": {}}) == "Approve"


def test_every_rules_case_is_covered() -> None:
    covered = {"list-approve", "tx-approve-by-from", "empty-ruleset-forwards-everything",
               "missing-function", "storage-semantics", "rate-limit-window",
               "fresh-vm-per-call", "sign-data-by-message-content"}
    assert {c["id"] for c in CASES["rules_cases"]} == covered


# ---- the spec's three examples, verbatim -------------------------------------------------------


def spec_examples() -> dict[str, str]:
    text = next((SHARED / "spec").glob("001_*.txt")).read_text()
    one = re.search(r"Example 1: Allow listing\n(.*?)Example 2:", text, re.S)
    two = re.search(r"Example 2: Allow destination\n(.*?)Example 3:", text, re.S)
    three = re.search(r"Example 3: a rate-limited window\n(.*?)A note about passwords", text, re.S)
    assert one and two and three
    return {"listing": one.group(1), "destination": two.group(1), "window": three.group(1)}


def tx_request(sender: str, value: str) -> dict[str, Any]:
    return {
        "transaction": {"from": sender, "to": "0x000000000000000000000000000000000000dEaD",
                        "gas": "0x5208", "gasPrice": "0x1e8480", "maxFeePerGas": None,
                        "maxPriorityFeePerGas": None, "value": value, "nonce": "0x3"},
        "call_info": None,
        "meta": {"remote": "127.0.0.1:4242", "local": "localhost:8550", "scheme": "HTTP/1.1",
                 "User-Agent": "test", "Origin": ""},
    }


def signed(value: str) -> dict[str, Any]:
    return {"raw": "0xdeadbeef", "tx": {"type": "0x0", "nonce": "0x3", "value": value,
                                         "to": "0x000000000000000000000000000000000000dead"}}


def test_spec_example_1_allow_listing() -> None:
    ruleset = spec_examples()["listing"]
    assert ruleset.startswith("function ApproveListing(){")
    assert engine(ruleset).call("ApproveListing", {"accounts": [], "meta": {}}) == "Approve"


def test_spec_example_2_allow_destination() -> None:
    e = engine(spec_examples()["destination"])
    assert e.call("ApproveTx", tx_request("0x0000000000000000000000000000000000001337",
                                          "0x0")) == "Approve"
    assert e.call("ApproveTx", tx_request("0x000000000000000000000000000000000000dEaD",
                                          "0x0")) == "Reject"
    assert e.call("ApproveTx", tx_request("0x1111111111111111111111111111111111111111",
                                          "0x0")) is None


def test_spec_example_3_rate_limited_window_with_storage_put_get_spelling() -> None:
    ruleset = spec_examples()["window"]
    assert "storage.Get('txs')" in ruleset and 'storage.Put("txs"' in ruleset
    storage = MemoryStorage()
    point4 = hex(4 * 10**17)
    results = []
    for _ in range(3):
        results.append(engine(ruleset, storage).call("ApproveTx", tx_request("0x1", point4)))
        if results[-1] == "Approve":
            assert engine(ruleset, storage).notify("OnApprovedTx", signed(point4)) is True
    # 0.4 + 0.4 = 0.8 < 1 ether; a third 0.4 would reach 1.2: manual ("Nope").
    assert results == ["Approve", "Approve", None]
    # The window survives a restart: a new engine over the same (persisted) storage agrees.
    restarted = engine(ruleset, MemoryStorage(dict(storage.data)))
    assert restarted.call("ApproveTx", tx_request("0x1", point4)) is None
    assert restarted.call("ApproveTx", tx_request("0x1", hex(10**17))) == "Approve"


def test_spec_example_3_old_entries_leave_the_window() -> None:
    week_ago = int(time.time() * 1000) - 8 * 24 * 3600 * 1000
    storage = MemoryStorage({"txs": json.dumps([{"tstamp": week_ago, "value": str(10**18)}])})
    ruleset = spec_examples()["window"]
    assert engine(ruleset, storage).call("ApproveTx", tx_request("0x1", hex(9 * 10**17))) \
        == "Approve"


# ---- hardening: no host access from JavaScript -------------------------------------------------


HOSTILE = r"""
function ApproveTx(r) {
  var seen = [typeof require, typeof process, typeof module, typeof call_python, typeof dukpy,
              typeof std, typeof os, typeof scriptArgs, typeof print].join(',');
  storage.put('globals', seen);
  try { require('fs'); storage.put('require', 'worked'); }
  catch (e) { storage.put('require', 'threw'); }
  try { storage.put('env', JSON.stringify(process.env)); }
  catch (e) { storage.put('env', 'threw'); }
  import('/etc/hostname').then(
    function (m) { storage.put('import', 'loaded ' + JSON.stringify(m)); },
    function (e) { storage.put('import', String(e)); });
  import('std').then(function (m) { storage.put('std', 'loaded'); },
                     function (e) { storage.put('std', String(e)); });
  return 'Approve';
}
"""


def test_require_file_and_environment_access_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLEF_RULES_SECRET_PROBE", "do-not-leak")
    storage = MemoryStorage()
    assert engine(HOSTILE, storage).call("ApproveTx", {}) == "Approve"
    data = storage.data
    assert data["globals"] == ",".join(["undefined"] * 9)
    assert data["require"] == "threw"
    assert data["env"] == "threw"
    assert data["import"].startswith("ReferenceError: cannot find module")
    assert data["std"].startswith("ReferenceError: cannot find module")
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    dump = json.dumps(data)
    assert "do-not-leak" not in dump
    if hostname:
        assert hostname not in data["import"]


@pytest.mark.parametrize("attempt", [
    "require('fs').readFileSync('/etc/passwd')",
    "process.env.PATH",
    "call_python('dukpy.load_module', '/etc/hostname')",
    "globalThis.call_python('clef.storage.get', 'x')",
    "dukpy.load_module('/etc/hostname')",
    "new Function('return this')().call_python('clef.log', 'info', 'x')",
])
def test_each_host_access_attempt_fails_the_call(attempt: str) -> None:
    ruleset = f"function ApproveTx(r) {{ var x = {attempt}; return 'Approve'; }}"
    e = engine(ruleset)
    assert e.call("ApproveTx", {}) is None
    with pytest.raises(RuleError):
        e.evaluate("ApproveTx", {})


def test_self_test_passes_on_the_pinned_dukpy() -> None:
    engine("").self_test()


def test_ruleset_cannot_replace_the_harness_result() -> None:
    # The harness keeps its own String/JSON.parse: a ruleset redefining them changes nothing
    # about how the request is delivered or the result read.
    ruleset = """
    String = function () { return 'Approve'; };
    JSON.parse = function () { return { transaction: { from: '0x1337' } }; };
    function ApproveTx(r) { return r.transaction.from === '0xreal' ? 'Reject' : 'Nope'; }
    """
    request = {"transaction": {"from": "0xreal"}}
    assert engine(ruleset).call("ApproveTx", request) == "Reject"


# ---- bounds: time, memory, failures -------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "for (;;) {}",
    "while (true) { try { for (;;) {} } catch (e) {} }",
    "while (true) { try { for (;;) {} } finally { continue; } }",
    "function f() { try { return f(); } catch (e) { return f(); } } return f();",
    "var n = 0; while (true) { try { storage.get('k'); console.log(n++); } catch (e) {} }",
    "Promise.resolve().then(function loop() { return Promise.resolve().then(loop); }); "
    "return 'Approve';",
])
def test_runaway_rules_are_interrupted(body: str) -> None:
    e = engine(f"function ApproveTx(r) {{ {body} }}", timeout=0.3)
    started = time.monotonic()
    assert e.call("ApproveTx", {}) is None
    assert time.monotonic() - started < 2.0
    # The engine (and the process) stay usable afterwards.
    assert engine("function ApproveTx(){ return 'Approve' }").call("ApproveTx", {}) == "Approve"


def test_timeout_is_reported() -> None:
    with pytest.raises(RuleError, match=r"timed out after 0\.2s"):
        engine("function ApproveTx() { for(;;){} }", timeout=0.2).evaluate("ApproveTx", {})


def test_deep_recursion_fails_cleanly() -> None:
    e = engine("function f(n) { return f(n + 1) + 1; } function ApproveTx() { return f(0); }")
    assert e.call("ApproveTx", {}) is None


def test_deeply_nested_request_is_refused_or_handled() -> None:
    nested: Any = "x"
    for _ in range(5000):
        nested = [nested]
    e = engine("function ApproveTx(r) { return 'Approve'; }")
    # Either JSON.parse copes or the call fails; it never crashes the process.
    assert e.call("ApproveTx", {"deep": nested}) in ("Approve", None)


class TamperedStorage(MemoryStorage):
    """Storage whose file failed authentication: every access raises."""

    def __init__(self, fail_get: bool = True, fail_put: bool = True) -> None:
        super().__init__()
        self.fail_get, self.fail_put = fail_get, fail_put

    def get(self, key: str) -> str:
        if self.fail_get:
            raise StorageTampered("jsstorage.json failed authentication")
        return super().get(key)

    def put(self, key: str, value: str) -> None:
        if self.fail_put:
            raise StorageTampered("jsstorage.json failed authentication")
        super().put(key, value)


def test_tampered_storage_fails_the_call_even_when_the_rule_catches() -> None:
    ruleset = spec_examples()["window"]
    request = tx_request("0x1", hex(10**17))
    assert engine(ruleset, MemoryStorage()).call("ApproveTx", request) == "Approve"
    started = time.monotonic()
    assert engine(ruleset, TamperedStorage()).call("ApproveTx", request) is None
    assert time.monotonic() - started < 0.5  # aborted at once, not at the time bound
    catching = """
    function ApproveTx(r) {
      var history = '';
      try { history = storage.get('txs'); } catch (e) { history = ''; }
      return history === '' ? 'Approve' : 'Reject';
    }"""
    assert engine(catching, TamperedStorage()).call("ApproveTx", request) is None
    with pytest.raises(RuleError, match="storage unavailable: StorageTampered"):
        engine(catching, TamperedStorage()).evaluate("ApproveTx", request)


def test_failed_put_fails_a_notification() -> None:
    ruleset = spec_examples()["window"]
    storage = TamperedStorage(fail_get=False, fail_put=True)
    assert engine(ruleset, storage).notify("OnApprovedTx", signed(hex(10**17))) is False
    storage.fail_put = False
    assert engine(ruleset, storage).notify("OnApprovedTx", signed(hex(10**17))) is True


def test_storage_key_and_value_rules() -> None:
    storage = MemoryStorage()
    ruleset = """
    function T() {
      storage.put('', 'ignored');
      storage.Put('n', 42);
      storage.put('gone', 'x'); storage.put('gone', '');
      storage.put(undefined, null);
      return [storage.get(''), storage.Get('n'), storage.get('gone'), storage.get('undefined'),
              typeof storage.get('n')].join('|');
    }"""
    assert engine(ruleset, storage).evaluate("T", None).value == "|42||null|string"
    assert storage.data == {"n": "42", "undefined": "null"}


def test_console_output_is_prefixed_formatted_and_capped() -> None:
    logs: list[str] = []
    ruleset = """
    function T(r) {
      console.log('a', 1, null, undefined, true, [1, 'b'], {k: 'v'}, new BigNumber('1e18'));
      console.error(new Error('bad'));
      for (var i = 0; i < 1000; i++) console.log(i);
      return 'x';
    }"""
    engine(ruleset, logs=logs).evaluate("T", None)
    assert logs[0] == 'JS:> a 1 null undefined true [1,"b"] {"k":"v"} 1000000000000000000'
    assert logs[1] == "JS:> Error: bad"
    assert len(logs) == MAX_LOG_LINES_PER_CALL + 1
    assert logs[-1] == "JS:> (further console output of this call dropped)"


def test_results_are_compared_after_string_conversion() -> None:
    ruleset = """
    function A() { return { toString: function () { return 'Approve'; } }; }
    function B() { return ['Reject']; }
    function C() { return 'approve'; }
    function D() { }
    function E() { throw new Error('no'); }
    function F() { return Symbol('x'); }
    """
    e = engine(ruleset)
    assert [e.call(fn, None) for fn in "ABCDEF"] == ["Approve", "Reject", None, None, None, None]
    assert e.evaluate("D", None).value == "undefined"


def test_syntax_error_surfaces_per_call() -> None:
    e = engine("function ApproveTx( { return 'Approve' }")
    with pytest.raises(RuleError, match="SyntaxError"):
        e.evaluate("ApproveTx", {})


def test_es2015_rulesets_written_for_goja_work() -> None:
    ruleset = """
    'use strict';
    const limit = new BigNumber('1e18');
    let approve = (r) => new BigNumber(r.transaction.value.slice(2), 16).lt(limit);
    class Policy { static decide(r) { return approve(r) ? 'Approve' : 'Reject'; } }
    function ApproveTx(r) { return Policy.decide(r); }
    """
    e = engine(ruleset)
    assert e.call("ApproveTx", tx_request("0x1", hex(10**17))) == "Approve"
    assert e.call("ApproveTx", tx_request("0x1", hex(10**19))) == "Reject"


def test_bignumber_v2_method_names_still_work() -> None:
    ruleset = """
    function T() {
      var a = new BigNumber(7), b = new BigNumber(2);
      return [a.lessThan(b), a.greaterThan(b), a.greaterThanOrEqualTo(7), a.lessThanOrEqualTo(6),
              a.equals(7), a.cmp(b), a.add(b), a.sub(b), a.mul(b), a.divToInt(b), a.toPower(2),
              a.neg(), a.isNeg(), a.isInt(), new BigNumber('2.5').floor(),
              new BigNumber('2.5').ceil(), new BigNumber('-2.5').trunc(),
              new BigNumber('2.345').round(2), a.shift(2)].join(',');
    }"""
    assert engine(ruleset).evaluate("T", None).value == (
        "false,true,true,false,true,1,9,5,14,3,49,-7,false,true,2,3,-2,2.35,700")


def test_invalid_inputs_to_the_engine() -> None:
    with pytest.raises(ValueError, match="timeout"):
        engine("", timeout=0)
    with pytest.raises(ValueError, match="timeout"):
        engine("", timeout=float("nan"))
    with pytest.raises(ValueError, match="ruleset"):
        RulesEngine(None, BIGNUMBER, MemoryStorage(), print)  # type: ignore[arg-type]
    e = engine("function ApproveTx() { return 'Approve' }")
    for bad_fn in ("", "a b", "x;y", "1abc", "ApproveTx()", "a" * 65):
        assert e.call(bad_fn, {}) is None
    assert e.call("ApproveTx", {"f": float("nan")}) is None
    assert e.call("ApproveTx", {"o": object()}) is None
    with pytest.raises(TypeError):
        Evaluation(1)  # type: ignore[arg-type]


def test_engine_refuses_to_run_outside_the_main_thread() -> None:
    e = engine("function ApproveTx() { return 'Approve' }")
    seen: list[str | None] = []
    thread = threading.Thread(target=lambda: seen.append(e.call("ApproveTx", {})))
    thread.start()
    thread.join()
    assert seen == [None]


def test_per_call_cost_is_small() -> None:
    e = engine(spec_examples()["window"])
    request = tx_request("0x1", hex(10**17))
    started = time.perf_counter()
    for _ in range(20):
        e.call("ApproveTx", request)
    assert (time.perf_counter() - started) / 20 < 0.05


@pytest.mark.parametrize(("ruleset", "expected"), [
    ("function T() { return typeof BigNumber + ' ' + new BigNumber('0x10').toString(); }",
     "function 16"),
    ("function T() { return new globalThis.BigNumber(3).plus(4).toString(); }", "7"),
    ("var BigNumber = 5; function T() { return String(BigNumber); }", "5"),
    ("BigNumber = 'mine'; function T() { return BigNumber; }", "mine"),
    ("function BigNumber() { return 1; } function T() { return String(BigNumber()); }", "1"),
    ("const B = BigNumber; function T() { return new B(2).times(3).toString(); }", "6"),
    ("function T() { return String(Object.keys(globalThis).indexOf('BigNumber')); }", "-1"),
])
def test_bignumber_is_loaded_on_first_use_and_can_be_shadowed(ruleset: str,
                                                                expected: str) -> None:
    assert engine(ruleset).evaluate("T", None).value == expected


def test_a_dukpy_upgrade_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import dukpy

    from policy import rules

    rules._check_dukpy_internals()
    monkeypatch.setattr("policy.rules.metadata.version", lambda _name: "0.7.0")
    with pytest.raises(ImportError, match=r"re-audit policy/rules\.py"):
        rules._check_dukpy_internals()
    monkeypatch.undo()
    monkeypatch.delattr(dukpy.JSInterpreter, "_init_require")
    with pytest.raises(ImportError, match="_init_require"):
        rules._check_dukpy_internals()


def test_huge_console_output_and_results_are_bounded() -> None:
    logs: list[str] = []
    ruleset = "function T() { var s = 'x'.repeat(8 << 20); console.log(s); return s; }"
    value = engine(ruleset, logs=logs).evaluate("T", None).value
    assert len(value) == 8 << 20
    assert len(logs) == 1 and len(logs[0]) == len("JS:> ") + 4096 + 1
