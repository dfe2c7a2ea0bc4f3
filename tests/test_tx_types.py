"""clef.eth.tx per-type modules: differential against eth-account, tx JSON, chain ids, 7702."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams, SignerError
from clef.eth.address import to_checksum
from clef.eth.secp import SECP256K1_HALF_N, SECP256K1_N, address_of, sign_hash
from clef.eth.tx import (
    build_transaction,
    eip1559,
    eip2930,
    eip4844,
    eip7702,
    legacy,
    parse_send_tx_args,
)
from clef.eth.tx.base import (
    FeeCapTransaction,
    GasPriceTransaction,
    SignedTransaction,
    UnsignedTransaction,
)
from clef.eth.tx.eip7702 import Authorization

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
SENDER = "0x" + address_of(KEY).hex()
TO = "0x07a565b7ed7d7a678680a4c162885bedbb695fe0"
HASH = "0x010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014"

u64 = st.integers(min_value=0, max_value=2**64 - 1)
u256 = st.integers(min_value=0, max_value=2**256 - 1)
chain_ids = st.integers(min_value=1, max_value=2**64) | st.sampled_from([1, 5, 137, 11155111])
keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
addresses = st.binary(min_size=20, max_size=20)
hashes32 = st.binary(min_size=32, max_size=32)
access_lists = st.lists(st.tuples(addresses, st.lists(hashes32, max_size=3)), max_size=3)


def sign(tx: UnsignedTransaction, key: bytes = KEY) -> SignedTransaction:
    """Sign with libsecp256k1 as keyd does."""
    return tx.sign(*sign_hash(key, tx.signing_hash()))


@st.composite
def tx_fields(draw: st.DrawFn, tx_type: int) -> dict[str, Any]:
    """Random field values for one transaction type (Python ints and bytes)."""
    creation_ok = tx_type in (0, 1, 2)
    fields: dict[str, Any] = {
        "type": tx_type,
        "nonce": draw(u64),
        "gas": draw(u64),
        "to": draw(st.none() | addresses) if creation_ok else draw(addresses),
        "value": draw(u256),
        "data": draw(st.binary(max_size=200)),
    }
    if tx_type in (0, 1):
        fields["gasPrice"] = draw(u256)
    else:
        fields["maxFeePerGas"] = draw(u256)
        fields["maxPriorityFeePerGas"] = draw(u256)
    if tx_type >= 1:
        fields["accessList"] = draw(access_lists)
    if tx_type == 3:
        fields["maxFeePerBlobGas"] = draw(u256)
        fields["blobVersionedHashes"] = draw(st.lists(hashes32, min_size=1, max_size=6))
    if tx_type == 4:
        fields["authorizationList"] = [
            (
                draw(u256),
                draw(addresses),
                draw(u64),
                draw(st.integers(0, 1)),
                draw(st.integers(1, SECP256K1_N - 1)),
                draw(st.integers(1, SECP256K1_HALF_N)),
            )
            for _ in range(draw(st.integers(1, 3)))
        ]
    return fields


def request_json(fields: dict[str, Any], sender: str, chain_id: int | None) -> dict[str, Any]:
    """The SendTxArgs JSON a client would send for these fields."""
    req: dict[str, Any] = {
        "from": sender,
        "gas": hex(fields["gas"]),
        "nonce": hex(fields["nonce"]),
        "value": hex(fields["value"]),
        "input": "0x" + fields["data"].hex(),
    }
    if fields["to"] is not None:
        req["to"] = "0x" + fields["to"].hex()
    if chain_id is not None:
        req["chainId"] = hex(chain_id)
    for key in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas"):
        if key in fields:
            req[key] = hex(fields[key])
    if "accessList" in fields:
        req["accessList"] = [
            {"address": "0x" + a.hex(), "storageKeys": ["0x" + k.hex() for k in ks]}
            for a, ks in fields["accessList"]
        ]
    if "blobVersionedHashes" in fields:
        req["blobVersionedHashes"] = ["0x" + h.hex() for h in fields["blobVersionedHashes"]]
    if "authorizationList" in fields:
        req["authorizationList"] = [
            {
                "chainId": hex(c),
                "address": "0x" + a.hex(),
                "nonce": hex(n),
                "yParity": hex(y),
                "r": hex(r),
                "s": hex(s),
            }
            for c, a, n, y, r, s in fields["authorizationList"]
        ]
    return req


def oracle_dict(fields: dict[str, Any], chain_id: int) -> dict[str, Any]:
    """The same transaction as eth-account wants it (built independently of our parser)."""
    tx: dict[str, Any] = {
        "nonce": fields["nonce"],
        "gas": fields["gas"],
        "value": fields["value"],
        "data": fields["data"],
    }
    if fields["to"] is not None:
        tx["to"] = to_checksum(fields["to"])
    if fields["type"] == 0:
        if chain_id:
            tx["chainId"] = chain_id
    else:
        tx["type"] = fields["type"]
        tx["chainId"] = chain_id
    for key in ("gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas"):
        if key in fields:
            tx[key] = fields[key]
    if "accessList" in fields:
        tx["accessList"] = [
            {"address": to_checksum(a), "storageKeys": ["0x" + k.hex() for k in ks]}
            for a, ks in fields["accessList"]
        ]
    if "blobVersionedHashes" in fields:
        tx["blobVersionedHashes"] = ["0x" + h.hex() for h in fields["blobVersionedHashes"]]
    if "authorizationList" in fields:
        tx["authorizationList"] = [
            {"chainId": c, "address": to_checksum(a), "nonce": n, "yParity": y, "r": r, "s": s}
            for c, a, n, y, r, s in fields["authorizationList"]
        ]
    return tx


def check_against_oracle(
    fields: dict[str, Any], key: bytes, chain_id: int, send_chain_id: bool
) -> SignedTransaction:
    """Build, sign and compare raw bytes, hash and sender with eth-account."""
    sender = "0x" + address_of(key).hex()
    args = parse_send_tx_args(request_json(fields, sender, chain_id if send_chain_id else None))
    assert args.tx_type == fields["type"]
    unsigned = build_transaction(args, chain_id)
    signed = sign(unsigned, key)
    expected = Account.sign_transaction(oracle_dict(fields, chain_id), key)
    assert signed.raw == bytes(expected.raw_transaction)
    assert signed.hash == bytes(expected.hash)
    assert (signed.r, signed.s, signed.v) == (expected.r, expected.s, expected.v)
    assert Account.recover_transaction(signed.raw) == to_checksum(address_of(key))
    assert signed.sender() == address_of(key)
    return signed


@pytest.mark.parametrize("tx_type", [0, 1, 2, 3, 4])
@settings(max_examples=100, deadline=None)
@given(data=st.data(), key=keys, chain_id=chain_ids, send_chain_id=st.booleans())
def test_differential_against_eth_account(
    tx_type: int, data: st.DataObject, key: bytes, chain_id: int, send_chain_id: bool
) -> None:
    signed = check_against_oracle(data.draw(tx_fields(tx_type)), key, chain_id, send_chain_id)
    assert signed.unsigned.tx_type == tx_type
    if tx_type:
        decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
        assert decoded["chainId"] == chain_id


@settings(max_examples=25, deadline=None)
@given(fields=tx_fields(0), key=keys)
def test_legacy_chain_id_zero_is_unprotected(fields: dict[str, Any], key: bytes) -> None:
    signed = check_against_oracle(fields, key, 0, send_chain_id=False)
    assert signed.v in (27, 28)
    assert "chainId" not in signed.to_json()


def test_legacy_eip155_v() -> None:
    args = parse_send_tx_args({"from": SENDER, "to": TO, "gasPrice": "0x1"})
    for chain_id in (1, 5, 2**40):
        signed = sign(build_transaction(args, chain_id))
        assert signed.v == 35 + 2 * chain_id + signed.y_parity
        assert signed.to_json()["chainId"] == hex(chain_id)


# ---------------------------------------------------------------- tx JSON

COMMON_HEAD = [
    "type",
    "chainId",
    "nonce",
    "to",
    "gas",
    "gasPrice",
    "maxPriorityFeePerGas",
    "maxFeePerGas",
]


@pytest.mark.parametrize(
    ("req", "keys"),
    [
        ({"gasPrice": "0x1"}, [*COMMON_HEAD, "value", "input", "v", "r", "s", "hash"]),
        (
            {"gasPrice": "0x1", "accessList": []},
            [*COMMON_HEAD, "value", "input", "accessList", "v", "r", "s", "yParity", "hash"],
        ),
        (
            {"maxFeePerGas": "0x1"},
            [*COMMON_HEAD, "value", "input", "accessList", "v", "r", "s", "yParity", "hash"],
        ),
        (
            {
                "maxFeePerGas": "0x2",
                "maxPriorityFeePerGas": "0x1",
                "maxFeePerBlobGas": "0x3",
                "blobVersionedHashes": [HASH],
            },
            [
                *COMMON_HEAD,
                "maxFeePerBlobGas",
                "value",
                "input",
                "accessList",
                "blobVersionedHashes",
                "v",
                "r",
                "s",
                "yParity",
                "hash",
            ],
        ),
        (
            {
                "maxFeePerGas": "0x2",
                "maxPriorityFeePerGas": "0x1",
                "authorizationList": [
                    {
                        "chainId": "0x1",
                        "address": TO,
                        "nonce": "0x0",
                        "yParity": "0x1",
                        "r": "0x5",
                        "s": "0x6",
                    }
                ],
            },
            [
                *COMMON_HEAD,
                "value",
                "input",
                "accessList",
                "authorizationList",
                "v",
                "r",
                "s",
                "yParity",
                "hash",
            ],
        ),
    ],
)
def test_tx_json_field_order(req: dict[str, Any], keys: list[str]) -> None:
    args = parse_send_tx_args({"from": SENDER, "to": TO, **req})
    out = sign(build_transaction(args, 1)).to_json()
    assert list(out) == keys


def test_tx_json_values_legacy() -> None:
    args = parse_send_tx_args(
        {
            "from": SENDER,
            "to": TO.upper().replace("0X", "0x"),
            "gas": "0x333",
            "gasPrice": "0x1",
            "value": "0x0",
            "data": "0x4401a6e4",
        }
    )
    signed = sign(build_transaction(args, 1))
    out = signed.to_json()
    assert out["type"] == "0x0" and out["chainId"] == "0x1"
    assert out["to"] == TO  # lowercase, as geth's common.Address marshals
    assert out["gasPrice"] == "0x1"
    assert out["maxPriorityFeePerGas"] is None and out["maxFeePerGas"] is None
    assert out["input"] == "0x4401a6e4"
    assert out["v"] in ("0x25", "0x26")
    assert out["r"] == hex(signed.r) and out["s"] == hex(signed.s)
    assert out["hash"] == "0x" + signed.hash.hex()
    assert "yParity" not in out


def test_tx_json_values_dynamic_fee() -> None:
    args = parse_send_tx_args(
        {
            "from": SENDER,
            "to": TO,
            "maxFeePerGas": "0x10",
            "maxPriorityFeePerGas": "0x2",
            "gasPrice": "0x5",
        }
    )
    signed = sign(build_transaction(args, 7))
    out = signed.to_json()
    assert out["gasPrice"] is None  # gasPrice is not signed for type 2 (the policy warns)
    assert (out["maxPriorityFeePerGas"], out["maxFeePerGas"]) == ("0x2", "0x10")
    assert out["accessList"] == []
    assert out["chainId"] == "0x7"
    assert out["v"] == out["yParity"] == hex(signed.y_parity)


def test_creation_tx_json_has_null_to() -> None:
    args = parse_send_tx_args({"from": SENDER, "maxFeePerGas": "0x1", "data": "0x6000"})
    assert sign(build_transaction(args, 1)).to_json()["to"] is None


def test_missing_fee_fields_sign_as_zero() -> None:
    # The reference's behaviour; the policy worker raises CRITICAL for these requests.
    legacy_tx = build_transaction(parse_send_tx_args({"from": SENDER, "to": TO}), 1)
    assert isinstance(legacy_tx, legacy.LegacyTransaction) and legacy_tx.gas_price == 0
    tip_only = build_transaction(
        parse_send_tx_args({"from": SENDER, "to": TO, "maxPriorityFeePerGas": "0x5"}), 1
    )
    assert isinstance(tip_only, legacy.LegacyTransaction) and tip_only.gas_price == 0
    dyn = build_transaction(
        parse_send_tx_args({"from": SENDER, "to": TO, "maxFeePerGas": "0x5"}), 1
    )
    assert isinstance(dyn, eip1559.DynamicFeeTransaction) and dyn.max_priority_fee_per_gas == 0


# ---------------------------------------------------------------- chain id


@pytest.mark.parametrize(
    "extra",
    [
        {"gasPrice": "0x1"},
        {"accessList": []},
        {"maxFeePerGas": "0x1"},
        {
            "maxFeePerGas": "0x1",
            "maxPriorityFeePerGas": "0x1",
            "maxFeePerBlobGas": "0x1",
            "blobVersionedHashes": [HASH],
        },
        {
            "maxFeePerGas": "0x1",
            "maxPriorityFeePerGas": "0x1",
            "authorizationList": [
                {
                    "chainId": "0x0",
                    "address": TO,
                    "nonce": "0x0",
                    "yParity": "0x0",
                    "r": "0x1",
                    "s": "0x1",
                }
            ],
        },
    ],
)
def test_chain_id_filled_in_or_refused(extra: dict[str, Any]) -> None:
    args = parse_send_tx_args({"from": SENDER, "to": TO, **extra})
    assert build_transaction(args, 11155111).chain_id == 11155111
    same = parse_send_tx_args({"from": SENDER, "to": TO, "chainId": "0xaa36a7", **extra})
    assert build_transaction(same, 11155111).chain_id == 11155111
    # A caller, or a UI modifying the transaction, cannot switch the chain.
    other = parse_send_tx_args({"from": SENDER, "to": TO, "chainId": "0x1", **extra})
    with pytest.raises(SignerError) as info:
        build_transaction(other, 11155111)
    assert info.value.message == (
        "requested chainid 1 does not match the configuration of the signer"
    )


@pytest.mark.parametrize("module", [legacy, eip2930, eip1559, eip4844, eip7702])
def test_per_type_builder_refuses_other_types(module: Any) -> None:
    args = parse_send_tx_args(
        {
            "from": SENDER,
            "to": TO,
            "gasPrice": "0x1",
            "accessList": [],
            "maxFeePerGas": "0x1",
            "maxPriorityFeePerGas": "0x1",
            "maxFeePerBlobGas": "0x1",
            "blobVersionedHashes": [HASH],
        }
    )
    if module is eip4844:
        args = parse_send_tx_args({"from": SENDER, "to": TO, "gasPrice": "0x1"})
    with pytest.raises(ValueError, match="not a"):
        module.build_transaction(args, 1)


def test_configured_chain_id_checked() -> None:
    args = parse_send_tx_args({"from": SENDER, "to": TO})
    with pytest.raises(InvalidParams, match="configured chain id"):
        build_transaction(args, -1)


# ---------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    ("parity", "r", "s", "what"),
    [
        (2, 1, 1, "y parity"),
        (0, 0, 1, "r out"),
        (0, SECP256K1_N, 1, "r out"),
        (0, 1, 0, "s out"),
        (0, 1, SECP256K1_HALF_N + 1, "s out"),
        (True, 1, 1, "y parity"),
    ],
)
def test_sign_refuses_non_canonical_signatures(parity: int, r: int, s: int, what: str) -> None:
    tx = build_transaction(parse_send_tx_args({"from": SENDER, "to": TO}), 1)
    with pytest.raises(InvalidParams, match=what):
        tx.sign(parity, r, s)


def test_signed_transaction_is_frozen() -> None:
    signed = sign(build_transaction(parse_send_tx_args({"from": SENDER, "to": TO}), 1))
    with pytest.raises(AttributeError):
        signed.raw = b""  # type: ignore[misc]


def test_typed_transactions_validate_on_construction() -> None:
    with pytest.raises(InvalidParams, match="invalid to: a blob"):
        eip4844.BlobTransaction(1, 0, 0, None, 0, b"", 0, 0, (), 0, (bytes(32),))
    with pytest.raises(InvalidParams, match="blobVersionedHashes"):
        eip4844.BlobTransaction(1, 0, 0, bytes(20), 0, b"", 0, 0, (), 0, ())
    with pytest.raises(InvalidParams, match="invalid to: a set-code"):
        eip7702.SetCodeTransaction(
            1, 0, 0, None, 0, b"", 0, 0, (), (Authorization(1, bytes(20), 0, 0, 1, 1),)
        )
    with pytest.raises(InvalidParams, match="invalid gasPrice"):
        eip2930.AccessListTransaction(1, 0, 0, None, 0, b"", -1, ())
    with pytest.raises(InvalidParams, match="invalid nonce"):
        legacy.LegacyTransaction(1, 2**64, 0, None, 0, b"", 0)
    with pytest.raises(InvalidParams, match="invalid to"):
        legacy.LegacyTransaction(1, 0, 0, b"\x00" * 19, 0, b"", 0)


def test_shared_fee_models_are_not_transaction_types() -> None:
    # The fee-model bases in base.py carry no type byte: building one would sign an untyped blob.
    with pytest.raises(TypeError, match="not a concrete transaction type"):
        GasPriceTransaction(1, 0, 0, None, 0, b"", 0)
    with pytest.raises(TypeError, match="not a concrete transaction type"):
        FeeCapTransaction(1, 0, 0, None, 0, b"", 0, 0, ())


def test_field_order_and_fee_models_per_type() -> None:
    # Positional construction is part of the API: the shared bases must keep each type's order.
    def names(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    common = ["chain_id", "nonce", "gas", "to", "value", "data"]
    fees = ["max_priority_fee_per_gas", "max_fee_per_gas", "access_list"]
    assert names(legacy.LegacyTransaction) == [*common, "gas_price"]
    assert names(eip2930.AccessListTransaction) == [*common, "gas_price", "access_list"]
    assert names(eip1559.DynamicFeeTransaction) == [*common, *fees]
    assert names(eip4844.BlobTransaction) == [
        *common, *fees, "max_fee_per_blob_gas", "blob_versioned_hashes"
    ]
    assert names(eip7702.SetCodeTransaction) == [*common, *fees, "authorization_list"]


# ---------------------------------------------------------------- EIP-7702


def signed_authorization(chain_id: int, delegate: str, nonce: int, key: bytes = KEY) -> Any:
    """An authorization signed by eth-account (the oracle)."""
    return Account.sign_authorization(
        {"chainId": chain_id, "address": delegate, "nonce": nonce}, key
    )


def auth_json(auth: Any) -> dict[str, str]:
    """eth-account's SignedSetCodeAuthorization in execution-API JSON."""
    return {
        "chainId": hex(auth.chain_id),
        "address": "0x" + bytes(auth.address).hex(),
        "nonce": hex(auth.nonce),
        "yParity": hex(auth.y_parity),
        "r": hex(auth.r),
        "s": hex(auth.s),
    }


