"""Understanding an emailed reply: fresh text, auto-reply and bounce detection, decision (pure)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.headerregistry import BaseHeader
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import getaddresses, parseaddr
from enum import StrEnum
from itertools import pairwise
from typing import Literal

import lxml.etree
import lxml.html

from bot.errors import InvalidInput

Decision = Literal["authorise", "refuse"]

MAX_WORDS = 30
"""A reply longer than this (in words, greetings and thanks included) is free text: unclear."""

MAX_UNKNOWN_WORDS = 3
"""Words outside every list tolerated next to a decision (a name, a certification code…)."""

MAX_UNKNOWN_WORDS_WEAK = 1
"""The same when the only decision words are short ones (oui, non, ok…) that idioms can flip."""


class UnreadableMessage(InvalidInput):
    """The bytes are not an email message at all."""


class Reason(StrEnum):
    """Why a reply got its verdict; the value is stable, the label is for people."""

    CLEAR = "clear"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    EMPTY = "empty"
    INLINE = "inline"
    POSTSCRIPT = "postscript"
    QUOTE_LEAK = "quote_leak"
    TONE = "tone"
    QUESTION = "question"
    CONDITION = "condition"
    ACKNOWLEDGEMENT = "acknowledgement"
    NEGATION = "negation"
    TOO_LONG = "too_long"
    NO_DECISION = "no_decision"
    BOTH = "both"
    FREE_TEXT = "free_text"

    @property
    def label(self) -> str:
        return REASON_LABELS[self]


REASON_LABELS: dict[Reason, str] = {
    Reason.CLEAR: "réponse courte et sans ambiguïté",
    Reason.AUTO_REPLY: "réponse automatique : elle ne décide rien",
    Reason.BOUNCE: "avis de non-remise : il ne décide rien",
    Reason.EMPTY: "aucun texte nouveau",
    Reason.INLINE: "réponse écrite à l'intérieur du message cité",
    Reason.POSTSCRIPT: "post-scriptum après la signature",
    Reason.QUOTE_LEAK: "le message d'origine n'a pas pu être séparé de la réponse",
    Reason.TONE: "ton ambigu (plaisanterie, émoji)",
    Reason.QUESTION: "une question est posée",
    Reason.CONDITION: "condition, réserve ou hésitation",
    Reason.ACKNOWLEDGEMENT: "simple accusé de réception",
    Reason.NEGATION: "négation",
    Reason.TOO_LONG: "texte trop long pour décider",
    Reason.NO_DECISION: "aucun mot de décision",
    Reason.BOTH: "les deux sens à la fois",
    Reason.FREE_TEXT: "trop de mots sans rapport avec une décision",
}


@dataclass(frozen=True)
class Verdict:
    """What the rules make of a fresh text."""

    decision: Decision | None
    reason: Reason
    matched: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ParsedReply:
    """What the bot understood of one message; personal data stays out of the repr."""

    decision: Decision | None
    auto_reply: bool
    bounce: bool
    reason: Reason
    text: str = field(repr=False)
    bounce_permanent: bool = False
    bounced_recipient: str | None = field(default=None, repr=False)
    from_address: str | None = field(default=None, repr=False)
    subject: str = field(default="", repr=False)
    message_id: str | None = field(default=None, repr=False)
    in_reply_to: tuple[str, ...] = field(default=(), repr=False)
    references: tuple[str, ...] = field(default=(), repr=False)
    matched: tuple[str, ...] = field(default=(), repr=False)
    # Where the message was sent: our reply+<token>@ address is one of them when it answers us.
    recipients: tuple[str, ...] = field(default=(), repr=False)
    authentication_results: tuple[str, ...] = field(default=(), repr=False)


# ------------------------------------------------------------------------------- the message


def parse_message(raw: bytes) -> ParsedReply:
    """Read one raw RFC 5322 message and say what it means; never decides on doubt."""
    msg = _read(raw)
    subject = _header(msg, "Subject")
    from_address = _address(_raw_header(msg, "From"))
    bounce = is_bounce(msg)
    auto = not bounce and is_auto_reply(msg)
    extracted = extract_fresh_text(msg)
    if not bounce and not auto and _auto_reply_body(extracted.text):
        auto = True
    permanent, recipient = bounce_details(msg) if bounce else (False, None)
    if bounce:
        verdict = Verdict(None, Reason.BOUNCE)
    elif auto:
        verdict = Verdict(None, Reason.AUTO_REPLY)
    elif extracted.problem is not None:
        verdict = Verdict(None, extracted.problem)
    else:
        verdict = classify(extracted.text)
    return ParsedReply(
        decision=verdict.decision,
        auto_reply=auto,
        bounce=bounce,
        reason=verdict.reason,
        text=extracted.text,
        bounce_permanent=permanent,
        bounced_recipient=recipient,
        from_address=from_address,
        subject=subject,
        message_id=next(iter(_message_ids(_raw_header(msg, "Message-ID"))), None),
        in_reply_to=_message_ids(_raw_header(msg, "In-Reply-To")),
        references=_message_ids(_raw_header(msg, "References")),
        matched=verdict.matched,
        recipients=_recipients(msg),
        authentication_results=_all_headers(msg, "Authentication-Results"),
    )


class _RawHeaders(Compat32):
    """compat32 parsing that hands header values back as read (unfolded later, by us).

    policy.default builds a structured header object for every header looked at, which costs
    more than the rest of the parse; we decode only the few headers we use (see _text). The
    stock compat32 would wrap raw 8-bit values in a Header that can no longer give the bytes.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_PARSER = BytesParser(policy=_RawHeaders())


