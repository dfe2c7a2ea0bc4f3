"""Per-method parameter checks done in the sandboxed net worker, before anything reaches keyd.

Hostile parameters are parsed here first, by the same pure parsers keyd uses, so a parser bug is
met inside the sandbox and malformed requests are refused without a round trip to keyd. Typed data
is forwarded in canonical form: keyd re-derives the hash from that structure (and parses it again,
since the worker is untrusted).
"""

from __future__ import annotations

from typing import Any

from clef.eth.eip712 import TypedData
from clef.eth.signdata import parse_media_type, prepare_sign_data
from clef.eth.tx.args import parse_send_tx_args

TYPED = "data/typed"


def check_params(method: str, params: list[Any]) -> list[Any]:
    """Raise ClefError for params keyd would refuse; return the params to forward."""
    if method == "account_signTransaction":
        parse_send_tx_args(params[0])
    elif method == "account_signTypedData":
        params = [params[0], TypedData.parse(params[1]).to_canonical_json()]
    elif method == "account_signData" and isinstance(params[0], str):
        plan = prepare_sign_data(params[0], params[2])
        if parse_media_type(params[0]) == TYPED and plan.typed is not None:
            params = [params[0], params[1], plan.typed.to_canonical_json()]
    return params
