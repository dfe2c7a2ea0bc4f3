"""The reference's password-format rule, against rules-cases.json → password_format_cases."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyd.passwords import INVALID_CHARS, TOO_SHORT, validate_password_format

SHARED = Path(__file__).resolve().parents[2] / "shared"

CASES: dict[str, Any] = json.loads(
    (SHARED / "conformance/geth/rules-cases.json").read_text()
)["password_format_cases"]


def _password(case: dict[str, Any]) -> str:
    if "password" in case:
        return str(case["password"])
    # Invalid UTF-8 as Go would hold it: one surrogate-escaped char per raw byte.
    return bytes.fromhex(case["password_bytes_hex"]).decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda c: repr(_password(c))[:30])
def test_reference_cases(case: dict[str, Any]) -> None:
    pw = _password(case)
    if case["valid"]:
        validate_password_format(pw)
    else:
        with pytest.raises(ValueError) as info:
            validate_password_format(pw)
        assert str(info.value) in CASES["errors"]


@pytest.mark.parametrize("pw", CASES["api_test_extra"]["invalid"])
def test_api_invalid(pw: str) -> None:
    with pytest.raises(ValueError):
        validate_password_format(pw)


@pytest.mark.parametrize("pw", CASES["api_test_extra"]["valid"])
def test_api_valid(pw: str) -> None:
    validate_password_format(pw)


def test_exact_messages() -> None:
    with pytest.raises(ValueError, match=r"^password too short \(<10 characters\)$"):
        validate_password_format("shorty")
    with pytest.raises(ValueError) as info:
        validate_password_format("0123456789\n")
    assert str(info.value) == INVALID_CHARS
    assert CASES["errors"] == [TOO_SHORT, INVALID_CHARS]


def test_length_counts_utf8_bytes_like_go() -> None:
    # 4 ASCII + 2 three-byte chars = 10 bytes: long enough, but invalid characters.
    with pytest.raises(ValueError, match="invalid characters"):
        validate_password_format("abcd⌘⌘")
    with pytest.raises(ValueError, match="too short"):
        validate_password_format("abc⌘⌘")


def test_trailing_newline_not_accepted() -> None:
    # Python's `$` would match before a final newline; Go's does not.
    with pytest.raises(ValueError, match="invalid characters"):
        validate_password_format("a_long_password\n")


def test_non_string_is_value_error() -> None:
    with pytest.raises(ValueError):
        validate_password_format(b"0123456789abc")  # type: ignore[arg-type]


# geth's set is printable ASCII and space *except the backslash* (a quirk of its regex literal).
PRINTABLE = string.ascii_letters + string.digits + string.punctuation.replace("\\", "") + " "


def test_backslash_rejected_like_reference() -> None:
    with pytest.raises(ValueError, match="invalid characters"):
        validate_password_format("a_long\\password")
    assert "\\" not in PRINTABLE


@given(st.text(alphabet=PRINTABLE, min_size=10, max_size=64))
def test_printable_ascii_accepted(pw: str) -> None:
    validate_password_format(pw)


@given(st.text(min_size=0, max_size=64))
def test_any_text_matches_model(pw: str) -> None:
    expect_ok = len(pw.encode("utf-8", "surrogatepass")) >= 10 and all(c in PRINTABLE for c in pw)
    if expect_ok:
        validate_password_format(pw)
    else:
        with pytest.raises(ValueError):
            validate_password_format(pw)