@settings(max_examples=20, deadline=None)
@given(key=keys, chain_id=st.sampled_from([0, 1, 7]), nonce=u64, delegate=addresses)
def test_authorization_signer_matches_eth_account(
    key: bytes, chain_id: int, nonce: int, delegate: bytes
) -> None:
    auth = signed_authorization(chain_id, to_checksum(delegate), nonce, key)
    ours = Authorization.from_json(auth_json(auth), "authorizationList[0]")
    assert ours.signing_hash() == bytes(auth.authorization_hash)
    assert ours.recover_signer() == address_of(key)


def test_authorization_list_preserved_into_raw_and_json() -> None:
    auths = [signed_authorization(1, TO, 9), signed_authorization(0, to_checksum(bytes(20)), 0)]
    req = {
        "from": SENDER,
        "to": TO,
        "maxFeePerGas": "0x10",
        "maxPriorityFeePerGas": "0x1",
        "authorizationList": [auth_json(a) for a in auths],
    }
    args = parse_send_tx_args(req)
    signed = sign(build_transaction(args, 1))
    assert signed.to_json()["authorizationList"] == req["authorizationList"]
    assert args.to_json()["authorizationList"] == req["authorizationList"]
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    got = [
        (a["chainId"], a["address"], a["nonce"], a["yParity"], a["r"], a["s"])
        for a in decoded["authorizationList"]
    ]
    assert got == [(a.chain_id, HexBytes(a.address), a.nonce, a.y_parity, a.r, a.s) for a in auths]
    oracle = Account.sign_transaction(
        {
            "type": 4,
            "chainId": 1,
            "to": to_checksum(bytes.fromhex(TO[2:])),
            "nonce": 0,
            "gas": 0,
            "value": 0,
            "data": b"",
            "maxFeePerGas": 16,
            "maxPriorityFeePerGas": 1,
            "authorizationList": auths,
            "accessList": [],
        },
        KEY,
    )
    assert signed.raw == bytes(oracle.raw_transaction)
    for auth in args.authorization_list or ():
        assert auth.recover_signer() == address_of(KEY)


