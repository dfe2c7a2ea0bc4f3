"""Audit log fast paths: the quoting shortcut agrees with the rune-by-rune encoder, a queued
request line is durable no later than the response line awaited after it, and the audited
middleware starts work without waiting for the request line's fsync but never replies before
both lines are on disk (invariant 4)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import ClefError
from keyd import auditlog as al
from keyd.audited import audit_wrapper

META = {"remote": "NA", "local": "NA", "scheme": "ipc", "User-Agent": "", "Origin": ""}


def slow_needs_quoting(text: str) -> bool:
    """The encoder's rune-by-rune rule, kept here as the oracle for the shortcut."""
    if not text:
        return True
    for char in text:
        code = ord(char)
        if code < 0x80:
            if char != "\\" and (char in ' ="' or code < 0x20 or code == 0x7F):
                return True
        elif char == "\ufffd" or not char.isprintable() or 0xDC80 <= code <= 0xDCFF:
            return True
    return False


def slow_go_quote(text: str) -> str:
    """strconv.Quote rune by rune (the encoder's general path), the oracle for the shortcut."""
    short = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
             "\v": "\\v", "\\": "\\\\", '"': '\\"'}
    out = ['"']
    for char in text:
        code = ord(char)
        if char in short:
            out.append(short[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x80:
            out.append(char if 0x20 <= code < 0x7F else f"\\x{code:02x}")
        elif char.isprintable() and not 0xD800 <= code <= 0xDFFF:
            out.append(char)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


@settings(max_examples=2000)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F)) | st.text())
def test_quoting_shortcut_agrees_with_the_rune_by_rune_encoder(text: str) -> None:
    assert al.go_quote(text) == slow_go_quote(text)
    assert al._needs_quoting(text) == slow_needs_quoting(text)


@pytest.mark.parametrize("text", ['{"to":"0xAb","value":"0x1"}', "a\\b", 'q"', " ", "=", "~",
                                  "\x7f", "\x1f", "é", ""])
def test_quoting_examples(text: str) -> None:
    assert al.go_quote(text) == slow_go_quote(text)
    assert al._needs_quoting(text) == slow_needs_quoting(text)


class SlowSync:
    """Replaces fdatasync: records the synced size, optionally blocks until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.synced: list[int] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False
        real = al._fdatasync

        def sync(fd: int) -> None:
            self.release.wait(10)
            if self.fail:
                raise OSError(28, "No space left on device")
            real(fd)
            self.synced.append(os.fstat(fd).st_size)

        monkeypatch.setattr(al, "_fdatasync", sync)


async def test_a_queued_line_is_durable_once_a_later_append_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    sync = SlowSync(monkeypatch)
    async with al.open_audit_log(path) as log:
        synced = len(sync.synced)
        sync.release.clear()
        log.queue(al.AuditEntry("Req", (("i", 1),)))  # returns at once, nothing synced yet
        await trio.sleep(0.05)
        assert len(sync.synced) == synced
        sync.release.set()
        await log.append(al.AuditEntry("Resp", (("i", 2),)))
        size = path.stat().st_size
        assert sync.synced[-1] == size
        text = path.read_text()
        assert text.index("msg=Req") < text.index("msg=Resp")
    assert al.verify(path).ok


async def test_a_failed_commit_of_a_queued_line_fails_the_next_append(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = SlowSync(monkeypatch)
    async with al.open_audit_log(tmp_path / "audit.log") as log:
        sync.fail = True
        log.queue(al.AuditEntry("Req", (("i", 1),)))
        with pytest.raises(al.AuditLogError):
            await log.append(al.AuditEntry("Resp", (("i", 2),)))
        with pytest.raises(al.AuditLogError):
            log.queue(al.AuditEntry("Req", (("i", 3),)))  # refused before any work


async def test_middleware_works_during_the_request_fsync_but_replies_after_both_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    sync = SlowSync(monkeypatch)
    events: list[str] = []

    async def dispatch(method: str, params: list[Any], meta: dict[str, str]) -> Any:
        events.append(f"work started, durable lines: {len(sync.synced)}")
        return "6.1.0"

    async with al.open_audit_log(path) as log:
        started = len(sync.synced)
        audited = audit_wrapper(log)(dispatch)
        sync.release.clear()

        async def release_later() -> None:
            await trio.sleep(0.2)
            events.append("fsync released")
            sync.release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(release_later)
            before = time.monotonic()
            assert await audited("account_version", [], META) == "6.1.0"
            events.append("replied")
            assert time.monotonic() - before >= 0.2
        # The work ran while the request line's fsync was still blocked; the reply came after.
        assert events == [f"work started, durable lines: {started}", "fsync released", "replied"]
        lines = path.read_text().splitlines()
        assert "msg=Version" in lines[-2] and "type=request" in lines[-2]
        assert "msg=Version" in lines[-1] and "type=response" in lines[-1]
        assert sync.synced[-1] == path.stat().st_size


async def test_middleware_refuses_before_work_when_the_log_has_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sync = SlowSync(monkeypatch)
    worked: list[str] = []

    async def dispatch(method: str, params: list[Any], meta: dict[str, str]) -> Any:
        worked.append(method)
        return "6.1.0"

    async with al.open_audit_log(tmp_path / "audit.log") as log:
        audited = audit_wrapper(log)(dispatch)
        sync.fail = True
        with pytest.raises(ClefError):
            await audited("account_version", [], META)  # its lines cannot be made durable
        assert worked == ["account_version"]
        with pytest.raises(ClefError):
            await audited("account_version", [], META)
        assert worked == ["account_version"]  # refused before any work this time
