"""Pure rendering: sanitising hostile strings, layout of each request, amounts, identicons."""

from __future__ import annotations

import base64
import json
import re
import unicodedata
from decimal import Decimal, localcontext
from pathlib import Path

import dukpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clef.errors import InvalidParams
from clef.eth.address import to_checksum
from keyd.ui import identicon, render
from keyd.ui.render import Style, quote, sanitize

SHARED = Path(__file__).resolve().parents[2] / "shared"
REQUESTS = SHARED / "conformance" / "geth" / "clef-requests"

PLAIN = Style(color="none", width=80)
ADDR = "0x8A8eAFb1cf62BfBeb1741769DAE1a9dd47996192"
LOWER = ADDR.lower()

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear screen, cursor home
    "\x1b]0;pwned\x07",  # OSC window title
    "\x9b31m",  # C1 CSI
    "line\rApprove? [y/N]:",  # carriage return overwrite
    "x\nApprove? [y/N]:\n> ",
    "\u202egnp.exe",  # right-to-left override
    "a\u2066b\u2069c\u200bd\u200de\ufeff",  # isolates, zero-width
    "del\x7f",
    "nbsp\u00a0x\u2028y\u2029",
    "\ud800lone surrogate",
    "e" + "\u0301" * 50,  # combining-mark stack
    "\U000e0041tag",  # tag character
]


