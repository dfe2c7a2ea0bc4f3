"""Blocky identicons (the ethereum-blockies algorithm) drawn with terminal colour blocks.

The pattern and colours match what wallets show for the same address: an xorshift generator
seeded from the lowercase `0x…` address yields a foreground, a background and a spot colour (HSL),
then an 8x8 grid whose left half is random and whose right half mirrors it. Each cell is drawn as
two terminal columns (a terminal cell is about twice as tall as wide, so two make a square) with
a background-colour escape, which any colour terminal renders without needing Unicode glyphs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColorMode = Literal["none", "256", "truecolor"]
RGB = tuple[int, int, int]

BACKGROUND, FOREGROUND, SPOT = 0, 1, 2
ICON_SIZE = 8
CELL_COLUMNS = 2
# The plain-ASCII fallback for terminals without colour: one symbol pair per colour class.
ASCII_CELLS = ("..", "##", "oo")
_RESET = "\x1b[0m"
_MASK32 = 0xFFFFFFFF


def _int32(value: int) -> int:
    """Wrap to a signed 32-bit integer, as JavaScript's bitwise operators do."""
    value &= _MASK32
    return value - (1 << 32) if value & 0x80000000 else value


class _XorShift:
    """The blockies PRNG: four 32-bit words seeded like Java's String.hashCode, xorshift128."""

    def __init__(self, seed: str) -> None:
        state = [0, 0, 0, 0]
        for i, char in enumerate(seed):
            # JS: s = (s << 5) - s + charCode; only the value mod 2**32 is ever observed later.
            state[i % 4] = _int32((state[i % 4] << 5) - state[i % 4] + ord(char))
        self._state = state

    def next(self) -> float:
        """Next value in [0, 1): the new fourth word (never negative) divided by 2**31."""
        s = self._state
        t = _int32(s[0] ^ (s[0] << 11))
        s[0], s[1], s[2] = s[1], s[2], s[3]
        # >> is an arithmetic shift in JS; Python's >> on a negative int matches it.
        s[3] = _int32(s[3] ^ (s[3] >> 19) ^ t ^ (t >> 8))
        return (s[3] & _MASK32) / float(1 << 31)


@dataclass(frozen=True)
class HSL:
    """A generated colour: hue in whole degrees, saturation and lightness in 0..1."""

    hue: int
    saturation: float
    lightness: float

    def __post_init__(self) -> None:
        if not 0 <= self.hue < 360:
            raise ValueError("hue must be in [0, 360)")
        if not (0.0 <= self.saturation <= 1.0 and 0.0 <= self.lightness <= 1.0):
            raise ValueError("saturation and lightness must be in [0, 1]")

    def to_rgb(self) -> RGB:
        """Convert to 8-bit RGB (CSS hsl() semantics, rounded half up)."""
        s, lum = self.saturation, self.lightness
        if s == 0:
            grey = _to_byte(lum)
            return grey, grey, grey
        q = lum * (1 + s) if lum < 0.5 else lum + s - lum * s
        p = 2 * lum - q
        return (
            _to_byte(_hue_channel(p, q, self.hue + 120)),
            _to_byte(_hue_channel(p, q, self.hue)),
            _to_byte(_hue_channel(p, q, self.hue + 240)),
        )


def _hue_channel(p: float, q: float, degrees: int) -> float:
    t = degrees % 360
    if t < 60:
        return p + (q - p) * t / 60
    if t < 180:
        return q
    if t < 240:
        return p + (q - p) * (240 - t) / 60
    return p


def _to_byte(fraction: float) -> int:
    return max(0, min(255, int(fraction * 255 + 0.5)))


@dataclass(frozen=True)
class Blockie:
    """A generated identicon: three colours and a square grid of colour classes (0, 1, 2)."""

    color: HSL
    background: HSL
    spot: HSL
    cells: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.cells or any(len(row) != len(self.cells) for row in self.cells):
            raise ValueError("cells must be a non-empty square grid")
        if any(c not in (BACKGROUND, FOREGROUND, SPOT) for row in self.cells for c in row):
            raise ValueError("cells must hold colour classes 0, 1 or 2")

    def palette(self) -> tuple[RGB, RGB, RGB]:
        """RGB colours indexed by colour class: background, foreground, spot."""
        return self.background.to_rgb(), self.color.to_rgb(), self.spot.to_rgb()


