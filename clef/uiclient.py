"""A reference client for the stdio UI protocol: start `clef --stdio-ui`, decide approvals in Python.

    def decide(method, params):
        if method == "ui_approveListing":
            return {"accounts": params["accounts"]}
        if method == "ui_onInputRequired":
            return {"text": "my password"}
        return {"approved": False}

    with UIClient(["clef", "--stdio-ui", "--http"], decide) as ui:
        ui.wait_started()
        print(ui.call("clef_listAccounts"))

The handler runs on a reader thread for each ui_* call and returns the result object (or raises
UIError to answer with a JSON-RPC error). Notifications (ui_showInfo, ui_onApprovedTx, ...) are
recorded in `notifications` and can be awaited with wait_for().
"""

from __future__ import annotations

import contextlib
import itertools
import json

# The clef binary given by the caller is started without a shell.
import subprocess  # nosec B404
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

Handler = Callable[[str, dict[str, Any]], Any]


class UIError(Exception):
    """Raise from a handler to answer the call with a JSON-RPC error."""


class UIClient:
    """Runs clef with --stdio-ui and speaks both directions of the UI protocol."""

    def __init__(self, argv: Sequence[str], handler: Handler, *, env: dict[str, str] | None = None,
                 cwd: str | None = None, stderr: IO[bytes] | int | None = None) -> None:
        self.argv = list(argv)
        self.handler = handler
        self.env = env
        self.cwd = cwd
        self.stderr = stderr
        self.proc: subprocess.Popen[bytes] | None = None
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.log: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._replies: dict[int, dict[str, Any]] = {}
        self._write_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    def __enter__(self) -> UIClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start clef and the reader thread."""
        # argv is chosen by the program using this client; no shell is involved.
        self.proc = subprocess.Popen(  # noqa: S603  # nosec B603
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            env=self.env, cwd=self.cwd)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    def _send(self, message: dict[str, Any]) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("clef is not running")
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def send_raw(self, data: bytes) -> None:
        """Write raw bytes to clef's stdin (for protocol tests)."""
        if self.proc is None or self.proc.stdin is None:
            raise RuntimeError("clef is not running")
        with self._write_lock:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def _read_loop(self) -> None:
        if self.proc is None or self.proc.stdout is None:
            raise RuntimeError("clef is not running")
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "method" in msg:
                params = msg.get("params") or [{}]
                param = params[0] if params else {}
                with self._cond:
                    self.log.append((msg["method"], param))
                    if "id" in msg:
                        self.requests.append((msg["method"], param))
                    else:
                        self.notifications.append((msg["method"], param))
                    self._cond.notify_all()
                if "id" in msg:
                    threading.Thread(target=self._answer, args=(msg, param), daemon=True).start()
            elif "id" in msg:
                with self._cond:
                    self._replies[msg["id"]] = msg
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _answer(self, msg: dict[str, Any], param: dict[str, Any]) -> None:
        try:
            result = self.handler(msg["method"], param)
        except UIError as exc:
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": msg["id"],
                                     "error": {"code": -32000, "message": str(exc)}}
        else:
            if result is _NO_ANSWER:
                return
            reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._send(reply)

    def call(self, method: str, *params: Any, timeout: float = 30.0) -> Any:
        """Call a clef_* method on the internal API; raise UIError on an error reply."""
        call_id = next(self._ids) + 1_000_000
        self._send({"jsonrpc": "2.0", "id": call_id, "method": method, "params": list(params)})
        deadline = time.monotonic() + timeout
        with self._cond:
            while call_id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no reply to {method}")
                self._cond.wait(remaining)
            reply = self._replies.pop(call_id)
        if "error" in reply:
            raise UIError(reply["error"].get("message", "error"))
        return reply.get("result")

    def wait_for(self, method: str, predicate: Callable[[dict[str, Any]], bool] | None = None,
                 timeout: float = 30.0) -> dict[str, Any]:
        """Wait until a message (request or notification) named method has arrived; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, param in self.log:
                    if name == method and (predicate is None or predicate(param)):
                        return param
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc is not None and self.proc.poll() is not None
                                      and not self._reader_alive()):
                    raise TimeoutError(f"no {method} from clef")
                self._cond.wait(min(remaining, 0.2))

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()

    def wait_started(self, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for ui_onSignerStartup and return its info object."""
        info: dict[str, Any] = self.wait_for("ui_onSignerStartup", timeout=timeout)["info"]
        return info

    def close(self, timeout: float = 10.0) -> int | None:
        """Close clef's stdin (clef exits when its UI goes away) and reap it."""
        if self.proc is None:
            return None
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class _NoAnswer:
    """Marker: a handler returning NO_ANSWER never answers the call (for timeout tests)."""


_NO_ANSWER = _NoAnswer()
NO_ANSWER: Any = _NO_ANSWER
