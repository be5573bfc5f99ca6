"""Mail channel: MIME construction and the Maildir outbox of the embedded default."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from bot.channels.base import Dispatch
from bot.errors import ChannelUnavailable
from bot.events import Outbound, Receipt

MAILDIR_SUBDIRS = ("tmp", "new", "cur")


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


def build_email(outbound: Outbound, mail_from: str) -> EmailMessage:
    """A multipart text + HTML message carrying our Message-ID and marked as automatic."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = formataddr(("", outbound.recipient))
    message["Subject"] = outbound.subject
    message["Date"] = format_datetime(outbound.created_at)
    message["Message-ID"] = outbound.message_id
    if outbound.reply_to:
        message["Reply-To"] = outbound.reply_to
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = outbound.language
    # 8bit keeps links whole in the raw file (grep, copy-paste); lines stay far below 998.
    message.set_content(outbound.text, cte="8bit")
    message.add_alternative(outbound.html, subtype="html", cte="quoted-printable")
    return message


def ensure_maildir(path: Path) -> None:
    for sub in MAILDIR_SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)


class MaildirChannel:
    """Writes each mail as an .eml file in `<outbox>/new/`, readable by any mail client.

    The file name derives from the Message-ID, so delivering the same outbox row twice (after a
    crash between writing and marking it sent) rewrites the same file instead of duplicating it.
    """

    name = "mail"

    def __init__(self, directory: Path, mail_from: str) -> None:
        self.directory = directory
        self.mail_from = mail_from

    def path_for(self, outbound: Outbound) -> Path:
        digest = hashlib.sha256(outbound.message_id.encode()).hexdigest()[:20]
        stamp = int(outbound.created_at.timestamp())
        return self.directory / "new" / f"{stamp}.{digest}.{socket.gethostname()}.eml"

    async def send(self, outbound: Outbound) -> Receipt:
        data = bytes(build_email(outbound, self.mail_from))
        try:
            target = await asyncio.to_thread(self._write, outbound, data)
        except OSError as error:
            raise ChannelUnavailable(
                f"écriture impossible dans {self.directory}: {error}"
            ) from error
        return Receipt(self.name, outbound.message_id, str(target))

    def _write(self, outbound: Outbound, data: bytes) -> Path:
        ensure_maildir(self.directory)
        target = self.path_for(outbound)
        temporary = self.directory / "tmp" / target.name
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Maildir's rule: write in tmp/, then rename into new/ so readers never see half a file.
        temporary.replace(target)
        return target

    async def start(self, dispatch: Dispatch) -> None:
        return None

    async def stop(self) -> None:
        return None
