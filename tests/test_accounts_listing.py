"""keyd.accounts: the account listing is reused without a rescan (and without a thread hop)
while it is fresh, and is never staler than the keystore's own rescan interval; creating or
deleting a key file is seen at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from clef.errors import UnknownAccount
from keyd.accounts import AccountManager
from keyd.keystore import Keystore

KEY_A = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
KEY_B = bytes(31) + b"\x07"
PASSWORD = "listing-password-1"


class CountingKeystore(Keystore):
    """Counts full rescans."""

    scans = 0

    def refresh(self) -> list:  # type: ignore[type-arg]
        self.scans += 1
        return super().refresh()


def manager(tmp_path: Path, reuse: float = 60.0) -> tuple[CountingKeystore, AccountManager]:
    keystore = CountingKeystore(tmp_path / "ks", light=True)
    return keystore, AccountManager(keystore, reuse_listing=reuse)


async def test_a_fresh_listing_is_reused_without_a_thread_hop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keystore, accounts = manager(tmp_path)
    address = keystore.import_raw_key(KEY_A, PASSWORD).address
    assert (await accounts.find(address)).address == address
    scans = keystore.scans
    hops: list[object] = []
    real = trio.to_thread.run_sync

    async def counting(*args: object, **kwargs: object) -> object:
        hops.append(args[0])
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trio.to_thread, "run_sync", counting)
    for _ in range(50):
        assert (await accounts.find(address)).address == address
    assert hops == [] and keystore.scans == scans


async def test_a_new_key_file_is_seen_at_once(tmp_path: Path) -> None:
    keystore, accounts = manager(tmp_path)
    keystore.import_raw_key(KEY_A, PASSWORD)
    assert len(await accounts.accounts()) == 1
    scans = keystore.scans
    # Another process adds a key file (written elsewhere, renamed in: the directory changes).
    other = Keystore(tmp_path / "elsewhere", light=True).import_raw_key(KEY_B, PASSWORD)
    other.path.rename(tmp_path / "ks" / other.path.name)
    assert (await accounts.find(other.address)).address == other.address
    assert keystore.scans == scans + 1


async def test_a_deleted_key_file_is_gone_at_once(tmp_path: Path) -> None:
    keystore, accounts = manager(tmp_path)
    account = keystore.import_raw_key(KEY_A, PASSWORD)
    assert (await accounts.find(account.address)).address == account.address
    account.path.unlink()
    with pytest.raises(UnknownAccount):
        await accounts.find(account.address)


async def test_listing_is_rescanned_after_the_interval_even_if_the_directory_looks_same(
        tmp_path: Path) -> None:
    keystore, accounts = manager(tmp_path, reuse=0.05)
    keystore.import_raw_key(KEY_A, PASSWORD)
    await accounts.accounts()
    scans = keystore.scans
    await accounts.accounts()
    assert keystore.scans == scans
    await trio.sleep(0.06)
    await accounts.accounts()
    assert keystore.scans == scans + 1


async def test_a_missing_directory_is_never_cached(tmp_path: Path) -> None:
    keystore, accounts = manager(tmp_path)
    assert await accounts.accounts() == []
    assert await accounts.accounts() == []
    assert keystore.scans == 2  # no directory, no signature: every call looks again
    account = keystore.import_raw_key(KEY_A, PASSWORD)
    assert (await accounts.find(account.address)).address == account.address
