"""Pure rendering of UI requests for the console: wire JSON in, terminal lines out.

Threat: everything in a request that a caller chose (headers, text to sign, typed-data strings,
method names and decoded arguments in call_info, the original spelling of addresses, account
URLs built from file names) is hostile. A raw ESC, CR, bidi override or a long line that the
terminal wraps would let a caller repaint the screen or draw a fake `Approve?` line. So:

* every such string goes through `sanitize`/`quote`, which shows control and invisible
  characters escaped (`\\x1b`, `\\u202e`) and truncates with a visible marker;
* values are hard-wrapped here to the terminal width, and continuation lines start with
  `  | `, so a wrapped value never begins a line at column 0 and the terminal never wraps;
* multi-line texts are shown indented; only the UI's own chrome (headers, `Approve? [y/N]:`,
  the `> ` prompt) starts at column 0.

Malformed requests raise InvalidParams naming the field; the console UI then denies.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clef.errors import InvalidParams
from clef.eth.address import MixedcaseAddress, parse_address, to_checksum
from clef.eth.hexutil import parse_bytes, parse_quantity
from keyd.ui.identicon import ColorMode, address_blockie, render_identicon

JSON = dict[str, Any]

BOOT_WARNING = """WARNING!

Clef is an account management tool. It may, like any software, contain bugs.

Please take care to
- backup your keystore files,
- verify that the keystore(s) can be opened with your password.

