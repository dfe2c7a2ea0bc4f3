"""The JavaScript rules engine: the attested ruleset, one fresh hardened QuickJS context per call.

Each call gets a new dukpy (QuickJS-ng) context holding only the language built-ins, `console`,
`storage` and `BigNumber`; then the ruleset text runs, then `<Fn>(JSON.parse(<json literal>))`
is evaluated, as the reference does. No JavaScript state survives a call except through
`storage`, which the caller backs with keyd's encrypted store.

Threats answered here:
- dukpy 0.6 hands every context `require`, `process.env` (the whole environment) and a module
  loader that reads arbitrary files (`import()` / `dukpy.load_module`). None of that is installed.
- A rule that loops forever is interrupted by SIGALRM (QuickJS polls Python signal handlers);
  the call then fails and the request falls to the UI.
- A storage failure (StorageTampered: tampered, rolled back or unreadable rule storage) aborts
  the whole call, even if the rule catches the exception: `storage.get` never returns "" in its
  place, or a rate-limit rule would see an empty history and approve.
"""

from __future__ import annotations

import json
import math
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol

import dukpy
from dukpy import _dukpy

APPROVE: Final = "Approve"
REJECT: Final = "Reject"

MAX_RULESET_CHARS: Final = 4 * 1024 * 1024
MAX_STORAGE_KEY_CHARS: Final = 4096
MAX_STORAGE_VALUE_CHARS: Final = 4 * 1024 * 1024
MAX_LOG_LINE_CHARS: Final = 4096
MAX_LOG_LINES_PER_CALL: Final = 256
MAX_TIMEOUT: Final = 60.0

_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TICK = 0.01  # after the deadline, SIGALRM repeats until an interrupt lands inside JavaScript

PINNED_DUKPY: Final = "0.6.0"

# The hardening below overrides private dukpy hooks. They are checked at import so that a dukpy
# upgrade that renames or adds one fails loudly instead of silently re-exposing the host.
_PINNED_DUKPY_HOOKS = (
    "_init_process", "_init_console", "_init_require", "_call_python",
    "_check_exported_function_exists", "_normalize_module", "loader",
)
_PINNED_DUKPY_ATTRIBUTES = ("_funcs", "_ctx", "_loader")  # set by JSInterpreter.__init__


def _check_dukpy_internals() -> None:
    installed = metadata.version("dukpy")
    if installed != PINNED_DUKPY:
        raise ImportError(f"dukpy {installed} is installed, the rules sandbox was audited against "
                          f"{PINNED_DUKPY}: re-audit policy/rules.py before upgrading")
    missing = [n for n in ("create_context", "eval_string", "JSRuntimeError")
               if not hasattr(_dukpy, n)]
    missing += [n for n in _PINNED_DUKPY_HOOKS if not hasattr(dukpy.JSInterpreter, n)]
    assigned = dukpy.JSInterpreter.__init__.__code__.co_names
    missing += [n for n in _PINNED_DUKPY_ATTRIBUTES if n not in assigned]
    if missing:
        raise ImportError(f"dukpy internals changed ({', '.join(missing)}): "
                          "re-audit the hardening in policy/rules.py before upgrading")


_check_dukpy_internals()


class RuleError(Exception):
    """A rule call did not produce a value (exception, timeout, storage failure, bad input)."""


class RuleFunctionMissing(RuleError):
    """The ruleset does not define the requested function."""


class RuleStorageLike(Protocol):
    """The key/value store behind JS `storage`: get returns "" when missing; put "" deletes.

    Either method may raise (keyd raises clef.errors.StorageTampered); the call then fails.
    """

    def get(self, key: str) -> str:
        """The stored value, or "" when the key is absent."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store value under key; an empty value deletes the key."""
        ...


