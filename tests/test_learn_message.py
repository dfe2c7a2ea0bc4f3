"""The keyd -> policy worker `learn` frame: strictly validated, and it changes what decodes."""

from __future__ import annotations

import pytest

from clef.errors import ProtocolViolation
from clef.eth.hashing import keccak256
from policy.fourbyte import CustomDB, FourByteDB
from policy.txcheck import make_learner, make_validator
from sandbox.policy_protocol import Learn, ValidateTx, parse_from_keyd

SIGNATURE = "probeLearn(uint256)"
SELECTOR = "0x" + keccak256(SIGNATURE.encode())[:4].hex()


@pytest.mark.parametrize("frame", [
    {"t": "learn", "selector": SELECTOR},
    {"t": "learn", "selector": SELECTOR, "signature": ""},
    {"t": "learn", "selector": SELECTOR.upper(), "signature": SIGNATURE},
    {"t": "learn", "selector": "0x123", "signature": SIGNATURE},
    {"t": "learn", "selector": SELECTOR, "signature": 7},
    {"t": "learn", "selector": SELECTOR, "signature": "x" * 100_000},
    {"t": "learn", "selector": SELECTOR, "signature": SIGNATURE, "extra": 1},
])
def test_malformed_learn_frames_are_violations(frame: dict[str, object]) -> None:
    with pytest.raises(ProtocolViolation):
        parse_from_keyd(frame)


def test_learnt_selector_decodes_later_calldata() -> None:
    db, custom = FourByteDB.empty(), CustomDB()
    validate, learn = make_validator(db, custom), make_learner(db, custom)
    tx = {"from": "0x" + "11" * 20, "to": "0x" + "22" * 20, "gas": "0x5208", "gasPrice": "0x1",
          "data": SELECTOR + (5).to_bytes(32, "big").hex()}
    before = validate(ValidateTx(id=1, tx=tx, selector=None, chain_id=1))
    assert any("not found" in m.message for m in before.messages)
    learn(parse_from_keyd(Learn(selector=SELECTOR, signature=SIGNATURE).to_wire()))
    after = validate(ValidateTx(id=2, tx=tx, selector=None, chain_id=1))
    assert any("probeLearn(uint256: 5)" in m.message for m in after.messages), after.messages


def test_a_signature_that_does_not_hash_to_the_selector_is_not_learnt() -> None:
    db, custom = FourByteDB.empty(), CustomDB()
    learn = make_learner(db, custom)
    learn(Learn(selector=SELECTOR, signature="other(uint256)"))
    assert custom.lookup(bytes.fromhex(SELECTOR[2:])) is None
