"""Typed messages of the keyd <-> policy worker boundary, validated strictly on receipt.

Both directions are checked. keyd treats the worker as compromised-by-assumption (it runs
attacker-influenced JavaScript and calldata decoding), so anything a worker sends that is not
exactly one of the messages below, with fields of the right type and size, is a
ProtocolViolation and keyd kills the worker. The worker applies the same strictness to keyd's
frames and exits on a violation (a confused worker is restarted, never trusted to continue).

Ids: keyd numbers its requests (rule, notify, validate_tx); the worker numbers its own
(storage_get, storage_put). Each reply carries the id of the request it answers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final, Literal, Self, TypeAlias

from clef.errors import ProtocolViolation

MAX_ID: Final = 2**53
MAX_RULESET_CHARS: Final = 4 * 1024 * 1024
MAX_BIGNUMBER_CHARS: Final = 1024 * 1024
MAX_TIMEOUT: Final = 60.0
MAX_KEY_CHARS: Final = 4096
MAX_VALUE_CHARS: Final = 4 * 1024 * 1024
MAX_ERROR_CHARS: Final = 1024
MAX_LOG_CHARS: Final = 8192
MAX_MESSAGES: Final = 256
MAX_MESSAGE_CHARS: Final = 4096
MAX_LEARNED: Final = 64
MAX_SIGNATURE_CHARS: Final = 4096
MAX_JSON_DEPTH: Final = 64
MAX_JSON_NODES: Final = 200_000

DECISIONS: Final = ("Approve", "Reject")
LOG_LEVELS: Final = ("info", "warning", "error")
MESSAGE_TYPES: Final = ("CRITICAL", "WARNING", "Info")  # the reference's call_info types
VALIDATION_UNAVAILABLE: Final = "validation unavailable"

_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_SELECTOR_ID = re.compile(r"0x[0-9a-f]{8}")

Decision: TypeAlias = Literal["Approve", "Reject"] | None


def _fields(msg: dict[str, Any], kind: str, names: tuple[str, ...]) -> None:
    if set(msg) != {"t", *names}:
        raise ProtocolViolation(f"{kind}: expected fields {sorted(names)}, got {sorted(msg)}")


def _id(value: Any, name: str = "id") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < MAX_ID:
        raise ProtocolViolation(f"bad {name}")
    return value


def _str(value: Any, name: str, limit: int, *, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not allow_empty and not value):
        raise ProtocolViolation(f"bad {name}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolViolation(f"bad {name}: not valid UTF-8") from None
    return value


def _opt_str(value: Any, name: str, limit: int) -> str | None:
    return None if value is None else _str(value, name, limit)


def _fn(value: Any) -> str:
    if not isinstance(value, str) or not _FUNCTION_NAME.fullmatch(value):
        raise ProtocolViolation("bad fn")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolViolation(f"bad {name}")
    return value


def check_json(value: Any, name: str = "request") -> Any:
    """Check a JSON value (as json.loads builds it) for depth, size and finite numbers."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES or depth > MAX_JSON_DEPTH:
            raise ProtocolViolation(f"bad {name}: too large or too deeply nested")
        if item is None or isinstance(item, bool | int | str):
            if isinstance(item, str):
                _str(item, name, MAX_VALUE_CHARS)
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ProtocolViolation(f"bad {name}: non-finite number")
            continue
        if isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise ProtocolViolation(f"bad {name}: non-string key")
                _str(key, name, MAX_KEY_CHARS)
                stack.append((child, depth + 1))
            continue
        raise ProtocolViolation(f"bad {name}: {type(item).__name__} is not JSON")
    return value


class _Message:
    """Shared to_wire: the dataclass fields plus the kind tag `t`."""

    KIND: ClassVar[str]

    def to_wire(self) -> dict[str, Any]:
        """The frame body."""
        body: dict[str, Any] = {"t": self.KIND}
        for item in fields(self):  # type: ignore[arg-type]
            body[item.name] = getattr(self, item.name)
        return body

    @classmethod
    def from_wire(cls, msg: dict[str, Any]) -> Self:
        """Validate a frame: exactly the kind tag and the dataclass's fields, whose values
        __post_init__ then checks (kinds with nested values override this)."""
        names = tuple(item.name for item in fields(cls))  # type: ignore[arg-type]
        _fields(msg, cls.KIND, names)
        return cls(**{name: msg[name] for name in names})


# ---- keyd -> worker -------------------------------------------------------------------------


@dataclass(frozen=True)
class Init(_Message):
    """keyd -> worker, first frame: the attested ruleset (None: no rules), bignumber.js, bound."""

    KIND: ClassVar[str] = "init"
    ruleset: str | None
    bignumber: str
    timeout: float

    def __post_init__(self) -> None:
        _opt_str(self.ruleset, "ruleset", MAX_RULESET_CHARS)
        _str(self.bignumber, "bignumber", MAX_BIGNUMBER_CHARS)
        t = self.timeout
        if (not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t)
                or not 0 < t <= MAX_TIMEOUT):
            raise ProtocolViolation("bad timeout")



