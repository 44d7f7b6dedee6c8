"""Block Kit rendering: the one place that turns reports, requests and audits into Slack messages.

Words come from the catalogue (plugin/catalogue.py) so Slack says what the CLI says. Every payload leaves
through :func:`redacted`, which passes each string through :func:`plugin.redact.redact`.

Text that a person typed, or that the directory, Exchange or a mail server supplied, goes in through
:func:`escape` (``&``, ``<``, ``>`` as Slack asks), and every mrkdwn text object is ``verbatim``, so no
``<!channel>``, mention or link can come from it; :func:`redacted` also disarms any that slipped through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from plugin.catalogue import CATALOGUE, PENDING
from plugin.checks import CheckReport
from plugin.diagnosis import Diagnosis, FixAction, Right
from plugin.doctor import CHECK_LABELS, Check, Report
from plugin.redact import redact
from plugin.resolve import RIGHT_WORDS

Block = dict[str, Any]
Message = tuple[str, list[Block]]
"""A Slack message: the fallback text and its blocks."""

ACTION_REQUEST_FIX = "request_fix"
ACTION_APPROVE = "approve_request"
ACTION_DENY = "deny_request"
ACTION_CONFIRM = "confirm_change"
ACTION_CANCEL = "cancel_change"

SECTION_LIMIT = 2900  # Slack allows 3000 characters of text in a section


def mark(ok: bool | None) -> str:
    return {True: "✅", False: "❌", None: "➖"}[ok]


def escape(text: str) -> str:
    """Text from outside (a person, the directory, Exchange) made inert in Slack's mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _mrkdwn(text: str, limit: int = SECTION_LIMIT, rest: str = "use the CLI") -> dict[str, Any]:
    # verbatim: Slack does not turn bare URLs, #channel names or @here in the text into links or mentions.
    return {"type": "mrkdwn", "text": clip(text, limit, rest=rest), "verbatim": True}


def _section(text: str, rest: str = "use the CLI") -> Block:
    return {"type": "section", "text": _mrkdwn(text, rest=rest)}


def _context(*texts: str) -> Block:
    return {"type": "context", "elements": [_mrkdwn(t, 2900) for t in texts if t]}


_ENTRY = re.compile(r"^\s*(?:[•➕➖\-*]|:[a-z_]+:)\s")
"""A line that is one entry of a list (a bullet, a ➕/➖ change, an emoji-led line)."""