def parse_each(raws: Sequence[bytes]) -> list[ParsedReply | Exception]:
    """parse_message over a batch (in a worker process, say): an unreadable message gives the
    error that rejects it, and the others are still read."""
    readings: list[ParsedReply | Exception] = []
    for raw in raws:
        try:
            readings.append(parse_message(raw))
        except (InvalidInput, ValueError, UnicodeError) as error:
            readings.append(error)
    return readings


def _read(raw: bytes) -> Message:
    if not raw.strip():
        raise UnreadableMessage("le fichier est vide")
    if b"\x00" in raw[:4096]:
        raise UnreadableMessage("le fichier n'est pas un message électronique (contenu binaire)")
    msg = _PARSER.parsebytes(raw)
    if not any(name.lower() in {"from", "sender", "return-path"} for name in msg):
        raise UnreadableMessage("le fichier n'est pas un message électronique (pas d'en-tête From)")
    return msg


def _raw_text(value: object) -> str:
    """A header value as text, unfolded; raw 8-bit read as UTF-8, else as Windows-1252."""
    if isinstance(value, BaseHeader):  # a message parsed with policy.default: already decoded
        return " ".join(str(value).split())
    text = str(value)
    if not text.isascii():
        # The parser kept undecodable bytes as surrogate escapes: get the bytes back.
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    return " ".join(text.split())


def _text(value: object) -> str:
    """_raw_text, with RFC 2047 encoded words (=?charset?…?=) decoded."""
    text = _raw_text(value)
    if "=?" not in text or isinstance(value, BaseHeader):
        return text
    try:
        return " ".join(str(make_header(decode_header(text))).split())
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return text  # an unknown charset or a broken word: keep what was written


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except (ValueError, LookupError, IndexError, TypeError):  # malformed header
        return ""
    return _text(value) if value is not None else ""


def _raw_header(msg: Message, name: str) -> str:
    """A header whose addresses or ids we read: encoded display names may stay encoded."""
    try:
        value = msg.get(name)
    except (ValueError, LookupError, IndexError, TypeError):  # malformed header
        return ""
    return _raw_text(value) if value is not None else ""


def _all_headers(msg: Message, name: str, *, decode: bool = True) -> tuple[str, ...]:
    try:
        values = msg.get_all(name) or []
    except (ValueError, LookupError, IndexError, TypeError):  # malformed header
        return ()
    return tuple(_text(value) if decode else _raw_text(value) for value in values)


RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")


def _recipients(msg: Message) -> tuple[str, ...]:
    # Undecoded: an encoded display name may hide a comma (« Martin, Claire ») that would
    # split one address in two; the addresses themselves are never encoded.
    values = [
        value for name in RECIPIENT_HEADERS for value in _all_headers(msg, name, decode=False)
    ]
    return tuple(address.strip().lower() for _, address in getaddresses(values) if address)


def _address(value: str) -> str | None:
    address = parseaddr(value)[1].strip().lower()
    return address or None


def _message_ids(value: str) -> tuple[str, ...]:
    return tuple(re.findall(r"<[^<>\s]+>", value))


def _parts(msg: Message) -> Iterator[Message]:
    """Every leaf part, without entering attached messages (message/rfc822, reports)."""
    if msg.is_multipart():
        for part in msg.get_payload():
            if isinstance(part, Message):
                yield from _parts(part)
    elif msg.get_content_maintype() != "message":
        yield msg


def _is_attachment(part: Message) -> bool:
    return part.get_content_disposition() == "attachment"


