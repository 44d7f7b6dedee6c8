"""The full diagnosis behind ``emaildoctor test USER`` and ``/emailtest``.

Resolve the send plan; run the independent checks concurrently (user and mailbox exist, email on record,
SMTP AUTH switches, the needed right, server reachable with TLS) and, alongside them, the real test send on the
plan's transport (it needs nothing the checks find); combine the evidence into one diagnosis. A Send As denial while Exchange's directory already
shows the right is a fresh grant still propagating, reported as such rather than as denied, except for Send on
Behalf over SMTP, which SMTP submission may never honour (``send_on_behalf_not_honoured``). A right held through a
(nested) group counts, and the wording names the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from plugin.catalogue import Facts, diagnose
from plugin.classify import Stage
from plugin.diagnosis import Code, Diagnosis, FixAction, Right
from plugin.directory import DirectorySource, Transport
from plugin.errors import ConfigError, EmailDoctorError, NotFoundError
from plugin.interfaces import GraphSendResult, MailboxKind, Microsoft365
from plugin.probe import run_probe
from plugin.probe_request import ProbeRequest, ProbeResult, TokenSource
from plugin.progress import Progress
from plugin.resolve import RIGHT_WORDS, ResolutionError, SendPlan, SignIn, resolve
from plugin.sender_checks import UserLookups, lookup_diagnosis, review
from plugin.settings import Settings
from plugin.testmessage import new_test_id

CHECK_LABELS = {
    "email_on_record": "Email address on record",
    "principal_account": "Signing-in account",
    "from_mailbox": "From mailbox",
    "smtp_auth": "SMTP AUTH allowed",
    "right": "Mailbox right",
    "server_tls": "Server reachable, TLS",
    "test_send": "Test send",
}
NOT_CONFIGURED = "not checked: Microsoft 365 is not configured (EMAILDOCTOR_M365__…)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None
    """None when the check does not apply or could not be made."""
    detail: str
    via_group: str | None = field(default=None, compare=False)
    """The right check only: the group through which the right is held."""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    query: str
    ok: bool
    test_id: str
    plan: SendPlan | None = None
    checks: tuple[Check, ...] = field(default=())
    diagnosis: Diagnosis | None = None
    smtp: ProbeResult | None = None
    graph: GraphSendResult | None = None
    pending: bool = False
    """The right is granted and Exchange has not applied it yet."""

    @property
    def fix_action(self) -> FixAction | None:
        return self.diagnosis.fix_action if self.diagnosis else None

    def to_json(self) -> dict[str, object]:
        plan = self.plan.to_json() if self.plan else None
        if plan is not None:
            plan = {"principal": plan["principal"], "from": plan["from"], "sender": plan["sender"], **plan}
        return {
            "ok": self.ok,
            "user": self.query,
            "test_id": self.test_id,
            "plan": plan,
            "checks": [check.to_json() for check in self.checks],
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "pending_propagation": self.pending,
            "smtp": self.smtp.to_json() if self.smtp else None,
            "graph": self.graph.to_json() if self.graph else None,
        }


class Doctor:
    """Runs full diagnoses. ``m365`` is None when Microsoft 365 is not configured (SMTP-only checks)."""

    def __init__(
        self,
        *,
        directory: DirectorySource,
        settings: Settings,
        environ: Mapping[str, str],
        m365: Microsoft365 | None,
        secrets: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> None:
        self._source = directory
        self._settings = settings
        self._environ = environ
        self._m365 = m365
        self._secrets = list(secrets)
        self._progress = progress  # hears the test send's stages as they happen (the CLI's live display)

    async def diagnose(self, query: str) -> Report:
        test_id = new_test_id()
        directory = await self._source.load()
        try:
            employee = directory.find(query)
        except NotFoundError as exc:  # nobody, or several people (ambiguous_user)
            return Report(query, False, test_id, diagnosis=lookup_diagnosis(query, exc, self._secrets))
        try:
            plan = resolve(employee, directory, test_recipient=self._settings.smtp.test_recipient)
        except ResolutionError as exc:
            check = Check("email_on_record", False, f"{employee.name} has no email address on their Employee record")
            facts = Facts(user=employee.name)
            return self._failed(query, test_id, exc.code or Code.MISSING_EMAIL_ADDRESS, facts, (check,))
        return await self._diagnose_plan(query, test_id, plan)

    async def _diagnose_plan(self, query: str, test_id: str, plan: SendPlan) -> Report:
        password = self._password(plan)
        # The test send needs only the plan (and a token for OAuth): it runs alongside the checks, not after them.
        sending = asyncio.ensure_future(self._test_send(plan, test_id, password))
        lookups = UserLookups(self._m365.users) if self._m365 is not None else None
        try:
            checks = await asyncio.gather(
                self._check("principal_account", self._principal_account(plan, lookups)),
                self._check("from_mailbox", self._from_mailbox(plan, lookups)),
                self._check("smtp_auth", self._smtp_auth(plan)),
                self._check("right", self._right(plan)),
                self._check("server_tls", self._server_tls(plan, test_id)),
            )
        except BaseException:
            sending.cancel()
            raise
        all_checks: tuple[Check, ...] = (Check("email_on_record", True, f"{plan.user.name}: {plan.from_addr}"), *checks)
        smtp, graph, send_check = await sending
        code: Code | None
        if smtp is not None:
            sent, code = smtp.ok, (smtp.diagnosis.code if smtp.diagnosis else None)
        else:
            assert graph is not None
            sent, code = graph.ok, graph.code
        all_checks = (*all_checks, send_check)
        if sent:
            return Report(query, True, test_id, plan, all_checks, None, smtp, graph)
        right_check = next(c for c in all_checks if c.name == "right")
        pending = code is Code.SEND_AS_DENIED and right_check.ok is True
        if pending and plan.transport is Transport.SMTP and plan.required_right is Right.SEND_ON_BEHALF:
            # Held, and SMTP still refuses: SMTP submission may never honour it, so "wait" would be wrong advice.
            code, pending = Code.SEND_ON_BEHALF_NOT_HONOURED, False
        diagnosis = await self._combine(plan, code or Code.UNKNOWN, smtp, graph, all_checks, pending)
        # From outside the tenant or without a mailbox, several users, disabled accounts: plugin/sender_checks.py.
        wait = self._settings.m365.propagation_minutes
        diagnosis = await review(self._m365, plan, diagnosis, secrets=self._secrets, wait_minutes=wait, lookups=lookups)
        pending = pending and diagnosis.code is Code.SEND_AS_DENIED
        return Report(query, False, test_id, plan, all_checks, diagnosis, smtp, graph, pending)

    # -- checks -------------------------------------------------------------------------------------------

    async def _check(self, name: str, check: Awaitable[Check]) -> Check:
        """A check that could not be made (Microsoft 365 refused, timed out) is reported, not fatal."""
        try:
            return await check
        except EmailDoctorError as exc:
            code = f" [{exc.code}]" if exc.code else ""
            return Check(name, None, f"could not check{code}: {exc}")

    async def _principal_account(self, plan: SendPlan, lookups: UserLookups | None) -> Check:
        if lookups is None:
            return Check("principal_account", None, NOT_CONFIGURED)
        user = await lookups.find_user(plan.principal)
        if user is None:
            return Check("principal_account", False, f"{plan.principal} does not exist in Microsoft 365")
        if plan.sign_in is SignIn.PASSWORD and user.mailbox is MailboxKind.SHARED:
            return Check(
                "principal_account", False, f"{plan.principal} is a shared mailbox: it cannot sign in with a password"
            )
        if plan.sign_in is SignIn.PASSWORD and not user.enabled:
            return Check("principal_account", False, f"{plan.principal}'s account is disabled (sign-in blocked)")
        return Check(
            "principal_account", True, f"{plan.principal} exists ({user.display_name}, {user.mailbox} mailbox)"
        )

    async def _from_mailbox(self, plan: SendPlan, lookups: UserLookups | None) -> Check:
        if lookups is None:
            return Check("from_mailbox", None, NOT_CONFIGURED)
        user = await lookups.find_user(plan.from_addr)
        if user is None:
            return Check("from_mailbox", False, f"no Microsoft 365 user or mailbox has the address {plan.from_addr}")
        if user.mailbox is MailboxKind.NONE:
            return Check("from_mailbox", False, f"{plan.from_addr} has no Exchange Online mailbox")
        return Check("from_mailbox", True, f"{plan.from_addr} is a {user.mailbox} mailbox")

    async def _smtp_auth(self, plan: SendPlan) -> Check:
        if plan.transport is not Transport.SMTP:
            return Check("smtp_auth", None, "not needed: the test goes through Microsoft Graph")
        if self._m365 is None:
            return Check("smtp_auth", None, NOT_CONFIGURED)
        state = await self._m365.users.smtp_auth(plan.principal)
        return Check("smtp_auth", state.enabled, state.describe(plan.principal))

    async def _right(self, plan: SendPlan) -> Check:
        if plan.required_right is None:
            return Check("right", True, "no mailbox right needed: the sender signs in as the From address")
        words = RIGHT_WORDS[plan.required_right]
        if self._m365 is None:
            return Check("right", None, NOT_CONFIGURED)
        holding = await self._m365.rights.holds(plan.required_right, plan.from_addr, plan.principal)
        via = f" through the group {holding.via_group}" if holding.via_group else ""
        if holding.held:
            return Check("right", True, f"{plan.principal} holds {words} on {plan.from_addr}{via}", holding.via_group)
        return Check("right", False, f"{plan.principal} does not hold {words} on {plan.from_addr}")

    async def _server_tls(self, plan: SendPlan, test_id: str) -> Check:
        if plan.transport is not Transport.SMTP:
            return Check("server_tls", None, "not needed: the test goes through Microsoft Graph")
        result = await run_probe(self._probe_request(plan, test_id, None, Stage.TLS), secrets=self._secrets)
        if result.ok:
            tls = f", {result.tls.version}" if result.tls else ", no TLS"
            return Check("server_tls", True, f"{plan.host}:{plan.port} answers{tls}")
        code = result.diagnosis.code if result.diagnosis else "unknown"
        return Check("server_tls", False, f"{plan.host}:{plan.port} failed at {result.stage} [{code}]")

    # -- sending ------------------------------------------------------------------------------------------

    async def _test_send(
        self, plan: SendPlan, test_id: str, password: SecretStr | None
    ) -> tuple[ProbeResult | None, GraphSendResult | None, Check]:
        """The real test send on the plan's transport: (SMTP result, Graph result, the ``test_send`` check)."""
        if plan.transport is Transport.SMTP:
            smtp = await run_probe(
                self._probe_request(plan, test_id, password, None),
                secrets=self._all_secrets(password),
                progress=self._progress,
            )
            return smtp, None, Check("test_send", smtp.ok, _smtp_detail(smtp))
        graph = await self._graph_send(plan, test_id)
        return None, graph, Check("test_send", graph.ok, _graph_detail(graph))

    def _password(self, plan: SendPlan) -> SecretStr | None:
        secret = plan.server.secret
        if secret.kind == "oauth":
            return None
        if secret.kind == "env":
            assert secret.name is not None
            value = self._environ.get(secret.name)
            if not value:
                raise ConfigError(
                    f"the password for {plan.principal} ({plan.server_source}) is read from the environment "
                    f"variable {secret.name}, which is not set"
                )
            return SecretStr(value)
        path = Path(str(secret.name)).expanduser()
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"the password file for {plan.principal} ({path}) cannot be read: {exc.strerror}"
            ) from exc
        if not value:
            raise ConfigError(f"the password file for {plan.principal} ({path}) is empty")
        return SecretStr(value)

    def _token_source(self, plan: SendPlan) -> TokenSource | None:
        if plan.sign_in is not SignIn.OAUTH_APP:
            return None
        if self._m365 is None:
            raise ConfigError(f"{plan.user.login} sends with OAuth: configure Microsoft 365 (EMAILDOCTOR_M365__…)")
        return self._m365.smtp_token_source()

    def _probe_request(
        self, plan: SendPlan, test_id: str, password: SecretStr | None, quit_after: Stage | None
    ) -> ProbeRequest:
        smtp = self._settings.smtp
        signing_in = quit_after is None
        return ProbeRequest(
            host=plan.host,
            port=plan.port,
            security=plan.security,
            from_addr=plan.from_addr,
            to_addr=plan.to_addr,
            user=plan.principal,
            password=password if signing_in else None,
            token_source=self._token_source(plan) if signing_in else None,
            sender=plan.sender,
            timeout=plan.server.timeout,
            ca_file=smtp.ca_file,
            quit_after=quit_after,
            helo_name=smtp.helo_name,
            test_id=test_id,
            server_source=plan.server_source,
        )

    async def _graph_send(self, plan: SendPlan, test_id: str) -> GraphSendResult:
        if self._m365 is None:
            raise ConfigError(
                f"{plan.user.login} sends through Microsoft Graph: configure Microsoft 365 (EMAILDOCTOR_M365__…)"
            )
        return await self._m365.mailer.send_test(
            principal=plan.principal,
            from_addr=plan.from_addr,
            to_addr=plan.to_addr,
            sender=plan.sender,
            test_id=test_id,
        )

    # -- combining ----------------------------------------------------------------------------------------

    async def _combine(
        self,
        plan: SendPlan,
        code: Code,
        smtp: ProbeResult | None,
        graph: GraphSendResult | None,
        checks: Sequence[Check],
        pending: bool,
    ) -> Diagnosis:
        failed_checks = tuple(f"Check {c.name}: {c.detail}" for c in checks if c.ok is False and c.name != "test_send")
        if code is Code.OAUTH_TOKEN_INVALID and self._m365 is not None and plan.sign_in is SignIn.OAUTH_APP:
            failed_checks += await self._m365.explain_token(for_smtp=plan.transport is Transport.SMTP)
        right = next((c for c in checks if c.name == "right"), None)
        right_ok = right.ok if right else None
        sender_checked = plan.sender is not None and right_ok is False  # the probe could not know; we do
        if (
            smtp is not None
            and smtp.diagnosis is not None
            and not pending
            and smtp.diagnosis.code is code
            and not sender_checked
        ):
            # The probe's diagnosis already names the server's specifics (which switch, which mechanism).
            return dataclasses.replace(smtp.diagnosis, evidence=smtp.diagnosis.evidence + failed_checks)
        evidence = [*(smtp.diagnosis.evidence if smtp and smtp.diagnosis else ()), *(graph.evidence if graph else ())]
        evidence.extend(failed_checks)
        facts = Facts(
            principal=plan.principal,
            from_addr=plan.from_addr,
            to_addr=plan.to_addr,
            right=plan.required_right,
            host=plan.host if plan.transport is Transport.SMTP else "Microsoft Graph",
            port=plan.port if plan.transport is Transport.SMTP else None,
            stage=str(smtp.stage) if smtp else "sendMail",
            timeout=plan.server.timeout,
            reply=str(smtp.reply) if smtp and smtp.reply else (graph.message if graph else None),
            user=plan.user.name,
            mechanism=smtp.mechanism if smtp else None,
            server_source=plan.server_source,
            detail=_graph_clause(code, graph) or _via_clause(code, pending, right),
            wait_minutes=self._settings.m365.propagation_minutes,
        )
        fix = None
        if code is Code.SEND_AS_DENIED and plan.required_right is not None and not pending:
            fix = FixAction(plan.required_right, plan.from_addr, plan.principal)
        return diagnose(code, facts, evidence, secrets=self._secrets, fix_action=fix, pending=pending)

    def _failed(self, query: str, test_id: str, code: Code, facts: Facts, checks: tuple[Check, ...] = ()) -> Report:
        return Report(query, False, test_id, None, checks, diagnose(code, facts, secrets=self._secrets))

    def _all_secrets(self, password: SecretStr | None) -> list[str]:
        return [*self._secrets, password.get_secret_value()] if password is not None else list(self._secrets)


