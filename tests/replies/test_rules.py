"""The decision rules on short texts, and the building blocks of fresh-text extraction."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import Message

import pytest

from bot.replies import Reason, classify, fresh_text, html_to_text, is_auto_reply, is_bounce

AUTHORISE = [
    "Oui",
    "OUI !",
    "oui.",
    "OK",
    "Ok pour moi",
    "D'accord",
    "d\u2019accord, merci",
    "Bon pour accord",
    "Accepté",
    "J'accepte",
    "C'est bon",
    "Autoriser",
    "J'autorise l'accès à nos dossiers.",
    "Bonjour, nous autorisons Certif & Co.",
    "Je donne mon accord.",
    "Pas de problème",
    "Oui, je ne vois pas d'inconvénient.",
    "Yes",
    "Yes, approved.",
    "I agree",
    "We approve, thanks.",
    "Authorised",
    "No problem",
    "Oui pour RNCP34567",
    "Oui.\n\nKarim Benali",
    "D'accord.\nPaul",
]
REFUSE = [
    "Non",
    "NON.",
    "Non merci",
    "Non, merci.",
    "Refuser",
    "Je refuse",
    "Nous refusons l'accès.",
    "Refusé",
    "Pas d'accord",
    "Je ne suis pas d'accord.",
    "Nous ne souhaitons pas donner suite.",
    "Nous ne souhaitons pas partager nos dossiers.",
    "Nous ne souhaitons pas autoriser l'accès.",
    "Pas intéressés, merci.",
    "No",
    "No thanks",
    "We decline.",
    "We refuse",
    "Declined",
    "Not interested",
]
UNCLEAR = [
    ("", Reason.EMPTY),
    ("Oui mais de quoi s'agit-il ?", Reason.QUESTION),
    ("Est-ce obligatoire ?", Reason.QUESTION),
    ("Est-ce obligatoire", Reason.QUESTION),
    ("Pourquoi faire", Reason.QUESTION),
    ("oui si vous signez la convention", Reason.CONDITION),
    ("D'accord à condition que seuls les dossiers acceptés soient partagés", Reason.CONDITION),
    ("Oui mais seulement pour RNCP34567", Reason.CONDITION),
    ("OK, je dois d'abord en parler à ma direction", Reason.CONDITION),
    ("Oui pour le moment", Reason.CONDITION),
    ("Peut-être", Reason.CONDITION),
    ("Yes if you sign the agreement", Reason.CONDITION),
    ("Je n'autorise pas", Reason.NEGATION),
    ("Je n\u2019accepte pas", Reason.NEGATION),
    ("pas OK", Reason.NEGATION),
    ("Not approved", Reason.NEGATION),
    ("I don't agree", Reason.NEGATION),
    ("I do not approve", Reason.NEGATION),
    ("Je ne refuse pas", Reason.NEGATION),
    ("Nous ne souhaitons pas refuser", Reason.NEGATION),
    ("Jamais", Reason.NEGATION),
    ("Non, vous pouvez y aller", Reason.CONDITION),
    ("Non, au contraire", Reason.CONDITION),
    ("Non, foncez", Reason.BOTH),
    ("Oui, refusez", Reason.BOTH),
    ("Oui\nNon", Reason.BOTH),
    ("Non, Claire Martin Dupont", Reason.FREE_TEXT),
    ("Oui. Non.", Reason.BOTH),
    ("Oui je refuse", Reason.BOTH),
    ("Non, c'est bon", Reason.BOTH),
    ("Accès non autorisé", Reason.BOTH),
    ("Oui lol", Reason.TONE),
    ("Oui 😂", Reason.TONE),
    ("Oui ;)", Reason.TONE),
    ("Mais bien sûr", Reason.TONE),
    ("OK bien reçu", Reason.ACKNOWLEDGEMENT),
    ("OK, je transmets", Reason.ACKNOWLEDGEMENT),
    ("Noted, thanks", Reason.ACKNOWLEDGEMENT),
    ("Merci pour votre message", Reason.NO_DECISION),
    ("Bonjour", Reason.NO_DECISION),
    ("Oui, la responsable pédagogique régionale valide volontiers demain", Reason.CONDITION),
    ("Oui, Claire Martin Formations Sud Montpellier Hérault", Reason.FREE_TEXT),
    (" ".join(["oui"] + ["dossier"] * 40), Reason.TOO_LONG),
    ("Oui\nPour autoriser l'accès : http://127.0.0.1:8080/lien/abc", Reason.QUOTE_LEAK),
]


@pytest.mark.parametrize("text", AUTHORISE)
def test_authorising_phrases(text: str) -> None:
    verdict = classify(text)
    assert (verdict.decision, verdict.reason) == ("authorise", Reason.CLEAR)


@pytest.mark.parametrize("text", REFUSE)
def test_refusing_phrases(text: str) -> None:
    verdict = classify(text)
    assert (verdict.decision, verdict.reason) == ("refuse", Reason.CLEAR)


@pytest.mark.parametrize(("text", "reason"), UNCLEAR)
def test_unclear_texts_say_why(text: str, reason: Reason) -> None:
    verdict = classify(text)
    assert (verdict.decision, verdict.reason) == (None, reason)


def test_every_reason_has_a_french_label() -> None:
    assert all(reason.label for reason in Reason)


@pytest.mark.parametrize(
    ("body", "fresh"),
    [
        ("Oui\n\nLe lun. 23 nov. 2026 à 10:00, X <x@example.org> a écrit :\n> Refuser", "Oui"),
        ("Non\n\nOn Mon, Nov 23, 2026 at 10:00 AM X <x@example.org> wrote:\n> Yes", "Non"),
        ("OK\n\n-----Original Message-----\nFrom: X\nSent: today\nnon", "OK"),
        ("OK\n\nDe : X <x@example.org>\nEnvoyé : lundi\nÀ : Y\nObjet : Z\n\nnon", "OK"),
        ("Oui\n\nCordialement,\nClaire Martin\nnon-assujettie", "Oui"),
        ("Oui\n-- \nOrganisme autorisé, non soumis", "Oui"),
        ("Non\n\nEnvoyé de mon iPhone", "Non"),
    ],
)
def test_fresh_text_drops_history_and_signature(body: str, fresh: str) -> None:
    extracted = fresh_text(body)
    assert (extracted.text, extracted.problem) == (fresh, None)


def test_an_answer_between_quoted_lines_is_flagged() -> None:
    body = "Le 23/11/2026 à 10:00, X a écrit :\n> Pour autoriser :\n> lien\nOui\n> Pour refuser"
    assert fresh_text(body).problem is Reason.INLINE


def test_a_disclaimer_paragraph_is_not_fresh_text() -> None:
    body = (
        "Oui\n\nCe message et ses pièces jointes sont confidentiels. Si vous n'êtes pas le "
        "destinataire, toute utilisation non autorisée est interdite."
    )
    assert fresh_text(body).text == "Oui"


def test_html_blockquotes_become_quoted_lines_and_outlook_history_is_cut() -> None:
    html = (
        "<div>Oui<br></div><blockquote><p>Refuser</p></blockquote>"
        '<div id="divRplyFwdMsg"><b>De :</b> X</div><p>Non</p>'
    )
    assert html_to_text(html) == "Oui\n\n> Refuser"
    assert html_to_text("") == ""
    assert html_to_text('<?xml version="1.0" encoding="utf-8"?><p>OK</p>') == "OK"


def _message(headers: str) -> Message:
    return message_from_bytes(headers.encode() + b"\r\n\r\nOui\r\n", policy=policy.default)


@pytest.mark.parametrize(
    ("headers", "auto"),
    [
        ("Subject: Re: demande\r\nAuto-Submitted: auto-replied", True),
        ("Subject: Re: demande\r\nAuto-Submitted: no", False),
        ("Subject: Re: demande\r\nX-Autoreply: yes", True),
        ("Subject: Re: demande\r\nPrecedence: bulk", True),
        ("Subject: Re: demande\r\nPrecedence: list", False),
        ("Subject: Out of Office: demande", True),
        ("Subject: Absence du 23/11 au 30/11", True),
        ("Subject: Re: demande\r\nX-Auto-Response-Suppress: All", False),
        ("Subject: Je suis absent\r\nX-Auto-Response-Suppress: All", True),
        ("Subject: Re: demande", False),
    ],
)
def test_auto_reply_headers(headers: str, auto: bool) -> None:
    assert is_auto_reply(_message(headers)) is auto


@pytest.mark.parametrize(
    ("headers", "bounce"),
    [
        ("From: MAILER-DAEMON@mx.example.org\r\nSubject: x", True),
        ("From: postmaster@example.org\r\nSubject: x", True),
        ("From: a@example.org\r\nSubject: Delivery Status Notification (Failure)", True),
        ("From: a@example.org\r\nSubject: Échec de la remise", True),
        ("From: a@example.org\r\nSubject: Re: demande", False),
    ],
)
def test_bounce_headers(headers: str, bounce: bool) -> None:
    assert is_bounce(_message(headers)) is bounce
