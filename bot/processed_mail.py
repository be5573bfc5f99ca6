"""Incoming mail already handled, by Message-ID: the record that makes intake exactly-once."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from datetime import datetime

from sqlalchemy import select
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


def already_processed(session: Session, key: str) -> bool:
    found = session.scalars(
        select(ProcessedMail.id).where(ProcessedMail.message_id == key).limit(1)
    ).first()
    return found is not None


def record_processed(session: Session, key: str, now: datetime) -> None:
    """Record `key` in the caller's transaction; a no-op when it is already there."""
    if not already_processed(session, key):
        session.add(ProcessedMail(message_id=key, received_at=now))
