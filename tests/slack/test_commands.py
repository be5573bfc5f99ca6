"""The /cordee slash command: the parser alone, then every subcommand against a real database."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum import luhn

from bot.app import App
from bot.channels.memory import MemoryChannel
from bot.clock import FrozenClock
from bot.directory import (
    add_contact,
    add_organisation,
    add_partnership,
    find_certifier,
)
from bot.slack.commands import (
    Cancel,
    Help,
    Remind,
    RequestAccess,
    SlackAnswer,
    Status,
    Validate,
    cancel,
    parse_command,
    remind_now,
    run_command,
)
from bot.store.models import PartnerSync, WorkflowInstance
from tests.support.builders import (
    ORGANISATION_SIRET,
    OTHER_SIRET,
    SECOND_ORGANISATION_SIRET,
    Seed,
    seed_partnership,
)
from tests.support.cdc_deposit import add_successes

USER = "U0CLAIRE01"
SEED_SIRET_SHOWN = "443 061 841 00047"
SECOND_SIRET_SHOWN = "443 061 841 00005"
SEED_NAME_SHOWN = "Formations &lt;Sud&gt;"


# ------------------------------------------------------------------ parser


@pytest.mark.parametrize(
    "text",
    [
        "demande-acces 44306184100047",
        "demande-accès 44306184100047",
        "Demande-Accès 44306184100047",
        "DEMANDE_ACCES 44306184100047",
        "request-access 44306184100047",
        "Request-Access 44306184100047",
    ],
)
def test_request_access_aliases(text: str) -> None:
    assert parse_command(text) == RequestAccess("44306184100047")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("statut", Status()),
        ("STATUS", Status()),
        ("relancer DA-7KQ2M9XP4R", Remind("DA-7KQ2M9XP4R")),
        ("Remind da-7kq2m9xp4r", Remind("DA-7KQ2M9XP4R")),
        ("annuler `DA-7KQ2M9XP4R`.", Cancel("DA-7KQ2M9XP4R")),
        ("cancel « da-7kq2m9xp4r »", Cancel("DA-7KQ2M9XP4R")),
        ("valider", Validate()),
        ("Validate", Validate()),
        ("aide", Help()),
        ("HELP", Help()),
        ("relancer", Remind("")),
        ("annuler", Cancel("")),
    ],
)
def test_other_subcommands_and_their_aliases(text: str, expected: object) -> None:
    assert parse_command(text) == expected


def test_a_name_keeps_its_spaces_and_codes_are_picked_out_anywhere() -> None:
    assert parse_command("demande-acces  Formations   du Sud RNCP34567 rs5875") == RequestAccess(
        "Formations du Sud", ("RNCP34567", "RS5875")
    )
    assert parse_command("demande-acces RNCP34567, RS5875 Formations Sud") == RequestAccess(
        "Formations Sud", ("RNCP34567", "RS5875")
    )
    assert parse_command("demande-acces Formations Sud RNCP34567,rs5875") == RequestAccess(
        "Formations Sud", ("RNCP34567", "RS5875")
    )


def test_a_code_typed_in_two_words_and_a_repeated_code() -> None:
    assert parse_command("demande-acces Formations Sud RS 5875 rncp 34567 RS5875") == (
        RequestAccess("Formations Sud", ("RS5875", "RNCP34567"))
    )


def test_a_siret_may_be_typed_with_spaces() -> None:
    command = parse_command("demande-acces 443 061 841 00047 RNCP34567")
    assert command == RequestAccess("44306184100047", ("RNCP34567",))
    assert isinstance(command, RequestAccess)
    assert command.is_siret


def test_digits_that_are_not_a_siret_stay_a_name() -> None:
    command = parse_command("demande-acces 443 061 841")
    assert command == RequestAccess("443 061 841")
    assert isinstance(command, RequestAccess)
    assert not command.is_siret


def test_request_access_without_an_organisation() -> None:
    assert parse_command("demande-acces RNCP34567") == RequestAccess("", ("RNCP34567",))
    assert parse_command("request-access") == RequestAccess("")


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_input_is_help(text: str) -> None:
    assert parse_command(text) == Help()


def test_an_unknown_word_is_named_in_the_help() -> None:
    assert parse_command("bonjour tout le monde") == Help(unknown="bonjour")
    assert parse_command("demande") == Help(unknown="demande")
    long = parse_command("x" * 200)
    assert isinstance(long, Help)
    assert long.unknown is not None
    assert len(long.unknown) == 60


# ------------------------------------------------------------- integration


def inert(answer: SlackAnswer) -> str:
    """The answer's text, checked to hold no mrkdwn control character but user mentions."""
    text = re.sub(r"<@U[A-Z0-9]+>", "", answer.text)
    assert "<" not in text
    assert ">" not in text
    assert "{{" not in text
    assert "{%" not in text
    return answer.text


