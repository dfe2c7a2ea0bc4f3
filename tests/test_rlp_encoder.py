"""clef.eth.tx.base.rlp_encode against pyrlp (the oracle): byte-identical for nested lists of
bytes and non-negative integers of any size, and strict about anything else."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.eth.tx.base import rlp_encode

ITEMS = st.recursive(
    st.binary(max_size=80) | st.integers(min_value=0, max_value=2**300)
    | st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 2**64, b"", b"\x00", b"\x7f", b"\x80"]),
    lambda inner: st.lists(inner, max_size=6) | st.tuples(inner, inner),
    max_leaves=60,
)


@settings(max_examples=1000)
@given(ITEMS)
def test_byte_identical_to_pyrlp(item: Any) -> None:
    assert rlp_encode(item) == bytes(rlp.encode(item))


@pytest.mark.parametrize("size", [55, 56, 255, 256, 65535, 65536])
def test_long_strings_and_lists_around_the_length_boundaries(size: int) -> None:
    assert rlp_encode(b"a" * size) == bytes(rlp.encode(b"a" * size))
    items = [b"b" * (size // 4)] * 4
    assert rlp_encode(items) == bytes(rlp.encode(items))


@pytest.mark.parametrize("bad", [-1, "text", 1.5, None, {"a": 1}, bytearray(b"x")])
def test_refuses_what_is_not_bytes_ints_or_lists(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        rlp_encode(bad)
    with pytest.raises((TypeError, ValueError)):
        rlp_encode([b"ok", [bad]])