def unescape(text: str) -> str:
    """Decode quote()'s escapes: proves the shown form is unambiguous."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        simple = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        else:
            size = {"x": 2, "u": 4, "U": 8}[nxt]
            out.append(chr(int(text[i + 2 : i + 2 + size], 16)))
            i += 2 + size
    return "".join(out)


def unwrap(lines: list[str]) -> str:
    """Join hard-wrapped continuation lines (`   | ...`) back onto their first line."""
    out: list[str] = []
    for line in lines:
        if re.match(r" +\| ", line) and out:
            out[-1] += line.split("| ", 1)[1]
        else:
            out.append(line)
    return "\n".join(out)


# ------------------------------------------------------------------ sanitize / quote


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_are_escaped(text: str) -> None:
    for out in (sanitize(text), quote(text)):
        assert render.is_safe(out)
        assert "\x1b" not in out and "\r" not in out and "\n" not in out


def test_specific_escapes() -> None:
    assert sanitize("\x1b[2J") == "\\x1b[2J"
    assert sanitize("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert sanitize("\u202e") == "\\u202e"
    assert sanitize("\x9b") == "\\x9b"
    assert sanitize("\U000e0041") == "\\U000e0041"
    assert sanitize("\u00a0") == "\\x00a0"[:0] + "\\xa0"
    assert quote('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    # two combining marks are kept (real scripts need them), a third is escaped
    assert sanitize("e\u0301\u0302\u0303") == "e\u0301\u0302\\u0303"


def test_truncation_marker() -> None:
    out = sanitize("A" * 500, 100)
    assert out.startswith("A" * 100)
    assert out.endswith("[...400 more characters not shown]")
    q = quote("B" * 150, 100)
    assert q == '"' + "B" * 100 + '"' + " [...50 more characters not shown]"


def test_non_string_values_are_stringified() -> None:
    assert sanitize(12) == "12"
    assert quote(None) == '"None"'
    with pytest.raises(ValueError):
        sanitize("x", 0)


def test_ascii_only_escapes_everything_non_ascii() -> None:
    assert sanitize("é€😀", ascii_only=True) == "\\xe9\\u20ac\\U0001f600"


@settings(max_examples=400)
@given(st.text(alphabet=st.characters(codec=None), max_size=300))
def test_sanitize_output_never_contains_control_characters(text: str) -> None:
    for out in (sanitize(text), quote(text), sanitize(text, 7), quote(text, ascii_only=True)):
        assert render.is_safe(out)
        for ch in out:
            assert unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
    assert all(0x20 <= ord(c) <= 0x7E for c in sanitize(text, ascii_only=True))


@given(st.text(max_size=300))
def test_sanitize_is_identity_on_safe_text_and_idempotent(text: str) -> None:
    once = sanitize(text)
    assert sanitize(once) == once
    if render.is_safe(text):
        assert once == text


@given(st.text(alphabet=st.characters(codec=None), max_size=200))
def test_quote_is_reversible(text: str) -> None:
    shown = quote(text, 1000)
    assert shown[0] == '"' and shown[-1] == '"'
    assert unescape(shown[1:-1]) == text


@given(st.text(max_size=2000), st.integers(1, 300))
def test_output_is_bounded(text: str, limit: int) -> None:
    assert len(sanitize(text, limit)) <= 10 * limit + 60


def test_huge_input_is_cheap() -> None:
    text = "\x1b" * 5_000_000
    out = sanitize(text, 200)
    assert len(out) < 2000 and out.endswith("[...4999800 more characters not shown]")


# ------------------------------------------------------------------ layout helpers


@given(st.text(alphabet=st.characters(codec=None), max_size=600), st.integers(40, 160))
def test_field_lines_fit_and_never_start_at_column_zero(text: str, width: int) -> None:
    style = Style(width=width)
    lines = render.field("\tOrigin: ", text, style, limit=600, quoted=True)
    assert lines[0].startswith("\tOrigin: ")
    for line in lines:
        assert render.is_safe(line.replace("\t", ""))
        assert render.display_width(line) <= width
    for line in lines[1:]:
        assert line.startswith("  ") and line.lstrip(" ").startswith("|")


def test_wide_characters_count_double() -> None:
    lines = render.field("x: ", "界" * 100, Style(width=40))
    assert all(render.display_width(line) <= 40 for line in lines)


def test_text_block_indents_every_line() -> None:
    lines = render.text_block("one\nApprove? [y/N]:\n> y", PLAIN)
    assert lines == ["  one", "  Approve? [y/N]:", "  > y"]


@given(st.integers(0, 10**40))
def test_format_units_matches_decimal(value: int) -> None:
    with localcontext() as ctx:
        ctx.prec = 100
        assert Decimal(render.format_units(value, 18)) == Decimal(value).scaleb(-18)
        assert Decimal(render.format_units(value, 9)) == Decimal(value).scaleb(-9)


def test_format_wei() -> None:
    assert render.format_wei(10**18) == "1000000000000000000 wei (1 ether)"
    assert render.format_wei(1) == "1 wei (0.000000000000000001 ether)"
    assert render.format_wei(0) == "0 wei (0 ether)"
    assert render.format_fee(30 * 10**9) == "30000000000 wei (30 gwei)"
    with pytest.raises(ValueError):
        render.format_units(-1, 18)


# ------------------------------------------------------------------ requests


def tx_request(**tx: object) -> dict[str, object]:
    base: dict[str, object] = {
        "from": ADDR, "to": ADDR, "gas": "0x5208", "gasPrice": "0x3b9aca00",
        "maxFeePerGas": None, "maxPriorityFeePerGas": None, "value": "0xde0b6b3a7640000",
        "nonce": "0x7",
    }
    base.update(tx)
    return {"transaction": base, "call_info": None,
            "meta": {"remote": "127.0.0.1:4000", "local": "localhost:8550",
                     "scheme": "HTTP/1.1", "User-Agent": "curl/8", "Origin": ""}}


def test_tx_reference_layout_legacy() -> None:
    lines = render.render_tx_request(tx_request(), PLAIN)
    text = "\n".join(lines)
    assert lines[0] == "--------- Transaction request-------------"
    assert f"to:    {ADDR}" in lines
    assert "WARNING: Invalid checksum on to-address!" not in text
    assert f"from:               {ADDR} [chksum ok]" in lines
    assert "value:              1000000000000000000 wei (1 ether)" in lines
    assert "gas:                0x5208 (21000)" in lines
    assert "gasprice: 1000000000 wei (1 gwei)" in lines
    assert "nonce:    0x7 (7)" in lines
    assert "max cost: 1000021000000000000 wei (1.000021 ether)" in lines
    assert "Request context:" in lines
    assert "\t127.0.0.1:4000 -> HTTP/1.1 -> localhost:8550" in lines
    assert '\tUser-Agent: "curl/8"' in lines
    assert '\tOrigin: ""' in lines
    assert lines[-1] == render.RULE
    # identicons for from and to, side by side, before the fields
    assert lines[1].split() == ["from", "to"]
    assert "-->" in text


def test_tx_bad_checksum_and_contract_creation() -> None:
    text = "\n".join(render.render_tx_request(tx_request(to=LOWER, **{"from": LOWER}), PLAIN))
    assert f"to:    {LOWER}\n\nWARNING: Invalid checksum on to-address!\n\n" in text
    assert f"from:               {LOWER} [chksum INVALID]" in text
    created = render.render_tx_request(tx_request(to=None), PLAIN)
    assert "to:    <contact creation>" in created
    assert "(contract creation)" in "\n".join(created)


def test_tx_1559_blob_access_list_authorizations_and_data() -> None:
    req = tx_request(
        gasPrice=None, maxFeePerGas="0x6fc23ac00", maxPriorityFeePerGas=None, chainId="0x1",
        accessList=[{"address": LOWER, "storageKeys": ["0x" + "11" * 32]}],
        blobVersionedHashes=["0x01" + "22" * 31], maxFeePerBlobGas="0x1",
        authorizationList=[{"address": LOWER, "chainId": "0x1", "nonce": "0x0"}],
        data="0xa9059cbb" + "00" * 2000,
    )
    req["call_info"] = [{"type": "WARNING", "message": "Invalid checksum on recipient address"}]
    lines = render.render_tx_request(req, PLAIN)
    text = "\n".join(lines)
    assert "maxFeePerGas:          30000000000 wei (30 gwei)" in lines
    assert "maxPriorityFeePerGas:  0 wei (0 gwei) (not set)" in lines
    assert "gasprice" not in text
    assert "chainid:  0x1 (1)" in lines
    assert f"Accesslist\n 0. {ADDR}\n   0. 0x{'11' * 32}" in text
    assert f"blob hashes: 1\n 0. 0x01{'22' * 31}" in text
    assert "maxFeePerBlobGas: 1 wei (0.000000001 gwei)" in lines
    assert f" 0. delegate to {ADDR} (chainid 1, nonce 0)" in lines
    assert "WARNING: an authorization" in text
    assert "data:     0xa9059cbb" in text
    assert "[...980 more bytes not shown; 2004 bytes in total]" in text
    assert "\nTransaction validation:\n  * WARNING : Invalid checksum on recipient address\n" in text
    # max cost = value + gas * maxFeePerGas + blobs * 2**17 * maxFeePerBlobGas
    assert f"max cost: {render.format_wei(10**18 + 21000 * 30 * 10**9 + 2**17)}" in lines


@pytest.mark.parametrize("name", ["sign_normal_exp_ok.json", "sign_1559_tx.json",
                                  "sign_bad_checksum_exp_fail.json"])
def test_conformance_requests_render(name: str) -> None:
    tx = json.loads((REQUESTS / name).read_text())["params"][0]
    lines = render.render_tx_request({"transaction": tx, "call_info": None, "meta": None}, PLAIN)
    assert f"to:    {tx['to']}" in lines
    assert f"value:              {int(tx['value'], 16)} wei" in "\n".join(lines)
    assert ("WARNING: Invalid checksum on to-address!" in lines) == ("bad_checksum" in name)


@pytest.mark.parametrize(("patch", "field"), [
    ({"from": "0x1234"}, "transaction.from"),
    ({"to": 5}, "transaction.to"),
    ({"value": "12"}, "transaction.value"),
    ({"gas": "0x" + "f" * 17}, "transaction.gas"),
    ({"data": "0xabc"}, "transaction.data"),
    ({"accessList": [{"address": "0x00"}]}, "transaction.accessList[0].address"),
    ({"blobVersionedHashes": "0x01"}, "transaction.blobVersionedHashes"),
])
def test_malformed_tx_names_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParams) as err:
        render.render_tx_request(tx_request(**patch), PLAIN)
    assert field in err.value.message


def test_malformed_requests_raise_invalid_params() -> None:
    bad: object
    for bad in (None, [], {"transaction": None}, {"transaction": {"from": ADDR}, "meta": "x"},
                {"transaction": {"from": ADDR}, "call_info": [{"type": 1}]}):
        with pytest.raises(InvalidParams):
            render.render_tx_request(bad, PLAIN)
    with pytest.raises(InvalidParams, match=r"meta\.Origin"):
        render.render_metadata({"Origin": 7}, PLAIN)
    with pytest.raises(InvalidParams, match="raw_data"):
        render.render_sign_data_request({"address": ADDR, "raw_data": "***"}, PLAIN)
    with pytest.raises(InvalidParams, match=r"accounts\[0\].address"):
        render.render_listing_request({"accounts": [{"address": "nope"}]}, PLAIN)


def test_metadata_hostile_headers_escaped_and_truncated() -> None:
    meta = {"remote": "1.2.3.4:5\x1b[2J", "local": "evil\nApprove? [y/N]:", "scheme": "HTTP/1.1",
            "User-Agent": "\u202e" + "U" * 400, "Origin": "\x1b]0;x\x07" + "O" * 200,
            "X-Forwarded-For": "10.0.0.1\r\n"}
    lines = render.render_metadata(meta, PLAIN)
    text = "\n".join(lines)
    assert "\x1b" not in text and "\r" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\x1b]0;x\\x07" in text
    assert "evil\\nApprove? [y/N]:" in text
    assert not any(line.startswith("Approve?") for line in lines)
    # UA shows 200 characters, Origin 100, each followed by a marker outside the quotes
    flat = unwrap(lines)
    assert re.search(r'"\\u202eU{199}" ?\[\.\.\.201 more characters not shown\]', flat)
    assert re.search(r'"\\x1b]0;x\\x07O{94}" ?\[\.\.\.106 more characters not shown\]', flat)
    assert '\tX-Forwarded-For: "10.0.0.1\\r\\n"' in lines
    assert "\t(X-Forwarded-For is caller-supplied and not verified)" in lines
    assert render.render_metadata(None, PLAIN)[1] == "\tNA -> NA -> NA"


def sign_request(value: object, *, content_type: str = "text/plain") -> dict[str, object]:
    raw = b"\x19Ethereum Signed Message:\n11hello world"
    return {"content_type": content_type, "address": ADDR,
            "raw_data": base64.b64encode(raw).decode(),
            "messages": [{"name": "message", "type": "text/plain", "value": value}],
            "call_info": None, "hash": "0x" + "ab" * 32, "meta": {}}


def test_sign_data_layout() -> None:
    lines = render.render_sign_data_request(sign_request("hello world"), PLAIN)
    text = "\n".join(lines)
    assert lines[0] == "-------- Sign data request--------------"
    assert lines[1] == f"Account:  {ADDR} [chksum ok]"
    assert len([ln for ln in lines if ln.startswith(" " * 10) and len(ln) == 26]) == 8  # identicon
    assert 'messages:\n  message [text/plain]: "hello world"' in text
    assert 'raw data:  \n\t"\\x19Ethereum Signed Message:\\n11hello world"' in text
    assert f"data hash:  0x{'ab' * 32}" in lines
    assert lines.index(render.RULE) < lines.index("Request context:")


def test_sign_data_hostile_text_cannot_fake_a_prompt() -> None:
    evil = "ok\x1b[1A\x1b[2K\r\nApprove? [y/N]:\n> y\n" + "\u202e" * 3
    lines = render.render_sign_data_request(sign_request(evil), PLAIN)
    assert not any("\x1b" in ln or "\r" in ln or "\u202e" in ln for ln in lines)
    assert not any(ln.startswith(("Approve?", ">")) for ln in lines)


def test_typed_data_messages_nested_and_bounded() -> None:
    nested: object = "leaf"
    for depth in range(200):
        nested = [{"name": f"n{depth}", "type": "T", "value": nested}]
    lines = render.render_messages(nested, PLAIN)
    assert any("nested too deep" in ln for ln in lines)
    many = [{"name": "x", "type": "string", "value": "v"}] * 5000
    lines = render.render_messages(many, PLAIN)
    assert len(lines) <= render.MAX_MESSAGE_LINES + 1
    assert lines[-1].endswith("[...further entries not shown]")
    other = render.render_messages([{"name": "n", "type": "uint8[]", "value": [1, "\x1b"]}], PLAIN)
    assert other == ['  n [uint8[]]: [1,"\\u001b"]']


def test_binary_raw_data_shown_as_hex() -> None:
    req = sign_request("x")
    req["raw_data"] = base64.b64encode(b"\xff\x00\x01").decode()
    assert "\t0xff0001" in render.render_sign_data_request(req, PLAIN)


def test_listing_and_new_account_layout() -> None:
    url = "keystore:///k/UTC--\x1b[31mred"
    lines = render.render_listing_request(
        {"accounts": [{"address": LOWER, "url": url}], "meta": None}, PLAIN)
    assert f"  [x] {ADDR}" in lines
    assert "    URL: keystore:///k/UTC--\\x1b[31mred" in lines
    new = render.render_new_account_request({"meta": None}, PLAIN)
    assert new[0] == "-------- New Account request--------------"
    assert "and the address is returned to the external caller" in new


def test_notices_input_startup_and_approved_tx() -> None:
    assert render.render_notice("Info", "a\nb", PLAIN) == ["## Info ", "  a", "  b"]
    assert render.render_notice("Error", "bad", PLAIN) == ["## Error ", "  bad", render.RULE]
    lines, secret = render.render_input_request(
        {"title": "Password", "prompt": "Enter it\n7 | 8 | 9", "isPassword": True}, PLAIN)
    assert secret is True and lines == ["## Password", "", "Enter it", "7 | 8 | 9"]
    with pytest.raises(InvalidParams, match="isPassword"):
        render.render_input_request({"title": "t", "prompt": "p", "isPassword": "yes"}, PLAIN)
    info = {"info": {"intapi_version": "7.0.1", "extapi_version": "6.1.0",
                     "extapi_http": "n/a", "extapi_ipc": "/tmp/clef.ipc"}}
    start = render.render_signer_startup(info, PLAIN, [(ADDR, "keystore:///k/a")])
    assert "------- Signer info -------" in start
    assert "* extapi_version : 6.1.0" in start and "* extapi_http : n/a" in start
    assert f"Account 0: {ADDR} at keystore:///k/a" in start
    signed = render.render_approved_tx({"raw": "0x02", "tx": {"hash": "0x" + "cd" * 32,
                                                              "input": "0x\u202e"}}, PLAIN)
    assert signed[0] == "Transaction signed:"
    assert f"  hash: 0x{'cd' * 32}" in signed
    assert all(render.is_safe(ln) for ln in signed)


def test_colour_only_in_ui_chrome() -> None:
    style = Style(color="256", width=100)
    req = tx_request(to=LOWER)
    req["call_info"] = [{"type": "CRITICAL", "message": "\x1b[31mfake"}]
    text = "\n".join(render.render_tx_request(req, style))
    # every ESC starts an SGR sequence the UI itself emitted
    assert re.sub(r"\x1b\[[0-9;]*m", "", text).count("\x1b") == 0
    assert "\x1b[48;5;" in text and "\\x1b[31mfake" in text


def test_boot_warning_text() -> None:
    text = render.render_boot_warning()
    assert text.startswith("\nWARNING!\n\nClef is an account management tool.")
    assert "PURPOSE. See the GNU General Public License for more details.\n" in text
    assert text.endswith("\nEnter 'ok' to proceed:\n> ")


def test_style_validates() -> None:
    with pytest.raises(ValueError):
        Style(color="16")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Style(width=10)
    assert render.strip_sgr(Style(color="256").paint("x", "1")) == "x"


# ------------------------------------------------------------------ identicons

# Pinned by the eth-blockies Rust crate's documentation (a third implementation).
PINNED = "0xe686c14FF9C11038F2B1c9aD617F2346CFB817dC"

JS_ORACLE = r"""
var w = [0, 0, 0, 0];
var s = dukpy.seed;
for (var i = 0; i < s.length; i++) { w[i % 4] = ((w[i % 4] << 5) - w[i % 4]) + s.charCodeAt(i); }
function next() {
  var t = w[0] ^ (w[0] << 11);
  w[0] = w[1]; w[1] = w[2]; w[2] = w[3];
  w[3] = w[3] ^ (w[3] >> 19) ^ t ^ (t >> 8);
  return (w[3] >>> 0) / ((1 << 31) >>> 0);
}
var colours = [];
for (var c = 0; c < 3; c++) {
  var h = Math.floor(next() * 360);
  var sat = next() * 60 + 40;
  var lig = (next() + next() + next() + next()) * 25;
  colours.push([h, sat, lig]);
}
var grid = [];
for (var y = 0; y < 8; y++) {
  var row = [];
  for (var x = 0; x < 4; x++) { row.push(Math.floor(next() * 2.3)); }
  grid.push(row.concat(row.slice(0, 4).reverse()));
}
[colours, grid]
"""


def test_identicon_pinned_vector() -> None:
    icon = identicon.address_blockie(PINNED)
    background, color, spot = icon.palette()
    assert (background, color, spot) == ((38, 173, 52), (132, 222, 77), (4, 201, 40))
    assert icon.cells[0][0] == identicon.FOREGROUND
    assert icon.cells[2][0] == identicon.SPOT
    assert icon.cells[1][1] == identicon.BACKGROUND


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=20, max_size=20))
def test_identicon_matches_javascript_semantics(raw: bytes) -> None:
    seed = "0x" + raw.hex()
    colours, grid = dukpy.evaljs(JS_ORACLE, seed=seed)
    icon = identicon.blockie(seed)
    for hsl, (h, s, lum) in zip((icon.color, icon.background, icon.spot), colours, strict=True):
        assert hsl.hue == h
        assert hsl.saturation * 100 == pytest.approx(s)
        assert hsl.lightness * 100 == pytest.approx(lum)
    assert [list(r) for r in icon.cells] == grid


@given(st.binary(min_size=20, max_size=20))
def test_identicon_properties(raw: bytes) -> None:
    icon = identicon.address_blockie(raw)
    assert icon == identicon.address_blockie(to_checksum(raw)) == identicon.address_blockie(
        "0x" + raw.hex().upper())
    assert len(icon.cells) == 8
    for row in icon.cells:
        assert row == row[::-1] and set(row) <= {0, 1, 2}
    plain = identicon.render_identicon(icon, "none")
    assert all(len(r) == 16 and set(r) <= set(".#o") for r in plain)
    for mode in ("256", "truecolor"):
        rows = identicon.render_identicon(icon, mode)
        assert all(r.endswith("\x1b[0m") and len(render.strip_sgr(r)) == 16 for r in rows)


def test_identicon_rejects_bad_input() -> None:
    for bad in ("0x1234", "0x" + "g" * 40, "ab" * 21):
        with pytest.raises(ValueError):
            identicon.address_blockie(bad)
    with pytest.raises(ValueError):
        identicon.address_blockie(b"\x00" * 19)
    with pytest.raises(ValueError):
        identicon.blockie("x", size=0)
    with pytest.raises(ValueError):
        identicon.HSL(360, 0.5, 0.5)


def test_xterm256_mapping() -> None:
    assert identicon.xterm256((255, 0, 0)) == 196
    assert identicon.xterm256((0, 0, 0)) == 16
    assert identicon.xterm256((128, 128, 128)) == 244
    assert identicon.xterm256((95, 135, 175)) == 16 + 36 * 1 + 6 * 2 + 3
    assert identicon.HSL(0, 0.0, 0.5).to_rgb() == (128, 128, 128)
