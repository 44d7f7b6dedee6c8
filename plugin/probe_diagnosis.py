"""From a failed probe to its diagnosis: the code, the facts the wording needs, the evidence, the ready fix."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from plugin.catalogue import Facts, diagnose
from plugin.classify import Failure, classify
from plugin.diagnosis import Code, Diagnosis, FixAction, Right
from plugin.probe_request import ProbeRequest, TlsInfo


def diagnose_failure(
    failure: Failure, request: ProbeRequest, tls: TlsInfo | None, mechanism: str | None, secrets: Sequence[str]
) -> Diagnosis:
    code = classify(failure)
    right = Right.SEND_ON_BEHALF if request.sender else Right.SEND_AS
    if failure.reply:
        evidence = [f"At the {failure.stage} stage the server replied: {failure.reply}"]
    else:
        evidence = [f"At the {failure.stage} stage: {failure.detail.strip(' ();') or failure.kind}"]
    if tls:
        evidence.append(f"TLS: {tls.version}, {tls.cipher}")
    facts = Facts(
        principal=request.user,
        from_addr=request.from_addr,
        to_addr=request.to_addr,
        right=right,
        host=request.host,
        port=request.port,
        stage=str(failure.stage),
        timeout=request.timeout,
        reply=str(failure.reply) if failure.reply else None,
        mechanism=mechanism,
        server_source=request.server_source,
        detail=_detail(code, failure, request),
    )
    fix = None
    # With a Sender the probe cannot tell a missing Send on Behalf from an SMTP server that ignores it: it reads no
    # rights, so it claims neither (emaildoctor test checks the right and says which).
    unchecked = code is Code.SEND_AS_DENIED and bool(request.sender)
    if (
        code is Code.SEND_AS_DENIED
        and not unchecked
        and request.user
        and request.user.casefold() != request.from_addr.casefold()
    ):
        fix = FixAction(right, request.from_addr, request.user)
    diagnosis = diagnose(code, facts, evidence, secrets=secrets, fix_action=fix, sender_unchecked=unchecked)
    if code is Code.AUTH_MECHANISM_UNSUPPORTED and failure.offered:
        diagnosis = dataclasses.replace(diagnosis, fix=auth_advice(failure.offered, mechanism, request))
    return diagnosis


CLI_SOURCE = "the --host/--port settings"
"""``server_source`` of smtp-test's requests: its advice may name smtp-test's own options."""
SPOKEN = ("plain", "login", "xoauth2")


def auth_advice(offered: Sequence[str], mechanism: str | None, request: ProbeRequest) -> str:
    """What to do when the sign-in method is not offered, naming what the server does offer."""
    names = ", ".join(m.upper() for m in offered)
    cli = request.server_source == CLI_SOURCE
    usable = [m for m in SPOKEN if m in offered]
    if request.token_source is None:
        choices = [m for m in usable if m not in ("xoauth2", mechanism)]
        if choices:
            how = f"use --auth {choices[0]}" if cli else f"use {choices[0].upper()} for this account"
            return f"The server offers {names}; {how} (or leave the mechanism out and emaildoctor picks one offered)."
        if "xoauth2" in usable:
            how = " (smtp-test --oauth)" if cli else ""
            return f"The server offers {names}: no password sign-in. Sign in with OAuth (XOAUTH2) instead{how}."
    elif "xoauth2" not in usable:
        choices = [m for m in usable if m != "xoauth2"]
        if choices:
            how = f" (--password-env or --password-file, --auth {choices[0]})" if cli else ""
            return (
                f"The server offers {names}, not XOAUTH2; sign in with a password instead{how}, or use "
                "smtp.office365.com on port 587 with SSL on for OAuth."
            )
    wanted = (mechanism or "the needed method").upper()
    return (
        f"The server offers {names}, none of which emaildoctor can use for {wanted}; use a server and port that "
        "offer PLAIN, LOGIN or XOAUTH2."
    )


def _detail(code: Code, failure: Failure, request: ProbeRequest) -> str:
    """The clause that makes a cause specific: which switch, which certificate problem, the server's words."""
    text = failure.reply.text if failure.reply else ""
    if code is Code.SMTP_AUTH_DISABLED:
        return (
            " for the whole organisation (tenant)"
            if "tenant" in text.casefold()
            else f" for the mailbox {request.user}"
        )
    if code is Code.BASIC_AUTH_BLOCKED and text:
        return f" ({text.split('. Contact')[0].strip()})"
    if code in (Code.TLS_CERTIFICATE_INVALID, Code.TLS_FAILED, Code.AUTH_UNAVAILABLE, Code.AUTH_MECHANISM_UNSUPPORTED):
        return failure.detail
    if code in (Code.SENDER_REJECTED, Code.RECIPIENT_REJECTED, Code.UNKNOWN, Code.TENANT_BLOCKED) and failure.reply:
        return f': "{failure.reply}"'
    if code is Code.SERVER_UNAVAILABLE and failure.reply:
        return f' ("{failure.reply}")'
    return ""
