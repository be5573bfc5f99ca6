"""The error tree of Cordée.

    CordeeError
    ├── ConfigError                    a setting is missing or malformed
    ├── WorkflowDefinitionError        a workflow declaration is inconsistent (raised at import)
    ├── InvalidTransition              an event that the current state does not accept
    ├── NotFound                       an unknown certifier, organisation, request…
    ├── InvalidInput                   a value a person typed is not acceptable (SIRET, code…)
    ├── Conflict                       clashes with existing data (second pending request…)
    │   └── SharingStopped             bot.sync.run: sharing paused or revoked during a sync run
    ├── RejectedFile                   bot.sync.files: an export that cannot be imported at all
    ├── CredentialsUnreadable          bot.sync.credentials: stored API key no longer decrypts
    ├── SourceError                    bot.sync.sources: a partner's folder source failed whole
    │   ├── SourceAuthError            credentials refused (401/403): the organisation is asked
    │   └── SourceUnavailable          unreachable, timeout, 5xx: retried with back-off
    ├── TokenError                     a link token that cannot be used
    │   ├── TokenInvalid               tampered or malformed
    │   └── TokenExpired               signature fine, too old
    └── ChannelError                   a channel could not do its job
        ├── DeliveryFailed             permanent: the message will not be delivered
        └── ChannelUnavailable         transient: try again later (also a ConnectionError)

The sync errors live beside the code that raises them; they are listed here so the
tree stays whole.

Every message is written for the person who will read it: French, plain, saying what to do next.
"""


class CordeeError(Exception):
    """Base of every error Cordée raises on purpose."""


class ConfigError(CordeeError):
    """A setting is missing or malformed; start-up stops."""


class WorkflowDefinitionError(CordeeError):
    """A workflow declaration is inconsistent."""


class InvalidTransition(CordeeError):
    """The current state does not accept this event."""

    def __init__(self, workflow: str, state: str, event: str) -> None:
        super().__init__(
            f"{workflow}: l'événement « {event} » n'est pas possible depuis « {state} »"
        )
        self.workflow = workflow
        self.state = state
        self.event = event


class NotFound(CordeeError):
    """An unknown record was named."""


class InvalidInput(CordeeError):
    """A value typed by a person is not acceptable."""


class Conflict(CordeeError):
    """The action clashes with data that already exists."""


class TokenError(CordeeError):
    """A link token cannot be used."""


class TokenInvalid(TokenError):
    """The token was tampered with or is malformed."""


class TokenExpired(TokenError):
    """The token's signature is fine but it is too old."""


class ChannelError(CordeeError):
    """A channel could not do its job."""


class DeliveryFailed(ChannelError):
    """Permanent failure: the message will not be delivered."""


class ChannelUnavailable(ChannelError, ConnectionError):
    """Transient failure: the channel may work again later."""