class MemoryStorage:
    """A dict-backed RuleStorageLike (tests, and rules without persistence)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(initial or {})

    def get(self, key: str) -> str:
        """The stored value, or ""."""
        return self.data.get(key, "")

    def put(self, key: str, value: str) -> None:
        """Store or (value "") delete."""
        if value == "":
            self.data.pop(key, None)
        else:
            self.data[key] = value


def load_bignumber_js() -> str:
    """The bundled bignumber.js (MIT, from npm; see policy/data/bignumber.js.LICENSE)."""
    return (Path(__file__).resolve().parent / "data" / "bignumber.js").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Evaluation:
    """What a rule function returned, as JS `String(result)` (so undefined is "undefined")."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise TypeError("value must be a string")

    @property
    def decision(self) -> str | None:
        """"Approve"/"Reject", or None for anything else (manual)."""
        return self.value if self.value in (APPROVE, REJECT) else None


class _Interrupted(BaseException):
    """Raised by the SIGALRM handler to stop QuickJS (never escapes the engine)."""


class _NoModules:
    """Stands in for dukpy's JSModuleLoader: `import()` of anything finds nothing."""

    def load(self, module_name: str) -> tuple[None, None, None]:
        """Refuse every module (dukpy's loader would read the named file from disk)."""
        return None, None, None

    def lookup(self, module_name: str) -> tuple[None, None]:
        """Nothing can be found."""
        return None, None


_NO_MODULES = _NoModules()

HostFunction = Callable[[list[Any]], Any]


class _SandboxedInterpreter(dukpy.JSInterpreter):  # type: ignore[misc]
    """A dukpy interpreter with no process, require, module loader or disk access."""

    def __init__(self, host: Callable[[str, list[Any]], Any]) -> None:
        # Deliberately not JSInterpreter.__init__: it copies os.environ into `process.env`,
        # installs `require` and `dukpy.load_module` (arbitrary file read) and reads its JS
        # shims from disk, which a confined worker cannot do anyway.
        self._ctx = _dukpy.create_context()
        self._funcs: dict[str, Any] = {}
        self._host = host

    @property
    def loader(self) -> _NoModules:
        """The module loader the native `import()` hook consults: refuses everything."""
        return _NO_MODULES

    def _init_process(self) -> None:
        raise AssertionError("process.env must never be installed")

    def _init_console(self) -> None:
        raise AssertionError("dukpy's console shim is replaced by the engine's")

    def _init_require(self) -> None:
        raise AssertionError("require must never be installed")

    def _normalize_module(self, base_name: str, module_name: str) -> str:
        return module_name

    def _check_exported_function_exists(self, func: bytes) -> bool:
        return func.decode("utf-8", "replace") in _HOST_NAMES

    def _call_python(self, func: bytes, json_args: bytes) -> bytes:
        # Never raise from here: dukpy would turn it into a JS exception the rule could catch.
        try:
            name = func.decode("utf-8")
            args = json.loads(json_args.decode("utf-8"))
        except (ValueError, MemoryError, RecursionError):
            name, args = "clef.undecodable", []
        result = self._host(name, args if isinstance(args, list) else [])
        return json.dumps(result, ensure_ascii=True).encode("ascii")

    def run(self, code: str, jsvars: bytes = b"{}") -> Any:
        """Evaluate one script (jsvars become the `dukpy` global); return its completion value."""
        raw = _dukpy.eval_string(self, code.encode("utf-8"), jsvars, False, "<rules>")
        if raw is None:
            return None
        return json.loads(raw.decode("utf-8"))


# The SIGALRM handler raises only when the innermost Python frame is this one, i.e. when the
# signal is being polled from inside QuickJS. Raising anywhere else (inside a storage callback,
# in the middle of a frame being written to keyd) would corrupt state or be catchable by JS.
_RUN_CODE = _SandboxedInterpreter.run.__code__

_HOST_NAMES = frozenset({"clef.log", "clef.storage.get", "clef.storage.put"})

