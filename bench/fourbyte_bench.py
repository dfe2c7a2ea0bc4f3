"""Benchmark the shipped 4byte database: cache build, open, lookups/s and memory of an open DB.

Usage: python bench/fourbyte_bench.py [--quick] [--cache PATH]

Each phase that measures memory runs in a fresh interpreter, so the numbers are what a policy
worker pays: RSS/PSS after importing the module, after opening (mapping) the database, and
after looking up every selector once (which pulls the whole mapping into the page cache and
into this process's RSS; the pages are shared, file-backed and reclaimable). For comparison
it also prints what `json.load` of the source into a dict costs.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from policy.fourbyte import SHIPPED_SOURCE, FourByteDB, build_cache  # noqa: E402


def memory_kib() -> dict[str, int]:
    """VmRSS from /proc/self/status and Pss from /proc/self/smaps_rollup, in KiB."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            out["rss"] = int(line.split()[1])
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.exists():
        for line in rollup.read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1])
    return out


def _child(cache: str, mode: str, lookups: int) -> None:
    """Run in a fresh interpreter: report memory around opening the database."""
    before = memory_kib()
    result: dict[str, object] = {"before": before}
    if mode == "dict":
        import lzma

        started = time.perf_counter()
        table = json.loads(lzma.decompress(SHIPPED_SOURCE.read_bytes()))
        result["load_s"] = time.perf_counter() - started
        result["after_open"] = memory_kib()
        result["entries"] = len(table)
    else:
        started = time.perf_counter()
        db = FourByteDB.open(Path(cache))
        result["open_s"] = time.perf_counter() - started
        result["after_open"] = memory_kib()
        rng = random.Random(2)
        # known selectors at random positions (private accessor: this is a benchmark)
        picks = [rng.randrange(len(db)) for _ in range(lookups)]
        selectors = [db._selector(i).to_bytes(4, "big") for i in picks]
        result["after_setup"] = memory_kib()
        for selector in selectors:
            db.lookup(selector)
        result["after_lookups"] = memory_kib()
        result["entries"] = len(db)
    print(json.dumps(result))


def _run_child(cache: Path, mode: str, lookups: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--cache", str(cache),
         "--lookups", str(lookups)],
        check=True, capture_output=True, text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _mib(kib: object) -> str:
    return f"{int(kib) / 1024:.1f} MiB" if isinstance(kib, int) else "n/a"


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few lookups (CI smoke run)")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--child", choices=["mapped", "dict"], default=None)
    parser.add_argument("--lookups", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        _child(str(args.cache), args.child, args.lookups)
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp) / "4byte.cache"
        started = time.perf_counter()
        build_cache(cache, SHIPPED_SOURCE)
        build_s = time.perf_counter() - started
        print(f"source        {SHIPPED_SOURCE.name}: {SHIPPED_SOURCE.stat().st_size:,} bytes")
        print(f"cache         {cache.stat().st_size:,} bytes, built in {build_s:.2f} s")

        with FourByteDB.open(cache) as db:
            opens = []
            for _ in range(3 if args.quick else 10):
                started = time.perf_counter()
                FourByteDB.open(cache).close()
                opens.append(time.perf_counter() - started)
            print(f"open          {min(opens) * 1000:.1f} ms (best of {len(opens)}, "
                  "digest-checked, mapped)")
            selectors = [s for s, _ in db.items()]
            count = 20_000 if args.quick else 1_000_000
            rng = random.Random(1)
            known = [rng.choice(selectors) for _ in range(count // 2)]
            unknown = [rng.randbytes(4) for _ in range(count // 2)]
            for label, batch in (("hits", known), ("misses", unknown)):
                started = time.perf_counter()
                for selector in batch:
                    db.lookup(selector)
                elapsed = time.perf_counter() - started
                print(f"lookups/s     {len(batch) / elapsed:,.0f} ({label}, {len(batch):,})")

        lookups = 1_000 if args.quick else 100_000
        mapped = _run_child(cache, "mapped", lookups)
        rows = (("before", "fresh interpreter + module"), ("after_open", "after open"),
                ("after_setup", f"+ list of {lookups:,} selectors"),
                ("after_lookups", f"after {lookups:,} random hits"))
        for key, label in rows:
            mem = mapped[key]
            print(f"memory        {label}: RSS {_mib(mem.get('rss'))}, PSS {_mib(mem.get('pss'))}")
        if not args.quick:
            table = _run_child(cache, "dict", 0)
            mem = table["after_open"]
            print(f"for contrast  json dict of the source: load {table['load_s']:.2f} s, "
                  f"RSS {_mib(mem.get('rss'))}, PSS {_mib(mem.get('pss'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
