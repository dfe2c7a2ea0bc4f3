"""Audit log: reference logfmt lines, hash chain, verify, group commit, durability, restarts."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.eth.address import MixedcaseAddress
from keyd import auditlog as al

REPO = Path(__file__).resolve().parents[1]
META = '{"remote":"NA","local":"NA","scheme":"NA","User-Agent":"","Origin":""}'
FIXED = datetime(2026, 6, 3, 10, 0, 0, 123999, tzinfo=UTC)
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)"


def fixed_clock() -> datetime:
    return FIXED


async def write_log(path: Path, entries: list[al.AuditEntry]) -> al.Head:
    async with al.open_audit_log(path, clock=fixed_clock) as log:
        for entry in entries:
            await log.append(entry)
        return log.head


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- encoding (Go slog TextHandler) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("a b", '"a b"'),
        ("a=b", '"a=b"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", "a\\b"),  # a lone backslash does not force quoting in slog
        ("tab\there", '"tab\\there"'),
        ("nl\n", '"nl\\n"'),
        ("\x00", '"\\x00"'),
        ("\x7f", '"\\x7f"'),
        ("é", "é"),
        ("\u00a0", '"\\u00a0"'),
        ("\u2028", '"\\u2028"'),
        ("\ufffd", '"\ufffd"'),
        ("<nil>", "<nil>"),
        (None, "<nil>"),
        (True, "true"),
        (42, "42"),
        (b"{}", '"{}"'),  # []byte is always quoted
        (b'{"a":1}', '"{\\"a\\":1}"'),
    ],
)
def test_value_encoding_follows_go_slog(value: al.AuditValue, encoded: str) -> None:
    line = al.format_line(FIXED, "M", (("k", value),), 1, al.GENESIS).decode()
    assert f" k={encoded} seq=1 " in line


def test_time_is_rfc3339_milliseconds_truncated() -> None:
    assert al.format_time(FIXED) == "2026-06-03T10:00:00.123Z"
    plus_two = timezone(timedelta(hours=2))
    assert al.format_time(FIXED.astimezone(plus_two)) == "2026-06-03T12:00:00.123+02:00"


def test_reference_lines_exact() -> None:
    def fmt(entry: al.AuditEntry) -> str:
        return al.format_line(FIXED, entry.msg, entry.fields, 5, "ab" * 32).decode()

    suffix = f" seq=5 prev={'ab' * 32}\n"
    head = "time=2026-06-03T10:00:00.123Z level=INFO "
    assert fmt(al.version_request(META)) == (
        head + "msg=Version api=signer type=request metadata="
        '"{\\"remote\\":\\"NA\\",\\"local\\":\\"NA\\",\\"scheme\\":\\"NA\\",'
        '\\"User-Agent\\":\\"\\",\\"Origin\\":\\"\\"}"' + suffix
    )
    assert fmt(al.version_response("6.1.0")) == (
        head + "msg=Version api=signer type=response data=6.1.0 error=<nil>" + suffix
    )
    assert fmt(al.sign_transaction_response(None, "request denied")) == (
        head + 'msg=SignTransaction api=signer type=response data=<nil> error="request denied"'
        + suffix
    )
    assert fmt(al.sign_transaction_response(b"\x02\xf8", None)) == (
        head + "msg=SignTransaction api=signer type=response data=02f8 error=<nil>" + suffix
    )
    good = MixedcaseAddress.parse("0x2c7536E3605D9C16a7a3D7b1898e529396a65c23", "addr")
    bad = MixedcaseAddress.parse("0x2c7536e3605d9c16a7a3d7b1898e529396a65c23", "addr")
    line = fmt(al.sign_data_request("m", good, b'"0xdead"', "text/plain"))
    assert (
        'addr="0x2c7536E3605D9C16a7a3D7b1898e529396a65c23 [chksum ok]" '
        'data="\\"0xdead\\"" content-type=text/plain' in line
    )
    assert "[chksum INVALID]" in fmt(al.sign_data_request("m", bad, b"null", "text/plain"))
    assert 'data="" error="request denied"' in fmt(
        al.signature_response("SignData", None, "request denied")
    )
    assert "methodSelector=<nil>" in fmt(al.sign_transaction_request("m", "{}", None))
    assert "msg=EcRecover api=signer type=request metadata=m data=0102 sig=ff" in fmt(
        al.ec_recover_request("m", b"\x01\x02", b"\xff")
    )
    assert 'data="[0xA 0xB]"' in fmt(al.list_response(["0xA", "0xB"]))
    assert "data=[]" in fmt(al.list_response([]))


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20).filter(
                lambda k: k not in ("seq", "prev", "time", "level", "msg")
            ),
            st.text(max_size=40),
        ),
        max_size=5,
    ),
    st.text(min_size=1, max_size=20),
)
@settings(max_examples=300, deadline=None)
def test_any_value_stays_on_one_line_and_round_trips(
    fields: list[tuple[str, str]], msg: str
) -> None:
    entry = al.AuditEntry(msg, tuple(fields))
    line = al.format_line(FIXED, entry.msg, entry.fields, 7, al.GENESIS)
    # Log injection: attacker text (User-Agent, tx JSON) can never start a new line.
    assert line.count(b"\n") == 1 and line.endswith(b"\n")
    pairs = al.parse_logfmt(line.decode())
    assert pairs[2] == ("msg", msg)
    assert pairs[3] == ("api", "signer")
    assert pairs[4:-2] == fields
    assert pairs[-2:] == [("seq", "7"), ("prev", al.GENESIS)]


def test_entry_validation() -> None:
    with pytest.raises(ValueError, match="reserved"):
        al.AuditEntry("X", (("seq", 1),))
    with pytest.raises(ValueError, match="msg"):
        al.AuditEntry("")
    with pytest.raises(ValueError, match="unsupported type"):
        al.AuditEntry("X", (("k", 1.5),))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most"):
        al.AuditEntry("X", tuple((f"k{i}", i) for i in range(al.MAX_FIELDS + 1)))


def test_redaction_hook() -> None:
    assert al.default_redact("password", "x") == al.REDACTED
    assert al.default_redact("newPassphrase", "x") == al.REDACTED
    assert al.default_redact("Key", "x") == al.REDACTED
    assert al.default_redact("addr", "x") == "x"


async def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    await write_log(
        path,
        [al.AuditEntry("X", (("password", "hunter2-secret"), ("privateKey", "0xdeadbeef")))],
    )
    data = path.read_bytes()
    assert b"hunter2-secret" not in data and b"deadbeef" not in data
    assert data.count(al.REDACTED.encode()) == 2


# -- writing ----------------------------------------------------------------------------------


async def test_first_line_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    head = await write_log(path, [al.version_request(META), al.version_response("6.1.0")])
    lines = lines_of(path)
    assert len(lines) == 3
    first = lines[0].decode()
    assert re.fullmatch(
        rf"time={TIME_RE} level=INFO msg=Configured api=signer \"audit log\"={re.escape(str(path))}"
        rf" seq=1 prev={al.GENESIS}\n",
        first,
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert head == al.Head(3, al.line_hash(lines[-1]))
    report = al.verify(path)
    assert report.ok and report.head == head and report.segments == 1 and not report.warnings


async def test_existing_loose_mode_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.touch(mode=0o644)
    path.chmod(0o644)
    await write_log(path, [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_restart_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    first = await write_log(path, [al.version_request(META)])
    second = await write_log(path, [al.version_response("6.1.0")])
    assert second.seq == first.seq + 2  # a Configured line, then the response
    report = al.verify(path)
    assert report.ok and report.segments == 1 and report.head == second
    assert lines_of(path)[2].startswith(b"time=")
    assert b"msg=Configured" in lines_of(path)[2]


async def test_torn_tail_is_closed_and_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    head = await write_log(path, [al.version_request(META)])
    with open(path, "ab") as stream:
        stream.write(b"time=2026 level=INFO msg=Sign")  # a crash mid-write
    assert not al.verify(path).ok  # an unacknowledged torn line is reported
    async with al.open_audit_log(path) as log:
        assert log.torn_line == b"time=2026 level=INFO msg=Sign"
        await log.append(al.version_response("6.1.0"))
    lines = lines_of(path)
    assert lines[2] == b"time=2026 level=INFO msg=Sign\n"
    marker = dict(al.parse_logfmt(lines[3].decode()))
    assert marker["msg"] == al.RESUMED_MSG
    assert marker["prev"] == head.sha256 and marker["seq"] == str(head.seq + 1)
    assert marker["torn_sha256"] == al.line_hash(lines[2])
    report = al.verify(path)
    assert report.ok, report.errors
    assert any("torn line" in w for w in report.warnings)


async def test_reference_log_gets_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(
        b'time=2024-01-01T00:00:00.000Z level=INFO msg=Configured api=signer "audit log"=a\n'
        b"time=2024-01-01T00:00:01.000Z level=INFO msg=Version api=signer type=request\n"
    )
    await write_log(path, [al.version_request(META)])
    lines = lines_of(path)
    start = dict(al.parse_logfmt(lines[2].decode()))
    assert start["msg"] == al.CHAIN_START_MSG and start["prev"] == al.GENESIS
    report = al.verify(path)
    assert report.ok, report.errors
    assert any("2 line(s) before the hash chain" in w for w in report.warnings)


async def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(al.AuditLogError, match="not a regular file"):
        # O_RDWR on a FIFO does not block; the check refuses it before any write.
        await write_log(fifo, [])


async def test_write_failure_fails_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    async with al.open_audit_log(path) as log:

        def broken(data: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(log, "_write_and_sync", broken)
        with pytest.raises(al.AuditLogError):
            await log.append(al.version_request(META))
        with pytest.raises(al.AuditLogError):
            await log.append(al.version_request(META))


async def test_append_returns_only_after_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.log"
    synced: list[int] = []
    real = al._fdatasync

    def recording(fd: int) -> None:
        real(fd)
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(al, "_fdatasync", recording)
    async with al.open_audit_log(path) as log:
        for _ in range(3):
            await log.append(al.version_request(META))
            # The fsync covered everything up to and including this line.
            assert synced[-1] == path.stat().st_size
            assert path.read_bytes().endswith(b"\n")


async def test_many_concurrent_appends_are_durable_chained_and_grouped(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    count = 400
    async with al.open_audit_log(path) as log:
        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(log.append, al.AuditEntry("Req", (("i", index),)))
        fsyncs = log.fsyncs
    report = al.verify(path)
    assert report.ok and report.lines == count + 1
    seen = {dict(al.parse_logfmt(line.decode())).get("i") for line in lines_of(path)[1:]}
    assert seen == {str(i) for i in range(count)}
    assert fsyncs < count // 2, f"no group commit: {fsyncs} fsyncs for {count} lines"


async def test_append_after_close_is_refused(tmp_path: Path) -> None:
    async with al.open_audit_log(tmp_path / "a.log") as log:
        pass
    with pytest.raises(al.AuditLogError):
        await log.append(al.version_request(META))


CHILD = textwrap.dedent(
    """
    import sys, trio
    from keyd import auditlog as al

    async def main():
        async with al.open_audit_log(sys.argv[1]) as log:
            async def one(i):
                await log.append(al.AuditEntry("Req", (("i", i),)))
                print(i, flush=True)  # acknowledged: the "response" may leave now
            async with trio.open_nursery() as nursery:
                for i in range(100000):
                    nursery.start_soon(one, i)
                    if i % 50 == 0:
                        await trio.sleep(0)

    trio.run(main)
    """
)


def test_kill_9_never_loses_an_acknowledged_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    acked: list[str] = []
    for raw in proc.stdout:
        acked.append(raw.decode().strip())
        if len(acked) >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = {dict(al.parse_logfmt(line.decode())).get("i") for line in lines_of(path)[1:]
               if line.endswith(b"\n")}
    missing = [i for i in acked if i not in written]
    assert not missing, f"acknowledged but not in the log: {missing[:5]}"
    report = al.verify(path)
    assert all("incomplete last line" in e for e in report.errors), report.errors


# -- verify -----------------------------------------------------------------------------------


async def make_log(tmp_path: Path, count: int = 6) -> Path:
    path = tmp_path / "audit.log"
    await write_log(path, [al.AuditEntry("Req", (("i", i),)) for i in range(count)])
    return path


async def test_verify_detects_an_edit(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    data = path.read_bytes().replace(b" i=3 ", b" i=9 ")
    path.write_bytes(data)
    report = al.verify(path)
    assert not report.ok
    assert len(report.errors) == 1 and "line 6" in report.errors[0]


async def test_verify_detects_a_deleted_line(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    lines = lines_of(path)
    del lines[3]
    path.write_bytes(b"".join(lines))
    report = al.verify(path)
    assert not report.ok
    assert any("1 line(s) missing" in e for e in report.errors)


async def test_verify_detects_reordering(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    lines = lines_of(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    report = al.verify(path)
    assert not report.ok
    assert any("reordered" in e for e in report.errors)


async def test_verify_detects_deleting_the_beginning(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    path.write_bytes(b"".join(lines_of(path)[2:]))
    report = al.verify(path)
    assert not report.ok and "beginning was removed" in report.errors[0]


async def test_verify_detects_an_inserted_line(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    lines = lines_of(path)
    lines.insert(3, b"time=x level=INFO msg=Forged api=signer\n")
    path.write_bytes(b"".join(lines))
    report = al.verify(path)
    assert not report.ok and any("not a chained audit line" in e for e in report.errors)


async def test_verify_truncation(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    full = al.verify(path)
    assert full.ok and full.head is not None
    data = path.read_bytes()
    # Truncated mid-line: detected.
    path.write_bytes(data[:-10])
    assert not al.verify(path).ok
    # Whole trailing lines removed: invisible without an anchor, caught with one.
    path.write_bytes(b"".join(lines_of_bytes(data)[:-2]))
    assert al.verify(path).ok
    report = al.verify(path, anchor=full.head)
    assert not report.ok and "truncated" in report.errors[0]
    path.write_bytes(data)
    assert al.verify(path, anchor=full.head).ok


async def test_anchor_detects_a_rewritten_tail(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    anchor = al.verify(path).head
    assert anchor is not None
    lines = lines_of(path)
    lines[-1] = lines[-1].replace(b" i=5 ", b" i=7 ")
    path.write_bytes(b"".join(lines))
    assert al.verify(path).ok  # the last line has no successor to vouch for it
    report = al.verify(path, anchor=anchor)
    assert not report.ok and "does not match" in report.errors[0]


def lines_of_bytes(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def test_verify_of_a_file_without_chain(tmp_path: Path) -> None:
    path = tmp_path / "plain.log"
    path.write_bytes(b"hello\n")
    report = al.verify(path)
    assert not report.ok and "not a hash-chained audit log" in report.errors[-1]


def test_verify_empty_file_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert al.verify(path).ok


async def test_main_verify_verdicts(tmp_path: Path) -> None:
    path = await make_log(tmp_path)
    out = io.StringIO()
    assert al.main_verify(str(path), out=out) == 0
    text = out.getvalue()
    assert "OK:" in text and "head: 7:" in text and "--expect" in text
    head = al.verify(path).head
    assert head is not None
    out = io.StringIO()
    assert al.main_verify(str(path), expect=str(head), out=out) == 0
    assert "note:" not in out.getvalue()
    lines = lines_of(path)
    del lines[2]
    path.write_bytes(b"".join(lines))
    out = io.StringIO()
    assert al.main_verify(str(path), out=out) == 1
    assert "FAILED" in out.getvalue() and "error: line 3" in out.getvalue()
    assert al.main_verify(str(tmp_path / "missing.log"), out=io.StringIO()) == 2
    assert al.main_verify(str(path), expect="nonsense", out=io.StringIO()) == 2


def test_head_parse() -> None:
    digest = "ab" * 32
    assert al.Head.parse(f"12:{digest.upper()}") == al.Head(12, digest)
    with pytest.raises(ValueError):
        al.Head.parse("12")
    with pytest.raises(ValueError):
        al.Head.parse("x:" + digest)


@given(st.text(max_size=60))
def test_parse_logfmt_never_crashes(text: str) -> None:
    with contextlib.suppress(ValueError):
        al.parse_logfmt(text)
