"""Typed messages of the keyd <-> net worker boundary, validated strictly on receipt.

keyd treats the net worker as compromised-by-assumption: every field is type- and size-checked
here, and anything unexpected is a ProtocolViolation (keyd then kills the worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clef.errors import ProtocolViolation

META_KEYS = ("remote", "local", "scheme", "User-Agent", "Origin", "X-Forwarded-For")
MAX_META_VALUE = 4096
MAX_METHOD = 128


def _int(msg: dict[str, Any], key: str) -> int:
    value = msg.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise ProtocolViolation(f"bad {key}")
    return value


@dataclass(frozen=True)
class Call:
    """worker -> keyd: a caller's request (envelope already validated by the worker)."""

    id: int
    method: str
    params: list[Any]
    meta: dict[str, str]

    def to_wire(self) -> dict[str, Any]:
        """The frame body."""
        return {"t": "call", "id": self.id, "method": self.method, "params": self.params,
                "meta": self.meta}

    @classmethod
    def from_wire(cls, msg: dict[str, Any]) -> Call:
        """Validate a frame from the worker."""
        method = msg.get("method")
        params = msg.get("params")
        meta = msg.get("meta")
        if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD:
            raise ProtocolViolation("bad method")
        if not isinstance(params, list):
            raise ProtocolViolation("bad params")
        if not isinstance(meta, dict):
            raise ProtocolViolation("bad meta")
        clean: dict[str, str] = {}
        for key, value in meta.items():
            if key not in META_KEYS or not isinstance(value, str) or len(value) > MAX_META_VALUE:
                raise ProtocolViolation(f"bad meta field {key!r}")
            clean[key] = value
        for key in ("remote", "local", "scheme", "User-Agent", "Origin"):
            if key not in clean:
                raise ProtocolViolation(f"meta lacks {key}")
        if set(msg) - {"t", "id", "method", "params", "meta"}:
            raise ProtocolViolation("unexpected fields in call")
        return cls(id=_int(msg, "id"), method=method, params=params, meta=clean)


@dataclass(frozen=True)
class Cancel:
    """worker -> keyd: the caller of request `id` went away; withdraw it."""

    id: int

    def to_wire(self) -> dict[str, Any]:
        """The frame body."""
        return {"t": "cancel", "id": self.id}

    @classmethod
    def from_wire(cls, msg: dict[str, Any]) -> Cancel:
        """Validate a frame from the worker."""
        if set(msg) != {"t", "id"}:
            raise ProtocolViolation("bad cancel")
        return cls(id=_int(msg, "id"))


@dataclass(frozen=True)
class Ready:
    """worker -> keyd: confined and serving."""

    @classmethod
    def from_wire(cls, msg: dict[str, Any]) -> Ready:
        """Validate a frame from the worker."""
        if set(msg) != {"t"}:
            raise ProtocolViolation("bad ready")
        return cls()


WorkerMessage = Call | Cancel | Ready

_FROM_WORKER = {"call": Call.from_wire, "cancel": Cancel.from_wire, "ready": Ready.from_wire}


def parse_worker_message(msg: dict[str, Any]) -> WorkerMessage:
    """Dispatch on `t`; unknown kinds are a violation."""
    kind = msg.get("t")
    if not isinstance(kind, str) or kind not in _FROM_WORKER:
        raise ProtocolViolation(f"unknown message kind {kind!r}")
    if kind == "call":
        return Call.from_wire(msg)
    if kind == "cancel":
        return Cancel.from_wire(msg)
    return Ready.from_wire(msg)


def reply_result(call_id: int, result: Any) -> dict[str, Any]:
    """keyd -> worker: success."""
    return {"t": "reply", "id": call_id, "result": result}


def reply_error(call_id: int, error: dict[str, Any]) -> dict[str, Any]:
    """keyd -> worker: a JSON-RPC error object."""
    return {"t": "reply", "id": call_id, "error": error}


def init_message(*, vhosts: list[str], http: bool, ipc: bool) -> dict[str, Any]:
    """keyd -> worker: the first frame, configuring the front."""
    return {"t": "init", "vhosts": vhosts, "http": http, "ipc": ipc}
