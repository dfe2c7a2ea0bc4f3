"""Transaction validation and call_info: the reference's `signer/fourbyte/validation.go`.

`validate_transaction` reproduces the reference's checks, in its order, with its exact texts and
levels (inventory §4), and adds what the reference could not show: EIP-7702 authorizations,
and whether a decoded method name is verified (shipped database) or not (caller-supplied or
from the custom database). Hard errors raise SignerError; everything else is a message.

Pure: nothing here does I/O. A selector learnt from the caller is returned in
`ValidationResult.learned`; whoever owns the custom database decides to record it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from clef.errors import InvalidParams, SignerError
from clef.eth.address import MixedcaseAddress, to_checksum
from policy.abi import AbiError, DecodedCall, decode_call, verify_selector
from policy.fourbyte import CustomDB, FourByteDB

Level = Literal["WARNING", "CRITICAL", "Info"]
LEVELS: Final = ("WARNING", "CRITICAL", "Info")

UNVERIFIED_CALLER: Final = " (selector name unverified: supplied by caller)"
UNVERIFIED_CUSTOM: Final = " (selector name unverified: from the custom 4byte database)"

_UINT256: Final = 1 << 256


@dataclass(frozen=True)
class ValidationMessage:
    """One call_info entry: `{"type": "WARNING"|"CRITICAL"|"Info", "message": ...}`."""

    type: Level
    message: str

    def __post_init__(self) -> None:
        if self.type not in LEVELS:
            raise ValueError(f"invalid validation level {self.type!r}")
        if not isinstance(self.message, str):
            raise TypeError("validation message must be a string")

    def to_json(self) -> dict[str, str]:
        """The wire form used in call_info."""
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True)
class ValidationResult:
    """The messages for one transaction, in order, plus a selector learnt from the caller."""

    entries: tuple[ValidationMessage, ...] = ()
    learned: tuple[bytes, str] | None = None

    def __post_init__(self) -> None:
        if not all(isinstance(e, ValidationMessage) for e in self.entries):
            raise ValueError("entries must be ValidationMessage objects")
        if self.learned is not None:
            selector, signature = self.learned
            if not isinstance(selector, bytes) or len(selector) != 4:
                raise ValueError("learned selector must be 4 bytes")
            if not isinstance(signature, str):
                raise ValueError("learned signature must be a string")

    @property
    def messages(self) -> list[dict[str, str]]:
        """call_info as sent to the UI: `[{"type": ..., "message": ...}, ...]`."""
        return [e.to_json() for e in self.entries]

    def warnings(self) -> list[str]:
        """The WARNING and CRITICAL texts, in order (the reference's GetWarnings)."""
        return [e.message for e in self.entries if e.type in ("WARNING", "CRITICAL")]

    def refusal_text(self) -> str | None:
        """`validation failed: <m1>,<m2>` when there are warnings (reject mode), else None."""
        warnings = self.warnings()
        return "validation failed: " + ",".join(warnings) if warnings else None


@dataclass(frozen=True)
class AuthorizationView:
    """What call_info shows of one EIP-7702 authorization (signer: None if unrecoverable)."""

    chain_id: int
    address: bytes
    signer: bytes | None

    def __post_init__(self) -> None:
        if not isinstance(self.chain_id, int) or isinstance(self.chain_id, bool) or not (
            0 <= self.chain_id < _UINT256
        ):
            raise InvalidParams("invalid authorizationList: chainId must be a uint256")
        if not isinstance(self.address, bytes) or len(self.address) != 20:
            raise InvalidParams("invalid authorizationList: address must be 20 bytes")
        signer = self.signer
        if signer is not None and (not isinstance(signer, bytes) or len(signer) != 20):
            raise InvalidParams("invalid authorizationList: signer must be 20 bytes")


def merge_data_input(data: bytes | None, input_: bytes | None) -> bytes:
    """The calldata from `data` and/or `input` (the reference's first check; input wins)."""
    if data is not None and input_ is not None and data != input_:
        raise SignerError(
            'ambiguous request: both "data" and "input" are set and are not identical'
        )
    if input_ is not None:
        return input_
    return data if data is not None else b""


class _Messages:
    def __init__(self) -> None:
        self.entries: list[ValidationMessage] = []

    def crit(self, text: str) -> None:
        self.entries.append(ValidationMessage("CRITICAL", text))

    def warn(self, text: str) -> None:
        self.entries.append(ValidationMessage("WARNING", text))

    def info(self, text: str) -> None:
        self.entries.append(ValidationMessage("Info", text))


def _invokes(call: DecodedCall, suffix: str = "") -> str:
    return f"Transaction invokes the following method: {call.quoted()}{suffix}"


def _caller_suffix(call: DecodedCall, shipped_name: str | None) -> str:
    if shipped_name == call.signature.canonical:
        return ""  # the shipped database names this selector the same way
    if shipped_name is not None:
        # A caller naming a known selector differently is the collision attack this marks.
        return (f" (selector name unverified: supplied by caller; the 4byte database names "
                f"this selector {shipped_name})")
    return UNVERIFIED_CALLER


def _validate_calldata(
    selector: str | None,
    data: bytes,
    db: FourByteDB,
    custom: CustomDB,
    out: _Messages,
) -> tuple[bytes, str] | None:
    """The reference's ValidateCallData; returns a selector learnt from the caller."""
    if not data:
        return None
    if len(data) < 4:
        out.warn("Transaction data is not valid ABI (missing the 4 byte call prefix)")
        return None
    if (len(data) - 4) % 32:
        out.warn(
            "Transaction data is not valid ABI (length should be a multiple of 32 "
            f"(was {len(data) - 4}))"
        )
    shipped_name = db.lookup(data[:4])
    if selector is not None:
        try:
            call = verify_selector(selector, data)
        except AbiError as exc:
            out.warn(
                "Transaction contains data, but provided ABI signature could not be matched: "
                f"{exc.message}"
            )
            return None
        out.info(_invokes(call, _caller_suffix(call, shipped_name)))
        if shipped_name is None and custom.lookup(data[:4]) is None:
            return call.selector, call.signature.canonical
        return None
    name, suffix = shipped_name, ""
    if name is None:
        name, suffix = custom.lookup(data[:4]), UNVERIFIED_CUSTOM
    if name is None:
        out.warn(
            "Transaction contains data, but the ABI signature could not be found: "
            f"signature {data[:4].hex()} not found"
        )
        return None
    try:
        call = decode_call(name, data)
    except AbiError as exc:
        out.warn(
            "Transaction contains data, but provided ABI signature could not be verified: "
            f"{exc.message}"
        )
        return None
    out.info(_invokes(call, suffix))
    return None


def _authorization_messages(
    authorizations: Sequence[AuthorizationView], signer_chain_id: int, out: _Messages
) -> None:
    for index, auth in enumerate(authorizations):
        if not isinstance(auth, AuthorizationView):
            raise InvalidParams(f"invalid authorizationList[{index}]")
        delegate = to_checksum(auth.address)
        target = (
            "clears the delegation of its signer" if not any(auth.address)
            else f"delegates its signer's account to {delegate}"
        )
        signer = to_checksum(auth.signer) if auth.signer is not None else "unrecoverable"
        out.info(
            f"EIP-7702 authorization #{index}: {target} (chain id {auth.chain_id}, "
            f"signer {signer})"
        )
        if auth.signer is None:
            out.warn(
                f"EIP-7702 authorization #{index} has an invalid signature: its signer cannot "
                "be recovered, so the network will ignore it"
            )
        if auth.chain_id == 0:
            out.warn(
                f"EIP-7702 authorization #{index} has chain id 0: it is valid on every chain"
            )
        elif auth.chain_id != signer_chain_id:
            out.warn(
                f"EIP-7702 authorization #{index} is for chain {auth.chain_id}, but this "
                f"signer is configured for chain {signer_chain_id}"
            )


def _check_inputs(
    to: object, value: object, data: object, fees: dict[str, object], selector: object,
    db: object, custom: object, authorizations: object, signer_chain_id: object,
) -> None:
    if to is not None and not isinstance(to, MixedcaseAddress):
        raise InvalidParams("invalid to: expected an address")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < _UINT256:
        raise InvalidParams("invalid value: expected a uint256")
    if not isinstance(data, bytes):
        raise InvalidParams("invalid data: expected bytes")
    for name, fee in fees.items():
        if fee is not None and (
            not isinstance(fee, int) or isinstance(fee, bool) or not 0 <= fee < _UINT256
        ):
            raise InvalidParams(f"invalid {name}: expected a uint256")
    if selector is not None and not isinstance(selector, str):
        raise InvalidParams("invalid methodSelector: expected a string")
    if not isinstance(db, FourByteDB) or not isinstance(custom, CustomDB):
        raise TypeError("validate_transaction needs a FourByteDB and a CustomDB")
    if not isinstance(authorizations, Sequence):
        raise InvalidParams("invalid authorizationList: expected a list")
    if not isinstance(signer_chain_id, int) or isinstance(signer_chain_id, bool):
        raise TypeError("signer_chain_id must be an int")


def validate_transaction(
    *,
    to: MixedcaseAddress | None,
    value: int,
    data: bytes,
    gas_price: int | None,
    max_fee_per_gas: int | None,
    max_priority_fee_per_gas: int | None,
    selector: str | None,
    db: FourByteDB,
    custom: CustomDB,
    authorizations: Sequence[AuthorizationView] = (),
    signer_chain_id: int,
) -> ValidationResult:
    """The reference's ValidateTransaction (after `input` was merged into `data`).

    Raises SignerError for the reference's hard errors (a contract creation carrying value
    but no code; a set-code transaction without a recipient) and InvalidParams for
    arguments of the wrong type or range.
    """
    _check_inputs(
        to, value, data,
        {"gasPrice": gas_price, "maxFeePerGas": max_fee_per_gas,
         "maxPriorityFeePerGas": max_priority_fee_per_gas},
        selector, db, custom, authorizations, signer_chain_id,
    )
    out = _Messages()
    if to is None:
        if authorizations:
            raise SignerError("transaction recipient must be set for set-code transactions")
        if not data:
            if value > 0:
                raise SignerError("transaction will create a contract with value but empty code")
            out.crit("Transaction will create a contract with empty code")
        elif len(data) < 40:
            out.warn(
                "Transaction will create a contract, but the payload is suspiciously small "
                f"({len(data)} bytes)"
            )
        if selector is not None:
            out.warn(
                "Transaction will create a contract, but method selector supplied, "
                "indicating an intent to call a method"
            )
        return ValidationResult(tuple(out.entries))
    if not to.valid_checksum():
        out.warn("Invalid checksum on recipient address")
    if not any(to.raw):
        out.crit("Transaction recipient is the zero address")
    if gas_price is None and max_fee_per_gas is None:
        out.crit("Neither 'gasPrice' nor 'maxFeePerGas' specified.")
    elif gas_price is None and max_priority_fee_per_gas is None:
        out.crit("Neither 'gasPrice' nor 'maxPriorityFeePerGas' specified.")
    elif gas_price is not None and max_fee_per_gas is not None:
        out.crit("Both 'gasPrice' and 'maxFeePerGas' specified.")
    elif gas_price is not None and max_priority_fee_per_gas is not None:
        out.crit("Both 'gasPrice' and 'maxPriorityFeePerGas' specified.")
    learned = _validate_calldata(selector, data, db, custom, out)
    _authorization_messages(authorizations, signer_chain_id, out)
    return ValidationResult(tuple(out.entries), learned)


__all__ = [
    "UNVERIFIED_CALLER",
    "UNVERIFIED_CUSTOM",
    "AuthorizationView",
    "ValidationMessage",
    "ValidationResult",
    "merge_data_input",
    "validate_transaction",
]
