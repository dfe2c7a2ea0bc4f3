"""account_signData, account_signTypedData, account_signGnosisSafeTx and account_ecRecover.

The UI is shown exactly what is hashed: the plan's raw_data, rows and hash all come from one
parsed, validated structure (clef/eth/signdata.py, clef/eth/eip712.py).
"""

from __future__ import annotations

from typing import Any

from clef.errors import InvalidParams, ValidationFailed
from clef.eth.address import MixedcaseAddress
from clef.eth.eip712 import TypedData
from clef.eth.gnosis import GnosisSafeTx
from clef.eth.hexutil import parse_bytes
from clef.eth.signdata import (
    SignDataPlan,
    ec_recover,
    prepare_sign_data,
    sign_data_request_json,
    typed_data_plan,
)
from keyd.api import SignerAPI
from keyd.signing import MAX_SELECTOR, Signer


class DataSigner:
    """The data-signing handlers, sharing the Signer's approval and key path."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    async def _sign_plan(self, address: MixedcaseAddress, plan: SignDataPlan, meta: dict[str, str],
                         call_info: list[dict[str, str]] | None = None) -> str:
        request = sign_data_request_json(plan, address.original, meta, call_info=call_info)
        return await self.signer.sign_prepared(address, request, plan.hash, plan.v_offset)

    async def sign_data(self, params: list[Any], meta: dict[str, str]) -> str:
        """account_signData(contentType, address, data)."""
        content_type, address_text, data = params
        if not isinstance(content_type, str):
            raise InvalidParams("invalid argument 0: content type must be a string")
        address = MixedcaseAddress.parse(address_text, "argument 1")
        plan = prepare_sign_data(content_type, data)
        return await self._sign_plan(address, plan, meta)

    async def sign_typed_data(self, params: list[Any], meta: dict[str, str]) -> str:
        """account_signTypedData(address, typedData)."""
        address = MixedcaseAddress.parse(params[0], "argument 0")
        plan = typed_data_plan(TypedData.parse(params[1]))
        return await self._sign_plan(address, plan, meta)

    async def sign_gnosis_safe_tx(self, params: list[Any], meta: dict[str, str]) -> dict[str, Any]:
        """account_signGnosisSafeTx(signerAddress, safeTx, methodSelector?)."""
        address = MixedcaseAddress.parse(params[0], "argument 0")
        safe_tx = GnosisSafeTx.parse(params[1])
        selector = params[2]
        if selector is not None and not isinstance(selector, str):
            raise InvalidParams("invalid argument 2: method selector must be a string")
        if selector is not None and len(selector) > MAX_SELECTOR:
            raise InvalidParams(f"invalid argument 2: method selector longer than {MAX_SELECTOR} "
                                "characters")
        config = self.signer.config
        validation = await self.signer.validator.validate_tx(
            safe_tx.validation_args().to_json(), selector, config.chain_id)
        if validation.warnings() and not config.advanced:
            raise ValidationFailed("validation failed: " + ",".join(validation.warnings()))
        typed = safe_tx.to_typed_data(config.chain_id)
        plan = typed_data_plan(typed)
        signature_hex = await self._sign_plan(address, plan, meta, validation.messages or None)
        return safe_tx.result_json(typed, bytes.fromhex(signature_hex[2:]), address.raw)

    async def ec_recover(self, params: list[Any], meta: dict[str, str]) -> str:
        """account_ecRecover(data, signature): the signer of a text/plain message."""
        data = parse_bytes(params[0], "argument 0")
        signature = parse_bytes(params[1], "argument 1")
        return "0x" + ec_recover(data, signature).hex()


def register_data_signing(api: SignerAPI, signer: Signer) -> DataSigner:
    """Register the data-signing handlers on the API."""
    handlers = DataSigner(signer)
    api.register("account_signData", handlers.sign_data)
    api.register("account_signTypedData", handlers.sign_typed_data)
    api.register("account_signGnosisSafeTx", handlers.sign_gnosis_safe_tx)
    api.register("account_ecRecover", handlers.ec_recover)
    return handlers
