"""clef.eth.secp.sign_hash calls libsecp256k1 directly: byte-identical to coincurve's
PrivateKey.sign_recoverable (same RFC 6979 nonces) and recoverable to the signer's address."""

from __future__ import annotations

import coincurve
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.eth import secp

KEYS = st.integers(min_value=1, max_value=secp.SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@settings(max_examples=300)
@given(KEYS, st.binary(min_size=32, max_size=32))
def test_same_signature_as_coincurve_and_recovers_the_signer(key: bytes, digest: bytes) -> None:
    recid, r, s = secp.sign_hash(key, digest)
    expected = coincurve.PrivateKey(key).sign_recoverable(digest, hasher=None)
    assert r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid]) == expected
    assert secp.recover_address(digest, recid, r, s, require_low_s=True) == secp.address_of(key)