def clip(text: str, limit: int = SECTION_LIMIT, *, rest: str = "use the CLI") -> str:
    """``text`` if it fits in ``limit`` characters; otherwise the whole lines that fit, then "… and N more
    (``rest``)", N counting the entries left out. An entry is never cut in half; a single line longer than the
    limit is cut at a word boundary."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        left = lines[index:]
        entries = sum(1 for item in left if _ENTRY.match(item)) or len(left)
        tail = f"… and {entries} more ({rest})"
        if size + len(line) + 1 + len(tail) > limit:
            if not kept:  # one line longer than the whole limit: cut it between words
                room = limit - len(tail) - 2
                cut = line[:room].rsplit(" ", 1)[0] if " " in line[:room] else line[:room]
                return f"{cut}…\n{tail}"
            return "\n".join([*kept, tail])
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)  # not reached: the whole text is longer than the limit


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def title_of(diagnosis: Diagnosis | None, pending: bool = False) -> str:
    if diagnosis is None:
        return "Passed"
    return PENDING.title if pending else CATALOGUE[diagnosis.code].title


# -- /emailtest ---------------------------------------------------------------------------------------------


def testing_message(user: str, requested_by: str) -> Message:
    text = f":hourglass_flowing_sand: Testing outgoing email for *{escape(user)}*… (asked by <@{requested_by}>)"
    return text, [_section(text)]


def reused_note(seconds: float) -> str:
    return (
        f":recycle: This is the result of the test of {seconds:.0f} s ago, not a new one: "
        "a person is tested at most once a minute, so that the test does not sign in as them again and again."
    )


def summary_message(report: Report, requested_by: str, *, reused_from: float | None = None) -> Message:
    who = escape(report.plan.user.name if report.plan else report.query)
    verdict = "passed" if report.ok else f"failed: {title_of(report.diagnosis, report.pending)}"
    text = f"{mark(report.ok)} Email test for *{who}* {verdict} (asked by <@{requested_by}>). Details in the thread."
    if reused_from is not None:
        return text, [_section(text), _context(reused_note(reused_from))]
    return text, [_section(text)]


def report_blocks(
    report: Report, *, origin: Mapping[str, str] | None = None, reused_from: float | None = None
) -> Message:
    """The full report for the thread: who signs in, From/Sender, checks, diagnosis, and a Request fix button."""
    plan = report.plan
    who = plan.user.name if plan else report.query
    headline = f"{mark(report.ok)} {who}: {title_of(report.diagnosis, report.pending)}"
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": headline[:150], "emoji": True}}]
    if reused_from is not None:
        blocks.append(_context(reused_note(reused_from)))
    if plan is not None:
        transport = (
            f"SMTP {plan.host}:{plan.port} ({plan.security})" if str(plan.transport) == "smtp" else "Microsoft Graph"
        )
        blocks.append(
            _section(
                f"*Who signs in:* {escape(plan.principal)}\n*From:* {escape(plan.from_addr)}"
                + (f"   *Sender:* {escape(plan.sender)}" if plan.sender else "")
                + f"\n*How:* {escape(transport)}, {escape(plan.server_source)}"
            )
        )
        blocks.append(_context(escape(plan.explanation)))
    if report.checks:
        blocks.append(_section("\n".join(_check_line(check) for check in report.checks)))
    diagnosis = report.diagnosis
    if diagnosis is not None:
        blocks.append(_section(f"*Cause:* {escape(diagnosis.cause)}\n*Fix:* {escape(diagnosis.fix)}"))
        if diagnosis.evidence:
            blocks.append(_context(*(f"• {escape(item)}" for item in diagnosis.evidence[:6])))
        if diagnosis.fix_action is not None and not report.pending:
            value = fix_value(diagnosis.fix_action, report, origin or {})
            blocks.append(
                {
                    "type": "actions",
                    "block_id": "fix",
                    "elements": [_button("Request fix", ACTION_REQUEST_FIX, value, "primary")],
                }
            )
    code = f" · code `{diagnosis.code}` · who acts: {diagnosis.remedy}" if diagnosis else ""
    blocks.append(_context(f"test id {escape(report.test_id)}{code}"))
    return escape(headline), blocks


def _check_line(check: Check) -> str:
    return f"{mark(check.ok)} *{CHECK_LABELS.get(check.name, check.name)}* — {escape(check.detail)}"


def transcript_message(report: Report) -> Message | None:
    if report.smtp is None or not report.smtp.transcript:
        return None
    lines = [escape(line) for line in report.smtp.transcript]
    body = "\n".join(lines)
    if len(body) > SECTION_LIMIT - 60:
        head, tail = lines[:20], lines[-15:]
        body = "\n".join([*head, f"… {len(lines) - 35} lines omitted …", *tail])
    text = "SMTP transcript (secrets redacted)"
    return text, [_section(f"*{text}*\n```{clip(body, SECTION_LIMIT - 60)}```")]


def fix_value(action: FixAction, report: Report, origin: Mapping[str, str]) -> str:
    return json.dumps(
        {
            "right": str(action.right),
            "mailbox": action.mailbox,
            "trustee": action.trustee,
            "user": report.plan.user.login if report.plan else report.query,
            "test_id": report.test_id,
            **origin,
        },
        separators=(",", ":"),
    )


# -- approvals ----------------------------------------------------------------------------------------------


def describe_change(kind: str, right: Right, trustee: str, mailbox: str, duration: str | None = None) -> str:
    verb = "grant" if kind == "grant" else "remove"
    words = RIGHT_WORDS[right]
    tail = f" for {duration}" if duration else ""
    trustee, mailbox = escape(trustee), escape(mailbox)
    if verb == "grant":
        return f"grant *{trustee}* {words} on *{mailbox}*'s mailbox{tail}"
    return f"remove *{trustee}*'s {words} on *{mailbox}*'s mailbox"


def approval_card(
    *,
    request_id: str,
    requested_by: str,
    change: str,
    reason: str,
    expires: str,
    it_handle: str | None,
    status: str | None = None,
    effect: str | None = None,
    warnings: Sequence[str] = (),
) -> Message:
    """``effect``: the change in words (plain text, escaped here); ``warnings``: escaped mrkdwn."""
    text = f"<@{requested_by}> asks to {change}."
    what = f"\n*Effect:* {escape(effect)}" if effect else ""
    blocks: list[Block] = [_section(f":key: {text}{what}\n*Why:* {escape(reason)}")]
    if warnings and status is None:
        blocks.append(_section("\n".join(f":warning: {w}" for w in warnings)))
    if status is None:
        who = f"members of {it_handle}" if it_handle else "IT admins"
        blocks.append(
            {
                "type": "actions",
                "block_id": "decision",
                "elements": [
                    _button("Approve", ACTION_APPROVE, request_id, "primary"),
                    _button("Deny", ACTION_DENY, request_id, "danger"),
                ],
            }
        )
        blocks.append(
            _context(f"Only {who} can decide; the requester cannot approve their own request. Expires {expires}.")
        )
    else:
        blocks.append(_section(status))
    blocks.append(_context(f"request {request_id}"))
    return text, blocks


def confirm_card(
    *, effect: str, warnings: Sequence[str], value: str, expires: str, goes_to_it: bool, subject: str
) -> Message:
    """The card every /sendas grant or revoke shows first: its effect in words (``effect`` is plain text and is
    escaped here), what to look out for (``warnings``: escaped mrkdwn), and Confirm / Cancel."""
    text = f"Confirm: {escape(effect)}?"
    body: list[Block] = [_section(f":key: *{escape(effect)}*\n{escape(subject)}")]
    if warnings:
        body.append(_section("\n".join(f":warning: {w}" for w in warnings)))
    then = "Confirm sends it to IT for approval" if goes_to_it else "Confirm makes the change in Exchange"
    body.append(
        {
            "type": "actions",
            "block_id": "confirm",
            "elements": [
                _button("Confirm", ACTION_CONFIRM, value, "danger" if warnings else "primary"),
                _button("Cancel", ACTION_CANCEL, value),
            ],
        }
    )
    body.append(_context(f"{then}; Cancel changes nothing. Only you can use this card, once, until {expires}."))
    return text, body


_CHECK_MARKS = {True: "✓", False: "✗", None: "–"}


def checklist_message(report: CheckReport) -> Message:
    """`emaildoctor check`'s checklist: one section per area, a line per check, each ✗ with its fix under it."""
    failures = sum(1 for row in report.results if row.ok is False)
    title = "All configured checks passed." if report.ok else f"{failures} check(s) failed: fix them, then run again."
    by_area: dict[str, list[str]] = {}
    for row in report.results:
        line = f"{_CHECK_MARKS[row.ok]} *{escape(row.name)}*: {escape(row.detail)}"
        if row.fix:
            line += f"\n        {'fix' if row.ok is False else 'note'}: {escape(row.fix)}"
        by_area.setdefault(row.area, []).append(line)
    body = [_section(f"*{escape(area)}*\n" + "\n".join(lines)) for area, lines in by_area.items()]
    return title, [_section(f"*emaildoctor check*: {title}"), *body]


