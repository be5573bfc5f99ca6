"""Mail channel: MIME construction and the Maildir outbox of the embedded default."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from email import message_from_bytes, policy
from email.charset import BASE64, QP, Charset
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from pathlib import Path

from bot.channels.base import Dispatch
from bot.errors import ChannelUnavailable
from bot.events import Outbound, Receipt

MAILDIR_SUBDIRS = ("tmp", "new", "cur")


def new_message_id(domain: str) -> str:
    return make_msgid(domain=domain)


# Header words in base64: the stdlib's quoted-printable header encoder re-measures the whole
# word at every character, and was the largest cost of building a mail.
_HEADER_CHARSET = Charset("utf-8")
_HEADER_CHARSET.header_encoding = BASE64
# Bodies travel as 8bit (links stay whole in the raw file: grep, copy-paste) when every line
# fits the 998 octets RFC 5322 allows; else as quoted-printable.
_EIGHT_BIT = Charset("utf-8")
_EIGHT_BIT.body_encoding = None  # type: ignore[assignment]  # None: no encoding (8bit)
_QUOTED_PRINTABLE = Charset("utf-8")
_QUOTED_PRINTABLE.body_encoding = QP
MAX_LINE_OCTETS = 998


def _body_charset(body: str) -> Charset:
    fits = all(len(line.encode()) <= MAX_LINE_OCTETS for line in body.splitlines())
    return _EIGHT_BIT if fits else _QUOTED_PRINTABLE


def email_bytes(outbound: Outbound, mail_from: str) -> bytes:
    """The mail as sent: multipart text + HTML, our Message-ID, marked as automatic.

    Built with the stdlib's compat32 MIME classes: they write the headers we give them as they
    are (non-ASCII ones RFC 2047-encoded), three times cheaper per mail than EmailMessage, whose
    header parsing nobody needs on the way out.
    """
    # A boundary derived from our Message-ID: the same outbox row gives the same bytes (a
    # Maildir rewrite is identical), and the generator need not search the bodies for it.
    boundary = "=_cordee_" + hashlib.sha256(outbound.message_id.encode()).hexdigest()[:32]
    message = MIMEMultipart("alternative", boundary=boundary)
    name, address = parseaddr(mail_from)
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = formataddr(("", outbound.recipient))
    # A Header object is folded, and RFC 2047-encoded when it must be, by the generator
    # (typeshed wants a str).
    subject_charset = "us-ascii" if outbound.subject.isascii() else _HEADER_CHARSET
    message["Subject"] = Header(outbound.subject, subject_charset)  # type: ignore[assignment]
    message["Date"] = format_datetime(outbound.created_at)
    message["Message-ID"] = outbound.message_id
    if outbound.reply_to:
        message["Reply-To"] = outbound.reply_to
    message["Auto-Submitted"] = "auto-generated"
    message["Content-Language"] = outbound.language
    for body, subtype in ((outbound.text, "plain"), (outbound.html, "html")):
        # Python accepts a Charset here (documented since 3.5); typeshed only knows str.
        message.attach(MIMEText(body, subtype, _body_charset(body)))  # type: ignore[arg-type]
    return message.as_bytes()


def build_email(outbound: Outbound, mail_from: str) -> EmailMessage:
    """The mail as a client reads it (headers decoded): for tools and tests that inspect it."""
    raw = email_bytes(outbound, mail_from)
    return message_from_bytes(raw, _class=EmailMessage, policy=policy.default)


def ensure_maildir(path: Path) -> None:
    for sub in MAILDIR_SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)


class MaildirChannel:
    """Writes each mail as an .eml file in `<outbox>/new/`, readable by any mail client.

    The file name derives from the Message-ID, so delivering the same outbox row twice (after a
    crash between writing and marking it sent) rewrites the same file instead of duplicating it.
    """

    name = "mail"
    # Writing the same mail again rewrites the same file: the engine records a batch at once.
    idempotent = True

    def __init__(self, directory: Path, mail_from: str) -> None:
        self.directory = directory
        self.mail_from = mail_from

    def path_for(self, outbound: Outbound) -> Path:
        digest = hashlib.sha256(outbound.message_id.encode()).hexdigest()[:20]
        stamp = int(outbound.created_at.timestamp())
        return self.directory / "new" / f"{stamp}.{digest}.{socket.gethostname()}.eml"

    async def send(self, outbound: Outbound) -> Receipt:
        data = email_bytes(outbound, self.mail_from)
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
