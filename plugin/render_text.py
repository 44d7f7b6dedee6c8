"""Plain-text rendering for the terminal. The words come from the catalogue; this only lays them out."""

from __future__ import annotations

from plugin.catalogue import CATALOGUE, PENDING
from plugin.classify import Stage
from plugin.diagnosis import Diagnosis
from plugin.doctor import CHECK_LABELS, Report
from plugin.probe_request import ProbeRequest, ProbeResult

PASS, FAIL = "✓", "✗"
_STAGE_ORDER = [s for s in Stage if s is not Stage.DONE]


def render_diagnosis(diagnosis: Diagnosis, *, indent: str = "", pending: bool = False) -> list[str]:
    entry = PENDING if pending else CATALOGUE[diagnosis.code]
    lines = [
        f"{indent}{entry.title}  [{diagnosis.code}; who acts: {diagnosis.remedy}]",
        f"{indent}  Cause: {diagnosis.cause}",
        f"{indent}  Fix:   {diagnosis.fix}",
    ]
    if diagnosis.fix_action is not None:
        lines.append(f"{indent}  Run:   {diagnosis.fix_action.command()}")
    if diagnosis.evidence:
        lines.append(f"{indent}  Evidence:")
        lines.extend(f"{indent}    - {item}" for item in diagnosis.evidence)
    return lines


def render_probe(request: ProbeRequest, result: ProbeResult, *, transcript: bool = True) -> str:
    """The smtp-test report; ``transcript=False`` when the live progress has shown it already (-v)."""
    mode = {"starttls": "STARTTLS", "tls": "implicit TLS", "none": "no TLS"}[request.security.value]
    lines = [f"SMTP test of {request.host}:{request.port} ({mode}), test id {result.test_id}", ""]
    for stage in _STAGE_ORDER:
        key = str(stage)
        failed = not result.ok and result.stage is stage
        if key not in result.timings_ms and not failed:
            continue
        note = ""
        if stage is Stage.TLS and result.tls is not None:
            note = f"{result.tls.version}, {result.tls.cipher}"
        if stage is Stage.AUTH and result.mechanism:
            note = f"AUTH {result.mechanism.upper()} as {request.user}"
        if failed and result.reply is not None:
            note = str(result.reply)
        mark = FAIL if failed else PASS
        took = f"{result.timings_ms[key]:>8.1f} ms" if key in result.timings_ms else " " * 11
        lines.append(f"  {mark} {key:<8}{took}  {note}".rstrip())
    lines.append("")
    lines.extend(f"Warning: {warning}" for warning in result.warnings)
    if result.ok:
        reached = "the message was accepted" if result.stage is Stage.DONE else f"stopped after {result.stage}"
        lines.append(f"PASSED: {reached}" + (f" (Message-ID {result.message_id})" if result.message_id else "") + ".")
    elif result.diagnosis is not None:
        lines.append(f"FAILED at {result.stage}:")
        lines.extend(render_diagnosis(result.diagnosis, indent="  "))
    if transcript:
        lines.extend(["", "Transcript (secrets redacted):"])
        lines.extend(f"  {line}" for line in result.transcript)
    else:
        lines.extend(["", "Transcript: shown above as it happened, with timings (secrets redacted)."])
    return "\n".join(lines)


def render_report(report: Report) -> str:
    """The full diagnosis of ``emaildoctor test`` for a terminal."""
    plan = report.plan
    lines = [
        f"emaildoctor test of {plan.user.name} ({plan.user.login})" if plan else f"emaildoctor test of {report.query}"
    ]
    if plan is not None:
        how = f"SMTP {plan.host}:{plan.port} ({plan.security})" if str(plan.transport) == "smtp" else "Microsoft Graph"
        lines += [f"  {plan.explanation}", f"  How: {how}, {plan.server_source}; test id {report.test_id}"]
        lines += [f"  Note: {note}" for note in plan.notes]
    lines.append("")
    width = max((len(CHECK_LABELS.get(c.name, c.name)) for c in report.checks), default=0)
    for check in report.checks:
        mark = {True: PASS, False: FAIL, None: "-"}[check.ok]
        lines.append(f"  {mark} {CHECK_LABELS.get(check.name, check.name):<{width}}  {check.detail}")
    lines.append("")
    if report.ok:
        lines.append("PASSED: the test message was accepted.")
    elif report.diagnosis is not None:
        lines.append("FAILED:")
        lines.extend(render_diagnosis(report.diagnosis, indent="  ", pending=report.pending))
    if report.smtp is not None and not report.ok:
        lines += ["", "SMTP transcript (secrets redacted):"]
        lines += [f"  {line}" for line in report.smtp.transcript]
    return "\n".join(lines)