async def run(
    app: App, certifier_id: int, text: str, language: str = "fr", user: str = USER
) -> SlackAnswer:
    answer = await run_command(
        app.engine, certifier_id=certifier_id, user_id=user, text=text, language=language
    )
    inert(answer)
    return answer


def references(app: App, certifier_id: int | None = None) -> list[str]:
    query = select(WorkflowInstance.public_id).order_by(WorkflowInstance.id)
    if certifier_id is not None:
        query = query.where(WorkflowInstance.certifier_id == certifier_id)
    return list(app.db.run_sync(lambda s: list(s.scalars(query))))


def count_requests(app: App) -> int:
    return app.db.run_sync(
        lambda s: s.scalar(select(func.count()).select_from(WorkflowInstance)) or 0
    )


def make_siret(number: int) -> str:
    """A valid, fictitious SIRET: SIREN and SIRET Luhn keys both right."""
    base = f"{10000000 + number}"
    siren = base + luhn.calc_check_digit(base)
    establishment = siren + "0001"
    return establishment + luhn.calc_check_digit(establishment)


def add_partner(
    app: App,
    certifier_id: int,
    name: str,
    siret: str,
    clock: FrozenClock,
    *,
    email: str | None = None,
) -> int:
    def work(session: Session) -> int:
        certifier = find_certifier(session, str(certifier_id))
        organisation = add_organisation(session, name, siret, clock.now())
        if email is not None:
            add_contact(session, organisation, email, "Contact", "fr", clock.now())
        add_partnership(session, certifier, organisation, ["RNCP34567"], clock.now())
        return organisation.id

    return app.db.run_sync(work)


def other_certifier(app: App, clock: FrozenClock) -> Seed:
    """A second certifier whose partner has the same name as the first one's, another SIRET."""
    return seed_partnership(
        app.db,
        now=clock.now(),
        contact_email="paul.durand@autre-organisme.example",
        certifier_siret=OTHER_SIRET,
        organisation_siret=SECOND_ORGANISATION_SIRET,
        codes=("RS1234",),
    )


async def test_help_when_empty_or_not_understood(app: App, seed: Seed) -> None:
    empty = await run(app, seed.certifier_id, "")
    assert not empty.public
    assert "Commandes disponibles" in empty.text
    assert "/cordee demande-acces" in empty.text
    assert "Je n'ai pas compris" not in empty.text
    unknown = await run(app, seed.certifier_id, "bonjour")
    assert "Je n'ai pas compris « bonjour »" in unknown.text
    assert "/cordee statut" in unknown.text
    hostile = await run(app, seed.certifier_id, "<!channel>&co")
    assert "« &lt;!channel&gt;&amp;co »" in hostile.text


