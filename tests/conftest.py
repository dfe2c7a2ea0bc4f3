"""Shared test kit: fixture paths, a running clef with a scripted stdio UI, HTTP/IPC clients."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clef.uiclient import UIClient

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance" / "geth"
VENV_BIN = Path(sys.executable).parent
CLEF = str(VENV_BIN / "clef") if (VENV_BIN / "clef").exists() else shutil.which("clef") or "clef"
PASSWORD = "a-long-password-1"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScriptedUI:
    """A programmable approval policy for UIClient: per-method answers, defaults deny."""

    def __init__(self) -> None:
        self.answers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "ui_approveListing": lambda p: {"accounts": p["accounts"]},
            "ui_approveNewAccount": lambda p: {"approved": True},
            "ui_onInputRequired": lambda p: {"text": PASSWORD},
            "ui_approveTx": lambda p: {"approved": True, "transaction": p["transaction"]},
            "ui_approveSignData": lambda p: {"approved": True},
        }

    def __call__(self, method: str, params: dict[str, Any]) -> Any:
        answer = self.answers.get(method)
        return answer(params) if answer is not None else {"approved": False}


class Clef:
    """A running `clef --stdio-ui --http --ipcpath ...` plus helpers to call it."""

    def __init__(self, tmp: Path, extra: list[str] | None = None, ui: ScriptedUI | None = None,
                 http: bool = True) -> None:
        self.tmp = tmp
        self.keystore = tmp / "keystore"
        self.configdir = tmp / "config"
        self.keystore.mkdir(exist_ok=True)
        self.port = free_port()
        self.ipc = tmp / "clef.ipc"
        self.ui = ui or ScriptedUI()
        self.stderr_path = tmp / "clef.stderr"
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        argv = [CLEF, "--stdio-ui", "--suppress-bootwarn", "--lightkdf",
                "--keystore", str(self.keystore), "--configdir", str(self.configdir),
                "--ipcpath", str(self.ipc), "--auditlog", str(tmp / "audit.log"),
                "--4bytedb-custom", str(tmp / "4byte-custom.json")]
        if http:
            argv += ["--http", "--http.port", str(self.port)]
        argv += extra or []
        self.client = UIClient(argv, self.ui, stderr=self._stderr, cwd=str(tmp),
                               env={**os.environ, "XDG_CACHE_HOME": str(REPO / ".cache")})
        self.client.start()
        self.info = self.client.wait_started(timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def http(self, body: Any, *, headers: dict[str, str] | None = None, raw: bytes | None = None,
             method: str = "POST", timeout: float = 60) -> tuple[int, bytes]:
        """POST a JSON body; return (status, body)."""
        data = raw if raw is not None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url, data=data if method != "GET" else None,
                                     headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def rpc(self, method: str, *params: Any, via: str = "http") -> dict[str, Any]:
        """One JSON-RPC call over HTTP or IPC; returns the response object."""
        body = {"jsonrpc": "2.0", "id": 7, "method": method, "params": list(params)}
        if via == "ipc":
            reply: dict[str, Any] = ipc_call(self.ipc, body)
            return reply
        status, data = self.http(body)
        assert status == 200, (status, data)
        result: dict[str, Any] = json.loads(data)
        return result

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self) -> int | None:
        code = self.client.close()
        self._stderr.close()
        return code


def ipc_call(path: Path, body: Any, timeout: float = 60) -> Any:
    """Send one message over the IPC socket and read one newline-terminated response."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(body).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


@pytest.fixture
def clef_factory(tmp_path: Path) -> Iterator[Callable[..., Clef]]:
    """Start clef instances that are stopped at the end of the test."""
    started: list[Clef] = []

    def start(extra: list[str] | None = None, ui: ScriptedUI | None = None, http: bool = True) -> Clef:
        sub = tmp_path / f"clef{len(started)}"
        sub.mkdir()
        instance = Clef(sub, extra, ui, http)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.close()
