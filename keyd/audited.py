"""Audit logging around the external API: a request line before work starts and a durable
response line before the reply leaves keyd (invariant 4).

The request line is chained and handed to the writer before any work starts, but the call does
not wait for its own fsync: lines reach the disk in chain order, so when the response line is
durable the request line is too, and nothing leaves keyd before that. If the log has already
failed, the call is refused before any work; if a line cannot be made durable the call fails
closed: no reply, and so no signature, without both lines on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from clef import EXTERNAL_API_VERSION
from clef.errors import ClefError
from clef.eth.address import MixedcaseAddress, to_checksum
from clef.external_api import check_call
from keyd import auditlog
from keyd.auditlog import AuditEntry, AuditLog


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _addr(value: Any) -> MixedcaseAddress:
    try:
        return MixedcaseAddress.parse(value, "address")
    except ClefError:
        return MixedcaseAddress(bytes(20), str(value)[:200])


def request_entry(method: str, params: list[Any], meta: dict[str, str]) -> AuditEntry | None:
    """The request line for an audited method (None for methods the reference does not log)."""
    metadata = _json(meta)
    if method == "account_list":
        return auditlog.list_request(metadata)
    if method == "account_version":
        return auditlog.version_request(metadata)
    if method == "account_signTransaction":
        selector = params[1] if len(params) > 1 and isinstance(params[1], str) else None
        return auditlog.sign_transaction_request(metadata, _json(params[0]), selector)
    if method == "account_signData":
        return auditlog.sign_data_request(metadata, _addr(params[1]),
                                          _json(params[2]).encode(), str(params[0])[:200])
    if method == "account_signTypedData":
        return auditlog.sign_typed_data_request(metadata, _addr(params[0]), _json(params[1]))
    if method == "account_signGnosisSafeTx":
        selector = params[2] if len(params) > 2 and isinstance(params[2], str) else None
        return auditlog.sign_gnosis_safe_request(metadata, _addr(params[0]), _json(params[1]),
                                                 selector)
    if method == "account_ecRecover":
        data = params[0] if isinstance(params[0], str) else ""
        sig = params[1] if isinstance(params[1], str) else ""
        return auditlog.ec_recover_request(metadata, _hexbytes(data), _hexbytes(sig))
    return None


def _hexbytes(text: str) -> bytes:
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        return text.encode()[:200]


def response_entry(method: str, result: Any, error: str | None) -> AuditEntry:
    """The response line for an audited method."""
    if method == "account_list":
        return auditlog.list_response([to_checksum(bytes.fromhex(a[2:])) for a in result or []])
    if method == "account_version":
        return auditlog.version_response(EXTERNAL_API_VERSION, error)
    if method == "account_signTransaction":
        raw = bytes.fromhex(result["raw"][2:]) if result else None
        return auditlog.sign_transaction_response(raw, error)
    if method in ("account_signData", "account_signTypedData"):
        name = "SignData" if method == "account_signData" else "SignTypedData"
        return auditlog.signature_response(name, bytes.fromhex(result[2:]) if result else None,
                                           error)
    if method == "account_signGnosisSafeTx":
        return auditlog.sign_gnosis_safe_response(_json(result) if result else None, error)
    address = to_checksum(bytes.fromhex(result[2:])) if result else "0x" + "0" * 40
    return auditlog.ec_recover_response(address, error)


def audit_wrapper(log: AuditLog) -> Callable[..., Any]:
    """Wrap SignerAPI.dispatch so audited methods log request and response durably."""

    def wrap(dispatch: Callable[..., Any]) -> Callable[..., Any]:
        async def audited(method: str, params: list[Any], meta: dict[str, str]) -> Any:
            if method not in _AUDITED:
                return await dispatch(method, params, meta)
            try:
                padded = check_call(method, params)
            except ClefError:
                return await dispatch(method, params, meta)  # refused before any work, as geth
            entry = request_entry(method, padded, meta)
            if entry is None:
                return await dispatch(method, params, meta)
            log.queue(entry)  # durable at the latest with the response line, awaited below
            try:
                result = await dispatch(method, params, meta)
            except ClefError as exc:
                await log.append(response_entry(method, None, exc.message))
                raise
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    await log.append(response_entry(method, None, "request withdrawn"))
                raise
            await log.append(response_entry(method, result, None))
            return result

        return audited

    return wrap


_AUDITED = {"account_list", "account_version", "account_signTransaction", "account_signData",
            "account_signTypedData", "account_signGnosisSafeTx", "account_ecRecover"}
