"""Clef: a privilege-separated Ethereum external signer (CLI, shared types, network front)."""

__version__ = "0.1.0"
EXTERNAL_API_VERSION = "6.1.0"
INTERNAL_API_VERSION = "7.0.1"