def _via_clause(code: Code, pending: bool, right: Check | None) -> str:
    """' through the group X' for the wordings that say the right is held (waiting, not honoured over SMTP)."""
    held_wording = pending or code is Code.SEND_ON_BEHALF_NOT_HONOURED
    return f" through the group {right.via_group}" if held_wording and right and right.via_group else ""


def _graph_clause(code: Code, graph: GraphSendResult | None) -> str:
    if (
        graph is not None
        and graph.message
        and code in (Code.UNKNOWN, Code.GRAPH_ACCESS_DENIED, Code.SERVER_UNAVAILABLE)
    ):
        return f' ("{graph.error_code}: {graph.message}")'
    return ""


def _smtp_detail(result: ProbeResult) -> str:
    if result.ok:
        return f"the server accepted the test message (test id {result.test_id})"
    code = result.diagnosis.code if result.diagnosis else "unknown"
    reply = str(result.reply) if result.reply else ""
    reply = f": {reply[:117]}…" if len(reply) > 120 else (f": {reply}" if reply else "")
    return f"refused at {result.stage} [{code}]{reply}"


def _graph_detail(result: GraphSendResult) -> str:
    if result.ok:
        delivered = {True: ", delivered to the mailbox", False: ", not found in the mailbox yet", None: ""}
        return f"Graph sendMail accepted (HTTP {result.status}){delivered[result.delivered]}"
    return f"Graph sendMail refused (HTTP {result.status}) {result.error_code}: {result.message}"
