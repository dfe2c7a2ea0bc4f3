"""The policy worker's validate_tx handler: SendTxArgs JSON -> call_info, in the sandbox.

Calldata is attacker-chosen; decoding it (ABI, 4byte) happens here rather than in keyd so that a
bug in the decoder cannot reach key memory.
"""

from __future__ import annotations

from collections.abc import Callable

from clef.errors import ClefError
from clef.eth.tx.args import parse_send_tx_args
from policy.fourbyte import CustomDB, FourByteDB
from policy.validation import AuthorizationView, validate_transaction
from sandbox.policy_protocol import Learn, ValidateResult, ValidateTx, ValidationMessage


def make_learner(db: FourByteDB, custom: CustomDB) -> Callable[[Learn], None]:
    """A learn handler: add a verified, signed-for selector to the in-memory custom database."""

    def learn(message: Learn) -> None:
        # CustomDB.learn re-verifies the hash and applies the size cap.
        custom.learn(bytes.fromhex(message.selector[2:]), message.signature, shipped=db)

    return learn


def make_validator(db: FourByteDB, custom: CustomDB) -> Callable[[ValidateTx], ValidateResult]:
    """A validate_tx handler over the mapped 4byte database and the custom one."""

    def validate(request: ValidateTx) -> ValidateResult:
        try:
            args = parse_send_tx_args(request.tx)
            authorizations = [AuthorizationView(a.chain_id, a.address, a.recover_signer())
                              for a in args.authorization_list or ()]
            result = validate_transaction(
                to=args.to, value=args.value, data=args.data or b"",
                gas_price=args.gas_price, max_fee_per_gas=args.max_fee_per_gas,
                max_priority_fee_per_gas=args.max_priority_fee_per_gas,
                selector=request.selector, db=db, custom=custom,
                authorizations=authorizations,
                signer_chain_id=request.chain_id if request.chain_id is not None else 1,
            )
        except ClefError as exc:
            return ValidateResult(id=request.id, messages=(), error=exc.message)
        messages = tuple(ValidationMessage(m["type"], m["message"]) for m in result.messages)
        learned: tuple[tuple[str, str], ...] = ()
        if result.learned is not None:
            learned = (("0x" + result.learned[0].hex(), result.learned[1]),)
        return ValidateResult(id=request.id, messages=messages, error=None, learned=learned)

    return validate
