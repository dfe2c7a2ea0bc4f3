"""policy.fourbyte: the shipped compact database, its cache file, and the custom database."""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from Cryptodome.Hash import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.abi import decode_call
from policy.fourbyte import (
    CUSTOM_MAX_BYTES,
    CUSTOM_MAX_ENTRIES,
    HEADER_SIZE,
    SHIPPED_SOURCE,
    CustomDB,
    FourByteDB,
    FourByteError,
    build_cache,
    build_compact,
    default_cache_path,
    read_custom_db,
    write_custom_db,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
SOURCE_JSON = SHARED / "data" / "4byte.json"
EXPECTED: dict[str, Any] = json.loads((SHARED / "conformance/geth/expected.json").read_text())
FOURBYTE = EXPECTED["fourbyte"]

SMALL = {
    "a52c101e": "send(uint256)",
    "4401a6e4": "safeSend(address)",
    "a9059cbb": "transfer(address,uint256)",
}


def _write_source(directory: Path, entries: dict[str, str], xz: bool = True) -> Path:
    lines = ",\n".join(f'"{k}":"{v}"' for k, v in sorted(entries.items()))
    text = ("{\n" + lines + "\n}\n").encode()
    path = directory / ("src.json.xz" if xz else "src.json")
    path.write_bytes(lzma.compress(text) if xz else text)
    return path


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FourByteDB]:
    cache = tmp_path_factory.mktemp("cache") / "4byte.cache"
    with FourByteDB.open(cache) as db:
        yield db


@pytest.fixture(scope="module")
def source_entries() -> dict[str, str]:
    entries: dict[str, str] = json.loads(SOURCE_JSON.read_bytes())
    return entries


# --- the shipped database -----------------------------------------------------------------


def test_shipped_source_is_the_shared_database() -> None:
    # The package ships exactly ../shared/data/4byte.json, xz-compressed.
    assert lzma.decompress(SHIPPED_SOURCE.read_bytes()) == SOURCE_JSON.read_bytes()
    assert SHIPPED_SOURCE.stat().st_size < 6_000_000


def test_every_entry_looks_up_identically(
    shipped: FourByteDB, source_entries: dict[str, str]
) -> None:
    entries = source_entries
    assert len(shipped) == len(entries) == 538_495
    mismatched = [k for k, v in entries.items() if shipped.lookup(bytes.fromhex(k)) != v]
    assert mismatched == []
    assert [(s.hex(), n) for s, n in shipped.items()] == sorted(entries.items())


def _mismatched_hashes(entries: list[tuple[str, str]]) -> list[str]:
    return [
        k for k, v in entries if keccak.new(digest_bits=256, data=v.encode()).hexdigest()[:8] != k
    ]


def test_sampled_entries_hash_to_their_selector(source_entries: dict[str, str]) -> None:
    # The reference's TestEmbeddedDatabase on every 25th entry (tools/build_4byte.py and the
    # slow test below check all of them).
    assert _mismatched_hashes(list(source_entries.items())[::25]) == []


@pytest.mark.slow
def test_every_entry_hashes_to_its_selector(source_entries: dict[str, str]) -> None:
    # The reference's TestEmbeddedDatabase: each signature's keccak id equals its key (~10 s).
    assert _mismatched_hashes(list(source_entries.items())) == []


def test_known_selectors(shipped: FourByteDB) -> None:
    for sig, selector in FOURBYTE["selector_ids"].items():
        assert shipped.lookup(bytes.fromhex(selector[2:])) == sig
    assert shipped.lookup(bytes.fromhex("deadbeef")) is None


def test_lookup_rejects_bad_ids(shipped: FourByteDB) -> None:
    for bad in (b"", b"\x01\x02\x03", b"\x01" * 5):
        with pytest.raises(ValueError, match=f"expected 4-byte id, got {len(bad)}"):
            shipped.lookup(bad)
    with pytest.raises(ValueError, match="expected 4-byte id"):
        shipped.lookup("a9059cbb")  # type: ignore[arg-type]


@given(selector=st.binary(min_size=4, max_size=4))
@settings(max_examples=300)
def test_random_lookups_agree_with_json(
    shipped: FourByteDB, source_entries: dict[str, str], selector: bytes
) -> None:
    assert shipped.lookup(selector) == source_entries.get(selector.hex())


def test_first_use_builds_then_maps(tmp_path: Path) -> None:
    cache = tmp_path / "sub" / "dir" / "4byte.cache"
    source = _write_source(tmp_path, SMALL)
    with FourByteDB.open(cache, source) as db:
        assert db.lookup(bytes.fromhex("a9059cbb")) == "transfer(address,uint256)"
        assert len(db) == 3
    assert cache.exists()
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]
    mtime = cache.stat().st_mtime_ns
    with FourByteDB.open(cache, source) as db:
        assert db.lookup(bytes.fromhex("4401a6e4")) == "safeSend(address)"
    assert cache.stat().st_mtime_ns == mtime  # a valid cache is not rebuilt


