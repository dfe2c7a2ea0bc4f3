"""The console UI: requests shown on keyd's terminal, answered by the person at the keyboard.

One request is on the terminal at a time (a fair trio.Lock; queued requests wait their turn).
Notifications that arrive while a prompt is open are held back and printed once it closes, so
they can never split a request from its `Approve? [y/N]:` line. Lines are read by a worker
thread, one at a time and only on demand; a line that arrives after its prompt was withdrawn is
kept only until the next prompt, which on a terminal discards it together with anything typed
ahead, so a stray `y` can never approve a request the user has not seen.
"""

from __future__ import annotations

import codecs
import logging
import os
import termios
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Final, TextIO

import trio

from clef.errors import ClefError, SignerError
from keyd.ui.base import JSON
from keyd.ui.identicon import ColorMode
from keyd.ui.render import (
    APPROVE_PROMPT,
    INPUT_PROMPT,
    MAX_WIDTH,
    MIN_WIDTH,
    SHORT_RULE,
    Style,
    render_approved_tx,
    render_boot_warning,
    render_input_request,
    render_listing_request,
    render_new_account_request,
    render_notice,
    render_sign_data_request,
    render_signer_startup,
    render_tx_request,
    sanitize,
)

log = logging.getLogger("keyd.ui.console")

MAX_LINE = 4096
MAX_DEFERRED = 64
_OVERLONG: Final = "\x00overlong"
_WITHDRAWN = ("\n--- This request was withdrawn before it was answered (timed out or the caller "
              "went away). ---\n--- Anything typed for it is ignored. ---\n")


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


def detect_style(output: TextIO, *, color: bool | None = None,
                 env: Mapping[str, str] | None = None, width: int | None = None) -> Style:
    """Colour only on a terminal, without NO_COLOR or TERM=dumb; truecolour per COLORTERM."""
    environ = os.environ if env is None else env
    tty = _isatty(output)
    if color is None:
        color = tty and "NO_COLOR" not in environ and environ.get("TERM", "") != "dumb"
    mode: ColorMode = "none"
    if color:
        truecolor = environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")
        mode = "truecolor" if truecolor else "256"
    columns = width
    if columns is None:
        columns = 80
        fd = _fileno(output)
        if tty and fd is not None:
            try:
                columns = os.get_terminal_size(fd).columns or 80
            except OSError:
                columns = 80
    columns = max(MIN_WIDTH, min(MAX_WIDTH, columns))
    encoding = getattr(output, "encoding", None) or "ascii"
    try:
        unicode_ok = codecs.lookup(encoding).name.startswith(("utf-8", "utf-16", "utf-32"))
    except LookupError:
        unicode_ok = False
    return Style(color=mode, width=columns, ascii_only=not unicode_ok)


