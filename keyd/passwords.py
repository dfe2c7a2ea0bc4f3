"""The reference's password rule for new secrets (new accounts, imports, the master seed).

It does not apply to decrypting existing keys or to stored credentials (`setpw`), as in geth.
"""

from __future__ import annotations

import re

MIN_PASSWORD_BYTES = 10

TOO_SHORT = "password too short (<10 characters)"
INVALID_CHARS = "password contains invalid characters - only 7bit printable ascii allowed"

# geth's printable7BitAscii: printable ASCII and space; no tab, newline or DEL. As in geth, the
# backslash is NOT in the set (its Go literal escapes `]`, not `\\`): kept for compatibility.
_PRINTABLE_7BIT = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\]^_`{|}~ ]+")


def validate_password_format(pw: str) -> None:
    """Raise ValueError (reference texts) unless pw is >= 10 bytes of printable 7-bit ASCII."""
    if not isinstance(pw, str):
        raise ValueError("password must be a string")  # noqa: TRY004 - one error type for callers
    # Go measures len() in bytes; a str decoded with surrogateescape stands for one raw byte each.
    if _go_byte_length(pw) < MIN_PASSWORD_BYTES:
        raise ValueError(TOO_SHORT)
    if not _PRINTABLE_7BIT.fullmatch(pw):
        raise ValueError(INVALID_CHARS)


def _go_byte_length(pw: str) -> int:
    if pw.isascii():
        return len(pw)
    total = 0
    for char in pw:
        if 0xDC80 <= ord(char) <= 0xDCFF:
            total += 1
        else:
            total += len(char.encode("utf-8", "surrogatepass"))
    return total
