"""The operators' console and the manager's and city's desks (`kansa console serve`).

A Starlette application served on the center's network: operators sign in with
their passphrase-sealed key, take calls from the dialling loop's seats API,
see a resident only after `access.viewed` is durable in their outbox, follow
the city-approved talk script and record signed outcomes; the manager raises
escalations and manages staff, keys and documents; the city orders stops,
gives SMS lists and approves documents. See docs/console.md.
"""

from .app import Console, create_app
from .config import ConfigError, ConsoleConfig
from .keystore import SealedKeyError, read_sealed, seal, unseal, write_sealed
from .loop_client import LoopClient, LoopError

__all__ = [
    "ConfigError",
    "Console",
    "ConsoleConfig",
    "LoopClient",
    "LoopError",
    "SealedKeyError",
    "create_app",
    "read_sealed",
    "seal",
    "unseal",
    "write_sealed",
]