def test_stale_cache_is_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "4byte.cache"
    FourByteDB.open(cache, _write_source(tmp_path, SMALL)).close()
    newer = _write_source(tmp_path, {**SMALL, "deadbeef": "f()"})
    with FourByteDB.open(cache, newer) as db:
        assert len(db) == 4


@pytest.mark.parametrize("damage", ["truncate", "flip_body", "flip_header", "garbage", "empty"])
def test_corrupt_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    source = _write_source(tmp_path, SMALL)
    cache = tmp_path / "4byte.cache"
    build_cache(cache, source)
    data = bytearray(cache.read_bytes())
    if damage == "truncate":
        data = data[:-3]
    elif damage == "flip_body":
        data[-1] ^= 0x01
    elif damage == "flip_header":
        data[12] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:
        data = bytearray()
    cache.write_bytes(bytes(data))
    with FourByteDB.open(cache, source) as db:
        assert db.lookup(bytes.fromhex("a52c101e")) == "send(uint256)"
    assert cache.read_bytes() == build_compact(source)


def test_symlinked_cache_is_replaced_not_followed(tmp_path: Path) -> None:
    source = _write_source(tmp_path, SMALL)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"do not touch")
    cache = tmp_path / "4byte.cache"
    cache.symlink_to(target)
    with FourByteDB.open(cache, source) as db:
        assert len(db) == 3
    assert target.read_bytes() == b"do not touch"
    assert not cache.is_symlink()


def test_unwritable_cache_dir_falls_back_to_memory(tmp_path: Path) -> None:
    source = _write_source(tmp_path, SMALL)
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with FourByteDB.open(blocker / "4byte.cache", source) as db:  # parent is a file
        assert db.lookup(bytes.fromhex("a52c101e")) == "send(uint256)"


def test_build_is_deterministic_and_json_fallback(tmp_path: Path) -> None:
    xz = _write_source(tmp_path, SMALL)
    plain = _write_source(tmp_path, SMALL, xz=False)
    assert build_compact(xz)[HEADER_SIZE:] == build_compact(plain)[HEADER_SIZE:]
    # Any valid JSON layout (not one entry per line) goes through the slow path.
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps(dict(reversed(SMALL.items())), indent=2))
    assert build_compact(odd)[HEADER_SIZE:] == build_compact(plain)[HEADER_SIZE:]