def test_invalid_authorization_bytes_survive_signing() -> None:
    # An authorization EIP-7702 would skip (parity 27, high s) is still carried verbatim.
    weird = {
        "chainId": "0x1",
        "address": TO,
        "nonce": "0x0",
        "yParity": "0x1b",
        "r": hex(SECP256K1_N + 1),
        "s": hex(SECP256K1_N - 1),
    }
    args = parse_send_tx_args(
        {
            "from": SENDER,
            "to": TO,
            "maxFeePerGas": "0x1",
            "maxPriorityFeePerGas": "0x1",
            "authorizationList": [weird],
        }
    )
    signed = sign(build_transaction(args, 1))
    assert signed.to_json()["authorizationList"] == [weird]
    payload = rlp.decode(signed.raw[1:])
    item = payload[9][0]
    assert [rlp.sedes.big_endian_int.deserialize(item[i]) for i in (0, 2, 3, 4, 5)] == [
        1,
        0,
        27,
        SECP256K1_N + 1,
        SECP256K1_N - 1,
    ]
    assert item[1] == bytes.fromhex(TO[2:])
    assert (args.authorization_list or ())[0].recover_signer() is None


@pytest.mark.parametrize(
    ("y_parity", "r", "s"),
    [
        (2, 1, 1),
        (0, 0, 1),
        (0, SECP256K1_N, 1),
        (0, 1, 0),
        (0, 1, SECP256K1_HALF_N + 1),
        (0, 5, 1),
    ],  # x = 5 is not on the curve
)
def test_invalid_authorization_signatures_recover_none(y_parity: int, r: int, s: int) -> None:
    assert Authorization(1, bytes(20), 0, y_parity, r, s).recover_signer() is None


def test_high_s_authorization_twin_is_rejected() -> None:
    auth = signed_authorization(1, TO, 0)
    good = Authorization(
        auth.chain_id, bytes(auth.address), auth.nonce, auth.y_parity, auth.r, auth.s
    )
    assert good.recover_signer() == address_of(KEY)
    twin = Authorization(
        good.chain_id, good.address, good.nonce, good.y_parity ^ 1, good.r, SECP256K1_N - good.s
    )
    assert twin.recover_signer() is None
