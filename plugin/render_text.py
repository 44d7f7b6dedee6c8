"""Plain-text rendering for the terminal. The words come from the catalogue; this only lays them out."""

from __future__ import annotations

from plugin.catalogue import CATALOGUE
from plugin.classify import Stage
from plugin.diagnosis import Diagnosis
from plugin.probe_request import ProbeRequest, ProbeResult

PASS, FAIL = "✓", "✗"
_STAGE_ORDER = [s for s in Stage if s is not Stage.DONE]


def render_diagnosis(diagnosis: Diagnosis, *, indent: str = "") -> list[str]:
    entry = CATALOGUE[diagnosis.code]
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


def render_probe(request: ProbeRequest, result: ProbeResult) -> str:
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
    lines.extend(["", "Transcript (secrets redacted):"])
    lines.extend(f"  {line}" for line in result.transcript)
    return "\n".join(lines)