def decode_part(part: Message) -> str:
    """The text of a leaf part, whatever its charset and transfer encoding."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = (part.get_content_charset() or "utf-8").lower()
    if charset in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso_8859-1"}:
        charset = "cp1252"  # what mail clients mean by it, like browsers do
    try:
        return payload.decode(charset)
    except (LookupError, UnicodeDecodeError):
        pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("cp1252", errors="replace")


# ----------------------------------------------------------------------- auto-replies, bounces

_AUTO_SUBJECT = re.compile(
    r"r[ée]ponse automatique|absente? du bureau|^\s*absence\b|out of (the )?office|"
    r"automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|r[ée]ponse en (mon )?absence|"
    r"message d'absence|^\s*(en )?cong[ée]s?\b",
    re.IGNORECASE,
)
_WEAK_AUTO_SUBJECT = re.compile(r"absent|cong[ée]|vacances|away|holiday|indisponible", re.I)
_AUTO_BODY = re.compile(
    r"je suis (actuellement )?(absente?|en cong[ée]s?)|ceci est une r[ée]ponse automatique|"
    r"message automatique|r[ée]ponse automatique|i am (currently )?out of (the )?office|"
    r"this is an auto(matic|mated)?[- ]?(reply|response)|i('m| am) away",
    re.IGNORECASE,
)


def is_auto_reply(msg: Message) -> bool:
    """Headers (RFC 3834 and the usual vendor ones) or an out-of-office subject."""
    auto_submitted = _header(msg, "Auto-Submitted").lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if any(msg.get(name) is not None for name in ("X-Autoreply", "X-Autorespond")):
        return True
    if _header(msg, "Precedence").lower() in {"auto_reply", "bulk", "junk"}:
        return True
    subject = _header(msg, "Subject")
    if _AUTO_SUBJECT.search(subject):
        return True
    return msg.get("X-Auto-Response-Suppress") is not None and bool(
        _WEAK_AUTO_SUBJECT.search(subject)
    )


def _auto_reply_body(text: str) -> bool:
    return bool(_AUTO_BODY.search(text))


_BOUNCE_FROM = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undelivered mail|undeliverable|delivery status notification|non remis\s*:|"
    r"[ée]chec de (la )?(remise|distribution)|mail delivery failed|returned mail|"
    r"delivery failure|failure notice|message non (d[ée]livr[ée]|remis|distribu[ée])|"
    r"non distribuable|delivery has failed|could not be delivered",
    re.IGNORECASE,
)


def is_bounce(msg: Message) -> bool:
    """A delivery report (RFC 3464), a daemon sender, or a non-delivery subject."""
    if msg.get_content_type() in {"multipart/report", "message/delivery-status"}:
        report_type = str(msg.get_param("report-type", "") or "").lower()
        if msg.get_content_type() == "message/delivery-status" or report_type in {
            "delivery-status",
            "",
        }:
            return True
    if any(part.get_content_type() == "message/delivery-status" for part in _all_parts(msg)):
        return True
    if msg.get("X-Failed-Recipients") is not None:
        return True
    from_address = _address(_raw_header(msg, "From")) or ""
    if _BOUNCE_FROM.match(from_address):
        return True
    return bool(_BOUNCE_SUBJECT.search(_header(msg, "Subject")))


def _all_parts(msg: Message) -> Iterator[Message]:
    yield msg
    if msg.is_multipart():
        for part in msg.get_payload():
            if isinstance(part, Message):
                yield from _all_parts(part)


_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
_PERMANENT = re.compile(
    r"\b5\.\d{1,3}\.\d{1,3}\b|\b55[0-4]\b|user unknown|no such user|does not exist|"
    r"n'existe pas|utilisateur inconnu|adresse (introuvable|inconnue)|mailbox unavailable|"
    r"address rejected|permanent|d[ée]finiti",
    re.IGNORECASE,
)
_TRANSIENT = re.compile(
    r"\b4\.\d{1,3}\.\d{1,3}\b|delayed|temporar|will (retry|be retried)|retard[ée]|"
    r"nouvel essai|still trying",
    re.IGNORECASE,
)


def bounce_details(msg: Message) -> tuple[bool, str | None]:
    """(permanent, recipient): from the DSN fields, else best effort from the text."""
    report = "\n".join(_report_text(part) for part in _all_parts(msg))
    statuses = re.findall(r"^\s*Status:\s*([245])\.\d+\.\d+", report, re.M | re.I)
    actions = [a.lower() for a in re.findall(r"^\s*Action:\s*(\w+)", report, re.M | re.I)]
    recipient = _dsn_recipient(report, "Final-Recipient") or _dsn_recipient(
        report, "Original-Recipient"
    )
    failed = _raw_header(msg, "X-Failed-Recipients")
    if recipient is None and failed:
        recipient = _address(failed.split(",")[0])
    if statuses or actions:
        permanent = "5" in statuses or "failed" in actions
    else:
        text = "\n".join(decode_part(p) for p in _parts(msg) if p.get_content_maintype() == "text")
        permanent = bool(_PERMANENT.search(text)) and not _TRANSIENT.search(text)
        if recipient is None:
            recipient = _first_foreign_address(text, _address(_raw_header(msg, "From")))
    return permanent, recipient


def _report_text(part: Message) -> str:
    if part.get_content_type() != "message/delivery-status":
        return ""
    payload = part.get_payload()
    if isinstance(payload, list):
        return "\n".join(str(block) for block in payload)
    return str(payload)


def _dsn_recipient(report: str, name: str) -> str | None:
    found = re.search(
        rf"^\s*{name}:\s*(?:[\w-]+\s*;)?\s*<?([^\s<>]+@[^\s<>]+)>?", report, re.M | re.I
    )
    return str(found.group(1)).lower() if found else None


def _first_foreign_address(text: str, sender: str | None) -> str | None:
    for found in _EMAIL.finditer(text):
        lowered = found.group(0).lower().rstrip(".")
        if lowered != sender and not _BOUNCE_FROM.match(lowered):
            return lowered
    return None


# ------------------------------------------------------------------------------ fresh text


@dataclass(frozen=True)
class Extracted:
    text: str
    problem: Reason | None = None


def extract_fresh_text(msg: Message) -> Extracted:
    """The text the sender just wrote: no quoted history, signature or disclaimer."""
    leaves = [p for p in _parts(msg) if not _is_attachment(p)]
    plain = next((p for p in leaves if p.get_content_type() == "text/plain"), None)
    if plain is not None:
        return fresh_text(decode_part(plain))
    html = next((p for p in leaves if p.get_content_type() == "text/html"), None)
    if html is not None:
        return fresh_text(html_to_text(decode_part(html)))
    return Extracted("", Reason.EMPTY)


_BLOCK_TAGS = frozenset(
    {"p", "div", "li", "ul", "ol", "tr", "table", "tbody", "thead", "hr", "pre", "section"}
    | {"article", "header", "footer", "address", "dl", "dt", "dd", "center", "form"}
    | {f"h{level}" for level in range(1, 7)}
)
_SKIPPED_TAGS = frozenset({"head", "style", "script", "title", "template", "noscript"})
_CUT_IDS = {"appendonsend", "divrplyfwdmsg", "x_divrplyfwdmsg", "olk_src_body_section"}
_CUT_IDS |= {"mail-editor-reference-message-container", "zwchr"}
_CUT_CLASSES = {"outlookmessageheader", "yahoo_quoted", "moz-forward-container"}


def html_to_text(html: str) -> str:
    """Readable text of an HTML body; quoted blocks become `> ` lines, Outlook history is cut."""
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)
    if not html.strip():
        return ""
    try:
        root = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return ""
    _cut_history(root)
    parts: list[str] = []
    try:
        _render(root, parts)
    except RecursionError:
        return _tidy(" ".join(str(piece) for piece in root.itertext()))
    return _tidy("".join(parts))


def _cut_history(root: lxml.html.HtmlElement) -> None:
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        ident = (element.get("id") or "").lower()
        classes = set((element.get("class") or "").lower().split())
        if ident in _CUT_IDS or classes & _CUT_CLASSES:
            _truncate_from(element)
            return


def _truncate_from(element: lxml.html.HtmlElement) -> None:
    """Remove the element and everything after it in document order."""
    node = element
    while True:
        parent = node.getparent()
        if parent is None:
            break
        for sibling in list(node.itersiblings()):
            parent.remove(sibling)
        node.tail = None
        node = parent
    start = element.getparent()
    if start is not None:
        start.remove(element)


def _render(element: lxml.html.HtmlElement, parts: list[str]) -> None:
    tag = element.tag.lower() if isinstance(element.tag, str) else ""
    if tag and tag not in _SKIPPED_TAGS:
        if tag == "br":
            parts.append("\n")
        elif tag == "blockquote":
            inner: list[str] = []
            _render_children(element, inner)
            quoted = _tidy("".join(inner)).split("\n")
            parts.append("\n" + "\n".join(f"> {line}".rstrip() for line in quoted) + "\n")
        else:
            block = tag in _BLOCK_TAGS
            if block:
                parts.append("\n")
            _render_children(element, parts)
            if block:
                parts.append("\n")
    if element.tail:
        parts.append(_spaces(element.tail))


def _render_children(element: lxml.html.HtmlElement, parts: list[str]) -> None:
    if element.text and isinstance(element.tag, str):
        parts.append(_spaces(element.text))
    for child in element:
        _render(child, parts)


def _spaces(text: str) -> str:
    return re.sub(r"[\s\u200b]+", " ", text)


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    tidy: list[str] = []
    for line in lines:
        if line or (tidy and tidy[-1]):
            tidy.append(line)
    return "\n".join(tidy).strip()


_INTRO = re.compile(
    r"^(le|el|on)\s.{0,250}?(a\s+[ée]crit|wrote|escribi[óo]|schrieb)\s*:?\s*$"
    r"|^.{0,160}(a\s+[ée]crit|wrote)\s*:\s*$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^-{2,}\s*(message d'origine|original message|message original|mail original|"
    r"forwarded message|message transf[ée]r[ée]|message r[ée]exp[ée]di[ée]|"
    r"courriel original|e-?mail original)\s*-{2,}\s*$"
    r"|^_{10,}$|^={10,}$"
    r"|^(d[ée]but du message r[ée]exp[ée]di[ée]|begin forwarded message)\s*:?$"
    r"|^message du\s*:?\s*\d",
    re.IGNORECASE,
)
_HEADER_FROM = re.compile(r"^[*\s]*(de|from|exp[ée]diteur)\s*:", re.IGNORECASE)
_HEADER_OTHER = re.compile(
    r"^[*\s]*(envoy[ée]|sent|date|[àa]|to|objet|subject|cc|destinataire|copie [àa])\s*:",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"^(--|-- )$|^(envoy[ée] (de|depuis) (mon|ma|l'application)|sent from my|sent from outlook|"
    r"get outlook for|obtenir outlook pour|t[ée]l[ée]charger outlook)\b",
    re.IGNORECASE,
)
_CLOSING = re.compile(
    r"^(bien |tr[eè]s |tr[eè]s bien |trés )?cordialement|^(bien|tr[eè]s bien) [àa] (vous|toi)"
    r"|^(sinc[eè]res |meilleures |bien sinc[eè]res )?salutations|^bonne (journ[ée]e|soir[ée]e)"
    r"|^belle journ[ée]e|^(best|kind|warm)( regards)?|^regards|^sincerely|^cheers"
    r"|^merci( beaucoup| bien| d'avance| et bonne journ[ée]e)?|^thanks?( you)?"
    r"|^amicalement|^[àa] bient[ôo]t|^bien [àa] vous",
    re.IGNORECASE,
)
_CLOSING_TAIL = re.compile("^[\\s,.!]*([\\w'\u2019.-]+[\\s,.]*){0,4}$")
_POSTSCRIPT = re.compile(r"^p\.?\s?-?s\.?\s*[:.-]?\s", re.IGNORECASE)


def _is_closing(line: str) -> bool:
    found = _CLOSING.match(line)
    return found is not None and bool(_CLOSING_TAIL.match(line[found.end() :]))


def _is_quote_intro(lines: Sequence[str], index: int) -> bool:
    if _INTRO.match(lines[index]):
        return True
    if not re.search(r"\d|<", lines[index]) or not re.match(r"(le|on)\s", lines[index], re.I):
        return False
    joined = lines[index]
    for extra in lines[index + 1 : index + 3]:
        joined = f"{joined} {extra}"
        if _INTRO.match(joined):
            return True
    return False


def _is_header_block(lines: Sequence[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index].lstrip("> ")):
        return False
    following = lines[index + 1 : index + 7]
    return sum(bool(_HEADER_OTHER.match(line.lstrip("> "))) for line in following) >= 1


def _disclaimer_lines(lines: Sequence[str]) -> set[int]:
    """Lines in a paragraph that reads like a legal or environmental disclaimer."""
    marked: set[int] = set()
    start = 0
    for end in [*(i for i, line in enumerate(lines) if not line.strip()), len(lines)]:
        paragraph = lines[start:end]
        if paragraph and _is_disclaimer(" ".join(paragraph)):
            marked.update(range(start, end))
        start = end + 1
    return marked


def _is_disclaimer(text: str) -> bool:
    plain = _fold(text)
    confidential = re.search(r"confidenti|privileg", plain)
    audience = re.search(r"destinataire|recipient|pieces? jointes?|attachments?|addressee", plain)
    environment = re.search(
        r"avant d'imprimer|pensez a l'environnement|consider the environment|before printing|"
        r"n'imprimez",
        plain,
    )
    return bool((confidential and audience) or environment)


def fresh_text(body: str) -> Extracted:
    """Split a plain-text body into what was just written and what came before."""
    lines = [line.rstrip() for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    disclaimers = _disclaimer_lines(lines)
    cut, quote_kind = len(lines), False
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(">") or _is_quote_intro(lines, index):
            cut, quote_kind = index, True
            break
        if _SEPARATOR.match(stripped) or _is_header_block(lines, index):
            cut = index
            break
        if index in disclaimers or _SIGNATURE.match(line) or _is_closing(stripped):
            cut = index
            break
    text = _tidy("\n".join(lines[:cut]))
    rest = lines[cut:]
    quote_start = next(
        (
            i
            for i, line in enumerate(rest)
            if line.strip().startswith(">") or _is_quote_intro(rest, i)
        ),
        len(rest),
    )
    if not quote_kind and any(_POSTSCRIPT.match(line.strip()) for line in rest[:quote_start]):
        return Extracted(text, Reason.POSTSCRIPT)
    if quote_start < len(rest) and _written_inside_quote(
        rest[quote_start:], disclaimers, cut + quote_start
    ):
        return Extracted(text, Reason.INLINE)
    if not text:
        return Extracted("", Reason.EMPTY)
    return Extracted(text)


def _written_inside_quote(rest: Sequence[str], disclaimers: set[int], offset: int) -> bool:
    """True when unquoted words follow the first quoted line (an answer between quotes)."""
    seen_quote = False
    for index, line in enumerate(rest):
        stripped = line.strip()
        if stripped.startswith(">"):
            seen_quote = True
            continue
        if not stripped or not seen_quote or offset + index in disclaimers:
            continue
        if _is_quote_intro(rest, index):
            continue
        return not (_SIGNATURE.match(line) or _is_closing(stripped) or _SEPARATOR.match(stripped))
    return False


# -------------------------------------------------------------------------------- decision


_COMBINING_OR_NOT_ASCII = re.compile(r"[^\x00-\x7f]")


def _drop_combining(found: re.Match[str]) -> str:
    # Looked at only for the few non-ASCII characters: per-character Python on whole quoted
    # mails (disclaimer checks) was most of the time spent understanding a reply.
    char = found.group()
    return "" if unicodedata.combining(char) else char


def _fold(text: str) -> str:
    """Lower case, no accents, straight apostrophes, English `n't` spelled out."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub("[\u2019\u2018`\u00b4\u02bc]", "'", text)
    text = _COMBINING_OR_NOT_ASCII.sub(_drop_combining, unicodedata.normalize("NFKD", text))
    text = text.replace("œ", "oe").replace("æ", "ae")
    return re.sub(r"n't\b", " not", text)


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", _fold(text))


_AUTHORISE = """
autoriser | autorise | autorisee | autorises | autorisees | autorisons | j autorise |
nous autorisons | je vous autorise | acces autorise | autorisation accordee | accorde | accordee |
accord | d accord | daccord | bon pour accord | pour accord | je donne mon accord |
nous donnons notre accord | vous avez mon accord | vous avez notre accord | mon accord |
notre accord | j accepte | nous acceptons | accepte | acceptee | acceptons | accepter |
c est bon | c est ok | ok | okay | oki | oui | ouais | yes | yep | yeah | approve | approved |
i approve | we approve | agree | agreed | i agree | we agree | authorise | authorize |
authorised | authorized | accept | accepted | i accept | we accept | granted | access granted |
i consent | we consent | je valide | nous validons | valide | feu vert | avis favorable |
favorable | volontiers | avec plaisir | bien sur | tout a fait | pas de probleme |
pas de souci | pas de soucis | aucun probleme | aucun souci | sans probleme | sans souci |
no problem | pas d inconvenient | aucun inconvenient | je ne vois pas d inconvenient |
nous ne voyons pas d inconvenient | pas d objection | aucune objection | no objection |
go ahead | allez y | foncez | autorisez | acceptez | validez
"""
_REFUSE = """
refuser | refuse | refusee | refuses | refusees | refusons | je refuse | nous refusons | refus |
non | non merci | nan | pas d accord | ne suis pas d accord | ne sommes pas d accord |
desaccord | en desaccord | ne souhaite pas | ne souhaitons pas | ne voulons pas | ne veux pas |
ne desire pas | ne desirons pas | ne souhaite pas autoriser | ne souhaitons pas autoriser |
ne voulons pas autoriser | ne veux pas autoriser | preferons ne pas autoriser |
prefere ne pas autoriser | ne souhaitons pas donner suite | ne souhaite pas donner suite |
pas interesse | pas interesses | pas interessee | pas interessees | no | nope | decline |
declined | i decline | we decline | refused | deny | denied | reject | rejected |
not interested | no thanks | no thank you | defavorable | avis defavorable |
hors de question | pas question | refusez | certainement pas | surtout pas | absolument pas |
en aucun cas
"""
_NEGATION = "ne | n | pas | not | never | jamais | aucun | aucune | nullement | rien | sans | nor"
_QUESTION = """
pourquoi | comment | quoi | quel | quelle | quels | quelles | combien | est ce | qu est ce |
why | what | how | which | who | is it | do i | do we | must i | must we
"""
_CONDITION = """
si | sauf | condition | conditions | pourvu | sous reserve | reserve | seulement | uniquement |
mais | cependant | toutefois | neanmoins | pourtant | par contre | en revanche | a part |
excepte | hormis | if | unless | but | however | provided | providing | only | except |
although | though | as long as | tant que | des que | lorsque | quand | when | peut etre |
peutetre | maybe | perhaps | possibly | probablement | probably | je pense | i think |
il me semble | je crois | pour l instant | pour le moment | for now | temporairement |
temporarily | provisoirement | d abord | avant | first | before | after | apres |
plus tard | later | attendre | wait | verifier | check | voir | reflechir | consulter |
dois | doit | devons | devez | faut | must | need | needs | partiellement | partially |
en partie | pas encore | not yet | hesite | hesitons | normalement | a priori | demain | tomorrow |
pouvez | pouvons | peux | peut | pourriez | can | could | may | contraire | au contraire
"""
_ACKNOWLEDGEMENT = """
bien recu | bien recue | bien note | bien notee | note | notee | pris note | prenons note |
prends note | received | noted | je regarde | nous regardons | je transmets | transmets |
transmis | transmettre | transfere | je transfere | forward | forwarded | je reviens |
reviens | revenons | reviendrai | reviendrons | get back | je verrai | lu | vu | recu
"""
_JOKE = """
lol | mdr | ptdr | haha | hahaha | hihi | jk | just kidding | je plaisante | je rigole | blague |
poisson d avril | ben voyons | mais bien sur | c est ca oui | tu parles | yeah right |
et puis quoi encore | pas serieux | serieusement | kidding | xd
"""
_NEUTRAL = """
bonjour | bonsoir | hello | hi | salut | madame | monsieur | mme | mr | dear | cher | chere |
merci | beaucoup | thanks | thank | you | bonne | journee | soiree | cordialement | regards |
je | j | nous | on | vous | il | elle | c | ce | cela | ca | est | l | le | la | les | de | d |
du | des | a | au | aux | pour | par | avec | et | en | sur | mon | ma | mes | notre | nos |
votre | vos | moi | i | we | it | is | this | that | the | an | to | of | for | and | my | our |
your | me | us | do | please | svp | stp | bien | tres | tout | totalement | completement |
parfaitement | acces | acceder | access | dossiers | dossier | files | folders | formation |
formations | training | donnees | data | demande | request | partage | partager | sharing |
share | certification | certifications | certificateur | organisme | autorisation | requete |
donne | donnons | give | avez | have | part | cette | ici | here | ainsi | donc | alors | y
"""


@dataclass(frozen=True)
class _Phrase:
    kind: str
    tokens: tuple[str, ...]

    @property
    def negative(self) -> bool:
        return bool(set(self.tokens) & _NEGATION_WORDS)


_NEGATION_WORDS = frozenset(_NEGATION.replace("|", " ").split())


def _phrase_table() -> dict[str, list[_Phrase]]:
    """Phrases indexed by first token, longest first; a later kind never overrides an earlier."""
    table: dict[str, list[_Phrase]] = {}
    seen: set[tuple[str, ...]] = set()
    for kind, source in (
        ("joke", _JOKE),
        ("ack", _ACKNOWLEDGEMENT),
        ("authorise", _AUTHORISE),
        ("refuse", _REFUSE),
        ("question", _QUESTION),
        ("condition", _CONDITION),
        ("negation", _NEGATION),
        ("neutral", _NEUTRAL),
    ):
        for phrase in source.split("|"):
            tokens = tuple(tokenize(phrase))
            if tokens and tokens not in seen:
                seen.add(tokens)
                table.setdefault(tokens[0], []).append(_Phrase(kind, tokens))
    for phrases in table.values():
        phrases.sort(key=lambda p: -len(p.tokens))
    return table


_PHRASES = _phrase_table()


def _scan(tokens: Sequence[str]) -> list[_Phrase]:
    """Greedy longest match, left to right; an unlisted token becomes an `unknown` phrase."""
    found: list[_Phrase] = []
    index = 0
    while index < len(tokens):
        for phrase in _PHRASES.get(tokens[index], ()):
            if tuple(tokens[index : index + len(phrase.tokens)]) == phrase.tokens:
                found.append(phrase)
                index += len(phrase.tokens)
                break
        else:
            found.append(_Phrase("unknown", (tokens[index],)))
            index += 1
    return found


_TEMPLATE_MARKS = re.compile(
    r"pour (autoriser|refuser) l'acces|reference de la demande|envoye automatiquement par cordee|"
    r"/lien/|ce que le partage implique",
)
_SMILEY = re.compile(r"(^|\s)[;:=]-?[)(pPdD]|\b[xX]D\b")


def _has_emoji(text: str) -> bool:
    return any(unicodedata.category(c) in {"So", "Sk", "Cs"} for c in text)


def classify(text: str) -> Verdict:
    """Decide only on a short, unambiguous text; every doubt gives `None` and why."""
    if not text.strip():
        return Verdict(None, Reason.EMPTY)
    if _TEMPLATE_MARKS.search(_fold(text)):
        return Verdict(None, Reason.QUOTE_LEAK)
    if _has_emoji(text) or _SMILEY.search(text):
        return Verdict(None, Reason.TONE)
    if "?" in text or "¿" in text:
        return Verdict(None, Reason.QUESTION)
    tokens = tokenize(_without_name_block(text))
    if len(tokens) > MAX_WORDS:
        return Verdict(None, Reason.TOO_LONG)
    phrases = _scan(tokens)
    kinds = [p.kind for p in phrases]
    matched = tuple(" ".join(p.tokens) for p in phrases if p.kind in {"authorise", "refuse"})
    for kind, reason in (
        ("joke", Reason.TONE),
        ("question", Reason.QUESTION),
        ("condition", Reason.CONDITION),
        ("ack", Reason.ACKNOWLEDGEMENT),
        ("negation", Reason.NEGATION),
    ):
        if kind in kinds:
            return Verdict(None, reason, matched)
    if _negates_a_decision(phrases):
        return Verdict(None, Reason.NEGATION, matched)
    directions = {k for k in kinds if k in {"authorise", "refuse"}}
    if not directions:
        return Verdict(None, Reason.NO_DECISION, matched)
    if len(directions) > 1:
        return Verdict(None, Reason.BOTH, matched)
    weak = all(p.tokens in _WEAK for p in phrases if p.kind in directions)
    if kinds.count("unknown") > (MAX_UNKNOWN_WORDS_WEAK if weak else MAX_UNKNOWN_WORDS):
        return Verdict(None, Reason.FREE_TEXT, matched)
    decision: Decision = "authorise" if "authorise" in directions else "refuse"
    return Verdict(decision, Reason.CLEAR, matched)


_WEAK = {
    (word,)
    for word in ("oui", "non", "ok", "okay", "yes", "no", "ouais", "nan", "yep", "yeah", "nope")
} | {("oki",), ("accord",)}
_NAME_LINE = re.compile(r"^(?:[A-ZÀ-Ý][\w'.-]*\s*){1,4}$")


def _without_name_block(text: str) -> str:
    """Drop trailing lines that only hold a name (`Claire Martin`), never a listed word."""
    lines = [line.strip() for line in text.strip().splitlines()]
    while len(lines) > 1 and (not lines[-1] or _is_name_line(lines[-1])):
        lines.pop()
    return "\n".join(lines)


def _is_name_line(line: str) -> bool:
    if not _NAME_LINE.match(line):
        return False
    return all(p.kind in {"unknown", "neutral"} for p in _scan(tokenize(line)))


def _negates_a_decision(phrases: Sequence[_Phrase]) -> bool:
    """`nous ne souhaitons pas refuser`: a negative phrase governing the next decision word."""
    meaningful = [p for p in phrases if p.kind != "neutral"]
    for current, following in pairwise(meaningful):
        if (
            current.kind == "refuse"
            and current.negative
            and following.kind in {"authorise", "refuse"}
            and following.tokens not in {("non",), ("no",)}
        ):
            return True
    return False
