"""The error vocabulary: one base class, each error mapped to its JSON-RPC code here and only here.

Messages are part of the wire format (they match the reference implementation), so they are
chosen by the raiser; the class decides the code.
"""

from __future__ import annotations

from typing import Any


class ClefError(Exception):
    """Base of every error that may be reported to a caller; carries a JSON-RPC code."""

    code = -32000

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_jsonrpc(self) -> dict[str, Any]:
        """The JSON-RPC error object for this error."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class ParseError(ClefError):
    """The request body is not JSON."""

    code = -32700


class InvalidRequest(ClefError):
    """The JSON is not a valid JSON-RPC request (or a batch is empty or too large)."""

    code = -32600


class MethodNotFound(ClefError):
    """The method does not exist on this API."""

    code = -32601


class InvalidParams(ClefError):
    """A parameter has the wrong arity, type or encoding; the message names the field."""

    code = -32602


class InternalError(ClefError):
    """A bug or a crashed handler; details are logged, never sent to the caller."""

    code = -32603


class ResponseTooLarge(ClefError):
    """A batch response exceeded the size limit."""

    code = -32003


class RequestDenied(ClefError):
    """The UI or the ruleset refused the request."""

    def __init__(self, message: str = "request denied") -> None:
        super().__init__(message)


class UnknownAccount(ClefError):
    """No wallet holds the requested account (raised only after approval)."""

    def __init__(self, message: str = "unknown account") -> None:
        super().__init__(message)


class DecryptError(ClefError):
    """The keystore MAC did not verify: wrong password or corrupted file."""

    def __init__(self, message: str = "could not decrypt key with given password") -> None:
        super().__init__(message)


class ValidationFailed(ClefError):
    """Transaction validation produced warnings and --advanced is off."""


class SignerError(ClefError):
    """A method-level failure reported with the reference's plain message (code -32000)."""


class ApprovalTimeout(ClefError):
    """The UI did not answer in time; the request can no longer be signed."""

    def __init__(self, message: str = "request timed out waiting for approval") -> None:
        super().__init__(message)


class TooManyPending(ClefError):
    """The bound on outstanding approvals was reached."""

    def __init__(self, message: str = "too many pending requests") -> None:
        super().__init__(message)


class ProtocolViolation(Exception):
    """A worker or the UI sent a frame that breaks the inter-process protocol (never reported)."""


class StorageTampered(Exception):
    """Encrypted storage failed authentication or freshness checks: fail closed."""
