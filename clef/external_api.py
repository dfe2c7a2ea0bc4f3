"""The external API's method table (namespace `account`, plus `rpc_modules`).

Shared by the net worker (which rejects unknown methods and wrong arity before anything
reaches keyd) and keyd (which dispatches only names in this table). `ui_*` and `clef_*` names
are deliberately absent: they exist only on the trusted stdio channel.
"""

from __future__ import annotations

from typing import Any

from clef.errors import InvalidParams, MethodNotFound

# method -> (required params, max params)
METHODS: dict[str, tuple[int, int]] = {
    "account_list": (0, 0),
    "account_new": (0, 0),
    "account_signTransaction": (1, 2),
    "account_signData": (3, 3),
    "account_signTypedData": (2, 2),
    "account_signGnosisSafeTx": (2, 3),
    "account_ecRecover": (2, 2),
    "account_version": (0, 0),
    "rpc_modules": (0, 0),
}


def check_call(method: str, params: list[Any], params_was_object: bool = False) -> list[Any]:
    """Validate the method name and arity as geth's RPC server does; return the params padded."""
    if method not in METHODS:
        raise MethodNotFound(f"the method {method} does not exist/is not available")
    if params_was_object:
        raise InvalidParams("non-array args")
    required, most = METHODS[method]
    if len(params) > most:
        raise InvalidParams(f"too many arguments, want at most {most}")
    for index in range(required):
        if index >= len(params) or params[index] is None:
            raise InvalidParams(f"missing value for required argument {index}")
    return list(params) + [None] * (most - len(params))