# The whole call is one native evaluation. The native layer re-creates the `call_python` and
# `dukpy` globals before every evaluation, so everything happens inside this one script: host
# access is captured in a closure and both globals are deleted before bignumber.js and the
# ruleset run (through indirect eval, i.e. as global code, as the reference runs them). A rule
# can reach the host only through the wrappers below. When the host answers {abort: true} the
# wrapper spins until SIGALRM interrupts it: an interrupt cannot be caught by JavaScript, an
# exception could.
_HARNESS = r"""
(function (g, d) {
  'use strict';
  var cp = g.call_python, ev = g.eval, S = String, parse = JSON.parse, stringify = JSON.stringify;
  var objToString = Object.prototype.toString, arrToString = Array.prototype.toString;
  delete g.call_python;
  delete g.dukpy;
  function host(name, a, b) {
    var r = cp(name, a, b);
    if (r === null || typeof r !== 'object' || r.abort === true) { for (;;) {} }
    return r.ok;
  }
  function fmt(v) {
    if (typeof v === 'string') return v;
    if (v === null || (typeof v !== 'object' && typeof v !== 'function')) return S(v);
    try {
      if (v.toString !== objToString && v.toString !== arrToString) return S(v);
      var s = stringify(v);
      if (s !== undefined) return s;
    } catch (e) {}
    try { return S(v); } catch (e) { return '[unprintable]'; }
  }
  function logger(level) {
    return function () {
      var parts = [];
      for (var i = 0; i < arguments.length; i++) parts.push(fmt(arguments[i]));
      host('clef.log', level, parts.join(' '));
    };
  }
  var console = { log: logger('info'), error: logger('error') };
  console.info = console.log;
  console.warn = console.error;
  g.console = console;
  function put(k, v) {
    k = S(k); v = S(v);
    if (k === '') return;
    host('clef.storage.put', k, v);
  }
  function get(k) {
    k = S(k);
    if (k === '') return '';
    return host('clef.storage.get', k);
  }
  g.storage = { put: put, get: get, Put: put, Get: get };
  // BigNumber is loaded on first use: parsing bignumber.js costs ~3 ms, most of a call.
  function loadBigNumber() {
    delete g.BigNumber;
    ev(d.bignumber + '\n;null;');
    ev(d.compat);
    return g.BigNumber;
  }
  Object.defineProperty(g, 'BigNumber', {
    configurable: true, enumerable: false, get: loadBigNumber,
    set: function (v) {
      delete g.BigNumber;
      g.BigNumber = v;
    }
  });
  var fn = ev(d.ruleset + '\n;typeof ' + d.fn + " === 'function' ? " + d.fn + ' : undefined;');
  if (typeof fn !== 'function') return { missing: true };
  return { value: S(fn(parse(d.request))) };
})(globalThis, dukpy);
"""

# bignumber.js 2.0.3 (the reference's copy) names that 9.x+ renamed. Only exact equivalents are
# aliased, so a rule written for geth keeps its meaning; anything else fails (-> manual).
_BIGNUMBER_COMPAT = r"""
(function (B) {
  if (typeof B !== 'function') return;
  var P = B.prototype;
  function alias(name, fn) {
    if (!(name in P)) {
      Object.defineProperty(P, name, { value: fn, writable: true, configurable: true });
    }
  }
  var same = {
    lessThan: 'lt', lessThanOrEqualTo: 'lte', greaterThan: 'gt', greaterThanOrEqualTo: 'gte',
    equals: 'eq', cmp: 'comparedTo', compareTo: 'comparedTo', add: 'plus', sub: 'minus',
    subtract: 'minus', mul: 'times', multiply: 'times', divide: 'div', divToInt: 'idiv',
    neg: 'negated', negate: 'negated', isNeg: 'isNegative', isInt: 'isInteger',
    toDigits: 'precision', shift: 'shiftedBy'
  };
  Object.keys(same).forEach(function (old) {
    var target = P[same[old]];
    if (typeof target === 'function') alias(old, target);
  });
  alias('toPower', function (n) { return this.pow(n); });
  alias('floor', function () { return this.integerValue(B.ROUND_FLOOR); });
  alias('ceil', function () { return this.integerValue(B.ROUND_CEIL); });
  alias('trunc', function () { return this.integerValue(B.ROUND_DOWN); });
  alias('truncated', function () { return this.integerValue(B.ROUND_DOWN); });
  alias('round', function (dp, rm) { return this.decimalPlaces(dp == null ? 0 : dp, rm); });
})(globalThis.BigNumber);
null;
"""