class _LineReader:
    """Reads input lines in a worker thread, one at a time, on demand; survives cancellation.

    The read in flight belongs to a system task, not to the prompt that asked for it: if that
    prompt is cancelled the line still arrives and waits in the buffer (where the next prompt on
    a terminal discards it), instead of being lost in an abandoned thread or answering later.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = _isatty(stream)
        self._lines: deque[str | None] = deque()
        self._inflight: trio.Event | None = None
        self._closed = False

    @property
    def tty(self) -> bool:
        """True when reading from a terminal."""
        return self._tty

    async def readline(self) -> str | None:
        """The next line (with its newline), `_OVERLONG`, or None at end of input."""
        while True:
            if self._lines:
                return self._lines.popleft()
            if self._closed:
                return None
            if self._inflight is None:
                self._inflight = trio.Event()
                trio.lowlevel.spawn_system_task(self._read_one, self._inflight,
                                                name="console-ui-reader")
            await self._inflight.wait()

    def discard_typeahead(self) -> None:
        """On a terminal, drop lines typed before the current prompt was shown."""
        if not self._tty:
            return  # piped input is meant to be read ahead, line by line
        self._lines.clear()
        fd = _fileno(self._stream)
        if fd is not None:
            try:
                termios.tcflush(fd, termios.TCIFLUSH)
            except (termios.error, OSError):
                log.debug("tcflush failed on the console input")

    async def _read_one(self, done: trio.Event) -> None:
        try:
            line = await trio.to_thread.run_sync(self._blocking_readline, abandon_on_cancel=True)
        finally:
            self._inflight = None
            done.set()
        if line is None and not self._tty:
            # A terminal can go on after ^D; a pipe or file at EOF never will.
            self._closed = True
        self._lines.append(line)

    def _blocking_readline(self) -> str | None:
        try:
            line = self._stream.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE and not line.endswith("\n"):
                while True:  # drain the rest of the line so it cannot answer the next prompt
                    rest = self._stream.readline(MAX_LINE)
                    if not rest or rest.endswith("\n"):
                        break
                return _OVERLONG
        except (OSError, ValueError):
            return None
        return line or None


class ConsoleUI:
    """The UI protocol on a terminal (or on piped stdin/stdout for unattended use)."""

    def __init__(
        self,
        input: TextIO,
        output: TextIO,
        *,
        color: bool | None = None,
        env: Mapping[str, str] | None = None,
        width: int | None = None,
        list_accounts: Callable[[], Awaitable[list[tuple[str, str]]]] | None = None,
    ) -> None:
        self._input = input
        self._output = output
        self._color = color
        self._env = env
        self._width = width
        self._list_accounts = list_accounts
        self._reader = _LineReader(input)
        self._lock = trio.Lock()
        self._deferred: deque[str] = deque()
        self._dropped = 0

    # ------------------------------------------------------------ plumbing

    def style(self) -> Style:
        """The current drawing style (terminal width is re-read each time)."""
        return detect_style(self._output, color=self._color, env=self._env, width=self._width)

    def _write_blocking(self, text: str) -> None:
        self._output.write(text)
        self._output.flush()

    async def _write(self, text: str) -> None:
        # In a thread: a stalled terminal (^S, a dead SSH link) must not freeze keyd's event loop.
        await trio.to_thread.run_sync(self._write_blocking, text)

    def _take_deferred(self) -> str:
        text = ""
        if self._dropped:
            text = f"[{self._dropped} earlier messages were dropped]\n"
            self._dropped = 0
        while self._deferred:
            text += self._deferred.popleft()
        return text

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[None]:
        """Hold the terminal for one prompt; on cancellation say so; then release held messages."""
        async with self._lock:
            try:
                yield
            except trio.Cancelled:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    await self._write_quietly(_WITHDRAWN)
                raise
            finally:
                with trio.move_on_after(2) as scope:
                    scope.shield = True
                    pending = self._take_deferred()
                    if pending:
                        await self._write_quietly(pending)

    async def _write_quietly(self, text: str) -> None:
        try:
            await self._write(text)
        except (OSError, ValueError):
            log.warning("could not write to the console")

    async def _notify(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n"
        if self._lock.locked():
            if len(self._deferred) >= MAX_DEFERRED:
                self._deferred.popleft()
                self._dropped += 1
            self._deferred.append(text)
            return
        async with self._lock:
            await self._write_quietly(self._take_deferred() + text)

    @contextmanager
    def _echo_off(self) -> Iterator[None]:
        """Disable terminal echo for a secret (a no-op when the input is not a terminal)."""
        fd = _fileno(self._input)
        if not self._reader.tty or fd is None:
            yield
            return
        try:
            old = termios.tcgetattr(fd)
            new = list(old)
            new[3] &= ~termios.ECHO
            # TCSAFLUSH also drops anything typed ahead, before the prompt was visible.
            termios.tcsetattr(fd, termios.TCSAFLUSH, new)
        except termios.error as exc:
            # Never read a secret that would be echoed on the screen.
            raise SignerError("cannot turn off terminal echo for a password") from exc
        try:
            yield
        finally:
            termios.tcsetattr(fd, termios.TCSANOW, old)

    async def _read_answer(self, shown: str) -> str | None:
        """Show `shown` and `> `, read until a non-blank line; stripped, or None at end of input.

        Type-ahead is discarded before anything is shown, never after: a line typed once the
        prompt is visible always counts.
        """
        self._reader.discard_typeahead()
        await self._write(shown + INPUT_PROMPT)
        while True:
            line = await self._reader.readline()
            if line is None:
                await self._write("\n")
                return None
            if line == _OVERLONG:
                await self._write(f"(input longer than {MAX_LINE} characters ignored)\n")
            elif line.strip():
                return line.strip()
            await self._write(INPUT_PROMPT)

    async def _read_secret(self, shown: str) -> str | None:
        """Show `shown` and `> `, read one line without echo; only the line ending is removed."""
        with self._echo_off():
            self._reader.discard_typeahead()
            await self._write(shown + INPUT_PROMPT)
            line = await self._reader.readline()
        await self._write("\n" if self._reader.tty else "")
        if line is None or line == _OVERLONG:
            return line
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        return line

    async def _approve(self, render: Callable[[Style], list[str]]) -> bool:
        """Show a request, ask `Approve? [y/N]:`; True only for exactly `y`."""
        style = self.style()
        async with self._session():
            try:
                lines = render(style)
            except (ClefError, ValueError, TypeError, RecursionError) as exc:
                # A request we cannot show faithfully is never put to the user: deny it.
                log.warning("malformed UI request denied: %s", exc)
                notice = f"A request could not be displayed and was denied: {exc}"
                await self._write_quietly("\n".join(render_notice("Error", notice, style)) + "\n")
                return False
            try:
                shown = "\n".join(lines) + "\n" + style.paint(APPROVE_PROMPT, "1") + "\n"
                answer = await self._read_answer(shown)
            except (OSError, ValueError):
                log.warning("console unusable: request denied")
                return False
            approved = answer == "y"
            await self._write_quietly("Request approved.\n" if approved
                                      else "Request denied.\n" + SHORT_RULE + "\n")
            return approved

    # ------------------------------------------------------------ UI protocol

    async def boot_warning(self) -> bool:
        """Show the boot warning; True only if the user types `ok` (else: `aborted by user`)."""
        async with self._session():
            self._reader.discard_typeahead()
            await self._write(render_boot_warning())
            line = await self._reader.readline()
        return line is not None and line != _OVERLONG and line.strip() == "ok"

    async def approve_tx(self, request: JSON) -> JSON:
        """ui_approveTx: returns {"approved", "transaction"} with the transaction unchanged."""
        approved = await self._approve(lambda style: render_tx_request(request, style))
        transaction = request.get("transaction") if isinstance(request, dict) else None
        return {"approved": approved, "transaction": transaction}

    async def approve_sign_data(self, request: JSON) -> JSON:
        """ui_approveSignData: returns {"approved"}."""
        return {"approved": await self._approve(lambda s: render_sign_data_request(request, s))}

    async def approve_listing(self, request: JSON) -> JSON:
        """ui_approveListing: all offered accounts when approved, else {"accounts": None}."""
        approved = await self._approve(lambda style: render_listing_request(request, style))
        if not approved:
            return {"accounts": None}
        return {"accounts": list(request.get("accounts") or [])}

    async def approve_new_account(self, request: JSON) -> JSON:
        """ui_approveNewAccount: returns {"approved"}."""
        return {"approved": await self._approve(lambda s: render_new_account_request(request, s))}

    async def on_input_required(self, request: JSON) -> JSON:
        """ui_onInputRequired: returns {"text"}; passwords are read without echo."""
        style = self.style()
        lines, is_password = render_input_request(request, style)
        shown = "\n".join(lines) + "\n"
        async with self._session():
            try:
                text = await (self._read_secret(shown) if is_password
                              else self._read_answer(shown))
            except (OSError, ValueError) as exc:
                log.warning("console unusable for input: %s", exc)
                raise SignerError("console unusable") from None
            await self._write_quietly(SHORT_RULE + "\n")
        if text is None:
            raise SignerError("no input: standard input is closed")
        if text == _OVERLONG:
            raise SignerError(f"input longer than {MAX_LINE} characters")
        return {"text": text}

    async def show_info(self, text: str) -> None:
        """ui_showInfo: `## Info ` and the message (held back while a prompt is open)."""
        await self._notify(render_notice("Info", text, self.style()))

    async def show_error(self, text: str) -> None:
        """ui_showError: `## Error ` and the message (held back while a prompt is open)."""
        await self._notify(render_notice("Error", text, self.style()))

    async def on_approved_tx(self, result: JSON) -> None:
        """ui_onApprovedTx: show what was signed."""
        style = self.style()
        try:
            lines = render_approved_tx(result, style)
        except (ClefError, ValueError, TypeError, RecursionError) as exc:
            notice = f"signed transaction could not be displayed: {exc}"
            lines = render_notice("Error", notice, style)
        await self._notify(lines)

    async def on_signer_startup(self, info: JSON) -> None:
        """ui_onSignerStartup: known accounts (if a lister was given) and the signer info."""
        style = self.style()
        accounts: list[tuple[str, str]] = []
        if self._list_accounts is not None:
            try:
                accounts = await self._list_accounts()
            except (ClefError, OSError) as exc:
                log.warning("could not list accounts for the startup banner: %s", exc)
        try:
            lines = render_signer_startup(info, style, accounts)
        except (ClefError, ValueError) as exc:
            lines = render_notice("Error", f"signer info could not be displayed: {exc}", style)
        await self._notify(lines)


__all__ = ["ConsoleUI", "detect_style", "sanitize"]
