"""`emaildoctor log head` and `emaildoctor log verify [--head SEQ:HASH]`: the audit log's hash chain, anchored
outside the store it protects.

The chain (:mod:`bot.store.chain`) catches an edited, deleted or reordered entry, but someone who can write the
store can also recompute every hash after the entry they rewrote, and the chain head the store keeps with them.
So the head is also published where they cannot reach: every audit the bot posts in Slack carries it (and
``log head`` prints it, to paste into a ticket). ``log verify --head`` checks that the entry at that position still
has that hash: a rewrite of any entry up to it shows there, however carefully the chain was recomputed.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.store import ChainHead, ChainReport, Store, StoreError
from plugin.errors import ConfigError
from plugin.redact import redact

if TYPE_CHECKING:
    from plugin.cli import CliContext

DESCRIPTION = """\
The audit log of EMAILDOCTOR_STORE__URL: every request, decision, change, re-test and audit, hash-chained.

  head     print the chain head, SEQ:HASH (the last entry's number and hash)
  verify   check the whole chain; with --head SEQ:HASH (from an audit posted in Slack, or an earlier `log head`),
           also check that the entry at SEQ still has HASH, so a rewrite of the store, chain included, shows

examples:
  emaildoctor log head
  emaildoctor log verify --head 1234:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

exit status: 0 intact (and every head matches), 1 broken or a head does not match (the first bad entry is named),
2 bad arguments or settings."""

_HEAD = re.compile(r"^(?:([0-9]{1,12}):)?([0-9a-fA-F]{64})$")


@dataclass(frozen=True)
class Anchor:
    """A head published elsewhere: the entry at ``seq`` had ``hash`` (``seq`` None: only the hash is known)."""

    seq: int | None
    hash: str
    text: str


def parse_head(text: str) -> Anchor:
    match = _HEAD.match(text.strip())
    if match is None or (match.group(1) is not None and int(match.group(1)) < 1):
        raise ConfigError(
            f"--head '{text[:80]}' is not a chain head: use SEQ:HASH as an audit post or `emaildoctor log head` "
            "shows it (an entry number from 1, a colon, 64 hex digits), or the 64 hex digits alone"
        )
    seq = None if match.group(1) is None else int(match.group(1))
    return Anchor(seq, match.group(2).lower(), text.strip())


class LogCommand:
    name = "log"
    help = "the audit log: print its chain head, or verify the chain against heads posted in Slack"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="log_action", metavar="ACTION", required=True)
        head = actions.add_parser("head", help="print the chain head, SEQ:HASH", description="Print SEQ:HASH.")
        head.add_argument("--json", action="store_true", help='print {"seq": …, "hash": …}')
        verify = actions.add_parser(
            "verify",
            help="check the chain, and that each --head is in it at its position",
            description="Check the whole chain; with --head, that the entry at SEQ still has HASH.",
        )
        verify.add_argument(
            "--head",
            action="append",
            default=[],
            metavar="SEQ:HASH",
            help="a head posted earlier (repeat it to narrow down where a rewrite starts)",
        )

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        anchors = [parse_head(text) for text in getattr(args, "head", [])]
        settings = context.settings()
        secrets = list(settings.secret_values())
        async with await _open(settings.store.url, secrets) as store:
            if args.log_action == "head":
                head = await store.chain_head()
                print(json.dumps({"seq": head.seq, "hash": head.hash}) if args.json else str(head), file=context.out)
                return 0
            report = await store.verify_audit_chain()
            problem = broken_chain(report) if not report.ok else await _check_anchors(store, report, anchors)
        if problem is not None:
            print(f"emaildoctor log verify: {redact(problem, secrets)}", file=context.err)
            return 1
        matched = "".join(f"; entry {a.seq} matches the head {a.text}" for a in anchors if a.seq is not None)
        matched += "".join(f"; the head {a.text} is in it" for a in anchors if a.seq is None)
        head = ChainHead(report.head_seq, report.head_hash)
        print(f"audit log intact: {report.checked} entries, head {head}{matched}", file=context.out)
        return 0


async def _open(url: str, secrets: list[str]) -> Store:
    """The store as it is: verifying never migrates (nor writes) anything."""
    try:
        return await Store.open(url, migrate=False, secrets=secrets)
    except StoreError as exc:
        if "schema is at revision" not in str(exc):
            raise
        raise ConfigError(
            "the store (EMAILDOCTOR_STORE__URL) is not at this version's schema: `emaildoctor bot` (or `grant`, "
            "`revoke`, `audit`) migrates it when it opens it, then there is an audit log to read"
        ) from exc


def broken_chain(report: ChainReport) -> str:
    return f"the audit log is broken: first bad entry {report.first_bad_seq}: {report.problem}"


async def _check_anchors(store: Store, report: ChainReport, anchors: list[Anchor]) -> str | None:
    """Each head against the entry at its position, in order: the first that differs names where the rewrite is."""
    resolved: list[Anchor] = []
    for anchor in anchors:
        if anchor.seq is None:  # only the hash: find its position
            entry = await store.audit_entry_with_hash(anchor.hash)
            if entry is None:
                return (
                    f"no entry has the hash of the head {anchor.text}: the log up to it was rewritten, or the head "
                    "comes from another store (give SEQ:HASH to name the entry)"
                )
            anchor = Anchor(entry.seq, anchor.hash, anchor.text)
        resolved.append(anchor)
    last_good: int | None = None
    for anchor in sorted(resolved, key=lambda a: a.seq or 0):
        assert anchor.seq is not None
        entry = await store.audit_entry_at(anchor.seq)
        if entry is None:
            return (
                f"first bad entry {anchor.seq}: the head {anchor.text} names entry {anchor.seq}, but the log ends at "
                f"entry {report.head_seq}: entries were removed"
            )
        if entry.hash != anchor.hash:
            where = (
                f"an entry after {last_good} (which matches an earlier head) and up to {anchor.seq}"
                if last_good is not None
                else f"entry {anchor.seq} or one before it"
            )
            return (
                f"first bad entry {anchor.seq}: it does not match the head {anchor.text} (the store has hash "
                f"{entry.hash}): {where} was rewritten and the chain after it recomputed"
            )
        last_good = anchor.seq
    return None


COMMAND = LogCommand()
