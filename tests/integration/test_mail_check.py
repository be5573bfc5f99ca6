"""`cordee mail check` against real local servers: aiosmtpd and aioimaplib's bundled IMAP server."""

from __future__ import annotations

import asyncio
import email
import json
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from aioimaplib.imap_testing_server import CAPABILITIES, ImapProtocol, Mail, MockImapServer
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, LoginPassword
from click.testing import CliRunner

from bot.cli import cli
from bot.config import Settings, load_settings
from bot.mail_check import CheckResult, Status, check_imap, check_mail, check_smtp

ROOT = Path(__file__).resolve().parents[2]
USER = "bot@cordee.example"
PASSWORD = "s3cret-pass"
WRONG = "not-the-password"

# aiosmtpd itself reads its deprecated Session.login_data after a successful AUTH.
aiosmtpd_login_data = pytest.mark.filterwarnings(
    "ignore:Session.login_data is deprecated:DeprecationWarning"
)


# -- servers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    ca: trustme.CA

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def authority() -> Authority:
    return Authority(trustme.CA())


class _Accept:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raise AssertionError("mail check must never send a mail")


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    accepted = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: the server answers 535 itself.
    return AuthResult(success=accepted, handled=False)


@asynccontextmanager
async def smtp_server(
    *, starttls: ssl.SSLContext | None = None, implicit_tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    def factory() -> SMTPServer:
        return SMTPServer(
            _Accept(),
            hostname="smtp.test",
            tls_context=starttls,
            authenticator=_authenticator,
            # Over plain text only when the test asks for no TLS at all.
            auth_require_tls=starttls is not None,
        )

    server = await asyncio.get_running_loop().create_server(
        factory, "127.0.0.1", 0, ssl=implicit_tls
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


class _PasswordCheckingProtocol(ImapProtocol):  # type: ignore[misc]
    """The bundled server accepts any password; real servers do not."""

    def login(self, tag: str, *args: str) -> None:
        if args[1:] != (f'"{PASSWORD}"',):
            self.send_tagged_line(tag, "NO [AUTHENTICATIONFAILED] Authentication failed.")
            return
        super().login(tag, *args)


class ImapServer(MockImapServer):  # type: ignore[misc]
    def run_server(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        fetch_chunk_size: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Any:
        def create_protocol() -> ImapProtocol:
            protocol = _PasswordCheckingProtocol(
                self._server_state, fetch_chunk_size, self.capabilities, self.loop
            )
            self._connections.append(protocol)
            return protocol

        return self.loop.create_server(create_protocol, host, port, ssl=ssl_context)

    def make_folder(self, name: str) -> None:
        message = email.message_from_string("Subject: placeholder\n\nkept\n")
        self.receive(Mail(message), imap_user=USER, mailbox=name)


@asynccontextmanager
async def imap_server(
    *, tls: ssl.SSLContext | None = None, capabilities: str = CAPABILITIES
) -> AsyncIterator[tuple[ImapServer, int]]:
    server = ImapServer(capabilities=capabilities)
    listening = await server.run_server(host="127.0.0.1", port=0, ssl_context=tls)
    try:
        yield server, listening.sockets[0].getsockname()[1]
    finally:
        server.reset()
        listening.close()
        await listening.wait_closed()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def no_such_host(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def table(results: list[CheckResult]) -> dict[str, tuple[Status, str]]:
    return {f"{r.server}.{r.step}": (r.status, r.detail) for r in results}


def statuses(results: list[CheckResult]) -> list[tuple[str, Status]]:
    return [(r.step, r.status) for r in results]


def settings_for(tmp_path: Path, **values: str) -> Settings:
    env = {"CORDEE_DATA_DIR": str(tmp_path / "var")}
    env.update({f"CORDEE_{name.upper()}": value for name, value in values.items()})
    return load_settings(env, config_file=tmp_path / "absent.toml")


def no_password_anywhere(results: list[CheckResult]) -> None:
    for result in results:
        assert PASSWORD not in result.detail
        assert WRONG not in result.detail


# -- everything in order -------------------------------------------------------------------------


async def test_plain_smtp_and_imap_all_good(tmp_path: Path) -> None:
    async with smtp_server() as smtp_port, imap_server() as (_server, imap_port):
        settings = settings_for(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=str(smtp_port),
            smtp_security="none",
            imap_host="127.0.0.1",
            imap_port=str(imap_port),
            imap_security="none",
            imap_username=USER,
            imap_password=PASSWORD,
        )
        results = await check_mail(settings)
    assert statuses(results) == [
        ("dns", Status.OK),
        ("tcp", Status.OK),
        ("tls", Status.SKIPPED),
        ("greeting", Status.OK),
        ("auth", Status.SKIPPED),
        ("dns", Status.OK),
        ("tcp", Status.OK),
        ("tls", Status.SKIPPED),
        ("greeting", Status.OK),
        ("auth", Status.OK),
        ("folder", Status.OK),
        ("processed_folder", Status.SKIPPED),
    ]
    found = table(results)
    assert "circulent en clair" in found["smtp.tls"][1]
    assert "sans authentification" in found["smtp.auth"][1]
    assert "(smtp.test)" in found["smtp.greeting"][1]
    assert "IDLE" in found["imap.auth"][1]
    assert found["imap.folder"][1] == "« INBOX » ouvert (0 message(s))"
    assert "restent dans « INBOX », marqués comme lus" in found["imap.processed_folder"][1]
    no_password_anywhere(results)


@aiosmtpd_login_data
async def test_starttls_and_authentication_all_good(authority: Authority) -> None:
    async with smtp_server(starttls=authority.server_context()) as port:
        results = await check_smtp(
            "127.0.0.1",
            port,
            security="starttls",
            username=USER,
            password=PASSWORD,
            tls_context=authority.client_context(),
        )
    assert all(result.status is Status.OK for result in results), results
    found = table(results)
    assert found["smtp.tls"][1].startswith("STARTTLS accepté (TLSv1.")
    assert "certificat vérifié pour « 127.0.0.1 »" in found["smtp.tls"][1]
    # AUTH is announced only once the connection is encrypted (auth_require_tls).
    assert "PLAIN" in found["smtp.greeting"][1]
    assert found["smtp.auth"][1] == "identifiant et mot de passe acceptés"
    no_password_anywhere(results)


@aiosmtpd_login_data
async def test_implicit_tls_smtp_all_good(authority: Authority) -> None:
    async with smtp_server(implicit_tls=authority.server_context()) as port:
        results = await check_smtp(
            "127.0.0.1",
            port,
            security="tls",
            username=USER,
            password=PASSWORD,
            tls_context=authority.client_context(),
        )
    assert all(result.status is Status.OK for result in results), results
    assert table(results)["smtp.tls"][1].startswith("TLS établi (TLSv1.")


async def test_implicit_tls_imap_with_a_processed_folder_all_good(authority: Authority) -> None:
    async with imap_server(tls=authority.server_context()) as (server, port):
        server.make_folder("Processed")
        results = await check_imap(
            "127.0.0.1",
            port,
            security="tls",
            username=USER,
            password=PASSWORD,
            folder="INBOX",
            processed_folder="Processed",
            tls_context=authority.client_context(),
        )
    assert all(result.status is Status.OK for result in results), results
    found = table(results)
    assert found["imap.tls"][1].startswith("TLS établi (TLSv1.")
    assert found["imap.processed_folder"][1] == (
        "« Processed » existe : ils y seront déplacés (MOVE)."
    )


async def test_the_processed_folder_without_move_is_explained() -> None:
    async with imap_server(capabilities="IDLE") as (server, port):
        server.make_folder("Processed")
        results = await check_imap(
            "127.0.0.1",
            port,
            security="none",
            username=USER,
            password=PASSWORD,
            processed_folder="Processed",
        )
    status, detail = table(results)["imap.processed_folder"]
    assert status is Status.OK
    assert "marqué supprimé" in detail
    assert "ni MOVE ni UIDPLUS" in detail
    assert "ne propose pas IDLE" not in table(results)["imap.auth"][1]


# -- what goes wrong -----------------------------------------------------------------------------


async def test_a_wrong_smtp_password_is_named() -> None:
    async with smtp_server() as port:
        results = await check_smtp(
            "127.0.0.1", port, security="none", username=USER, password=WRONG, step_seconds=5
        )
    assert statuses(results)[-2:] == [("greeting", Status.OK), ("auth", Status.FAILED)]
    assert table(results)["smtp.auth"][1] == (
        "identifiant ou mot de passe refusé par le serveur (535) : vérifiez "
        "CORDEE_SMTP_USERNAME et CORDEE_SMTP_PASSWORD (certains fournisseurs exigent un mot de "
        "passe d'application)."
    )
    no_password_anywhere(results)


async def test_an_smtp_username_without_password_is_named() -> None:
    async with smtp_server() as port:
        results = await check_smtp("127.0.0.1", port, security="none", username=USER)
    status, detail = table(results)["smtp.auth"]
    assert status is Status.FAILED
    assert detail.startswith("CORDEE_SMTP_PASSWORD n'est pas défini")


async def test_a_wrong_imap_password_is_named() -> None:
    async with imap_server() as (_server, port):
        results = await check_imap(
            "127.0.0.1", port, security="none", username=USER, password=WRONG
        )
    assert statuses(results)[3:] == [
        ("greeting", Status.OK),
        ("auth", Status.FAILED),
        ("folder", Status.SKIPPED),
        ("processed_folder", Status.SKIPPED),
    ]
    assert table(results)["imap.auth"][1].startswith(
        "identifiant ou mot de passe refusé par le serveur : vérifiez CORDEE_IMAP_USERNAME et "
        "CORDEE_IMAP_PASSWORD"
    )
    assert table(results)["imap.folder"][1] == "non vérifié : une étape précédente a échoué."
    no_password_anywhere(results)


async def test_an_untrusted_certificate_is_named(authority: Authority) -> None:
    """The system's authorities do not know the test CA: « certificat non reconnu »."""
    async with (
        smtp_server(starttls=authority.server_context()) as smtp_port,
        imap_server(tls=authority.server_context()) as (_server, imap_port),
    ):
        smtp = await check_smtp(
            "127.0.0.1", smtp_port, security="starttls", username=USER, password=PASSWORD
        )
        imap = await check_imap(
            "127.0.0.1", imap_port, security="tls", username=USER, password=PASSWORD
        )
    for results, server in ((smtp, "smtp"), (imap, "imap")):
        status, detail = table(results)[f"{server}.tls"]
        assert status is Status.FAILED
        assert detail.startswith("certificat non reconnu (unable to get local issuer certificate)")
        assert "autorité de confiance" in detail
        assert table(results)[f"{server}.auth"][0] is Status.SKIPPED


async def test_a_certificate_for_another_name_is_named(authority: Authority) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.ca.issue_cert("mail.example.org").configure_cert(context)
    async with smtp_server(implicit_tls=context) as port:
        results = await check_smtp(
            "127.0.0.1", port, security="tls", tls_context=authority.client_context()
        )
    status, detail = table(results)["smtp.tls"]
    assert status is Status.FAILED
    assert detail.startswith("certificat non reconnu : il n'est pas établi pour « 127.0.0.1 »")
    assert "CORDEE_SMTP_HOST" in detail


async def test_a_server_without_starttls_is_named() -> None:
    async with smtp_server() as smtp_port, imap_server() as (_server, imap_port):
        smtp = await check_smtp("127.0.0.1", smtp_port, security="starttls")
        imap = await check_imap(
            "127.0.0.1", imap_port, security="starttls", username=USER, password=PASSWORD
        )
    for results, server, port in ((smtp, "smtp", smtp_port), (imap, "imap", imap_port)):
        status, detail = table(results)[f"{server}.tls"]
        assert status is Status.FAILED
        assert detail.startswith(f"le serveur ne propose pas STARTTLS sur le port {port}")
        assert f"CORDEE_{server.upper()}_SECURITY = tls" in detail


async def test_a_missing_folder_lists_the_existing_ones() -> None:
    async with imap_server() as (_server, port):
        watched = await check_imap(
            "127.0.0.1", port, security="none", username=USER, password=PASSWORD, folder="Replies"
        )
        processed = await check_imap(
            "127.0.0.1",
            port,
            security="none",
            username=USER,
            password=PASSWORD,
            processed_folder="Archives",
        )
    assert statuses(watched)[-2:] == [
        ("folder", Status.FAILED),
        ("processed_folder", Status.SKIPPED),
    ]
    assert table(watched)["imap.folder"][1] == (
        "le dossier « Replies » n'existe pas sur le serveur. Dossiers existants : « INBOX », "
        "« Drafts », « Sent », « Trash ». Corrigez CORDEE_IMAP_FOLDER."
    )
    status, detail = table(processed)["imap.processed_folder"]
    assert status is Status.FAILED
    assert detail.startswith("le dossier « Archives » n'existe pas sur le serveur.")
    assert detail.endswith("ou corrigez CORDEE_IMAP_PROCESSED_FOLDER.")


async def test_the_watched_folder_cannot_be_the_processed_folder() -> None:
    async with imap_server() as (_server, port):
        results = await check_imap(
            "127.0.0.1",
            port,
            security="none",
            username=USER,
            password=PASSWORD,
            processed_folder="inbox",
        )
    status, detail = table(results)["imap.processed_folder"]
    assert status is Status.FAILED
    assert "désigne le dossier surveillé « INBOX »" in detail


async def test_a_closed_port_is_named() -> None:
    port = closed_port()
    smtp = await check_smtp("127.0.0.1", port, security="starttls")
    imap = await check_imap("127.0.0.1", port, security="tls", username=USER, password=PASSWORD)
    assert statuses(smtp) == [
        ("dns", Status.OK),
        ("tcp", Status.FAILED),
        ("tls", Status.SKIPPED),
        ("greeting", Status.SKIPPED),
        ("auth", Status.SKIPPED),
    ]
    assert table(smtp)["smtp.tcp"][1] == (
        f"connexion refusée par 127.0.0.1 sur le port {port} : aucun service n'écoute sur ce "
        "port. Vérifiez CORDEE_SMTP_PORT (587 pour starttls, 465 pour tls, 25 pour none ; 0 "
        "choisit selon CORDEE_SMTP_SECURITY)."
    )
    assert table(imap)["imap.tcp"][1].startswith(
        f"connexion refusée par 127.0.0.1 sur le port {port}"
    )


async def test_a_dns_failure_is_named() -> None:
    smtp = await check_smtp("smtp.cordee.invalid", 587, security="starttls", resolver=no_such_host)
    imap = await check_imap(
        "imap.cordee.invalid",
        security="tls",
        username=USER,
        password=PASSWORD,
        resolver=no_such_host,
    )
    assert table(smtp)["smtp.dns"] == (
        Status.FAILED,
        "le nom « smtp.cordee.invalid » est introuvable dans le DNS : vérifiez l'orthographe de "
        "CORDEE_SMTP_HOST (le nom du serveur, par ex. smtp.votre-domaine.fr).",
    )
    assert [r.status for r in smtp[1:]] == [Status.SKIPPED] * 4
    assert table(imap)["imap.dns"][0] is Status.FAILED
    assert "CORDEE_IMAP_HOST" in table(imap)["imap.dns"][1]


# -- the embedded Maildir ------------------------------------------------------------------------


async def test_without_servers_the_embedded_maildirs_are_checked(tmp_path: Path) -> None:
    results = await check_mail(settings_for(tmp_path))
    assert [(r.server, r.step, r.status) for r in results] == [
        ("outbox", "maildir", Status.OK),
        ("inbox", "maildir", Status.OK),
    ]
    outbox, inbox = (r.detail for r in results)
    var = tmp_path / "var"
    assert outbox.startswith(
        f"Maildir intégré (CORDEE_SMTP_HOST vide) : les courriels sont écrits en fichiers .eml "
        f"dans {var / 'outbox' / 'new'} ; il sera créé au premier démarrage"
    )
    assert inbox.startswith("Maildir intégré (CORDEE_IMAP_HOST vide) : les réponses déposées")
    assert not var.exists()  # checking creates nothing

    (var / "outbox" / "tmp").mkdir(parents=True)
    results = await check_mail(settings_for(tmp_path))
    assert results[0].detail.endswith("; dossier accessible en écriture.")
    assert list((var / "outbox" / "tmp").iterdir()) == []  # the probe file is gone


async def test_a_maildir_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("a file where a folder should be", encoding="utf-8")
    results = await check_mail(settings_for(tmp_path))
    assert [r.status for r in results] == [Status.FAILED, Status.FAILED]
    assert results[0].detail == (
        f"{tmp_path / 'var'} n'est pas un dossier : {tmp_path / 'var' / 'outbox'} ne peut pas "
        "y être créé. Choisissez un autre chemin avec CORDEE_OUTBOX_DIR."
    )
    assert "CORDEE_INBOX_DIR" in results[1].detail


# -- through the command line --------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def cordee(tmp_path: Path, *args: str, **settings: str) -> Run:
    """`python -m bot …` in a child process, so that the servers keep running in this loop."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CORDEE_")}
    env.update({f"CORDEE_{name.upper()}": value for name, value in settings.items()})
    env.update({"PYTHONPATH": str(ROOT), "CORDEE_DATA_DIR": str(tmp_path / "var")})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


async def test_the_command_says_all_is_well_and_exits_0(tmp_path: Path) -> None:
    async with smtp_server() as smtp_port, imap_server() as (_server, imap_port):
        run = await cordee(
            tmp_path,
            "mail",
            "check",
            smtp_host="127.0.0.1",
            smtp_port=str(smtp_port),
            smtp_security="none",
            imap_host="127.0.0.1",
            imap_port=str(imap_port),
            imap_security="none",
            imap_username=USER,
            imap_password=PASSWORD,
        )
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "✓ SMTP · DNS : 127.0.0.1 → 127.0.0.1"
    assert lines[2].startswith(
        "\N{EN DASH} SMTP · chiffrement : aucun (CORDEE_SMTP_SECURITY = none)"
    )
    assert "✓ IMAP · dossier surveillé : « INBOX » ouvert (0 message(s))" in lines
    assert lines[-1] == "Tout est en ordre : Cordée peut envoyer et recevoir des courriels."
    assert run.stderr == ""
    assert PASSWORD not in run.stdout


async def test_the_command_names_a_wrong_password_and_exits_1(tmp_path: Path) -> None:
    async with smtp_server() as smtp_port:
        settings = {
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp_port),
            "smtp_security": "none",
            "smtp_username": USER,
            "smtp_password": WRONG,
        }
        run = await cordee(tmp_path, "mail", "check", **settings)
        as_json = await cordee(tmp_path, "mail", "check", "--json", **settings)
    assert run.code == 1
    assert (
        "✗ SMTP · authentification : identifiant ou mot de passe refusé par le serveur (535) : "
        "vérifiez CORDEE_SMTP_USERNAME et CORDEE_SMTP_PASSWORD" in run.stdout
    )
    assert "✓ Réception · Maildir : Maildir intégré (CORDEE_IMAP_HOST vide)" in run.stdout
    assert run.stderr == (
        "Erreur : 1 vérification en échec (SMTP · authentification) : corrigez le réglage "
        "indiqué, puis relancez « cordee mail check ».\n"
    )
    assert as_json.code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    auth = report["checks"][4]
    assert {key: auth[key] for key in ("server", "step", "label", "status")} == {
        "server": "smtp",
        "step": "auth",
        "label": "SMTP · authentification",
        "status": "failed",
    }
    assert auth["detail"].startswith("identifiant ou mot de passe refusé par le serveur (535)")
    for output in (run.stdout, run.stderr, as_json.stdout, as_json.stderr):
        assert WRONG not in output


def test_an_invalid_setting_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["mail", "check"],
        env={"CORDEE_DATA_DIR": str(tmp_path / "var"), "CORDEE_SMTP_SECURITY": "ssl"},
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Erreur : Réglage invalide : CORDEE_SMTP_SECURITY = 'ssl'")


def test_the_command_checks_the_embedded_maildirs(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["mail", "check", "--json"], env={"CORDEE_DATA_DIR": str(tmp_path / "var")}
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.output)
    assert report["ok"] is True
    assert [(c["label"], c["status"]) for c in report["checks"]] == [
        ("Envoi · Maildir", "ok"),
        ("Réception · Maildir", "ok"),
    ]