@dataclass(frozen=True)
class Rule(_Message):
    """keyd -> worker: evaluate an approval function (ApproveTx, ApproveSignData, ...)."""

    KIND: ClassVar[str] = "rule"
    id: int
    fn: str
    request: Any

    def __post_init__(self) -> None:
        _id(self.id)
        _fn(self.fn)
        check_json(self.request)



@dataclass(frozen=True)
class Notify(_Message):
    """keyd -> worker: run a notification (OnSignerStartup, OnApprovedTx); result ignored."""

    KIND: ClassVar[str] = "notify"
    id: int
    fn: str
    request: Any

    def __post_init__(self) -> None:
        _id(self.id)
        _fn(self.fn)
        check_json(self.request)



@dataclass(frozen=True)
class Learn(_Message):
    """keyd -> worker: a caller-supplied selector verified against calldata that was signed;
    decode with it from now on (keyd has written it to --4bytedb-custom). No reply."""

    KIND: ClassVar[str] = "learn"
    selector: str
    signature: str

    def __post_init__(self) -> None:
        if not isinstance(self.selector, str) or not _SELECTOR_ID.fullmatch(self.selector):
            raise ProtocolViolation("bad selector")
        _str(self.signature, "signature", MAX_SIGNATURE_CHARS, allow_empty=False)



@dataclass(frozen=True)
class ValidateTx(_Message):
    """keyd -> worker: decode calldata and produce the call_info warnings for a transaction."""

    KIND: ClassVar[str] = "validate_tx"
    id: int
    tx: dict[str, Any]
    selector: str | None
    chain_id: int | None

    def __post_init__(self) -> None:
        _id(self.id)
        if not isinstance(self.tx, dict):
            raise ProtocolViolation("bad tx")
        check_json(self.tx, "tx")
        _opt_str(self.selector, "selector", MAX_SIGNATURE_CHARS)
        if self.chain_id is not None:
            _id(self.chain_id, "chain_id")



@dataclass(frozen=True)
class StorageValue(_Message):
    """keyd -> worker: answer to storage_get; exactly one of value and error is set."""

    KIND: ClassVar[str] = "storage_value"
    id: int
    value: str | None
    error: str | None

    def __post_init__(self) -> None:
        _id(self.id)
        _opt_str(self.value, "value", MAX_VALUE_CHARS)
        _opt_str(self.error, "error", MAX_ERROR_CHARS)
        if (self.value is None) == (self.error is None):
            raise ProtocolViolation("storage_value: exactly one of value and error")



@dataclass(frozen=True)
class StorageAck(_Message):
    """keyd -> worker: answer to storage_put; error is set exactly when ok is false."""

    KIND: ClassVar[str] = "storage_ack"
    id: int
    ok: bool
    error: str | None

    def __post_init__(self) -> None:
        _id(self.id)
        _bool(self.ok, "ok")
        _opt_str(self.error, "error", MAX_ERROR_CHARS)
        if self.ok == (self.error is not None):
            raise ProtocolViolation("storage_ack: error must be set exactly when ok is false")



# ---- worker -> keyd -------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready(_Message):
    """worker -> keyd: initialised, confined and serving."""

    KIND: ClassVar[str] = "ready"



@dataclass(frozen=True)
class RuleResult(_Message):
    """worker -> keyd: "Approve"/"Reject", or None (manual) with the reason in error."""

    KIND: ClassVar[str] = "rule_result"
    id: int
    decision: Decision
    error: str | None

    def __post_init__(self) -> None:
        _id(self.id)
        if self.decision is not None and self.decision not in DECISIONS:
            raise ProtocolViolation("bad decision")
        _opt_str(self.error, "error", MAX_ERROR_CHARS)
        if self.decision is not None and self.error is not None:
            raise ProtocolViolation("rule_result: a decision carries no error")



@dataclass(frozen=True)
class NotifyDone(_Message):
    """worker -> keyd: the notification ran; error says why it did not complete.

    An error matters for OnApprovedTx: the rule may not have recorded the transaction (for
    example in a rate-limit window), and keyd should know.
    """

    KIND: ClassVar[str] = "notify_done"
    id: int
    error: str | None = None

    def __post_init__(self) -> None:
        _id(self.id)
        _opt_str(self.error, "error", MAX_ERROR_CHARS)



@dataclass(frozen=True)
class StorageGet(_Message):
    """worker -> keyd: JS `storage.get(key)` during a rule call."""

    KIND: ClassVar[str] = "storage_get"
    id: int
    key: str

    def __post_init__(self) -> None:
        _id(self.id)
        _str(self.key, "key", MAX_KEY_CHARS, allow_empty=False)



@dataclass(frozen=True)
class StoragePut(_Message):
    """worker -> keyd: JS `storage.put(key, value)`; value "" deletes the key."""

    KIND: ClassVar[str] = "storage_put"
    id: int
    key: str
    value: str

    def __post_init__(self) -> None:
        _id(self.id)
        _str(self.key, "key", MAX_KEY_CHARS, allow_empty=False)
        _str(self.value, "value", MAX_VALUE_CHARS)



