"""All settings, loaded once at the edge into one model.

Environment variables use the prefix ``EMAILDOCTOR_`` and ``__`` between a section and its field,
e.g. ``EMAILDOCTOR_M365__CLIENT_SECRET`` or ``EMAILDOCTOR_SLACK__BOT_TOKEN``; a ``.env`` file is
read too. Secrets are :class:`~pydantic.SecretStr`, so they print as ``**********``.
Code builds :class:`Settings` explicitly (``Settings(m365=…)`` in tests, :func:`load_settings` at
the edge); nothing else reads the environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from plugin.addresses import is_helo_name
from plugin.errors import ConfigError
from plugin.paths import default_directory_path, default_store_url
from plugin.validate import ca_file_problem, host_problem


class Security(StrEnum):
    """How the SMTP connection is encrypted: STARTTLS upgrade, implicit TLS from the first byte, or none."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class SlackMode(StrEnum):
    HTTP = "http"
    SOCKET = "socket"


_Timeout = Annotated[float, Field(gt=0, le=600)]


def _not_blank(value: object) -> object:
    """An empty variable (``EMAILDOCTOR_M365__CA_FILE=``) is a mistake, not a request for the working directory."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty: name a file, or leave the setting out")
    return value


def _ca_file(value: Path | None) -> Path | None:
    if value is not None and (problem := ca_file_problem(value)):
        raise ValueError(problem)
    return value


CaFile = Annotated[Path | None, BeforeValidator(_not_blank), AfterValidator(_ca_file)]
"""An extra CA bundle (PEM): named when given, and a readable bundle of certificates."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class M365Settings(_Section):
    """The Entra app registration emaildoctor signs in with, and where Microsoft 365 lives."""

    tenant_id: str | None = None
    """Directory (tenant) ID, a GUID, or the tenant's initial domain."""
    client_id: str | None = None
    """Application (client) ID of the app registered from manifests/entra-app.json."""
    client_secret: SecretStr | None = None
    certificate_path: Annotated[Path | None, BeforeValidator(_not_blank)] = None
    """PEM file holding the app's certificate and its private key (instead of a client secret)."""
    certificate_password: SecretStr | None = None
    authority_host: str = "https://login.microsoftonline.com"
    graph_url: str = "https://graph.microsoft.com"
    exchange_url: str = "https://outlook.office365.com"
    instance_discovery: bool = True
    """Ask Microsoft which sign-in hosts are genuine; turn off only for the local sandbox."""
    ca_file: CaFile = None
    """Extra CA bundle (PEM) trusted for sign-in, Graph and the Exchange admin API."""
    timeout: _Timeout = 30.0
    read_mail_to_confirm: bool = True
    """After a Graph test send, confirm arrival in the recipient's mailbox (needs Mail.ReadBasic.All)."""
    propagation_minutes: Annotated[float, Field(ge=0, le=24 * 60)] = 60.0
    """How long a fresh grant may take to apply in Exchange; a denial inside this window is reported as
    'granted, waiting for Exchange to apply it'."""
    readback_seconds: Annotated[float, Field(ge=0, le=3600)] = 120.0
    """How long a grant or revoke re-reads Exchange (with back-off) until its reads show the change; after that
    the change is reported as done but 'not visible in Exchange yet'."""

    @field_validator("authority_host", "graph_url", "exchange_url")
    @classmethod
    def _https_url(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    # Signing in without a secret (docs/operations.md): declared here, next to the rule that checks them.
    credential: str | None = None
    """How emaildoctor signs in: ``secret``, ``certificate``, ``managed_identity`` (App Service, Container Apps,
    VMs) or ``workload_identity`` (a federated token file, e.g. on AKS). Unset: the secret or certificate set."""
    federated_token_file: Path | None = None
    """Workload identity: the federated token file (default: ``AZURE_FEDERATED_TOKEN_FILE``, as AKS sets it)."""

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        kind = self.credential
        if kind is not None and kind not in CREDENTIALS:
            raise ValueError(
                f"m365.credential (EMAILDOCTOR_M365__CREDENTIAL) must be one of {', '.join(CREDENTIALS)}, not {kind!r}"
            )
        if kind is not None and (problem := _credential_problem(self, kind)):
            raise ValueError(f"m365.credential (EMAILDOCTOR_M365__CREDENTIAL) is {kind}: {problem}")
        if self.federated_token_file is not None and kind != "workload_identity":
            raise ValueError(
                "m365.federated_token_file (EMAILDOCTOR_M365__FEDERATED_TOKEN_FILE) is set: also set "
                "EMAILDOCTOR_M365__CREDENTIAL=workload_identity, or remove it"
            )
        if self.client_secret is not None and self.certificate_path is not None:
            raise ValueError(
                "set either m365.client_secret or m365.certificate_path, not both "
                "(EMAILDOCTOR_M365__CLIENT_SECRET / EMAILDOCTOR_M365__CERTIFICATE_PATH)"
            )
        if kind is None and self.configured and self.client_secret is None and self.certificate_path is None:
            raise ValueError(
                "m365.tenant_id and m365.client_id are set but no credential: set "
                "EMAILDOCTOR_M365__CLIENT_SECRET or EMAILDOCTOR_M365__CERTIFICATE_PATH (or "
                "EMAILDOCTOR_M365__CREDENTIAL=managed_identity / workload_identity)"
            )
        if self.client_id is not None and self.tenant_id is None:
            raise ValueError("m365.tenant_id is required when m365.client_id is set")
        if self.tenant_id is not None and self.client_id is None and kind != "managed_identity":
            raise ValueError("m365.client_id is required when m365.tenant_id is set")
        return self

    @property
    def configured(self) -> bool:
        if self.credential == "managed_identity":  # no client_id: the system-assigned identity
            return self.tenant_id is not None
        return self.tenant_id is not None and self.client_id is not None

    @property
    def credential_kind(self) -> str:
        """:attr:`credential`, or the one the secret / certificate settings imply."""
        if self.credential is not None:
            return self.credential
        return "certificate" if self.certificate_path is not None else "secret"


CREDENTIALS = ("secret", "certificate", "managed_identity", "workload_identity")


def _credential_problem(settings: M365Settings, kind: str) -> str | None:
    secret, certificate = settings.client_secret is not None, settings.certificate_path is not None
    if kind == "secret" and not secret:
        return "set EMAILDOCTOR_M365__CLIENT_SECRET"
    if kind == "certificate" and not certificate:
        return "set EMAILDOCTOR_M365__CERTIFICATE_PATH"
    if kind in ("managed_identity", "workload_identity") and (secret or certificate):
        return (
            "remove EMAILDOCTOR_M365__CLIENT_SECRET / EMAILDOCTOR_M365__CERTIFICATE_PATH (signing in without a "
            "secret uses none)"
        )
    if kind == "managed_identity" and settings.tenant_id is None:
        return "set EMAILDOCTOR_M365__TENANT_ID (EMAILDOCTOR_M365__CLIENT_ID only for a user-assigned identity)"
    if kind == "workload_identity" and (settings.tenant_id is None or settings.client_id is None):
        return "set EMAILDOCTOR_M365__TENANT_ID and EMAILDOCTOR_M365__CLIENT_ID (the app with the federated credential)"
    return None


class SlackSettings(_Section):
    """The Slack app (manifests/slack-app.yaml) and who may approve grants."""

    mode: SlackMode = SlackMode.HTTP
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    """Verifies that HTTP requests come from Slack (HTTP mode)."""
    app_token: SecretStr | None = None
    """App-level token ``xapp-…`` (Socket Mode)."""
    api_url: str = "https://slack.com/api/"
    ca_file: CaFile = None
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 3000
    """HTTP mode: the port the bot listens on (0: any free port)."""
    it_usergroup_id: str | None = None
    """Members of this Slack user group (``S…``) may approve and grant."""
    it_user_ids: Annotated[tuple[str, ...], NoDecode] = ()
    """Slack user IDs (``U…``) that may approve and grant, in addition to the user group."""
    approvals_channel: str | None = None
    """Channel ID where approval cards are posted."""
    audit_channel: str | None = None
    """Channel ID where audit summaries are posted."""
    audit_cron: str | None = None
    """Cron expression (UTC) for scheduled audits, e.g. ``0 7 * * 1-5``."""
    request_ttl_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    retest_timeout_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 120.0
    retest_first_delay_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    retest_max_delay_seconds: Annotated[float, Field(gt=0, le=3600)] = 600.0
    response_url_hosts: Annotated[tuple[str, ...], NoDecode] = ("hooks.slack.com",)
    """Hosts whose https response_urls the bot follows (besides ``api_url``'s own origin); others are refused."""
    lookups_it_only: bool = True
    """``/sendas show`` and ``/sendas who`` answer IT only (they map who can send as whom, like ``/mailaudit``)."""
    who_snapshot_max_age_minutes: Annotated[float, Field(ge=0, le=7 * 24 * 60)] = 60.0
    """``/sendas who`` answers from the last audit if it is at most this old (0: always ask Exchange)."""
    it_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 10.0
    """How long IT membership is cached for read-only commands; approvals and changes always ask Slack afresh."""
    ready_cache_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    """How long /readyz reuses its last answer, so that probes do not ask Microsoft for a token every second."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if problem := host_problem(value):
            raise ValueError(problem)
        return value.strip()

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("it_user_ids", "response_url_hosts", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):  # "U1,U2" or a JSON list
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _mode_needs_token(self) -> Self:
        if self.mode is SlackMode.SOCKET and self.bot_token is not None and self.app_token is None:
            raise ValueError("slack.mode is 'socket' but slack.app_token (EMAILDOCTOR_SLACK__APP_TOKEN) is not set")
        if self.retest_first_delay_seconds > self.retest_max_delay_seconds:
            raise ValueError("slack.retest_first_delay_seconds must not exceed slack.retest_max_delay_seconds")
        return self


class SmtpDefaults(_Section):
    """Defaults for SMTP probes when the directory or the command line leaves a value out."""

    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Security = Security.STARTTLS
    timeout: _Timeout = 30.0
    ca_file: CaFile = None
    """Extra CA bundle (PEM) trusted for SMTP TLS, in addition to the system store."""
    helo_name: str | None = None
    test_recipient: str | None = None
    """Send test messages here instead of to the user's own address."""

    @field_validator("helo_name")
    @classmethod
    def _helo(cls, value: str | None) -> str | None:
        if value is not None and not is_helo_name(value):
            raise ValueError(f"{value!r} is not a host name (no spaces or line breaks), e.g. mail.example.com")
        return value


class StoreSettings(_Section):
    url: str = Field(default_factory=default_store_url)
    """SQLAlchemy URL: ``sqlite:///path.db`` (one process) or ``postgresql://user@host/db`` (replicas). Default:
    ``emaildoctor.db`` in the per-user data folder (:mod:`plugin.paths`), whatever the working directory; the CLI
    and the bot must share it for ``grant --for`` to be revoked."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("sqlite:", "sqlite+aiosqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class LimitSettings(_Section):
    """Bounds on what one person can make the bot do (per replica: counted in each process's memory)."""

    max_grant_days: Annotated[int, Field(ge=1, le=3650)] = 90
    """The longest time-bound grant (``for 90d``), from chat and the command line."""
    emailtest_reuse_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    """A test of the same user within this time shows the last result (labelled) instead of signing in again."""
    emailtest_per_requester_per_minute: Annotated[int, Field(ge=1, le=1000)] = 6
    sendas_per_requester_per_minute: Annotated[int, Field(ge=1, le=1000)] = 10
    mailaudit_runs_per_requester_per_hour: Annotated[int, Field(ge=1, le=1000)] = 4


class ChangeSettings(_Section):
    """How changes to Exchange are driven to a final state (docs/reliability.md)."""

    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = 120.0
    """A replica working on a change renews its claim this often (a third of it); a dead one lets it lapse."""
    retry_first_delay_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    retry_max_delay_seconds: Annotated[float, Field(gt=0, le=24 * 3600)] = 600.0
    give_up_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 60.0
    """A grant or revocation Exchange keeps failing is marked failed (and announced) after this long.
    Time limits are never given up: they are retried until done."""
    escalate_after_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 15.0
    """A time limit still not revoked this long after it ran out is announced in the approvals channel."""
    verify_timeout_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = 120.0
    """A change Exchange accepted but does not show yet is read back until then, then marked failed."""

    @model_validator(mode="after")
    def _delays_in_order(self) -> Self:
        if self.retry_first_delay_seconds > self.retry_max_delay_seconds:
            raise ValueError("changes.retry_first_delay_seconds must not exceed changes.retry_max_delay_seconds")
        return self


class DirectorySettings(_Section):
    path: Annotated[Path, BeforeValidator(_not_blank)] = Field(default_factory=default_directory_path)
    """Employee list and system outgoing mail server: a YAML file, or a CSV export of the employee list."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EMAILDOCTOR_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    m365: M365Settings = Field(default_factory=M365Settings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    smtp: SmtpDefaults = Field(default_factory=SmtpDefaults)
    store: StoreSettings = Field(default_factory=StoreSettings)
    changes: ChangeSettings = Field(default_factory=ChangeSettings)
    directory: DirectorySettings = Field(default_factory=DirectorySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    def secret_values(self) -> Iterator[str]:
        """Every secret these settings hold, for the redactor."""
        for secret in (
            self.m365.client_secret,
            self.m365.certificate_password,
            self.slack.bot_token,
            self.slack.signing_secret,
            self.slack.app_token,
        ):
            if secret is not None and secret.get_secret_value():
                yield secret.get_secret_value()


def load_settings(env_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read settings from the environment and ``env_file`` (default ``.env``); raise :class:`ConfigError`
    naming each offending setting and its environment variable."""
    try:
        if env_file is not None:
            return Settings(_env_file=env_file, **dict(overrides or {}))  # type: ignore[call-arg]
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    """One line for one bad setting (``invalid setting m365.ca_file (EMAILDOCTOR_M365__CA_FILE): …``), a list for
    several."""
    lines = ["invalid settings:"]
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        dotted = ".".join(location)
        env = "EMAILDOCTOR_" + "__".join(part.upper() for part in location)
        message = error["msg"].removeprefix("Value error, ")
        where = f"{dotted} ({env})" if dotted else "settings"
        lines.append(f"  {where}: {message}")
    if len(lines) == 2:
        return "invalid setting " + lines[1].strip()
    return "\n".join(lines)