Clef is distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY;
without even the implied warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR
PURPOSE. See the GNU General Public License for more details."""
BOOT_PROMPT = "\nEnter 'ok' to proceed:\n> "
ABORTED_BY_USER = "aborted by user"

APPROVE_PROMPT = "Approve? [y/N]:"
INPUT_PROMPT = "> "
RULE = "-------------------------------------------"
SHORT_RULE = "-----------------------"

DEFAULT_LIMIT = 1000
UA_LIMIT = 200
ORIGIN_LIMIT = 100
CONTEXT_LIMIT = 100
TEXT_LIMIT = 4000
DATA_LIMIT_BYTES = 1024
MAX_LIST_ITEMS = 200
MAX_MESSAGE_LINES = 1000
MAX_DEPTH = 16
MAX_COMBINING_RUN = 2
MIN_WIDTH, MAX_WIDTH = 40, 400

# Categories never written raw: controls, format characters (bidi overrides, zero-width
# joiners, soft hyphen, tags), surrogates, private use, unassigned, line/paragraph separators.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_SGR_RESET = "\x1b[0m"


@dataclass(frozen=True)
class Style:
    """How to draw: colour mode, terminal width, and whether the terminal takes only ASCII."""

    color: ColorMode = "none"
    width: int = 80
    ascii_only: bool = False

    def __post_init__(self) -> None:
        if self.color not in ("none", "256", "truecolor"):
            raise ValueError("color must be 'none', '256' or 'truecolor'")
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be between {MIN_WIDTH} and {MAX_WIDTH}")

    def paint(self, text: str, sgr: str) -> str:
        """Wrap UI-owned text (never caller text) in an SGR colour when colour is on."""
        if self.color == "none":
            return text
        return f"\x1b[{sgr}m{text}{_SGR_RESET}"


# ---------------------------------------------------------------- sanitising


def _escape(char: str) -> str:
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _escape_pieces(text: str, limit: int, quoted: bool, ascii_only: bool) -> tuple[list[str], int]:
    """One output piece per input character; returns the pieces and how many were cut off."""
    pieces: list[str] = []
    combining_run = 0
    for index, char in enumerate(text):
        if index >= limit:
            return pieces, len(text) - index
        category = unicodedata.category(char)
        is_combining = category in ("Mn", "Me")
        combining_run = combining_run + 1 if is_combining else 0
        if (
            category in _ESCAPED_CATEGORIES
            or (category == "Zs" and char != " ")
            # Stacks of combining marks can draw over the neighbouring lines.
            or (is_combining and combining_run > MAX_COMBINING_RUN)
            or (ascii_only and ord(char) > 0x7E)
        ):
            pieces.append(_escape(char))
        elif quoted and char in ('"', "\\"):
            pieces.append("\\" + char)
        else:
            pieces.append(char)
    return pieces, 0


def truncation_marker(remaining: int) -> str:
    """The marker appended to a value cut short for display."""
    return f" [...{remaining} more characters not shown]"


def sanitize(text: object, limit: int = DEFAULT_LIMIT, *, ascii_only: bool = False) -> str:
    """Make a caller-supplied string safe for the terminal: escapes, then truncation marker.

    Control characters (C0, C1, DEL, so also every escape sequence), bidi overrides,
    zero-width and other invisible format characters, non-ASCII spaces, line separators,
    surrogates, unassigned code points and long runs of combining marks are shown as
    `\\n`, `\\x1b`, `\\u202e`… At most `limit` characters of the input are shown.
    """
    if not isinstance(text, str):
        text = str(text)
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces, remaining = _escape_pieces(text, limit, False, ascii_only)
    return "".join(pieces) + (truncation_marker(remaining) if remaining else "")


def quote(text: object, limit: int = DEFAULT_LIMIT, *, ascii_only: bool = False) -> str:
    """Like sanitize, in double quotes with `"` and `\\` escaped too (Go's %q), marker outside."""
    if not isinstance(text, str):
        text = str(text)
    if limit < 1:
        raise ValueError("limit must be positive")
    pieces, remaining = _escape_pieces(text, limit, True, ascii_only)
    return '"' + "".join(pieces) + '"' + (truncation_marker(remaining) if remaining else "")


def is_safe_char(char: str) -> bool:
    """True for a character sanitize leaves as it is (ignoring the combining-run rule)."""
    category = unicodedata.category(char)
    return category not in _ESCAPED_CATEGORIES and (category != "Zs" or char == " ")


def is_safe(text: str) -> bool:
    """True when sanitize would return text unchanged (no limit reached)."""
    run = 0
    for char in text:
        if not is_safe_char(char):
            return False
        run = run + 1 if unicodedata.category(char) in ("Mn", "Me") else 0
        if run > MAX_COMBINING_RUN:
            return False
    return True


def char_width(char: str) -> int:
    """Terminal columns of one sanitized character (tabs count as a full tab stop)."""
    if char == "\t":
        return 8
    if unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal columns of sanitized text without escape sequences."""
    return sum(char_width(c) for c in text)


def _pack(label: str, pieces: Sequence[str], width: int, tail: str = "") -> list[str]:
    """Lay out `label + value (+ tail)` in `width` columns; continuations start with `| `.

    Breaks after a space when one is near the end of the line, otherwise anywhere; the
    terminal itself never has to wrap (a VT100 defers the wrap after the last column).
    """
    indent = max(min(display_width(label), width // 2), 4)
    continuation = " " * (indent - 2) + "| "
    lines: list[str] = []
    row: list[str] = []
    head, used, room = label, 0, max(width - display_width(label), 8)
    for piece in pieces:
        w = display_width(piece)
        if used + w > room and row:
            cut = _break_point(row)
            lines.append(head + "".join(row[:cut]))
            row = row[cut:]
            head, room = continuation, width - indent
            used = sum(display_width(p) for p in row)
        row.append(piece)
        used += w
    if tail:
        if used + display_width(tail) > room and row:
            lines.append(head + "".join(row))
            head, row, tail = continuation, [], tail.lstrip(" ")
        row.append(tail)
    lines.append(head + "".join(row))
    return lines


def _break_point(row: Sequence[str]) -> int:
    """Where to end a full line: after the last space in its second half, else at its end."""
    for index in range(len(row) - 1, len(row) // 2, -1):
        if row[index] == " ":
            return index + 1
    return len(row)


def field(label: str, value: object, style: Style, *, limit: int = DEFAULT_LIMIT,
          quoted: bool = False) -> list[str]:
    """A `label value` row for a caller-supplied value: escaped, truncated, hard-wrapped."""
    text = value if isinstance(value, str) else str(value)
    pieces, remaining = _escape_pieces(text, limit, quoted, style.ascii_only)
    if quoted:
        pieces = ['"', *pieces, '"']
    return _pack(label, pieces, style.width, truncation_marker(remaining) if remaining else "")


def text_block(text: object, style: Style, *, indent: str = "  ",
               limit: int = TEXT_LIMIT) -> list[str]:
    """A multi-line text shown line by line, every line indented and sanitized."""
    raw = text if isinstance(text, str) else str(text)
    shown, rest = raw[:limit], len(raw) - limit
    lines: list[str] = []
    for line in shown.split("\n"):
        lines.extend(field(indent, line, style, limit=limit))
        if len(lines) > MAX_MESSAGE_LINES:
            lines.append(indent + "[...further lines not shown]")
            return lines
    if rest > 0:
        lines.append(indent + truncation_marker(rest).strip())
    return lines


# ---------------------------------------------------------------- numbers and parsing


def format_units(value: int, decimals: int) -> str:
    """Exact decimal of value / 10**decimals without trailing zeros (no floats)."""
    if value < 0:
        raise ValueError("negative amount")
    whole, fraction = divmod(value, 10**decimals)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:0{decimals}d}".rstrip("0")


def format_wei(value: int) -> str:
    """`N wei (X ether)`."""
    return f"{value} wei ({format_units(value, 18)} ether)"


def format_fee(value: int) -> str:
    """`N wei (X gwei)`, for per-gas prices."""
    return f"{value} wei ({format_units(value, 9)} gwei)"


def _obj(value: object, name: str) -> JSON:
    if not isinstance(value, dict):
        raise InvalidParams(f"invalid {name}: expected an object")
    return value


def _list(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidParams(f"invalid {name}: expected an array")
    return value


def _str(value: object, name: str, *, default: str | None = None) -> str:
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise InvalidParams(f"invalid {name}: expected a string")
    return value


def _quantity(obj: JSON, key: str, name: str, bits: int = 256) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    return parse_quantity(value, name, bits)


# ---------------------------------------------------------------- shared blocks


def render_call_info(call_info: object, style: Style, heading: str) -> list[str]:
    """The validation list `  * <type> : <message>` (nothing when call_info is null)."""
    if call_info is None:
        return []
    entries = _list(call_info, "call_info")
    lines = ["", heading]
    for index, entry in enumerate(entries):
        if index >= MAX_LIST_ITEMS:
            lines.append(f"  [...{len(entries) - index} more messages not shown]")
            break
        item = _obj(entry, f"call_info[{index}]")
        kind = sanitize(_str(item.get("type"), f"call_info[{index}].type"), 32,
                        ascii_only=style.ascii_only)
        message = _str(item.get("message"), f"call_info[{index}].message")
        color = {"CRITICAL": "1;31", "WARNING": "1;33"}.get(kind, "")
        label = "  * " + (style.paint(kind, color) if color else kind) + " : "
        # _pack measures the label; colour escapes have no width, so measure the plain form.
        plain = f"  * {kind} : "
        packed = field(plain, message, style)
        lines.append(label + packed[0][len(plain):])
        lines.extend(packed[1:])
    lines.append("")
    return lines


def render_metadata(meta: object, style: Style) -> list[str]:
    """The request context block: transport line and the caller's (untrusted) headers."""
    info = {} if meta is None else _obj(meta, "meta")

    def get(key: str, default: str) -> str:
        return _str(info.get(key), f"meta.{key}", default=default)

    a = style.ascii_only
    remote = sanitize(get("remote", "NA"), CONTEXT_LIMIT, ascii_only=a)
    scheme = sanitize(get("scheme", "NA"), CONTEXT_LIMIT, ascii_only=a)
    local = sanitize(get("local", "NA"), CONTEXT_LIMIT, ascii_only=a)
    lines = ["Request context:"]
    lines += _pack("\t", [f"{remote} -> {scheme} -> {local}"], style.width)
    lines += ["", "Additional HTTP header data, provided by the external caller:"]
    lines += field("\tUser-Agent: ", get("User-Agent", ""), style, limit=UA_LIMIT, quoted=True)
    lines += field("\tOrigin: ", get("Origin", ""), style, limit=ORIGIN_LIMIT, quoted=True)
    forwarded = info.get("X-Forwarded-For")
    if forwarded is not None:
        value = _str(forwarded, "meta.X-Forwarded-For")
        lines += field("\tX-Forwarded-For: ", value, style, limit=CONTEXT_LIMIT, quoted=True)
        lines.append("\t(X-Forwarded-For is caller-supplied and not verified)")
    return lines


def identicon_rows(address: bytes, style: Style, indent: str) -> list[str]:
    """The address's blockie, one row per line, indented."""
    return [indent + row for row in render_identicon(address_blockie(address), style.color)]


def identicon_pair(left: tuple[str, bytes], right: tuple[str, bytes] | None, style: Style,
                   *, right_note: str = "") -> list[str]:
    """Two labelled blockies side by side with an arrow between (e.g. from -> to)."""
    indent, gap, arrow = "   ", "       ", "  -->  "
    left_rows = render_identicon(address_blockie(left[1]), style.color)
    icon_width = 16
    label_row = indent + left[0].ljust(icon_width) + gap + (right[0] if right else "")
    right_rows = render_identicon(address_blockie(right[1]), style.color) if right else []
    lines = [label_row.rstrip()]
    middle = len(left_rows) // 2 - 1
    for index, row in enumerate(left_rows):
        between = arrow if index == middle else gap
        other = right_rows[index] if right_rows else (right_note if index == middle else "")
        lines.append((indent + row + between + other).rstrip())
    return lines


def _address_line(label: str, value: object, name: str, style: Style) -> tuple[list[str], bytes]:
    """`label <original> [chksum ok|chksum INVALID]` (geth's MixedcaseAddress.String)."""
    address = MixedcaseAddress.parse(value, name)
    verdict = "[chksum ok]" if address.valid_checksum() else "[chksum INVALID]"
    lines = field(label, address.original, style, limit=64)
    lines[-1] += " " + verdict
    return lines, address.raw


# ---------------------------------------------------------------- requests


def render_tx_request(request: object, style: Style) -> list[str]:
    """ui_approveTx: the reference's transaction block, plus identicons and amounts in ether."""
    req = _obj(request, "request")
    tx = _obj(req.get("transaction"), "transaction")
    from_lines, from_raw = _address_line("from:               ", tx.get("from"),
                                         "transaction.from", style)
    to_value = tx.get("to")
    lines = ["--------- Transaction request-------------"]
    if to_value is None:
        lines += identicon_pair(("from", from_raw), None, style, right_note="(contract creation)")
        lines.append("to:    <contact creation>")
    else:
        to = MixedcaseAddress.parse(to_value, "transaction.to")
        lines += identicon_pair(("from", from_raw), ("to", to.raw), style)
        lines += field("to:    ", to.original, style, limit=64)
        if not to.valid_checksum():
            lines += ["", style.paint("WARNING: Invalid checksum on to-address!", "1;31"), ""]
    lines += from_lines
    value = _quantity(tx, "value", "transaction.value") or 0
    gas = _quantity(tx, "gas", "transaction.gas", 64) or 0
    lines.append(f"value:              {format_wei(value)}")
    lines.append(f"gas:                {hex(gas)} ({gas})")
    max_fee = _quantity(tx, "maxFeePerGas", "transaction.maxFeePerGas")
    if max_fee is not None:
        tip = _quantity(tx, "maxPriorityFeePerGas", "transaction.maxPriorityFeePerGas")
        lines.append(f"maxFeePerGas:          {format_fee(max_fee)}")
        lines.append(f"maxPriorityFeePerGas:  {format_fee(tip or 0)}"
                     + ("" if tip is not None else " (not set)"))
        per_gas = max_fee
    else:
        price = _quantity(tx, "gasPrice", "transaction.gasPrice")
        unset = "" if price is not None else " (not set)"
        lines.append(f"gasprice: {format_fee(price or 0)}{unset}")
        per_gas = price or 0
    blob_fee = _quantity(tx, "maxFeePerBlobGas", "transaction.maxFeePerBlobGas")
    if blob_fee is not None:
        lines.append(f"maxFeePerBlobGas: {format_fee(blob_fee)}")
    nonce = _quantity(tx, "nonce", "transaction.nonce", 64) or 0
    lines.append(f"nonce:    {hex(nonce)} ({nonce})")
    chain_id = _quantity(tx, "chainId", "transaction.chainId")
    if chain_id is not None:
        lines.append(f"chainid:  {hex(chain_id)} ({chain_id})")
    lines += _access_list(tx.get("accessList"), style)
    hashes = tx.get("blobVersionedHashes")
    blob_count = 0
    if hashes is not None:
        items = _list(hashes, "transaction.blobVersionedHashes")
        blob_count = len(items)
        lines.append(f"blob hashes: {blob_count}")
        for index, item in enumerate(items[:MAX_LIST_ITEMS]):
            digest = parse_bytes(item, f"transaction.blobVersionedHashes[{index}]", 32)
            lines.append(f" {index}. 0x{digest.hex()}")
        if blob_count > MAX_LIST_ITEMS:
            lines.append(f" [...{blob_count - MAX_LIST_ITEMS} more not shown]")
    lines += _authorizations(tx.get("authorizationList"), style)
    data_key = "data" if tx.get("data") is not None else "input"
    if tx.get(data_key) is not None:
        data = parse_bytes(tx[data_key], f"transaction.{data_key}")
        if data:
            shown = "0x" + data[:DATA_LIMIT_BYTES].hex()
            lines += field("data:     ", shown, style, limit=len(shown))
            if len(data) > DATA_LIMIT_BYTES:
                lines.append(f"          | [...{len(data) - DATA_LIMIT_BYTES} more bytes not shown;"
                             f" {len(data)} bytes in total]")
    total = value + gas * per_gas + blob_count * (1 << 17) * (blob_fee or 0)
    lines.append(f"max cost: {format_wei(total)}")
    lines += render_call_info(req.get("call_info"), style, "Transaction validation:")
    if req.get("call_info") is None:
        lines.append("")
    lines += render_metadata(req.get("meta"), style)
    lines.append(RULE)
    return lines


def _access_list(value: object, style: Style) -> list[str]:
    if value is None:
        return []
    entries = _list(value, "transaction.accessList")
    lines = ["Accesslist"]
    for index, entry in enumerate(entries[:MAX_LIST_ITEMS]):
        item = _obj(entry, f"transaction.accessList[{index}]")
        address = parse_address(item.get("address"), f"transaction.accessList[{index}].address")
        lines.append(f" {index}. {to_checksum(address)}")
        keys = _list(item.get("storageKeys", []), f"transaction.accessList[{index}].storageKeys")
        for j, key in enumerate(keys[:MAX_LIST_ITEMS]):
            slot = parse_bytes(key, f"transaction.accessList[{index}].storageKeys[{j}]", 32)
            lines.append(f"   {j}. 0x{slot.hex()}")
        if len(keys) > MAX_LIST_ITEMS:
            lines.append(f"   [...{len(keys) - MAX_LIST_ITEMS} more storage keys not shown]")
    if len(entries) > MAX_LIST_ITEMS:
        lines.append(f" [...{len(entries) - MAX_LIST_ITEMS} more entries not shown]")
    return lines


def _authorizations(value: object, style: Style) -> list[str]:
    if value is None:
        return []
    entries = _list(value, "transaction.authorizationList")
    lines = [f"authorization list: {len(entries)}"]
    for index, entry in enumerate(entries[:MAX_LIST_ITEMS]):
        name = f"transaction.authorizationList[{index}]"
        item = _obj(entry, name)
        address = to_checksum(parse_address(item.get("address"), name + ".address"))
        chain = _quantity(item, "chainId", name + ".chainId")
        nonce = _quantity(item, "nonce", name + ".nonce", 64)
        chain_text = "?" if chain is None else str(chain)
        nonce_text = "?" if nonce is None else str(nonce)
        lines.append(f" {index}. delegate to {address} (chainid {chain_text}, nonce {nonce_text})")
    if len(entries) > MAX_LIST_ITEMS:
        lines.append(f" [...{len(entries) - MAX_LIST_ITEMS} more not shown]")
    lines.append(style.paint("WARNING: an authorization lets the delegate's code act for the "
                             "signing account.", "1;31"))
    return lines


def render_messages(messages: object, style: Style) -> list[str]:
    """Sign-data `messages` rows `name [type]: "value"`, nested for typed-data structs."""
    if messages is None:
        return []
    out: list[str] = []
    _messages_into(out, _list(messages, "messages"), 1, style, "messages")
    return out


def _messages_into(out: list[str], items: list[Any], depth: int, style: Style, path: str) -> None:
    indent = "  " * depth
    for index, entry in enumerate(items):
        if len(out) >= MAX_MESSAGE_LINES:
            out.append(indent + "[...further entries not shown]")
            return
        name = f"{path}[{index}]"
        item = _obj(entry, name)
        label = (indent + sanitize(_str(item.get("name"), name + ".name", default=""), 100,
                                   ascii_only=style.ascii_only)
                 + " [" + sanitize(_str(item.get("type"), name + ".type", default=""), 100,
                                   ascii_only=style.ascii_only) + "]: ")
        value = item.get("value")
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            out.append(label.rstrip())
            if depth >= MAX_DEPTH:
                out.append(indent + "  [...nested too deep, not shown]")
                continue
            _messages_into(out, value, depth + 1, style, name + ".value")
        elif value is None:
            out.append(label.rstrip())
        elif isinstance(value, str):
            out.extend(field(label, value, style, limit=TEXT_LIMIT, quoted=True))
        else:
            encoded = safe_json(value, separators=(",", ":"))
            out.extend(field(label, encoded, style, limit=TEXT_LIMIT))


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when containers nest deeper than limit (iterative: deep input must not recurse)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def safe_json(value: object, **kwargs: Any) -> str:
    """json.dumps for display, refusing absurd nesting first: json.dumps recurses in C and a
    deep value can crash the interpreter when the recursion limit has been raised. A value we
    cannot show faithfully is an error: the caller denies the request rather than show less."""
    if _depth_exceeds(value, 64):
        raise ValueError("value nested too deep to display")
    return json.dumps(value, ensure_ascii=True, **kwargs)


def _raw_data(value: object, style: Style) -> list[str]:
    if value is None:
        return []
    encoded = _str(value, "raw_data")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParams("invalid raw_data: not standard base64") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = "0x" + raw[:DATA_LIMIT_BYTES].hex()
        lines = field("\t", shown, style, limit=len(shown))
        if len(raw) > DATA_LIMIT_BYTES:
            lines.append(f"\t[...{len(raw) - DATA_LIMIT_BYTES} more bytes not shown]")
        return ["raw data:  ", *lines]
    return ["raw data:  ", *field("\t", text, style, limit=TEXT_LIMIT, quoted=True)]


def render_sign_data_request(request: object, style: Style) -> list[str]:
    """ui_approveSignData: account with identicon, validation, messages, raw data and hash."""
    req = _obj(request, "request")
    account_lines, raw = _address_line("Account:  ", req.get("address"), "address", style)
    lines = ["-------- Sign data request--------------", *account_lines]
    lines += identicon_rows(raw, style, " " * 10)
    content_type = req.get("content_type")
    if content_type is not None:
        lines += field("Content type: ", _str(content_type, "content_type"), style, limit=100)
    info = req.get("call_info")
    if info is not None and _list(info, "call_info"):
        lines += render_call_info(info, style, "Validation messages:")
    lines.append("messages:")
    lines += render_messages(req.get("messages"), style)
    lines += _raw_data(req.get("raw_data"), style)
    digest = req.get("hash")
    if digest is not None:
        lines.append(f"data hash:  0x{parse_bytes(digest, 'hash', 64).hex()}")
    lines.append(RULE)
    lines += render_metadata(req.get("meta"), style)
    return lines


def render_listing_request(request: object, style: Style) -> list[str]:
    """ui_approveListing: every account that approval would reveal (all or nothing)."""
    req = _obj(request, "request")
    accounts = _list(req.get("accounts", []), "accounts")
    lines = [
        "-------- List Account request--------------",
        "A request has been made to list all accounts. ",
        "You can select which accounts the caller can see",
        "(this console reveals either all of them or none)",
    ]
    for index, entry in enumerate(accounts):
        if index >= MAX_LIST_ITEMS:
            lines.append(f"  [...and {len(accounts) - index} more accounts, also revealed]")
            break
        item = _obj(entry, f"accounts[{index}]")
        address = parse_address(item.get("address"), f"accounts[{index}].address")
        lines.append(f"  [x] {to_checksum(address)}")
        url = item.get("url")
        if url is not None:
            lines += field("    URL: ", _str(url, f"accounts[{index}].url"), style, limit=300)
    lines.append(RULE)
    lines += render_metadata(req.get("meta"), style)
    return lines


def render_new_account_request(request: object, style: Style) -> list[str]:
    """ui_approveNewAccount: the reference's explanation and the request context."""
    req = _obj(request, "request")
    return [
        "-------- New Account request--------------",
        "",
        "A request has been made to create a new account. ",
        "Approving this operation means that a new account is created,",
        "and the address is returned to the external caller",
        "",
        *render_metadata(req.get("meta"), style),
    ]


def render_input_request(request: object, style: Style) -> tuple[list[str], bool]:
    """ui_onInputRequired: `## <title>`, blank line, the prompt; returns (lines, is_password)."""
    req = _obj(request, "request")
    title = _str(req.get("title"), "title", default="")
    prompt = _str(req.get("prompt"), "prompt", default="")
    is_password = req.get("isPassword", False)
    if not isinstance(is_password, bool):
        raise InvalidParams("invalid isPassword: expected a boolean")
    lines = [*field("## ", title, style, limit=200), ""]
    for line in prompt[:TEXT_LIMIT].split("\n")[:100]:
        lines += field("", line, style, limit=TEXT_LIMIT)
    return lines, is_password


def render_notice(kind: str, text: object, style: Style) -> list[str]:
    """ShowInfo / ShowError: `## Info ` or `## Error ` and the message, indented."""
    lines = [f"## {kind} ", *text_block(text, style)]
    if kind == "Error":
        lines.append(RULE)
    return lines


def render_signer_startup(info: object, style: Style,
                          accounts: Iterable[tuple[str, str]] = ()) -> list[str]:
    """ui_onSignerStartup: known accounts (up to 20) and `* key : value` per info field."""
    wrapper = _obj(info, "info")
    fields = _obj(wrapper.get("info", wrapper), "info.info")
    lines: list[str] = []
    known = list(accounts)
    if known:
        lines.append("Accounts known to Clef:")
        for index, (address, url) in enumerate(known[:20]):
            lines += field(f"Account {index}: ", f"{address} at {url}", style, limit=300)
        if len(known) > 20:
            lines.append(f"[...and {len(known) - 20} more]")
        lines.append("")
    else:
        lines.append("No accounts known to Clef")
    lines.append("------- Signer info -------")
    for key in sorted(fields, key=str)[:MAX_LIST_ITEMS]:
        label = f"* {sanitize(key, 64, ascii_only=style.ascii_only)} : "
        lines += field(label, fields[key] if isinstance(fields[key], str)
                       else safe_json(fields[key]), style, limit=300)
    return lines


def render_approved_tx(result: object, style: Style) -> list[str]:
    """ui_onApprovedTx: what was signed, as the signed transaction's JSON."""
    res = _obj(result, "result")
    tx = res.get("tx")
    lines = ["Transaction signed:"]
    if isinstance(tx, dict) and isinstance(tx.get("hash"), str):
        lines += field("  hash: ", tx["hash"], style, limit=80)
    encoded = safe_json(tx, indent=2)
    for index, line in enumerate(encoded.split("\n")):
        if index >= MAX_MESSAGE_LINES:
            lines.append("  [...further lines not shown]")
            break
        lines += field("  ", line, style, limit=4 * style.width)
    return lines


def render_boot_warning() -> str:
    """The boot warning and the `ok` prompt, as the reference prints them."""
    return "\n" + BOOT_WARNING + "\n" + BOOT_PROMPT


def strip_sgr(text: str) -> str:
    """Remove the UI's own SGR colour sequences (used to measure or to test plain output)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("\x1b[", i):
            end = i + 2
            while end < len(text) and (text[end].isdigit() or text[end] == ";"):
                end += 1
            if end < len(text) and text[end] == "m":
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)
