"""account_signData: what each content type hashes, the UI request, and account_ecRecover.

Pure functions: `prepare_sign_data` turns the caller's (contentType, data) into a
`SignDataPlan` holding the exact bytes that are hashed, the hash, the UI rows and the V offset;
signing itself happens in keyd. Unlike the reference, an unknown content type (including the
spec's `application/clique` and `data/plain`) is refused instead of being signed as a personal
message: a caller must never get a signature over something other than what it named.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass
from typing import Any

from clef.errors import InvalidParams, SignerError
from clef.eth.address import is_hex_address, to_checksum
from clef.eth.clique import CliqueHeader
from clef.eth.eip712 import TypedData, go_type_name
from clef.eth.hashing import keccak256
from clef.eth.secp import recover_address

TEXT_PLAIN = "text/plain"
DATA_VALIDATOR = "data/validator"
TEXT_VALIDATOR = "text/validator"
CLIQUE_HEADER = "application/x-clique-header"
DATA_TYPED = "data/typed"
ACCEPTED_CONTENT_TYPES = (TEXT_PLAIN, DATA_VALIDATOR, TEXT_VALIDATOR, CLIQUE_HEADER, DATA_TYPED)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_GO_SPACE = " \t\n\v\f\r\x85\xa0"
_PERSONAL_PREFIX = b"\x19Ethereum Signed Message:\n"
_VALIDATOR_DESCRIPTION = (
    "This is a request to sign data intended for a particular validator (see EIP 191 version 0)"
)


def parse_media_type(value: object) -> str:
    """Go mime.ParseMediaType's media type: lower-cased, parameters ignored."""
    if not isinstance(value, str):
        raise InvalidParams("invalid content type: must be a string")
    media = value.split(";", 1)[0].lower().strip(_GO_SPACE)
    kind = _TOKEN.match(media)
    first = kind.group(0) if kind else ""
    if not first:
        raise SignerError("mime: no media type")
    rest = media[len(first) :]
    if rest:
        if not rest.startswith("/"):
            raise SignerError("mime: expected slash after first token")
        sub = _TOKEN.match(rest, 1)
        subtype = sub.group(0) if sub else ""
        if not subtype:
            raise SignerError("mime: expected token after slash")
        if rest[1 + len(subtype) :]:
            raise SignerError("mime: unexpected content after media subtype")
    return media


def decode_hex(data: object) -> bytes:
    """The reference's fromHex: a 0x-prefixed hex string, with hexutil's error texts."""
    if not isinstance(data, str):
        raise SignerError(f"wrong type {go_type_name(data)}")
    if not data:
        raise SignerError("empty hex string")
    if not data.startswith(("0x", "0X")):
        raise SignerError("hex string without 0x prefix")
    digits = data[2:]
    usable = len(digits) - len(digits) % 2
    # Go reports a bad digit before an odd length, except in the final odd digit.
    if not _HEX_DIGITS.fullmatch(digits, 0, usable):
        raise SignerError("invalid hex string")
    if len(digits) % 2:
        if not _HEX_DIGITS.fullmatch(digits, usable):
            raise SignerError("invalid hex string")
        raise SignerError("hex string of odd length")
    return bytes.fromhex(digits)


def personal_message(message: bytes) -> bytes:
    """EIP-191 version 0x45: "\\x19Ethereum Signed Message:\\n" ‖ decimal length ‖ message."""
    return _PERSONAL_PREFIX + str(len(message)).encode() + message


def text_hash(message: bytes) -> bytes:
    """keccak256 of the personal-message form (geth accounts.TextHash)."""
    return keccak256(personal_message(message))


def _row(name: str, value: Any, kind: str) -> dict[str, Any]:
    return {"name": name, "value": value, "type": kind}


@dataclass(frozen=True)
class SignDataPlan:
    """What an account_signData request signs: the bytes, their hash, the UI rows, the V offset."""

    content_type: str
    raw_data: bytes
    messages: tuple[dict[str, Any], ...]
    hash: bytes
    v_offset: int
    typed: TypedData | None = None

    def __post_init__(self) -> None:
        if self.content_type not in ACCEPTED_CONTENT_TYPES:
            raise ValueError(f"unsupported content type {self.content_type!r}")
        if not isinstance(self.raw_data, bytes) or not isinstance(self.messages, tuple):
            raise TypeError("raw_data must be bytes and messages a tuple")
        # The hash is what keyd signs: it must be the hash of exactly what the UI is shown.
        if self.hash != keccak256(self.raw_data):
            raise ValueError("hash does not match raw_data")
        expected_offset = 0 if self.content_type == CLIQUE_HEADER else 27
        if self.v_offset != expected_offset:
            raise ValueError(f"v_offset must be {expected_offset} for {self.content_type}")
        if (self.typed is not None) != (self.content_type == DATA_TYPED):
            raise ValueError("typed is set exactly for data/typed")
        if self.typed is not None and self.typed.raw_data() != self.raw_data:
            raise ValueError("raw_data does not match the typed data")


