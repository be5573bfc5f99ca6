"""The bytes of an outgoing mail: what every client must be able to read back."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from bot.channels.mail import build_email, email_bytes
from bot.events import Outbound

SENT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
LINK = "https://cordee.example.fr/l/" + "x" * 180


def outbound(subject: str, text: str, html: str) -> Outbound:
    return Outbound(
        channel="mail",
        recipient="contact@organisme.example",
        language="fr",
        subject=subject,
        text=text,
        html=html,
        message_id="<1.2@cordee.example.fr>",
        idempotency_key="k",
        certifier_id=1,
        created_at=SENT,
        reply_to="reply+da-abc-0123456789abcdef@reponses.example.fr",
    )


def parsed(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, _class=EmailMessage, policy=policy.default)


def test_a_mail_reads_back_whole_with_its_headers() -> None:
    mail = outbound(
        "Demande d'accès à vos dossiers de formation (réf. DA-23456789AB)",
        f"Bonjour,\n\nAutoriser : {LINK}\n",
        f'<p>Bonjour,</p><p><a href="{LINK}">Autoriser</a></p>',
    )
    message = parsed(email_bytes(mail, "Cordée <ne-pas-repondre@cordee.example.fr>"))
    assert message["Subject"] == mail.subject
    assert message["From"] == "Cordée <ne-pas-repondre@cordee.example.fr>"
    assert message["To"] == mail.recipient
    assert message["Reply-To"] == mail.reply_to
    assert message["Message-ID"] == mail.message_id
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Content-Language"] == "fr"
    assert message["Date"].datetime == SENT
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content() == mail.text
    assert html.get_content().rstrip("\n") == mail.html


def test_links_stay_whole_in_the_raw_file_when_lines_fit() -> None:
    mail = outbound("Confirmation", f"Gérer : {LINK}\n", f'<a href="{LINK}">Gérer</a>')
    raw = email_bytes(mail, "cordee@example.org")
    assert raw.count(LINK.encode()) == 2
    assert b"Content-Transfer-Encoding: 8bit" in raw
    # An ASCII subject is written as is, readable by grep.
    assert b"\nSubject: Confirmation\n" in raw


def test_a_line_too_long_for_smtp_is_quoted_printable() -> None:
    long_line = "<td>" + "é" * 600 + "</td>"  # 1,209 octets in UTF-8: over the 998 limit
    mail = outbound("Relevé", "Court.\n", long_line)
    raw = email_bytes(mail, "cordee@example.org")
    assert max(len(line) for line in raw.split(b"\n")) <= 998
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    html = parsed(raw).get_body(("html",))
    assert html is not None
    assert html.get_content().rstrip("\n") == long_line


def test_the_same_outbox_row_gives_the_same_bytes() -> None:
    mail = outbound("Relance (réf. DA-1)", "Texte\n", "<p>Texte</p>")
    assert email_bytes(mail, "cordee@example.org") == email_bytes(mail, "cordee@example.org")
    assert build_email(mail, "cordee@example.org")["Subject"] == "Relance (réf. DA-1)"