def _next_color(rng: _XorShift) -> HSL:
    hue = int(rng.next() * 360)
    saturation = rng.next() * 0.6 + 0.4
    lightness = (rng.next() + rng.next() + rng.next() + rng.next()) * 0.25
    return HSL(hue, saturation, lightness)


def blockie(seed: str, size: int = ICON_SIZE) -> Blockie:
    """Generate the blockie for a seed string (wallets use the lowercase 0x address)."""
    if not 1 <= size <= 64:
        raise ValueError("size must be between 1 and 64")
    if len(seed) > 1024:
        raise ValueError("seed longer than 1024 characters")
    rng = _XorShift(seed)
    color, background, spot = _next_color(rng), _next_color(rng), _next_color(rng)
    data_width = (size + 1) // 2
    mirror_width = size - data_width
    rows = []
    for _ in range(size):
        # floor(rand * 2.3): background and foreground ~43% each, spot ~13%.
        left = [int(rng.next() * 2.3) for _ in range(data_width)]
        rows.append(tuple(left + left[:mirror_width][::-1]))
    return Blockie(color, background, spot, tuple(rows))


def address_blockie(address: str | bytes) -> Blockie:
    """The blockie of an Ethereum address (20 bytes, or 0x + 40 hex digits in any case)."""
    if isinstance(address, bytes):
        if len(address) != 20:
            raise ValueError("address must be 20 bytes")
        return blockie("0x" + address.hex())
    text = address.lower()
    digits = text[2:]
    if len(text) != 42 or not text.startswith("0x") or digits.strip("0123456789abcdef"):
        raise ValueError("address must be 0x followed by 40 hex digits")
    return blockie(text)


def xterm256(rgb: RGB) -> int:
    """Nearest xterm 256-colour index (6x6x6 cube or the 24-step grey ramp)."""
    levels = (0, 95, 135, 175, 215, 255)

    def nearest_level(v: int) -> int:
        return min(range(6), key=lambda i: abs(levels[i] - v))

    r, g, b = (nearest_level(v) for v in rgb)
    cube_rgb = (levels[r], levels[g], levels[b])
    cube_index = 16 + 36 * r + 6 * g + b
    grey_step = max(0, min(23, round((sum(rgb) / 3 - 8) / 10)))
    grey_value = 8 + 10 * grey_step

    def distance(other: RGB) -> int:
        return sum((a - c) ** 2 for a, c in zip(rgb, other, strict=True))

    if distance((grey_value,) * 3) < distance(cube_rgb):
        return 232 + grey_step
    return cube_index


def _cell(rgb: RGB, mode: ColorMode) -> str:
    if mode == "truecolor":
        r, g, b = rgb
        return f"\x1b[48;2;{r};{g};{b}m" + " " * CELL_COLUMNS
    return f"\x1b[48;5;{xterm256(rgb)}m" + " " * CELL_COLUMNS


def render_identicon(icon: Blockie, mode: ColorMode) -> list[str]:
    """Terminal rows of the icon; every row has the same display width (2 columns per cell).

    Colour rows end with a reset, so a row cut off by the terminal never leaks its colour.
    """
    if mode == "none":
        return ["".join(ASCII_CELLS[c] for c in row) for row in icon.cells]
    palette = icon.palette()
    rows = []
    for row in icon.cells:
        out: list[str] = []
        previous = -1
        for c in row:
            # Repeat the escape only when the colour changes: shorter output over slow links.
            out.append(_cell(palette[c], mode) if c != previous else " " * CELL_COLUMNS)
            previous = c
        rows.append("".join(out) + _RESET)
    return rows


def identicon_width(icon: Blockie) -> int:
    """Display width in columns of each rendered row."""
    return len(icon.cells) * CELL_COLUMNS
