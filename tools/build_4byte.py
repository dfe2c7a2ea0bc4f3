"""Build policy/data/4byte.json.xz from a go-ethereum-format 4byte.json, verifying every entry.

Usage: python tools/build_4byte.py [SOURCE_JSON] [--no-parse]

Each entry must be 8 lower-case hex digits -> a canonical signature that our ABI parser
accepts (skipped with --no-parse) and whose Keccak-256 starts with the selector. The output
is xz (preset 9, extreme): deterministic for a given input and liblzma.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clef.eth.hashing import keccak256  # noqa: E402
from policy.abi import AbiError, parse_signature  # noqa: E402
from policy.fourbyte import SHIPPED_SOURCE, FourByteError, _check_entry  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "4byte.json"


def verify(entries: dict[str, object], parse: bool) -> list[str]:
    """Problems found in the entries (empty when all are good)."""
    problems = []
    for selector, name in entries.items():
        try:
            _check_entry(selector, name)
        except FourByteError as exc:
            problems.append(str(exc))
            continue
        assert isinstance(name, str)
        if keccak256(name.encode())[:4].hex() != selector:
            problems.append(f"{selector}: keccak256({name!r}) does not start with the selector")
        if parse:
            try:
                sig = parse_signature(name)
            except AbiError as exc:
                problems.append(f"{selector}: {exc}")
                continue
            if sig.canonical != name:
                problems.append(f"{selector}: {name!r} is not canonical ({sig.canonical!r})")
    return problems


def main() -> int:
    """Verify the source and write the compressed database next to the policy package."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--no-parse", action="store_true", help="skip the ABI parse check")
    parser.add_argument("--output", type=Path, default=SHIPPED_SOURCE)
    args = parser.parse_args()

    raw = args.source.read_bytes()
    entries = json.loads(raw)
    started = time.perf_counter()
    problems = verify(entries, parse=not args.no_parse)
    print(f"verified {len(entries)} entries in {time.perf_counter() - started:.1f} s")
    if problems:
        print("\n".join(problems[:50]), file=sys.stderr)
        print(f"{len(problems)} problems; nothing written", file=sys.stderr)
        return 1
    started = time.perf_counter()
    packed = lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    args.output.write_bytes(packed)
    print(f"wrote {args.output} ({len(packed)} bytes from {len(raw)}) "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
