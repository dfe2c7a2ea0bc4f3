"""Signing methods of the external API (wired as their modules land)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from keyd.api import SignerAPI
from keyd.config import Config


async def register_signing(api: SignerAPI, config: Config) -> list[Callable[[], Awaitable[Any]]]:
    """Register signing handlers on api; return background tasks to run."""
    return []
