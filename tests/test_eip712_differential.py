"""EIP-712 differential tests: random schemas and messages against eth-account (test-only oracle).

eth-account derives the primary type (the one struct nobody references) and hashes the
domain with the standard field order, so the generated documents have a single root and a
standard-order EIP712Domain; everything else (nested structs, arrays of structs, nested and
fixed arrays, every primitive family) is drawn at random.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clef.eth.eip712 import TypedData
from clef.eth.secp import sign_hash
from clef.eth.signdata import encode_signature, prepare_sign_data

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")

_INT_SIZES = [8, 16, 24, 32, 64, 128, 160, 248, 256]


@st.composite
def leaf_type(draw: st.DrawFn) -> str:
    family = draw(st.sampled_from(["uint", "int", "bytesN", "bytes", "string", "bool", "address"]))
    if family in ("uint", "int"):
        return f"{family}{draw(st.sampled_from(_INT_SIZES))}"
    if family == "bytesN":
        return f"bytes{draw(st.integers(1, 32))}"
    return family


def leaf_value(type_text: str) -> st.SearchStrategy[Any]:
    if type_text.startswith("uint"):
        bits = int(type_text[4:])
        number = st.integers(0, (1 << bits) - 1)
        return st.one_of(
            number.map(str),
            number.map(hex),
            st.integers(0, min((1 << bits) - 1, 1 << 53)),
        )
    if type_text.startswith("int"):
        bits = int(type_text[3:])
        number = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        small = st.integers(
            max(-(1 << (bits - 1)), -(1 << 53)), min((1 << (bits - 1)) - 1, 1 << 53)
        )
        return st.one_of(number.map(str), small)
    if type_text == "bytes":
        return st.binary(max_size=40).map(lambda b: "0x" + b.hex())
    if type_text.startswith("bytes"):
        size = int(type_text[5:])
        return st.binary(min_size=size, max_size=size).map(lambda b: "0x" + b.hex())
    if type_text == "string":
        return st.text(max_size=12)
    if type_text == "bool":
        return st.booleans()
    return st.tuples(st.binary(min_size=20, max_size=20), st.booleans()).map(
        lambda pair: to_checksum_address(pair[0]) if pair[1] else "0x" + pair[0].hex()
    )


@st.composite
def typed_documents(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 4))
    names = ["Primary"] + [f"S{i}" for i in range(1, count)]
    types: dict[str, list[dict[str, str]]] = {}
    for index, name in enumerate(names):
        later = names[index + 1 :]
        fields: list[dict[str, str]] = []
        # The next struct is referenced by this one, so Primary is the only root.
        must_reference = names[index + 1] if index + 1 < count else None
        width = draw(st.integers(1 if must_reference is None else 0, 4))
        kinds = [
            draw(st.one_of(leaf_type(), st.sampled_from(later) if later else leaf_type()))
            for _ in range(width)
        ]
        if must_reference is not None:
            kinds.insert(draw(st.integers(0, len(kinds))), must_reference)
        for position, base in enumerate(kinds):
            dims = draw(st.lists(st.one_of(st.just(""), st.integers(1, 3).map(str)), max_size=2))
            fields.append(
                {
                    "name": f"{name.lower()}_{position}",
                    "type": base + "".join(f"[{d}]" for d in dims),
                }
            )
        types[name] = fields

    def value_for(type_text: str, depth: int) -> Any:
        if type_text.endswith("]"):
            cut = type_text.rindex("[")
            size = type_text[cut + 1 : -1]
            length = int(size) if size else draw(st.integers(0, 2 if depth < 3 else 0))
            return [value_for(type_text[:cut], depth + 1) for _ in range(length)]
        if type_text in types:
            return {f["name"]: value_for(f["type"], depth + 1) for f in types[type_text]}
        return draw(leaf_value(type_text))

    message = value_for("Primary", 0)
    domain_fields = draw(
        st.lists(
            st.sampled_from(["name", "version", "chainId", "verifyingContract", "salt"]),
            min_size=1,
            unique=True,
        )
    )
    standard = {
        "name": ("string", st.text(min_size=1, max_size=10)),
        "version": ("string", st.text(min_size=1, max_size=4)),
        "chainId": ("uint256", st.integers(0, 1 << 64)),
        "verifyingContract": (
            "address",
            st.binary(min_size=20, max_size=20).map(to_checksum_address),
        ),
        "salt": ("bytes32", st.binary(min_size=32, max_size=32).map(lambda b: "0x" + b.hex())),
    }
    domain_types, domain = [], {}
    for key in ("name", "version", "chainId", "verifyingContract", "salt"):
        if key in domain_fields:
            type_text, strategy = standard[key]
            domain_types.append({"name": key, "type": type_text})
            domain[key] = draw(strategy)
    return {
        "types": {"EIP712Domain": domain_types, **types},
        "primaryType": "Primary",
        "domain": domain,
        "message": message,
    }


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(typed_documents())
def test_digest_matches_eth_account(doc: dict[str, Any]) -> None:
    typed = TypedData.parse(doc)
    signable = encode_typed_data(full_message=copy.deepcopy(doc))
    assert signable.version == b"\x01"
    assert typed.domain_separator() == signable.header
    assert typed.hash_struct() == signable.body
    # The canonical form another process would send keyd hashes the same.
    again = TypedData.parse(json.loads(json.dumps(typed.to_canonical_json())))
    assert again.digest() == typed.digest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(typed_documents())
def test_signature_matches_eth_account(doc: dict[str, Any]) -> None:
    expected = Account.sign_typed_data(KEY, full_message=copy.deepcopy(doc)).signature
    typed_plan = prepare_sign_data("data/typed", doc)
    hex_plan = prepare_sign_data("data/typed", "0x" + json.dumps(doc).encode().hex())
    assert typed_plan.hash == hex_plan.hash == TypedData.parse(doc).digest()
    recid, r, s = sign_hash(KEY, typed_plan.hash)
    assert encode_signature(recid, r, s, typed_plan.v_offset) == bytes(expected)