@dataclass(frozen=True)
class Log(_Message):
    """worker -> keyd: a log line (JS console output or the worker's own diagnostics)."""

    KIND: ClassVar[str] = "log"
    level: str
    msg: str

    def __post_init__(self) -> None:
        if self.level not in LOG_LEVELS:
            raise ProtocolViolation("bad level")
        _str(self.msg, "msg", MAX_LOG_CHARS)



@dataclass(frozen=True)
class ValidationMessage:
    """One call_info entry: {"type": "CRITICAL"|"WARNING"|"Info", "message": ...}."""

    type: str
    message: str

    def __post_init__(self) -> None:
        if self.type not in MESSAGE_TYPES:
            raise ProtocolViolation("bad message type")
        _str(self.message, "message", MAX_MESSAGE_CHARS)

    def to_wire(self) -> dict[str, str]:
        """The call_info object."""
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True)
class ValidateResult(_Message):
    """worker -> keyd: call_info messages for a transaction, or an error.

    learned: (4-byte selector "0x…", canonical signature) pairs the worker derived from a
    caller-supplied method selector that matched the calldata (keyd may add them to the custom
    4byte database).
    """

    KIND: ClassVar[str] = "validate_result"
    id: int
    messages: tuple[ValidationMessage, ...]
    error: str | None
    learned: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _id(self.id)
        if not isinstance(self.messages, tuple) or len(self.messages) > MAX_MESSAGES:
            raise ProtocolViolation("bad messages")
        if not all(isinstance(m, ValidationMessage) for m in self.messages):
            raise ProtocolViolation("bad messages")
        _opt_str(self.error, "error", MAX_ERROR_CHARS)
        if not isinstance(self.learned, tuple) or len(self.learned) > MAX_LEARNED:
            raise ProtocolViolation("bad learned")
        for pair in self.learned:
            if (not isinstance(pair, tuple) or len(pair) != 2
                    or not isinstance(pair[0], str) or not _SELECTOR_ID.fullmatch(pair[0])):
                raise ProtocolViolation("bad learned")
            _str(pair[1], "learned", MAX_SIGNATURE_CHARS, allow_empty=False)

    def to_wire(self) -> dict[str, Any]:
        """The frame body."""
        return {"t": self.KIND, "id": self.id,
                "messages": [m.to_wire() for m in self.messages],
                "error": self.error, "learned": [list(p) for p in self.learned]}

    @classmethod
    def from_wire(cls, msg: dict[str, Any]) -> ValidateResult:
        """Validate a frame from the worker."""
        _fields(msg, "validate_result", ("id", "messages", "error", "learned"))
        raw_messages, raw_learned = msg["messages"], msg["learned"]
        if not isinstance(raw_messages, list) or len(raw_messages) > MAX_MESSAGES:
            raise ProtocolViolation("bad messages")
        messages = []
        for item in raw_messages:
            if not isinstance(item, dict) or set(item) != {"type", "message"}:
                raise ProtocolViolation("bad messages")
            messages.append(ValidationMessage(item["type"], item["message"]))
        if not isinstance(raw_learned, list) or len(raw_learned) > MAX_LEARNED:
            raise ProtocolViolation("bad learned")
        learned = []
        for pair in raw_learned:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ProtocolViolation("bad learned")
            learned.append((pair[0], pair[1]))
        return cls(id=msg["id"], messages=tuple(messages), error=msg["error"],
                   learned=tuple(learned))


FromKeyd: TypeAlias = Init | Rule | Notify | ValidateTx | Learn | StorageValue | StorageAck
FromWorker: TypeAlias = (Ready | RuleResult | NotifyDone | ValidateResult | StorageGet
                         | StoragePut | Log)

# The allow-tables: who may send which kind. Anything else from that side is a violation.
_FROM_KEYD: dict[str, Any] = {
    kind.KIND: kind.from_wire
    for kind in (Init, Rule, Notify, ValidateTx, Learn, StorageValue, StorageAck)
}
_FROM_WORKER: dict[str, Any] = {
    kind.KIND: kind.from_wire
    for kind in (Ready, RuleResult, NotifyDone, ValidateResult, StorageGet, StoragePut, Log)
}


def _parse(msg: Any, table: dict[str, Any], side: str) -> Any:
    if not isinstance(msg, dict):
        raise ProtocolViolation("frame is not an object")
    kind = msg.get("t")
    if not isinstance(kind, str) or kind not in table:
        raise ProtocolViolation(f"{side} may not send {kind!r}")
    return table[kind](msg)


def parse_from_keyd(msg: dict[str, Any]) -> FromKeyd:
    """Validate a frame the worker received; raise ProtocolViolation on anything unexpected."""
    result: FromKeyd = _parse(msg, _FROM_KEYD, "keyd")
    return result


def parse_from_worker(msg: dict[str, Any]) -> FromWorker:
    """Validate a frame keyd received; raise ProtocolViolation on anything unexpected."""
    result: FromWorker = _parse(msg, _FROM_WORKER, "the policy worker")
    return result
