"""clef.eth.tx.args: SendTxArgs parsing, type inference, UI marshalling and hostile input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams, SignerError
from clef.eth.address import MixedcaseAddress
from clef.eth.tx import build_transaction
from clef.eth.tx.args import (
    AMBIGUOUS_DATA_INPUT,
    SendTxArgs,
    check_chain_id,
    parse_send_tx_args,
)
from clef.eth.tx.base import (
    MAX_ACCESS_LIST_TUPLES,
    MAX_AUTHORIZATIONS,
    MAX_BLOB_HASHES,
    MAX_DATA_BYTES,
    MAX_STORAGE_KEYS,
    AccessTuple,
)
from clef.eth.tx.eip7702 import Authorization

SHARED = Path(__file__).resolve().parents[2] / "shared"
REQUESTS = SHARED / "conformance" / "geth" / "clef-requests"

FROM = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
TO = "0x07a565b7ed7d7a678680a4c162885bedbb695fe0"
HASH = "0x010657f37554c781402a22917dee2f75def7ab966d7b770905398eba3c444014"
AUTH = {
    "chainId": "0x1",
    "address": "0x" + "11" * 20,
    "nonce": "0x3",
    "yParity": "0x0",
    "r": "0x" + "ab" * 32,
    "s": "0x" + "12" * 32,
}


def base(**extra: Any) -> dict[str, Any]:
    """A minimal legacy request plus the given keys."""
    req: dict[str, Any] = {"from": FROM, "to": TO, "gas": "0x5208", "gasPrice": "0x1"}
    req.update(extra)
    return req


def blob(**extra: Any) -> dict[str, Any]:
    """A complete blob request, with the given keys overriding."""
    req = base(
        gasPrice=None,
        maxFeePerGas="0x10",
        maxPriorityFeePerGas="0x1",
        maxFeePerBlobGas="0x5",
        blobVersionedHashes=[HASH],
    )
    req.update(extra)
    return req


def setcode(**extra: Any) -> dict[str, Any]:
    """A complete set-code request, with the given keys overriding."""
    req = base(
        gasPrice=None, maxFeePerGas="0x10", maxPriorityFeePerGas="0x1", authorizationList=[AUTH]
    )
    req.update(extra)
    return req


# ---------------------------------------------------------------- fixtures and inference


@pytest.mark.parametrize("path", sorted(REQUESTS.glob("*.json")), ids=lambda p: p.name)
def test_clef_request_fixtures_parse(path: Path) -> None:
    request = json.loads(path.read_text())
    args = parse_send_tx_args(request["params"][0])
    expected_type = {
        "sign_normal_exp_ok.json": 0,
        "sign_bad_checksum_exp_fail.json": 0,
        "sign_1559_tx.json": 2,
        "sign_1559_missing_field_exp_fail.json": 2,  # maxFeePerGas only: tip is 0 (policy warns)
        "sign_1559_missing_maxfeepergas_exp_fail.json": 0,  # tip only: legacy (policy warns)
    }[path.name]
    assert args.tx_type == expected_type
    assert args.data is not None and args.data[:4].hex() == "4401a6e4"
    assert parse_send_tx_args(args.to_json()) == args
    # The validation failures these fixtures expect are the policy worker's; the request
    # itself is well-formed and builds.
    build_transaction(args, 1)


def test_bad_checksum_fixture_keeps_the_callers_spelling() -> None:
    request = json.loads((REQUESTS / "sign_bad_checksum_exp_fail.json").read_text())
    args = parse_send_tx_args(request["params"][0])
    assert args.to is not None and not args.to.valid_checksum()
    assert args.to_json()["to"] == "0x8a8eafb1cf62bfbeb1741769dae1a9dd47996192"


@pytest.mark.parametrize(
    ("req", "tx_type"),
    [
        (base(), 0),
        (base(accessList=[]), 1),
        (base(gasPrice=None, maxFeePerGas="0x1"), 2),
        (base(maxFeePerGas="0x1", accessList=[]), 2),
        (base(accessList=None), 0),
        (blob(), 3),
        (blob(accessList=[]), 3),
        (setcode(), 4),
        (setcode(accessList=[]), 4),
    ],
)
def test_type_inference(req: dict[str, Any], tx_type: int) -> None:
    assert parse_send_tx_args(req).tx_type == tx_type


@pytest.mark.parametrize(
    "req",
    [base(type="0x0"), base(accessList=[], type="0x1"), blob(type="0x3"), setcode(type="0x4")],
)
def test_matching_explicit_type_accepted(req: dict[str, Any]) -> None:
    parse_send_tx_args(req)


@pytest.mark.parametrize(
    ("req", "declared", "inferred"),
    [
        (base(type="0x2"), "0x2", "0x0"),
        (base(type="0x4"), "0x4", "0x0"),  # a 7702 type without authorizations
        (base(maxFeePerGas="0x1", type="0x4"), "0x4", "0x2"),
        (base(accessList=[], type="0x0"), "0x0", "0x1"),
        (blob(type="0x1"), "0x1", "0x3"),
        (setcode(type="0x2"), "0x2", "0x4"),
    ],
)
def test_contradicting_type_refused(req: dict[str, Any], declared: str, inferred: str) -> None:
    with pytest.raises(InvalidParams, match=f"invalid type: {declared} .* type {inferred} "):
        parse_send_tx_args(req)


@pytest.mark.parametrize("bad", ["0x", "1", "0x01", "0x100", 2, True, [], {}])
def test_malformed_type_refused(bad: object) -> None:
    with pytest.raises(InvalidParams, match="invalid type"):
        parse_send_tx_args(base(type=bad))


def test_null_type_ignored() -> None:
    assert parse_send_tx_args(base(type=None)).tx_type == 0


def test_unknown_keys_ignored() -> None:
    plain = parse_send_tx_args(base())
    noisy = parse_send_tx_args(
        base(v="0x1b", r="0x1", s="0x2", hash="0x" + "00" * 32, yParity="0x0", foo=[1, {"x": 2}])
    )
    assert plain == noisy


def test_defaults() -> None:
    args = parse_send_tx_args({"from": FROM})
    assert (args.gas, args.value, args.nonce) == (0, 0, 0)
    assert args.to is None and args.data is None and args.gas_price is None
    assert args.is_creation and args.calldata == b""


@pytest.mark.parametrize("to", [None, "0x"])
def test_creation_spellings(to: object) -> None:
    req = base(to=to)
    assert parse_send_tx_args(req).to is None
    del req["to"]
    assert parse_send_tx_args(req).to is None


def test_missing_from_refused() -> None:
    with pytest.raises(InvalidParams, match="from"):
        parse_send_tx_args({"to": TO})
    with pytest.raises(InvalidParams, match="from"):
        parse_send_tx_args({"from": None, "to": TO})


# ---------------------------------------------------------------- keys, case and duplicates


def test_keys_match_case_insensitively() -> None:
    req = {
        "FROM": FROM,
        "To": TO,
        "GAS": "0x5208",
        "maxfeepergas": "0x10",
        "MaxPriorityFeePerGas": "0x1",
        "INPUT": "0xabcd",
        "ChainID": "0x1",
        "ACCESSLIST": [{"ADDRESS": TO, "storagekeys": [HASH]}],
    }
    args = parse_send_tx_args(req)
    assert args.tx_type == 2
    assert args.data == bytes.fromhex("abcd")
    assert args.chain_id == 1
    assert args.access_list == (AccessTuple(bytes.fromhex(TO[2:]), (bytes.fromhex(HASH[2:]),)),)


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"from": FROM, "FROM": FROM}, "from"),
        (base(GasPrice="0x1"), "gasPrice"),
        (base(TO=None), "to"),  # even when one of the two is null
        (base(accessList=[{"address": TO, "Address": TO, "storageKeys": []}]), "address"),
        (setcode(authorizationList=[{**AUTH, "R": "0x1"}]), "authorizationList\\[0\\].r"),
    ],
)
def test_duplicate_keys_differing_in_case_refused(req: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParams, match=f"{field}: duplicate"):
        parse_send_tx_args(req)


@pytest.mark.parametrize(
    ("req", "match"),
    [
        (base(**{"acce\u017f\u017fList": []}), "accessList: non-ASCII"),  # long s
        (
            base(accessList=[{"address": TO, "storage\u212aeys": []}]),  # Kelvin sign
            "accessList\\[0\\].storageKeys: non-ASCII",
        ),
    ],
)
def test_non_ascii_case_folded_keys_refused(req: dict[str, Any], match: str) -> None:
    # Go's decoder folds these onto the field; we refuse rather than guess.
    with pytest.raises(InvalidParams, match=match):
        parse_send_tx_args(req)


def test_other_non_ascii_keys_ignored() -> None:
    assert parse_send_tx_args(base(**{"g\u00e4s": "0x1"})).gas == 0x5208


# ---------------------------------------------------------------- data and input


def test_input_moved_to_data() -> None:
    args = parse_send_tx_args(base(input="0xabcd"))
    assert args.data == bytes.fromhex("abcd")
    out = args.to_json()
    assert out["data"] == "0xabcd" and "input" not in out


def test_data_and_input_identical_accepted() -> None:
    assert parse_send_tx_args(base(data="0xab", input="0xab")).data == b"\xab"


@pytest.mark.parametrize(("data", "inp"), [("0x01", "0x02"), ("0x", "0x00"), ("0xab", "0x")])
def test_data_and_input_different_refused(data: str, inp: str) -> None:
    with pytest.raises(SignerError) as info:
        parse_send_tx_args(base(data=data, input=inp))
    assert info.value.message == AMBIGUOUS_DATA_INPUT
    assert info.value.code == -32000


def test_empty_data_kept_present() -> None:
    args = parse_send_tx_args(base(data="0x"))
    assert args.data == b""
    assert args.to_json()["data"] == "0x"
    assert "data" not in parse_send_tx_args(base()).to_json()


# ---------------------------------------------------------------- hostile encodings

QUANTITY_FIELDS = [
    "gas",
    "gasPrice",
    "maxFeePerGas",
    "maxPriorityFeePerGas",
    "value",
    "nonce",
    "chainId",
]


@pytest.mark.parametrize("field", QUANTITY_FIELDS)
@pytest.mark.parametrize(
    "bad",
    ["0x01", "0x00", "01", "", "0x", "0xg", "0x1 ", " 0x1", 1, 1.5, True, [], {}, "0x" + "f" * 65],
)
def test_bad_quantities_name_the_field(field: str, bad: object) -> None:
    with pytest.raises(InvalidParams, match=f"invalid {field}"):
        parse_send_tx_args(base(**{field: bad}))


@pytest.mark.parametrize("field", ["gas", "nonce"])
def test_64_bit_fields(field: str) -> None:
    assert getattr(parse_send_tx_args(base(**{field: "0x" + "f" * 16})), field) == 2**64 - 1
    with pytest.raises(InvalidParams, match=f"invalid {field}: hex number > 64 bits"):
        parse_send_tx_args(base(**{field: "0x1" + "0" * 16}))


def test_256_bit_value() -> None:
    assert parse_send_tx_args(base(value="0x" + "f" * 64)).value == 2**256 - 1
    with pytest.raises(InvalidParams, match="invalid value: hex number > 256 bits"):
        parse_send_tx_args(base(value="0x1" + "0" * 64))


@pytest.mark.parametrize("field", ["data", "input"])
@pytest.mark.parametrize("bad", ["0xabc", "abcd", "0xzz", 12, 1.5, [], True])
def test_bad_bytes_name_the_field(field: str, bad: object) -> None:
    with pytest.raises(InvalidParams, match=f"invalid {field}"):
        parse_send_tx_args(base(**{field: bad}))


@pytest.mark.parametrize("field", ["data", "input"])
def test_data_size_bound(field: str) -> None:
    parse_send_tx_args(base(**{field: "0x" + "00" * MAX_DATA_BYTES}))
    with pytest.raises(InvalidParams, match=f"invalid {field}: longer than"):
        parse_send_tx_args(base(**{field: "0x" + "00" * (MAX_DATA_BYTES + 1)}))


@pytest.mark.parametrize("field", ["from", "to"])
@pytest.mark.parametrize(
    "bad", ["0x1234", TO[2:], "0X" + TO[2:], TO + "00", "0x" + "g" * 40, 5, [], {"a": 1}]
)
def test_bad_addresses_name_the_field(field: str, bad: object) -> None:
    with pytest.raises(InvalidParams, match=f"invalid {field}"):
        parse_send_tx_args(base(**{field: bad}))


@pytest.mark.parametrize("obj", [None, [], "x", 1, [base()]])
def test_not_an_object(obj: object) -> None:
    with pytest.raises(InvalidParams, match="cannot unmarshal"):
        parse_send_tx_args(obj)


def test_non_string_key() -> None:
    with pytest.raises(InvalidParams, match="key"):
        bad: dict[object, object] = dict(base().items())
        bad[1] = "x"
        parse_send_tx_args(bad)


@pytest.mark.parametrize(
    ("access_list", "field"),
    [
        ({}, "accessList"),
        ("0x", "accessList"),
        ([1], "accessList\\[0\\]"),
        ([{"address": TO}], "accessList\\[0\\]: missing required field 'storageKeys'"),
        ([{"storageKeys": []}], "accessList\\[0\\]: missing required field 'address'"),
        ([{"address": TO, "storageKeys": None}], "missing required field 'storageKeys'"),
        ([{"address": "0x12", "storageKeys": []}], "accessList\\[0\\].address"),
        ([{"address": TO, "storageKeys": "0x"}], "accessList\\[0\\].storageKeys"),
        ([{"address": TO, "storageKeys": [HASH, "0x12"]}], "accessList\\[0\\].storageKeys\\[1\\]"),
        ([{"address": TO, "storageKeys": [HASH + "0"]}], "accessList\\[0\\].storageKeys\\[0\\]"),
    ],
)
def test_bad_access_lists(access_list: object, field: str) -> None:
    with pytest.raises(InvalidParams, match=field):
        parse_send_tx_args(base(accessList=access_list))


def test_access_list_bounds() -> None:
    tuple_ = {"address": TO, "storageKeys": []}
    parse_send_tx_args(base(accessList=[tuple_] * MAX_ACCESS_LIST_TUPLES))
    with pytest.raises(InvalidParams, match="accessList: too many items"):
        parse_send_tx_args(base(accessList=[tuple_] * (MAX_ACCESS_LIST_TUPLES + 1)))
    with pytest.raises(InvalidParams, match="storageKeys: too many items"):
        parse_send_tx_args(
            base(accessList=[{"address": TO, "storageKeys": [HASH] * (MAX_STORAGE_KEYS + 1)}])
        )
    half = {"address": TO, "storageKeys": [HASH] * (MAX_STORAGE_KEYS // 2 + 1)}
    with pytest.raises(InvalidParams, match=r"more than \d+ storage keys"):
        parse_send_tx_args(base(accessList=[half, half]))


def test_huge_list_is_refused_before_items_are_parsed() -> None:
    # A million garbage items: the length check comes first, so this is cheap and names the field.
    garbage: list[object] = [None] * 1_000_000
    for field in ("accessList", "blobVersionedHashes", "authorizationList"):
        with pytest.raises(InvalidParams, match=f"{field}: too many items"):
            parse_send_tx_args(blob(**{field: garbage}))


def test_blob_and_authorization_bounds() -> None:
    parse_send_tx_args(blob(blobVersionedHashes=[HASH] * MAX_BLOB_HASHES))
    parse_send_tx_args(setcode(authorizationList=[AUTH] * MAX_AUTHORIZATIONS))
    with pytest.raises(InvalidParams, match="authorizationList: too many items"):
        parse_send_tx_args(setcode(authorizationList=[AUTH] * (MAX_AUTHORIZATIONS + 1)))


# ---------------------------------------------------------------- type-specific rules


@pytest.mark.parametrize("field", ["blobs", "commitments", "proofs", "blobVersion", "BLOBS"])
def test_blob_sidecars_refused(field: str) -> None:
    with pytest.raises(InvalidParams, match="blob sidecars are not supported"):
        parse_send_tx_args(blob(**{field: ["0x00"]}))


def test_null_sidecar_fields_ignored() -> None:
    parse_send_tx_args(blob(blobs=None, commitments=None, proofs=None))


@pytest.mark.parametrize(
    "req", [base(maxFeePerBlobGas="0x1"), base(maxFeePerGas="0x1", maxFeePerBlobGas="0x1")]
)
def test_blob_fee_on_non_blob_tx_refused(req: dict[str, Any]) -> None:
    with pytest.raises(InvalidParams, match="invalid maxFeePerBlobGas"):
        parse_send_tx_args(req)


def test_blob_without_recipient_gives_reference_error() -> None:
    with pytest.raises(SignerError) as info:
        parse_send_tx_args(blob(to=None))
    assert info.value.message == "transaction recipient must be set for blob transactions"


@pytest.mark.parametrize("field", ["maxFeePerGas", "maxPriorityFeePerGas", "maxFeePerBlobGas"])
def test_blob_missing_fee_is_clean_error(field: str) -> None:
    with pytest.raises(InvalidParams, match=f"missing {field}"):
        parse_send_tx_args(blob(**{field: None}))


@pytest.mark.parametrize("field", ["maxFeePerGas", "maxPriorityFeePerGas"])
def test_setcode_missing_fee_is_clean_error(field: str) -> None:
    with pytest.raises(InvalidParams, match=f"missing {field}"):
        parse_send_tx_args(setcode(**{field: None}))


def test_blob_chain_id_optional() -> None:
    args = parse_send_tx_args(blob())
    assert args.chain_id is None
    assert build_transaction(args, 5).chain_id == 5


def test_empty_blob_hashes_refused() -> None:
    with pytest.raises(InvalidParams, match="blobVersionedHashes: a blob transaction needs"):
        parse_send_tx_args(blob(blobVersionedHashes=[]))


@pytest.mark.parametrize("bad", [["0x01"], [HASH[:-2]], "0x", [1], {}])
def test_bad_blob_hashes(bad: object) -> None:
    with pytest.raises(InvalidParams, match="invalid blobVersionedHashes"):
        parse_send_tx_args(blob(blobVersionedHashes=bad))


def test_setcode_needs_recipient() -> None:
    with pytest.raises(InvalidParams, match="invalid to: a set-code"):
        parse_send_tx_args(setcode(to=None))
    with pytest.raises(InvalidParams, match="invalid to: a set-code"):
        parse_send_tx_args(setcode(to="0x"))


def test_empty_authorization_list_refused() -> None:
    with pytest.raises(InvalidParams, match="authorizationList: must not be empty"):
        parse_send_tx_args(setcode(authorizationList=[]))


def test_authorizations_with_blobs_refused() -> None:
    with pytest.raises(InvalidParams, match="authorizationList: cannot be combined"):
        parse_send_tx_args(blob(authorizationList=[AUTH]))


@pytest.mark.parametrize("field", list(AUTH))
def test_authorization_missing_field(field: str) -> None:
    item = {k: v for k, v in AUTH.items() if k != field}
    with pytest.raises(InvalidParams, match=f"authorizationList\\[0\\]: missing .*'{field}'"):
        parse_send_tx_args(setcode(authorizationList=[item]))


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("chainId", "0x01"),
        ("chainId", 1),
        ("address", "0x11"),
        ("nonce", "0x1" + "0" * 16),
        ("yParity", "0x100"),
        ("r", "0x1" + "0" * 64),
        ("s", "0x"),
    ],
)
def test_authorization_bad_field(field: str, bad: object) -> None:
    with pytest.raises(InvalidParams, match=f"invalid authorizationList\\[0\\].{field}"):
        parse_send_tx_args(setcode(authorizationList=[{**AUTH, field: bad}]))


def test_authorization_item_not_object() -> None:
    with pytest.raises(InvalidParams, match="authorizationList\\[1\\]"):
        parse_send_tx_args(setcode(authorizationList=[AUTH, "0x"]))


# ---------------------------------------------------------------- chain id


def test_check_chain_id() -> None:
    assert check_chain_id(parse_send_tx_args(base()), 7) == 7
    assert check_chain_id(parse_send_tx_args(base(chainId="0x7")), 7) == 7
    with pytest.raises(SignerError) as info:
        check_chain_id(parse_send_tx_args(base(chainId="0x10")), 7)
    assert (
        info.value.message == "requested chainid 16 does not match the configuration of the signer"
    )


# ---------------------------------------------------------------- UI marshalling


def test_to_json_shape_and_order() -> None:
    args = parse_send_tx_args(
        {
            "value": "0x1",
            "from": FROM.lower(),
            "chainId": "0x1",
            "input": "0x",
            "to": TO,
            "gasPrice": "0x2",
        }
    )
    assert args.to_json() == {
        "from": FROM.lower(),
        "to": TO,
        "gas": "0x0",
        "gasPrice": "0x2",
        "maxFeePerGas": None,
        "maxPriorityFeePerGas": None,
        "value": "0x1",
        "nonce": "0x0",
        "data": "0x",
        "chainId": "0x1",
    }
    assert list(args.to_json()) == [
        "from",
        "to",
        "gas",
        "gasPrice",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "value",
        "nonce",
        "data",
        "chainId",
    ]


def test_to_json_full_order() -> None:
    keys = list(parse_send_tx_args(blob(data="0x12", chainId="0x1", accessList=[])).to_json())
    assert keys == [
        "from",
        "to",
        "gas",
        "gasPrice",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "value",
        "nonce",
        "data",
        "accessList",
        "chainId",
        "maxFeePerBlobGas",
        "blobVersionedHashes",
    ]
    assert list(parse_send_tx_args(setcode()).to_json())[-1] == "authorizationList"


def test_to_json_creation_and_missing_0x_prefix() -> None:
    # The policy worker may construct args directly from geth's test inputs without "0x".
    raw = bytes.fromhex("000000000000000000000000000000000000dead")
    args = SendTxArgs(from_=MixedcaseAddress(raw, raw.hex()), gas_price=0x40)
    out = args.to_json()
    assert out["from"] == "0x" + raw.hex()
    assert out["to"] is None
    assert parse_send_tx_args(out).from_.raw == raw


def test_authorization_list_preserved_through_to_json() -> None:
    args = parse_send_tx_args(setcode())
    assert args.to_json()["authorizationList"] == [AUTH]
    assert parse_send_tx_args(args.to_json()) == args


# ---------------------------------------------------------------- direct construction


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"from_": "0x00"}, "invalid from"),
        ({"from_": MixedcaseAddress(b"\x00" * 19, "x")}, "invalid from"),
        ({"gas": -1}, "invalid gas"),
        ({"gas": 2**64}, "invalid gas"),
        ({"nonce": 1.0}, "invalid nonce"),
        ({"value": True}, "invalid value"),
        ({"data": "0x"}, "invalid data"),
        ({"data": bytearray(b"x")}, "invalid data"),
        ({"access_list": [AccessTuple(bytes(20), ())]}, "invalid accessList"),
        ({"blob_versioned_hashes": [bytes(32)]}, "invalid blobVersionedHashes"),
        ({"authorization_list": ()}, "authorizationList: must not be empty"),
        ({"chain_id": 2**256}, "invalid chainId"),
    ],
)
def test_direct_construction_validates(kwargs: dict[str, Any], match: str) -> None:
    fields: dict[str, Any] = {"from_": MixedcaseAddress.parse(FROM, "from")}
    fields.update(kwargs)
    with pytest.raises(InvalidParams, match=match):
        SendTxArgs(**fields)


def test_access_tuple_validates() -> None:
    with pytest.raises(InvalidParams, match="storageKeys"):
        AccessTuple(bytes(20), [bytes(32)])  # type: ignore[arg-type]
    with pytest.raises(InvalidParams, match="storageKeys"):
        AccessTuple(bytes(20), (bytes(31),))
    with pytest.raises(InvalidParams, match="address"):
        AccessTuple(bytes(21), ())


def test_authorization_validates() -> None:
    with pytest.raises(InvalidParams, match="yParity"):
        Authorization(1, bytes(20), 0, 256, 1, 1)
    with pytest.raises(InvalidParams, match="address"):
        Authorization(1, bytes(2), 0, 0, 1, 1)


# ---------------------------------------------------------------- properties

addresses = st.binary(min_size=20, max_size=20)
quantities = st.integers(min_value=0, max_value=2**256 - 1)
u64 = st.integers(min_value=0, max_value=2**64 - 1)


def _spell(raw: bytes, style: int) -> str:
    if style == 0:
        return "0x" + raw.hex()
    if style == 1:
        return "0x" + raw.hex().upper()
    return MixedcaseAddress(raw, "").checksummed


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    """Random well-formed SendTxArgs JSON of every type."""
    req: dict[str, Any] = {"from": _spell(draw(addresses), draw(st.integers(0, 2)))}
    kind = draw(st.integers(0, 4))
    if kind in (3, 4) or draw(st.booleans()):
        req["to"] = _spell(draw(addresses), draw(st.integers(0, 2)))
    for key, strategy in (
        ("gas", u64),
        ("nonce", u64),
        ("value", quantities),
        ("chainId", quantities),
        ("gasPrice", quantities),
        ("maxPriorityFeePerGas", quantities),
    ):
        if draw(st.booleans()):
            req[key] = hex(draw(strategy))
    if kind >= 2:
        req["maxFeePerGas"] = hex(draw(quantities))
        req["maxPriorityFeePerGas"] = hex(draw(quantities))
    if kind == 1 or (kind >= 2 and draw(st.booleans())):
        req["accessList"] = [
            {"address": "0x" + a.hex(), "storageKeys": ["0x" + k.hex() for k in keys]}
            for a, keys in draw(
                st.lists(
                    st.tuples(addresses, st.lists(st.binary(min_size=32, max_size=32), max_size=3)),
                    max_size=3,
                )
            )
        ]
    if kind == 3:
        req["maxFeePerBlobGas"] = hex(draw(quantities))
        req["blobVersionedHashes"] = [
            "0x" + h.hex()
            for h in draw(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4))
        ]
    if kind == 4:
        req["authorizationList"] = [
            {
                "chainId": hex(draw(quantities)),
                "address": "0x" + draw(addresses).hex(),
                "nonce": hex(draw(u64)),
                "yParity": hex(draw(st.integers(0, 255))),
                "r": hex(draw(quantities)),
                "s": hex(draw(quantities)),
            }
            for _ in range(draw(st.integers(1, 3)))
        ]
    data = draw(st.none() | st.binary(max_size=64))
    if data is not None:
        req[draw(st.sampled_from(["data", "input"]))] = "0x" + data.hex()
    return req


@settings(max_examples=200, deadline=None)
@given(req=requests())
def test_parse_to_json_round_trip(req: dict[str, Any]) -> None:
    args = parse_send_tx_args(req)
    out = args.to_json()
    assert parse_send_tx_args(out) == args
    assert json.loads(json.dumps(out)) == out
    assert out["from"] == req["from"]  # the caller's spelling survives
    for key in (
        "gas",
        "nonce",
        "value",
        "chainId",
        "maxFeePerGas",
        "accessList",
        "authorizationList",
        "blobVersionedHashes",
        "maxFeePerBlobGas",
    ):
        if key in req:
            assert out[key] == req[key]


@settings(max_examples=200, deadline=None)
@given(req=requests(), data=st.data())
def test_random_key_case_is_equivalent(req: dict[str, Any], data: st.DataObject) -> None:
    flipped = {
        "".join(c.upper() if data.draw(st.booleans()) else c for c in key): value
        for key, value in req.items()
    }
    assert parse_send_tx_args(flipped) == parse_send_tx_args(req)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    req=requests(),
    key=st.sampled_from(
        [
            "from",
            "to",
            "gas",
            "gasPrice",
            "maxFeePerGas",
            "maxPriorityFeePerGas",
            "value",
            "nonce",
            "data",
            "input",
            "accessList",
            "chainId",
            "maxFeePerBlobGas",
            "blobVersionedHashes",
            "authorizationList",
            "type",
        ]
    ),
    value=json_values,
)
def test_arbitrary_json_never_crashes(req: dict[str, Any], key: str, value: object) -> None:
    req[key] = value
    try:
        args = parse_send_tx_args(req)
    except (InvalidParams, SignerError):
        return
    assert parse_send_tx_args(args.to_json()) == args
