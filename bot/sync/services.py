"""What the sync needs from the application, gathered once (store, engine, links, clock, keys)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.clock import Clock
from bot.engine import Engine
from bot.links import LinkSigner
from bot.store.db import Database
from bot.sync.credentials import CredentialCipher

if TYPE_CHECKING:
    from bot.app import App


@dataclass(frozen=True)
class SyncServices:
    db: Database
    engine: Engine
    links: LinkSigner
    clock: Clock
    cipher: CredentialCipher

    @classmethod
    def of(cls, app: App) -> SyncServices:
        secret = app.settings.secret_key
        assert secret is not None  # noqa: S101 - build_app always ensures a secret key
        return cls(
            db=app.db,
            engine=app.engine,
            links=app.links,
            clock=app.engine.clock,
            cipher=CredentialCipher(secret.get_secret_value()),
        )