def _plain(data: object) -> SignDataPlan:
    if not isinstance(data, str):
        raise SignerError("input for text/plain must be an hex-encoded string")
    message = decode_hex(data)
    raw = personal_message(message)
    rows = [_row("message", raw.decode("utf-8", "replace"), TEXT_PLAIN)]
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        # The text row replaced undecodable bytes, so two different messages could look
        # the same; show the exact bytes as well.
        rows.append(_row("message (hex)", "0x" + message.hex(), "hexdata"))
    return SignDataPlan(TEXT_PLAIN, raw, tuple(rows), keccak256(raw), 27)


def _required_hex(value: object, what: str) -> bytes:
    """decode_hex for one validator field: errors name the field, empty bytes are refused."""
    try:
        raw = decode_hex(value)
    except SignerError as exc:
        raise SignerError(f"{what} error: {exc.message}") from None
    if not raw:
        raise SignerError(f"{what} is undefined")
    return raw


def _validator(media: str, data: object) -> SignDataPlan:
    if not isinstance(data, dict):
        raise SignerError("validator input is not a map[string]interface{}")
    address_bytes = _required_hex(data.get("address"), "validator address")
    message = _required_hex(data.get("message"), "message")
    # common.BytesToAddress: left-pad short input, keep the last 20 bytes of long input.
    address = address_bytes[-20:].rjust(20, b"\x00")
    raw = b"\x19\x00" + address + message
    rows = (
        _row(_VALIDATOR_DESCRIPTION, "", "description"),
        _row("Intended validator address", to_checksum(address), "address"),
        _row("Application-specific data", "0x" + message.hex(), "hexdata"),
        _row("Full message for signing", "0x" + raw.hex(), "hexdata"),
    )
    return SignDataPlan(media, raw, rows, keccak256(raw), 27)


def _clique(data: object) -> SignDataPlan:
    header = CliqueHeader.decode(decode_hex(data))
    raw = header.clique_rlp()
    value = f"clique header {header.number} [0x{header.hash().hex()}]"
    rows = (_row("Clique header", value, "clique"),)
    # Clique seals carry V as 0/1, not 27/28.
    return SignDataPlan(CLIQUE_HEADER, raw, rows, keccak256(raw), 0)


def typed_data_plan(typed: TypedData) -> SignDataPlan:
    """The plan for EIP-712 data (account_signTypedData and data/typed)."""
    raw = typed.raw_data()
    rows = tuple(typed.format_messages())
    return SignDataPlan(DATA_TYPED, raw, rows, keccak256(raw), 27, typed)


def prepare_sign_data(content_type: str, data: object) -> SignDataPlan:
    """Parse an account_signData request into the plan keyd asks the UI about and signs."""
    media = parse_media_type(content_type)
    if media == TEXT_PLAIN:
        return _plain(data)
    if media in (DATA_VALIDATOR, TEXT_VALIDATOR):
        return _validator(media, data)
    if media == CLIQUE_HEADER:
        return _clique(data)
    if media == DATA_TYPED:
        if isinstance(data, dict):
            return typed_data_plan(TypedData.parse(data))
        return typed_data_plan(TypedData.from_json(decode_hex(data)))
    # The reference fell through to a personal-message signature here; refusing means a
    # caller never obtains a signature over something other than the type it named.
    raise InvalidParams(
        f"unsupported content type {media!r}; accepted types: {', '.join(ACCEPTED_CONTENT_TYPES)}"
    )


def encode_signature(recid: int, r: int, s: int, v_offset: int) -> bytes:
    """The 65-byte r ‖ s ‖ v returned to the caller (v = recid + 27, or recid for clique)."""
    if recid not in (0, 1) or v_offset not in (0, 27):
        raise ValueError("recid must be 0/1 and v_offset 0 or 27")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([recid + v_offset])


def ec_recover(data: bytes, sig: bytes) -> bytes:
    """account_ecRecover: the 20-byte address that signed the personal message `data`."""
    if len(sig) != 65:
        raise SignerError("signature must be 65 bytes long")
    if sig[64] not in (27, 28):
        raise SignerError("invalid Ethereum signature (V is not 27 or 28)")
    r = int.from_bytes(sig[0:32], "big")
    s = int.from_bytes(sig[32:64], "big")
    try:
        return recover_address(text_hash(data), sig[64] - 27, r, s)
    except InvalidParams:
        raise SignerError("recovery failed") from None


def mixedcase_json(original: str) -> str:
    """MixedcaseAddress.MarshalJSON: the caller's spelling, with a lower-case 0x prefix."""
    if not isinstance(original, str) or not is_hex_address(original):
        raise InvalidParams("invalid address: want 0x followed by 40 hex digits")
    if original.startswith(("0x", "0X")):
        return "0x" + original[2:]
    return "0x" + original


def sign_data_request_json(
    plan: SignDataPlan,
    address_original: str,
    meta: dict[str, Any],
    call_info: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """The ui_approveSignData request (raw_data as standard base64, as the reference sends it)."""
    return {
        "content_type": plan.content_type,
        "address": mixedcase_json(address_original),
        "raw_data": base64.b64encode(plan.raw_data).decode("ascii"),
        "messages": copy.deepcopy(list(plan.messages)),
        "call_info": copy.deepcopy(call_info),
        "hash": "0x" + plan.hash.hex(),
        "meta": copy.deepcopy(meta),
    }