async def test_request_access_by_siret_emails_the_contact_and_answers_in_the_channel(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    answer = await run(app, seed.certifier_id, "demande-acces 443 061 841 00047 RNCP34567")
    [reference] = references(app)
    assert answer.public
    assert f"<@{USER}> a envoyé une demande" in answer.text
    assert reference in answer.text
    assert SEED_NAME_SHOWN in answer.text
    assert SEED_SIRET_SHOWN in answer.text
    assert "RNCP34567" in answer.text
    assert "RS5875" not in answer.text  # only the code asked for
    assert "23 décembre 2026" in answer.text  # 30 days after T0
    assert "3 et 7 jours" in answer.text
    assert f"/cordee relancer {reference}" in answer.text
    [request] = mail.sent
    assert request.recipient == seed.contact_email
    history = (await app.engine.view(reference, history=True)).history
    assert [(entry.event, entry.actor) for entry in history] == [("start", f"slack:{USER}")]


async def test_request_access_by_name_ignores_case_accents_and_punctuation(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    # The other certifier's partner has the very same name: it must not make this ambiguous.
    other_certifier(app, clock)
    answer = await run(app, seed.certifier_id, "demande-accès formations SUD")
    assert answer.public
    [reference] = references(app, seed.certifier_id)
    assert reference in answer.text
    assert SEED_SIRET_SHOWN in answer.text
    assert [m.recipient for m in mail.sent] == [seed.contact_email]


async def test_one_word_of_the_name_is_enough_when_it_designates_one_partner(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    answer = await run(app, seed.certifier_id, "request-access sud", language="en")
    assert answer.public
    assert "sent a request for access to training folders" in answer.text
    assert len(mail.sent) == 1


async def test_an_unknown_organisation_gets_the_closest_partners_of_this_certifier_only(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    other_certifier(app, clock)
    add_partner(app, seed.certifier_id, "Institut Pasteur Formation", make_siret(1), clock)
    answer = await run(app, seed.certifier_id, "demande-acces Formation Sudd RNCP34567")
    assert not answer.public
    assert "Organisme « Formation Sudd » introuvable" in answer.text
    assert f"• {SEED_NAME_SHOWN} — SIRET {SEED_SIRET_SHOWN}" in answer.text
    assert SECOND_SIRET_SHOWN not in answer.text  # the other certifier's partner
    assert f"/cordee demande-acces {SEED_SIRET_SHOWN}" in answer.text
    assert count_requests(app) == 0
    assert mail.sent == []


async def test_an_unknown_siret_and_an_invalid_one(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    other_certifier(app, clock)
    # A real organisation, but the partner of another certifier.
    stranger = await run(app, seed.certifier_id, f"demande-acces {SECOND_ORGANISATION_SIRET}")
    assert "aucun de vos organismes partenaires n'a le SIRET 443 061 841 00005" in stranger.text
    assert "Organisme introuvable" in stranger.text
    invalid = await run(app, seed.certifier_id, "demande-acces 443 061 841 00048")
    assert "n'est pas valide : sa clé de contrôle ne correspond pas" in invalid.text
    short = await run(app, seed.certifier_id, "request-access 443 061 841", language="en")
    assert "A SIRET has 14 digits" in short.text
    assert count_requests(app) == 0
    assert mail.sent == []


async def test_several_partners_with_the_name_ask_for_the_siret(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    add_partner(
        app,
        seed.certifier_id,
        "Formations <Sud>",
        SECOND_ORGANISATION_SIRET,
        clock,
        email="accueil@formations-sud-2.example",
    )
    ambiguous = await run(app, seed.certifier_id, "demande-acces Formations Sud")
    assert not ambiguous.public
    assert "Plusieurs de vos organismes partenaires correspondent à « Formations Sud »" in (
        ambiguous.text
    )
    assert SEED_SIRET_SHOWN in ambiguous.text
    assert SECOND_SIRET_SHOWN in ambiguous.text
    assert count_requests(app) == 0
    chosen = await run(app, seed.certifier_id, f"demande-acces {SECOND_SIRET_SHOWN}")
    assert chosen.public
    [view] = [await app.engine.view(ref) for ref in references(app)]
    assert view.data["organisation_siret"] == SECOND_ORGANISATION_SIRET
    assert [m.recipient for m in mail.sent] == ["accueil@formations-sud-2.example"]


async def test_a_second_request_is_refused_with_the_pending_reference(
    app: App, seed: Seed, mail: MemoryChannel
) -> None:
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    [reference] = references(app)
    again = await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    assert not again.public
    assert f"Une demande est déjà en attente de réponse pour *{SEED_NAME_SHOWN}*" in again.text
    assert f"/cordee relancer {reference}" in again.text
    assert "Aucune demande n'a été envoyée." in again.text
    assert len(mail.sent) == 1
    await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    authorised = await run(app, seed.certifier_id, "request-access sud", language="en")
    assert f"has already authorised access to its folders (request `{reference}`)" in (
        authorised.text
    )


async def test_codes_outside_the_partnership_and_an_organisation_without_contact(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    answer = await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET} RNCP11111")
    assert "ne couvre pas : RNCP11111" in answer.text
    assert "Certifications couvertes : RNCP34567, RS5875" in answer.text
    add_partner(app, seed.certifier_id, "Atelier Sans Courriel", make_siret(2), clock)
    lonely = await run(app, seed.certifier_id, "demande-acces Atelier Sans Courriel")
    assert "*Atelier Sans Courriel* n'a aucun contact joignable par courriel" in lonely.text
    assert count_requests(app) == 0
    assert mail.sent == []


async def test_missing_arguments_say_what_to_type(app: App, seed: Seed) -> None:
    request = await run(app, seed.certifier_id, "demande-acces")
    assert "Indiquez l'organisme partenaire" in request.text
    remind = await run(app, seed.certifier_id, "relancer")
    assert "Indiquez la référence de la demande à relancer" in remind.text
    cancelled = await run(app, seed.certifier_id, "cancel", language="en")
    assert "Please give the reference of the request to cancel" in cancelled.text


async def test_validate_explains_how_to_have_a_file_checked(app: App, seed: Seed) -> None:
    french = await run(app, seed.certifier_id, "valider")
    assert "`.xml`" in french.text
    assert "fil du message" in french.text
    assert not french.public
    english = await run(app, seed.certifier_id, "validate", language="en")
    assert "thread" in english.text


async def test_status_shows_this_certifier_and_never_another(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    other = other_certifier(app, clock)
    add_partner(
        app,
        seed.certifier_id,
        "Campus & Métiers",
        make_siret(3),
        clock,
        email="contact@campus.example",
    )
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    clock.advance(timedelta(days=1))
    await run(app, seed.certifier_id, "demande-acces Campus & Métiers")
    pending, authorised = references(app, seed.certifier_id)
    await app.engine.fire(authorised, "authorise", actor="partner_contact:web")
    await run(app, other.certifier_id, f"demande-acces {SECOND_ORGANISATION_SIRET}")
    [theirs] = references(app, other.certifier_id)

    mine = await run(app, seed.certifier_id, "statut")
    assert not mine.public
    assert f"• `{pending}` {SEED_NAME_SHOWN} — expire le 23 décembre 2026" in mine.text
    assert "• Campus &amp; Métiers (RNCP34567) — depuis le 24 novembre 2026" in mine.text
    assert f"`{authorised}`" not in mine.text.split("*Organismes")[0]  # not pending any more
    assert "aucune source configurée" in mine.text
    assert "Aucun résultat à déposer." in mine.text
    assert theirs not in mine.text
    assert SECOND_SIRET_SHOWN not in mine.text
    assert "RS1234" not in mine.text

    their_status = await run(app, other.certifier_id, "status", language="en")
    assert f"• `{theirs}` {SEED_NAME_SHOWN} — expires on 24 December 2026" in their_status.text
    assert pending not in their_status.text
    assert "Campus" not in their_status.text
    assert "no source configured" in their_status.text
    assert "No result to deposit." in their_status.text


async def test_status_shows_a_failing_sync_and_the_deposits_due(
    app: App, seed: Seed, clock: FrozenClock
) -> None:
    other = other_certifier(app, clock)

    def failing_sync(session: Session) -> None:
        session.add(
            PartnerSync(
                partnership_id=seed.partnership_id,
                certifier_id=seed.certifier_id,
                source_kind="api",
                last_started_at=clock.now() - timedelta(hours=1),
                last_finished_at=clock.now() - timedelta(hours=1),
                last_outcome="failed",
                consecutive_failures=3,
                last_error="API injoignable <délai dépassé>",
                created_at=clock.now(),
            )
        )

    app.db.run_sync(failing_sync)
    # Delivered on 1 August: the three months ran out on 1 November, before T0 (23 November).
    add_successes(app.db, seed, ["A-1", "A-2"], entered_at=clock.now(), issued_on=date(2026, 8, 1))
    add_successes(app.db, seed, ["B-1"], entered_at=clock.now(), issued_on=date(2026, 9, 10))

    french = await run(app, seed.certifier_id, "statut")
    assert (
        f"• {SEED_NAME_SHOWN} : dernier passage le 23 novembre 2026 à 09:00, en échec "
        "(0 créé(s), 0 mis à jour)"
    ) in french.text
    assert ":warning: 3 échec(s) d'affilée : API injoignable &lt;délai dépassé&gt;" in french.text
    assert "3 résultat(s) à déposer, dont 2 en retard, 1 à déposer dans le mois." in french.text
    assert "Échéance la plus ancienne dépassée depuis le 1er novembre 2026" in french.text
    english = await run(app, seed.certifier_id, "status", language="en")
    assert "last run on 23 November 2026 at 09:00, failed" in english.text
    assert "3 result(s) to deposit, 2 of them overdue, 1 due within a month." in english.text
    assert "The oldest deadline passed on 1 November 2026" in english.text
    theirs = await run(app, other.certifier_id, "statut")
    assert "Aucun résultat à déposer." in theirs.text
    assert "injoignable" not in theirs.text
    assert "aucune source configurée" in theirs.text


async def test_status_lists_are_capped(app: App, seed: Seed, clock: FrozenClock) -> None:
    for number in range(12):
        add_partner(
            app,
            seed.certifier_id,
            f"Organisme {number:02d}",
            make_siret(10 + number),
            clock,
            email=f"contact{number}@organisme.example",
        )
        await run(app, seed.certifier_id, f"demande-acces Organisme {number:02d}")
    answer = await run(app, seed.certifier_id, "statut")
    assert len(re.findall(r"^• `DA-", answer.text, flags=re.MULTILINE)) == 10
    assert "• … et 2 autre(s)" in answer.text  # 12 pending requests
    assert "• … et 3 autre(s)" in answer.text  # 13 partnerships in the sync section


async def test_remind_twice_sends_one_reminder(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    [reference] = references(app)
    first = await run(app, seed.certifier_id, f"relancer {reference.lower()}")
    assert first.public
    assert f"<@{USER}> a relancé *{SEED_NAME_SHOWN}* au sujet de la demande `{reference}`" in (
        first.text
    )
    assert [m.recipient for m in mail.sent] == [seed.contact_email] * 2
    second = await run(app, seed.certifier_id, f"relancer {reference}")
    assert not second.public
    assert "une relance a déjà été envoyée il y a moins d'une heure" in second.text.lower()
    assert len(mail.sent) == 2
    # The button does the same, and says it in English when asked.
    button = await remind_now(
        app.engine,
        certifier_id=seed.certifier_id,
        reference=reference,
        user_id=USER,
        language="en",
    )
    assert "A reminder was already sent less than an hour ago" in inert(button)
    assert len(mail.sent) == 2
    clock.advance(timedelta(minutes=61))
    third = await run(app, seed.certifier_id, f"remind {reference}", language="en")
    assert f"<@{USER}> reminded" in third.text
    assert len(mail.sent) == 3
    history = (await app.engine.view(reference, history=True)).history
    assert [(e.event, e.actor) for e in history][1:] == [("remind", f"slack:{USER}")] * 2


async def test_a_decided_request_is_not_reminded(app: App, seed: Seed, mail: MemoryChannel) -> None:
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    [reference] = references(app)
    await app.engine.fire(reference, "refuse", actor="partner_contact:web")
    sent = len(mail.sent)
    answer = await run(app, seed.certifier_id, f"relancer {reference}")
    assert f"La demande `{reference}` ({SEED_NAME_SHOWN}) est refusée" in answer.text
    assert "aucun courriel n'est parti" in answer.text
    assert not answer.public
    assert len(mail.sent) == sent


async def test_cancel_twice_is_harmless(app: App, seed: Seed, mail: MemoryChannel) -> None:
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    [reference] = references(app)
    first = await run(app, seed.certifier_id, f"annuler {reference}")
    assert first.public
    assert f"<@{USER}> a annulé la demande `{reference}`" in first.text
    assert (await app.engine.view(reference)).state == "cancelled"
    sent = len(mail.sent)
    assert sent == 2  # the request, then the cancellation notice to the organisation
    second = await cancel(
        app.engine, certifier_id=seed.certifier_id, reference=reference, user_id=USER, language="fr"
    )
    assert f"La demande `{reference}` ({SEED_NAME_SHOWN}) est déjà annulée" in inert(second)
    assert not second.public
    english = await run(app, seed.certifier_id, f"cancel {reference}", language="en")
    assert "is already cancelled: nothing has changed" in english.text
    assert len(mail.sent) == sent
    history = (await app.engine.view(reference, history=True)).history
    assert [e.event for e in history] == ["start", "cancel"]


async def test_an_authorised_request_cannot_be_cancelled(app: App, seed: Seed) -> None:
    await run(app, seed.certifier_id, f"demande-acces {ORGANISATION_SIRET}")
    [reference] = references(app)
    await app.engine.fire(reference, "authorise", actor="partner_contact:web")
    answer = await run(app, seed.certifier_id, f"annuler {reference}")
    assert "est autorisée : elle ne peut plus être annulée, rien n'a changé" in answer.text
    assert (await app.engine.view(reference)).state == "authorised"


async def test_another_certifiers_request_is_unknown_to_remind_and_cancel(
    app: App, seed: Seed, clock: FrozenClock, mail: MemoryChannel
) -> None:
    other = other_certifier(app, clock)
    await run(app, other.certifier_id, f"demande-acces {SECOND_ORGANISATION_SIRET}")
    [theirs] = references(app)
    sent = len(mail.sent)
    for action in (remind_now, cancel):
        answer = await action(
            app.engine,
            certifier_id=seed.certifier_id,
            reference=theirs,
            user_id=USER,
            language="fr",
        )
        assert f"Demande « {theirs} » introuvable" in inert(answer)
        assert not answer.public
    english = await run(app, seed.certifier_id, f"remind {theirs}", language="en")
    assert f"Request “{theirs}” was not found" in english.text
    # Numeric ids reach instances too: they are scoped the same way.
    view = await app.engine.view(theirs)
    by_id = await run(app, seed.certifier_id, f"annuler {view.id}")
    assert "introuvable" in by_id.text
    assert (await app.engine.view(theirs)).state == "pending"
    assert len(mail.sent) == sent


async def test_english_answers(app: App, seed: Seed) -> None:
    help_text = await run(app, seed.certifier_id, "hello", language="en")
    assert "Sorry, I did not understand “hello”" in help_text.text
    assert "Je" not in help_text.text
    sent = await run(app, seed.certifier_id, f"request-access {ORGANISATION_SIRET}", language="en")
    [reference] = references(app)
    assert f"<@{USER}> sent a request" in sent.text
    assert "expire on 23 December 2026" in sent.text
    assert "after 3 and 7 days" in sent.text
    assert f"`/cordee remind {reference}`" in sent.text
    status = await run(app, seed.certifier_id, "status", language="en")
    assert "*Requests awaiting an answer*" in status.text
    done = await run(app, seed.certifier_id, f"cancel {reference}", language="en")
    assert f"<@{USER}> cancelled request `{reference}`" in done.text


def test_inviter_reads_the_address_slack_wraps_and_the_names_around_it() -> None:
    from bot.slack.commands import InviteTrainer

    assert parse_command("inviter <mailto:a@b.fr|a@b.fr> Anne Marie Durand") == InviteTrainer(
        "a@b.fr", "Anne", "Marie Durand"
    )
    assert parse_command("invite a@b.fr") == InviteTrainer("a@b.fr")
    assert parse_command("Inviter") == InviteTrainer("")
