"""keyd's main: wires the UI, accounts, approvals, the external API and the net worker."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import trio

from clef import EXTERNAL_API_VERSION, INTERNAL_API_VERSION
from keyd.accounts import AccountManager
from keyd.api import SignerAPI
from keyd.approvals import ApprovalGate
from keyd.config import Config
from keyd.internal_api import InternalAPI
from keyd.keystore import Keystore
from keyd.netsup import NetSupervisor
from keyd.signing import register_signing
from keyd.ui.base import UI
from keyd.ui.stdio import StdioUI
from keyd.uitest import UIHandshake

log = logging.getLogger("keyd")


def startup_info(config: Config, sup: NetSupervisor) -> dict[str, Any]:
    """The ui_onSignerStartup payload (reference values; "n/a" when a transport is off), plus
    `unlock_ttl` (seconds, as a string like the other values) when the key cache is on."""
    info = {
        "extapi_http": sup.http_url or "n/a",
        "extapi_ipc": str(sup.ipc_path) if sup.ipc_path is not None else "n/a",
        "extapi_version": EXTERNAL_API_VERSION,
        "intapi_version": INTERNAL_API_VERSION,
    }
    if config.unlock_ttl > 0:
        # The user must know that decrypted keys stay in memory between signatures.
        info["unlock_ttl"] = f"{config.unlock_ttl:g}"
    return {"info": info}


async def _watch_signals(cancel: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("Exiting... signal=%s", signal.Signals(signum).name.lower().removeprefix("sig"))
            cancel.cancel()
            return


async def run_daemon(config: Config, ui: UI | None = None) -> int:
    """Run clef until a signal (or, with --stdio-ui, until the UI closes stdin)."""
    stdio: StdioUI | None = None
    if ui is None:
        stdio = StdioUI(trio.lowlevel.FdStream(os.dup(0)), trio.lowlevel.FdStream(os.dup(1)))
        ui = stdio
        log.info("Using stdin/stdout as UI-channel")
    else:
        log.info("Using CLI as UI-channel")
    keystore = Keystore(config.keystore, light=config.light_kdf)
    accounts = AccountManager(keystore, unlock_ttl=config.unlock_ttl)
    gate = ApprovalGate(ui, timeout=config.approval_timeout, max_pending=config.max_pending)
    api = SignerAPI(config, accounts, gate)
    sup = NetSupervisor(config, api)
    handshake: UIHandshake | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, nursery.cancel_scope)
            nursery.start_soon(accounts.run_expiry)
            if stdio is not None:
                internal = InternalAPI(config, accounts, api)
                stdio.serve_internal_api(internal.dispatch)
                nursery.start_soon(stdio.run)

                async def stop_when_ui_closes() -> None:
                    if stdio is not None:
                        await stdio.closed.wait()
                    log.info("UI channel closed; exiting")
                    nursery.cancel_scope.cancel()

                nursery.start_soon(stop_when_ui_closes)
            signer = await register_signing(api, config, nursery)
            log.info("Starting signer chainid=%d keystore=%s light-kdf=%s advanced=%s",
                     config.chain_id, config.keystore, config.light_kdf, config.advanced)
            if config.advanced:
                log.info("Clef is in advanced mode: will warn instead of reject")
            sup.open_sockets()
            await nursery.start(sup.run)
            if sup.http_url:
                log.info("HTTP endpoint opened url=%s", sup.http_url)
            if sup.ipc_path:
                log.info("IPC endpoint opened url=%s", sup.ipc_path)
            if config.stdio_ui_test:
                # As the reference: started just before ui_onSignerStartup; clef exits after it.
                handshake = UIHandshake(api)
                nursery.start_soon(handshake.run_then_stop, nursery.cancel_scope.cancel)
            info = startup_info(config, sup)
            await ui.on_signer_startup(info)
            if signer.rules is not None:
                await signer.rules.notify("OnSignerStartup", info)
    finally:
        sup.close_sockets()
        accounts.close()
    return handshake.exit_status if handshake is not None else 0