@pytest.mark.parametrize(
    "content",
    [
        b"[]",
        b"{",
        b'{"A9059CBB":"transfer(address,uint256)"}',
        b'{"a9059cbb":5}',
        b'{"a9059cbb":"transfer(address, uint256)"}',
        b'{"a9059cbb":"x\\u001b[2J()"}',
        b'{"a9059cbb":"a()","a9059cbb":"b()"}',
        b'{"a9059cbb":"' + b"f(" + b"uint256," * 600 + b'bool)"}',
    ],
)
def test_malformed_sources_are_refused(tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(content)
    with pytest.raises(FourByteError):
        build_compact(source)


def test_deep_or_non_utf8_sources_are_refused_before_decoding(tmp_path: Path) -> None:
    # The C decoder recurses on the C stack: a deep source is refused before it is parsed.
    source = tmp_path / "deep.json"
    source.write_bytes(b"[" * 200_000)
    with pytest.raises(FourByteError, match="nested deeper than"):
        build_compact(source)
    source.write_bytes(b'{"a9059cbb":"f()",\n"deadbeef":"g()"}\xff')
    with pytest.raises(FourByteError, match="not valid UTF-8"):
        build_compact(source)


def test_corrupt_xz_source_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "bad.json.xz"
    source.write_bytes(lzma.compress(b'{\n"a9059cbb":"f()"\n}\n')[:-10])
    with pytest.raises(FourByteError):
        build_compact(source)


def test_closed_database_refuses_lookups(tmp_path: Path) -> None:
    db = FourByteDB.open(tmp_path / "c", _write_source(tmp_path, SMALL))
    db.close()
    with pytest.raises(ValueError):
        db.lookup(b"\xa5\x2c\x10\x1e")


def test_default_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache_path(tmp_path) == tmp_path / "4byte.cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "xdg" / "clef" / "4byte.cache"


def test_header_records_source_digest(tmp_path: Path) -> None:
    source = _write_source(tmp_path, SMALL)
    compact = build_compact(source)
    assert compact[24:56] == hashlib.sha256(source.read_bytes()).digest()
    assert compact[56:88] == hashlib.sha256(compact[HEADER_SIZE:]).digest()


# --- the custom database ------------------------------------------------------------------


def test_reference_custom_database_case(tmp_path: Path) -> None:
    # signer/fourbyte/fourbyte_test.go TestCustomDatabase, with an empty embedded database.
    case = FOURBYTE["case"]
    calldata = bytes.fromhex(case["calldata"][2:])
    shipped, custom = FourByteDB.empty(), CustomDB()
    assert custom.lookup(calldata[:4]) is None and shipped.lookup(calldata[:4]) is None
    assert custom.learn(calldata[:4], case["selector"], shipped=shipped)
    assert custom.lookup(calldata[:4]) == "send(uint256)"
    path = tmp_path / "4byte-custom.json"
    write_custom_db(path, custom.serialise())
    assert json.loads(path.read_bytes()) == case["custom_file_after"]
    assert path.read_bytes() == b'{"a52c101e":"send(uint256)"}'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_custom_db(path).lookup(calldata[:4]) == "send(uint256)"


def test_learn_only_verified_unknown_canonical(tmp_path: Path) -> None:
    shipped = FourByteDB.from_mapping({"a9059cbb": "transfer(address,uint256)"})
    custom = CustomDB()
    send = bytes.fromhex("a52c101e")
    assert not custom.learn(send, "send(uint)", shipped=shipped)  # alias, not canonical
    assert not custom.learn(send, "send(uint128)", shipped=shipped)  # wrong hash
    assert not custom.learn(send, "send(uint256", shipped=shipped)  # unparsable
    assert not custom.learn(bytes.fromhex("a9059cbb"), "transfer(address,uint256)",
                            shipped=shipped)  # already shipped
    assert custom.learn(send, "send(uint256)", shipped=shipped)
    assert not custom.learn(send, "send(uint256)", shipped=shipped)  # already learnt
    assert len(custom) == 1 and send in custom
    with pytest.raises(ValueError):
        custom.learn(b"\x01", "f()")


def test_custom_entry_cap() -> None:
    entries = {f"{i:08x}": "x()" for i in range(CUSTOM_MAX_ENTRIES)}
    custom = CustomDB(entries)
    call = decode_call("send(uint256)", bytes.fromhex("a52c101e") + b"\x00" * 32)
    assert not custom.learn(call.selector, "send(uint256)")
    assert len(custom) == CUSTOM_MAX_ENTRIES
    with pytest.raises(FourByteError, match="more than"):
        CustomDB({**entries, "a52c101e": "send(uint256)"})


def test_custom_byte_cap() -> None:
    big = "f" + "a" * 4000 + "()"
    with pytest.raises(FourByteError):
        CustomDB({f"{i:08x}": big for i in range(300)})
    assert len(CustomDB({f"{i:08x}": big for i in range(200)}).serialise()) <= CUSTOM_MAX_BYTES


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[]", b'"x"', b'{"a52c101e": 5}', b'{"A52C101E":"send(uint256)"}',
     b'{"a52c101":"send(uint256)"}', b"{" * 100000, b" " * (CUSTOM_MAX_BYTES + 1)],
)
def test_invalid_custom_files_are_clear_errors(content: bytes) -> None:
    with pytest.raises(FourByteError, match="invalid 4byte custom database"):
        CustomDB.load(content)


def test_custom_file_round_trip_and_missing(tmp_path: Path) -> None:
    assert len(read_custom_db(tmp_path / "absent.json")) == 0
    custom = CustomDB.load(b'{"a9059cbb":"transfer(address,uint256)","00000001":"a<b>&()"}')
    data = custom.serialise()
    assert data == (b'{"00000001":"a\\u003cb\\u003e\\u0026()",'
                    b'"a9059cbb":"transfer(address,uint256)"}')
    path = tmp_path / "c.json"
    write_custom_db(path, data)
    assert read_custom_db(path).items() == custom.items()


def test_write_custom_db_refuses_what_it_could_not_load(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"{}")
    with pytest.raises(FourByteError):
        write_custom_db(path, b"not json")
    assert path.read_bytes() == b"{}"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@given(st.dictionaries(st.binary(min_size=4, max_size=4).map(bytes.hex),
                       st.text(max_size=50), max_size=20))
@settings(max_examples=200)
def test_custom_serialise_round_trip(entries: dict[str, str]) -> None:
    custom = CustomDB(entries)
    again = CustomDB.load(custom.serialise())
    assert list(again.items()) == sorted(entries.items())


def test_cache_swapped_after_the_check_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process replaces the cache between the digest check and the mapping.
    import policy.fourbyte as fourbyte

    old = _write_source(tmp_path, SMALL)
    cache = tmp_path / "4byte.cache"
    build_cache(cache, old)
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**SMALL, "deadbeef": "f()"}))
    monkeypatch.setattr(fourbyte, "_cache_is_valid", lambda *_: True)
    with FourByteDB.open(cache, newer) as db:
        assert len(db) == 4
    cache.unlink()
    with FourByteDB.open(cache, newer) as db:  # vanished: built in memory
        assert len(db) == 4
