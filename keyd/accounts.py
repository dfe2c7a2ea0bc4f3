"""Accounts as keyd sees them: the keystore plus the opt-in unlocked-key cache (--unlock-ttl).

Decryption happens only here, only in keyd, and only when a signature needs it. KDF work runs in
a thread so the event loop (and the UI channel) stays responsive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from clef.errors import UnknownAccount
from clef.eth.address import to_checksum
from keyd.keycrypto import wipe
from keyd.keystore import RESCAN_INTERVAL, Account, Keystore


@dataclass
class _CachedKey:
    key: bytearray
    expires: float


@dataclass(frozen=True)
class _Snapshot:
    accounts: tuple[Account, ...]
    taken: float  # time.monotonic() before the listing was made
    directory: tuple[int, int, int] | None  # the directory's stat before the listing was made

    def fresh(self, directory: Path, max_age: float) -> bool:
        if self.directory is None or time.monotonic() - self.taken >= max_age:
            return False
        return _dir_signature(directory) == self.directory


def _dir_signature(directory: Path) -> tuple[int, int, int] | None:
    try:
        st = directory.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


class AccountManager:
    """Lists accounts and produces decrypted keys for signing, optionally caching them."""

    def __init__(self, keystore: Keystore, *, unlock_ttl: float = 0.0,
                 reuse_listing: float = RESCAN_INTERVAL) -> None:
        self.keystore = keystore
        self._reuse_listing = reuse_listing
        self._ttl = unlock_ttl
        self._cache: dict[bytes, _CachedKey] = {}
        self._snapshot: _Snapshot | None = None

    async def accounts(self) -> list[Account]:
        """The current accounts, sorted by URL (rescans the keystore directory when needed).

        A rescan (in a thread) is reused, without a thread hop, while it is younger than
        reuse_listing (by default the keystore's own rescan interval, so never staler than the
        keystore's list) and the directory's inode, mtime and ctime are those seen before it:
        creating, deleting or renaming a key file (how keys are written) changes the directory.
        """
        snapshot = self._snapshot
        if snapshot is not None and snapshot.fresh(self.keystore.directory, self._reuse_listing):
            return list(snapshot.accounts)
        taken = time.monotonic()
        signature = _dir_signature(self.keystore.directory)
        accounts = await trio.to_thread.run_sync(self.keystore.refresh)
        self._snapshot = _Snapshot(tuple(accounts), taken, signature)
        return accounts

    async def wire_accounts(self) -> list[dict[str, Any]]:
        """[{address, url}] as the UI API sends them (address EIP-55)."""
        return [{"address": to_checksum(a.address), "url": a.url} for a in await self.accounts()]

    async def find(self, address: bytes) -> Account:
        """The account for address, or UnknownAccount."""
        for account in await self.accounts():
            if account.address == address:
                return account
        raise UnknownAccount()

    def cached_key(self, address: bytes) -> bytearray | None:
        """A still-valid cached key (refreshing its expiry), or None."""
        entry = self._cache.get(address)
        if entry is None:
            return None
        now = time.monotonic()
        if now >= entry.expires:
            self.forget(address)
            return None
        entry.expires = now + self._ttl
        return entry.key

    async def decrypt(self, address: bytes, password: str) -> bytearray:
        """Decrypt the key with password (DecryptError/UnknownAccount); caches it if enabled."""
        key = await trio.to_thread.run_sync(self.keystore.decrypt_key, address, password)
        if self._ttl > 0:
            self._cache[address] = _CachedKey(bytearray(key), time.monotonic() + self._ttl)
        return key

    def forget(self, address: bytes) -> None:
        """Drop and overwrite a cached key."""
        entry = self._cache.pop(address, None)
        if entry is not None:
            wipe(entry.key)

    def expire(self) -> None:
        """Drop every cached key past its TTL."""
        now = time.monotonic()
        for address in [a for a, e in self._cache.items() if now >= e.expires]:
            self.forget(address)

    def close(self) -> None:
        """Wipe every cached key."""
        for address in list(self._cache):
            self.forget(address)

    async def run_expiry(self) -> None:
        """Background task discarding expired keys once a second."""
        while True:
            await trio.sleep(1)
            self.expire()

