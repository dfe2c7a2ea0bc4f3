"""Audit-log throughput: group commit vs one fsync per line (prints lines/s; not a test).

Run from the repository root: `.venv/bin/python bench/auditlog_bench.py [seconds-per-case]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import trio

from keyd import auditlog as al

META = (
    '{"remote":"127.0.0.1:5555","local":"localhost:8550","scheme":"HTTP/1.1",'
    '"User-Agent":"bench","Origin":""}'
)


def naive_fsync_per_line(path: Path, count: int) -> float:
    """Baseline: what a writer that fsyncs every line achieves (serial requests)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fields = (("type", "request"), ("metadata", META))
    line = al.format_line(al._now(), "Version", fields, 1, al.GENESIS)
    start = time.perf_counter()
    for _ in range(count):
        os.write(fd, line)
        os.fdatasync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    return count / elapsed


async def group_commit(path: Path, concurrency: int, duration: float) -> tuple[float, int, int]:
    """`concurrency` tasks each appending in a loop for `duration` seconds."""
    done = 0
    async with al.open_audit_log(path) as log:
        deadline = trio.current_time() + duration

        async def client() -> None:
            nonlocal done
            while trio.current_time() < deadline:
                await log.append(al.version_request(META))
                done += 1

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client)
        elapsed = time.perf_counter() - start
        fsyncs = log.fsyncs
    report = al.verify(path)
    assert report.ok, report.errors
    return done / elapsed, done, fsyncs


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        base = naive_fsync_per_line(Path(tmp) / "naive.log", 300)
        print(f"baseline, one fdatasync per line (serial): {base:9.0f} lines/s")
        for concurrency in (1, 8, 64, 256):
            rate, lines, fsyncs = trio.run(
                group_commit, Path(tmp) / f"gc{concurrency}.log", concurrency, duration
            )
            print(
                f"group commit, {concurrency:4d} concurrent appenders: {rate:9.0f} lines/s "
                f"({lines} lines, {fsyncs} fsyncs, {lines / max(fsyncs, 1):6.1f} lines/fsync)"
            )


if __name__ == "__main__":
    main()
