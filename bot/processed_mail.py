"""Incoming mail already handled, by Message-ID: the record that makes intake exactly-once."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.store.models import ProcessedMail

_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def dedupe_key(raw: bytes) -> str:
    """The Message-ID, or a digest of the whole message when it has none."""
    try:
        value = _HEADER_PARSER.parsebytes(raw).get("Message-ID")
    except (ValueError, UnicodeError):
        value = None
    message_id = str(value).strip() if value is not None else ""
    if message_id:
        return message_id[:998]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# Bound parameters per IN (…) query: far below SQLite's and PostgreSQL's limits.
IN_CHUNK = 500


def processed_among(session: Session, keys: Collection[str]) -> set[str]:
    """Which of `keys` were already handled: one query per few hundred keys (batch intake)."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), IN_CHUNK):
        part = wanted[start : start + IN_CHUNK]
        found.update(
            session.scalars(
                select(ProcessedMail.message_id).where(ProcessedMail.message_id.in_(part))
            )
        )
    return found


def record_all(session: Session, keys: Collection[str], now: datetime) -> None:
    """Record `keys`, known not to be there yet (checked with processed_among): one INSERT."""
    if keys:
        session.execute(
            insert(ProcessedMail), [{"message_id": key, "received_at": now} for key in keys]
        )