# Run in a bare fresh context by self_test(): proves the hardening holds on this dukpy build.
_SELF_TEST = r"""
var __clefImport = 'pending';
import('/etc/hostname').then(function () { __clefImport = 'loaded'; },
                             function () { __clefImport = 'refused'; });
['require', 'process', 'module', 'exports', '_dukpy_eval_cjs_source', '_dukpy_cjs_source_compiles']
  .filter(function (n) { return typeof globalThis[n] !== 'undefined'; });
"""


class RulesEngine:
    """Evaluates ruleset functions, one fresh hardened JS context per call, bounded in time."""

    def __init__(
        self,
        ruleset: str,
        bignumber_js: str,
        storage: RuleStorageLike,
        log: Callable[[str], None],
        timeout: float = 1.0,
    ) -> None:
        if not isinstance(ruleset, str) or len(ruleset) > MAX_RULESET_CHARS:
            raise ValueError(f"ruleset: must be a string of at most {MAX_RULESET_CHARS} chars")
        if not isinstance(bignumber_js, str) or len(bignumber_js) > MAX_RULESET_CHARS:
            raise ValueError("bignumber_js: must be a string")
        if (not isinstance(timeout, int | float) or isinstance(timeout, bool)
                or not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT):
            raise ValueError(f"timeout: must be in (0, {MAX_TIMEOUT}] seconds")
        self._ruleset = ruleset
        self._bignumber_js = bignumber_js
        self._storage = storage
        self._log = log
        self._timeout = float(timeout)
        self._abort: str | None = None
        self._log_lines = 0

    @property
    def timeout(self) -> float:
        """The per-call time bound in seconds."""
        return self._timeout

    def call(self, fn: str, request: Any) -> str | None:
        """Run an approval function: "Approve"/"Reject", or None for anything else (manual)."""
        try:
            return self.evaluate(fn, request).decision
        except RuleError:
            return None

    def notify(self, fn: str, request: Any) -> bool:
        """Run a notification (OnSignerStartup, OnApprovedTx); True if it ran to completion.

        The result is ignored, as in the reference; a missing function counts as completed. False
        means the rule may not have recorded what it meant to (for example a rate-limit window).
        """
        try:
            self.evaluate(fn, request)
        except RuleFunctionMissing:
            return True
        except RuleError:
            return False
        return True

    def self_test(self) -> None:
        """Check that a fresh context exposes no host access; raise RuleError if it does."""
        interp = _SandboxedInterpreter(self._host)
        bad = interp.run(_SELF_TEST)
        imported = interp.run("__clefImport")
        if bad != [] or imported != "refused":
            raise RuleError(f"JS context exposes host access: {bad}, import() {imported}")
        probe = RulesEngine(
            "function Probe(){ return [typeof call_python, typeof dukpy, typeof require, "
            "typeof process, typeof storage.Get, typeof console.log, typeof BigNumber].join(); }",
            self._bignumber_js, MemoryStorage(), lambda _line: None, self._timeout)
        seen = probe.evaluate("Probe", None).value
        if seen != "undefined,undefined,undefined,undefined,function,function,function":
            raise RuleError(f"JS harness did not install as expected: {seen}")

    def evaluate(self, fn: str, request: Any) -> Evaluation:
        """Run `fn(request)` in a fresh context and return String(result); raise RuleError."""
        if not isinstance(fn, str) or not _FUNCTION_NAME.fullmatch(fn):
            raise RuleError(f"fn: not a plain function name: {fn!r}")
        try:
            request_json = json.dumps(request, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise RuleError(f"request: not JSON-serialisable ({exc})") from None
        if threading.current_thread() is not threading.main_thread():
            raise RuleError("the rules engine must run in the main thread (it uses SIGALRM)")
        if signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            raise RuleError("ITIMER_REAL is already in use")
        self._abort = None
        self._log_lines = 0
        previous = signal.signal(signal.SIGALRM, self._on_alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, self._timeout, _TICK)
            try:
                result = self._run(fn, request_json)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Interrupted:
            result = None
        except (_dukpy.JSRuntimeError, ValueError, MemoryError, RecursionError) as exc:
            if self._abort is None:
                raise RuleError(_first_line(str(exc))) from None
            result = None
        finally:
            signal.signal(signal.SIGALRM, previous)
        if self._abort is not None:
            raise RuleError(self._abort)
        if not isinstance(result, dict):
            raise RuleError("rule call was interrupted")
        if result.get("missing") is True:
            raise RuleFunctionMissing(f"{fn} is not defined")
        value = result.get("value")
        if not isinstance(value, str):
            raise RuleError("rule returned no value")
        return Evaluation(value)

    def _run(self, fn: str, request_json: str) -> Any:
        jsvars = json.dumps({
            "bignumber": self._bignumber_js, "compat": _BIGNUMBER_COMPAT,
            "ruleset": self._ruleset, "fn": fn, "request": request_json,
        }).encode("ascii")
        return _SandboxedInterpreter(self._host).run(_HARNESS, jsvars)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._abort is None:
            self._abort = f"rule timed out after {self._timeout:g}s"
        if frame is not None and frame.f_code is _RUN_CODE:
            raise _Interrupted

    def _fail(self, reason: str) -> dict[str, Any]:
        """Poison the call and make the JS wrapper spin until the interrupt lands."""
        if self._abort is None:
            self._abort = reason
        signal.setitimer(signal.ITIMER_REAL, 0.001, _TICK)
        return {"abort": True}

    def _host(self, name: str, args: list[Any]) -> dict[str, Any]:
        try:
            return self._dispatch(name, args)
        except Exception as exc:  # noqa: BLE001 - an exception here would be catchable by JS
            return self._fail(f"host function {name!r} failed: {type(exc).__name__}")

    def _dispatch(self, name: str, args: list[Any]) -> dict[str, Any]:
        if self._abort is not None:
            return self._fail(self._abort)
        if name == "clef.log":
            self._emit(args)
            return {"ok": None}
        key = args[0] if args else None
        if not isinstance(key, str) or not _utf8(key) or len(key) > MAX_STORAGE_KEY_CHARS:
            return self._fail("storage: key is not a valid string (or too long)")
        if name == "clef.storage.get":
            try:
                value = self._storage.get(key)
            except Exception as exc:  # noqa: BLE001 - any storage failure must fail the call
                return self._fail(f"storage unavailable: {type(exc).__name__}: {exc}")
            if not isinstance(value, str):
                return self._fail("storage returned a non-string")
            return {"ok": value}
        if name == "clef.storage.put":
            new = args[1] if len(args) > 1 else None
            if not isinstance(new, str) or not _utf8(new) or len(new) > MAX_STORAGE_VALUE_CHARS:
                return self._fail("storage: value is not a valid string (or too long)")
            try:
                self._storage.put(key, new)
            except Exception as exc:  # noqa: BLE001 - any storage failure must fail the call
                return self._fail(f"storage unavailable: {type(exc).__name__}: {exc}")
            return {"ok": None}
        return self._fail(f"unknown host function {name!r}")

    def _emit(self, args: list[Any]) -> None:
        self._log_lines += 1
        if self._log_lines > MAX_LOG_LINES_PER_CALL:
            if self._log_lines == MAX_LOG_LINES_PER_CALL + 1:
                self._log("JS:> (further console output of this call dropped)")
            return
        text = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        if len(text) > MAX_LOG_LINE_CHARS:
            text = text[:MAX_LOG_LINE_CHARS] + "…"
        self._log("JS:> " + text.encode("utf-8", "replace").decode("utf-8"))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "JavaScript error"
    return line[:512]