def plain(text: str) -> Message:
    return text, [_section(text)]


def lines_message(title: str, lines: Sequence[str], *, empty: str = "none", rest: str = "use the CLI") -> Message:
    """A title and a list; a list too long for Slack ends with "… and N more (``rest``)"."""
    body = "\n".join(lines) if lines else f"_{empty}_"
    return title, [_section(f"*{title}*\n{body}", rest)]


# -- safety -------------------------------------------------------------------------------------------------


_BROADCAST_OR_LINK = re.compile(r"<(?:!(?:channel|here|everyone)\b|[A-Za-z][A-Za-z0-9+.-]*:)[^<>]*>")
"""What emaildoctor never writes itself: @channel / @here / @everyone, and links (its own markup is only
user, channel and user-group mentions and dates)."""


def disarm(text: str) -> str:
    """The last line of defence behind :func:`escape`: any broadcast or link left in a text is shown as typed."""
    return _BROADCAST_OR_LINK.sub(lambda match: escape(match.group(0)), text)


def redacted(value: Any, secrets: Iterable[str]) -> Any:
    """Every string in a payload, redacted (text, blocks, button values); every text also :func:`disarm`-ed."""
    secret_list = list(secrets)

    def walk(item: Any, key: str | None = None) -> Any:
        if isinstance(item, str):
            clean = redact(item, secret_list)
            return disarm(clean) if key == "text" else clean
        if isinstance(item, list):
            return [walk(element) for element in item]
        if isinstance(item, dict):
            return {name: walk(element, name) for name, element in item.items()}
        return item

    return walk(value)
