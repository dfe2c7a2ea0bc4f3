"""The daemon's configuration, built by the CLI from flags (all defaults as the reference's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def default_keystore() -> Path:
    """~/.ethereum/keystore, as geth's DefaultDataDir on Linux."""
    return Path.home() / ".ethereum" / "keystore"


def default_configdir() -> Path:
    """~/.clef, as the reference on Linux."""
    return Path.home() / ".clef"


@dataclass
class Config:
    """Everything keyd needs to start; paths are absolute after resolve()."""

    keystore: Path = field(default_factory=default_keystore)
    configdir: Path = field(default_factory=default_configdir)
    chain_id: int = 1
    light_kdf: bool = False
    http: bool = False
    http_addr: str = "localhost"
    http_port: int = 8550
    http_vhosts: list[str] = field(default_factory=lambda: ["localhost"])
    ipc_disable: bool = False
    ipc_path: str = ""
    signer_secret: Path | None = None
    fourbyte_custom: Path = Path("4byte-custom.json")
    audit_log: str = "audit.log"
    rules: Path | None = None
    rules_required: bool = False
    stdio_ui: bool = False
    stdio_ui_test: bool = False
    advanced: bool = False
    suppress_bootwarn: bool = False
    approval_timeout: float = 60.0
    max_pending: int = 64
    unlock_ttl: float = 0.0
    log_level: int = 3
    audit_expect: str = ""

    def ipc_socket_path(self) -> Path | None:
        """Where the IPC socket goes (None with --ipcdisable).

        An --ipcpath naming an existing directory gets `clef.ipc` inside it (the reference's
        last behaviour); otherwise it is the socket's file name: a bare name lives in the
        configdir, a path escapes it.
        """
        if self.ipc_disable:
            return None
        if not self.ipc_path:
            return self.configdir / "clef.ipc"
        given = Path(self.ipc_path).expanduser()
        if given.is_dir():
            return given / "clef.ipc"
        if given.parent == Path():
            return self.configdir / given
        return given.absolute()

    @property
    def master_seed_path(self) -> Path:
        """--signersecret or <configdir>/masterseed.json."""
        return self.signer_secret or self.configdir / "masterseed.json"
