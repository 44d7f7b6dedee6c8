"""How people ask for a change of rights in chat, and how emaildoctor says what it will do.

`/sendas grant|revoke` reads as a sentence: ``grant admin@business.com send-as alice@business.com`` means
"admin@ may send as alice@" (the trustee first, the right, then the mailbox). Labelled parts are accepted in
any order: ``grant trustee=admin@business.com right=send-as mailbox=alice@business.com``. A time-bound grant
ends with ``for 8h`` (or ``for=8h``).

Anything that does not say who gets the right on whose mailbox is refused with an example, never guessed: the
old form ``grant SendAs alice@business.com admin@business.com`` (the right first) is read by some as
"alice@'s mailbox, admin@ gets it" (``-Identity`` first, as PowerShell orders it) and by others as the
opposite, so it is ambiguous. Pure logic: no Slack, no Exchange.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from bot.changes import MAX_DURATION, Change, parse_duration
from plugin.diagnosis import Right
from plugin.errors import ConfigError

EXAMPLE = (
    "Say it as a sentence, who first: `/sendas grant admin@business.com send-as alice@business.com` "
    "(admin@ will be able to send as alice@), or label the parts: "
    "`/sendas grant trustee=admin@business.com right=send-as mailbox=alice@business.com`. "
    "Rights: send-as, send-on-behalf, full-access; a grant may end with `for 8h`."
)

_PHRASES: dict[str, Right] = {
    "sendas": Right.SEND_AS,
    "sendonbehalf": Right.SEND_ON_BEHALF,
    "sendonbehalfof": Right.SEND_ON_BEHALF,
    "fullaccess": Right.FULL_ACCESS,
    "fullaccessto": Right.FULL_ACCESS,
    "fullaccesson": Right.FULL_ACCESS,
}
"""A right as typed, lower case, without spaces, dashes or underscores: ``send-as``, ``Send As``, ``SendAs``."""
_LONGEST_PHRASE = 4  # "send on behalf of"
_LABELS = {"trustee": "trustee", "right": "right", "mailbox": "mailbox", "for": "for", "duration": "for"}
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")

_EFFECT = {
    Right.SEND_AS: "send as {mailbox}",
    Right.SEND_ON_BEHALF: "send on behalf of {mailbox}",
    Right.FULL_ACCESS: "open {mailbox}'s mailbox",
}


def right_of(word: str) -> Right | None:
    """The right a word (or words) names, or None."""
    return _PHRASES.get(re.sub(r"[\s_-]+", "", word).casefold())


def clean_identity(token: str) -> str:
    """What someone typed as an identity, without the ``<mailto:…|…>`` wrapping Slack may add to addresses."""
    mailto = _MAILTO.match(token.strip())
    return mailto.group(1) if mailto else token.strip()


def parse_change(verb: str, words: list[str], longest: timedelta = MAX_DURATION) -> Change:
    """The change ``words`` (what follows ``grant`` or ``revoke``) ask for; ConfigError with an example when they
    do not say exactly who gets which right on whose mailbox."""
    kind = verb.casefold()
    if kind not in ("grant", "revoke"):
        raise ConfigError(f"'{verb}' is neither grant nor revoke. {EXAMPLE}")
    if not words:
        raise ConfigError(f"Say who gets which right on whose mailbox. {EXAMPLE}")
    words, duration_text = _split_duration(words)
    if any("=" in word for word in words):
        trustee, right, mailbox, labelled_duration = _labelled(words)
        if labelled_duration is not None:
            if duration_text is not None:
                raise ConfigError(f"Say the time limit once. {EXAMPLE}")
            duration_text = labelled_duration
    else:
        trustee, right, mailbox = _sentence(words)
    duration: timedelta | None = None
    if duration_text is not None:
        if kind != "grant":
            raise ConfigError("Only a grant can be time-bound (`… for 8h`); a revoke takes effect for good.")
        duration = parse_duration(duration_text, longest)
    trustee, mailbox = clean_identity(trustee), clean_identity(mailbox)
    if trustee.casefold() == mailbox.casefold():
        raise ConfigError(
            f"The trustee and the mailbox are both {trustee}: everyone can already send as their own mailbox. "
            + EXAMPLE
        )
    return Change(kind, right, mailbox, trustee, duration)


def _split_duration(words: list[str]) -> tuple[list[str], str | None]:
    if len(words) >= 2 and words[-2].casefold() == "for":
        return words[:-2], words[-1]
    if words and words[-1].casefold() == "for":
        raise ConfigError(f"`for` needs a duration, e.g. `for 8h`. {EXAMPLE}")
    return words, None


def _labelled(words: list[str]) -> tuple[str, Right, str, str | None]:
    parts: dict[str, str] = {}
    for word in words:
        label, equals, value = word.partition("=")
        key = _LABELS.get(label.strip().casefold())
        if not equals or key is None:
            raise ConfigError(
                f"'{word}' is not a labelled part: use trustee=…, right=…, mailbox=… (and for=8h). {EXAMPLE}"
            )
        if key in parts:
            raise ConfigError(f"'{label}=' is given twice. {EXAMPLE}")
        if not value.strip():
            raise ConfigError(f"'{label}=' has no value. {EXAMPLE}")
        parts[key] = value.strip()
    missing = [name for name in ("trustee", "right", "mailbox") if name not in parts]
    if missing:
        raise ConfigError(f"Missing {', '.join(m + '=' for m in missing)}. {EXAMPLE}")
    right = right_of(parts["right"])
    if right is None:
        raise ConfigError(f"'{parts['right']}' is not a right: use send-as, send-on-behalf or full-access.")
    return parts["trustee"], right, parts["mailbox"], parts.get("for")


def _sentence(words: list[str]) -> tuple[str, Right, str]:
    found: list[tuple[int, int, Right]] = []  # (start, length, right)
    index = 0
    while index < len(words):
        for length in range(min(_LONGEST_PHRASE, len(words) - index), 0, -1):
            right = right_of("".join(words[index : index + length]))
            if right is not None:
                found.append((index, length, right))
                index += length
                break
        else:
            index += 1
    line = " ".join(words)
    if not found:
        raise ConfigError(f"`{line}` names no right (send-as, send-on-behalf or full-access). {EXAMPLE}")
    if len(found) > 1:
        raise ConfigError(f"`{line}` names more than one right: ask for one change at a time. {EXAMPLE}")
    start, length, right = found[0]
    before, after = words[:start], words[start + length :]
    if not before or not after:
        where = "first" if not before else "last"
        raise ConfigError(
            f"`{line}` is ambiguous: with the right {where}, it does not say who gets the right on whose "
            f"mailbox, and emaildoctor does not guess. {EXAMPLE}"
        )
    if len(before) != 1 or len(after) != 1:
        raise ConfigError(f"`{line}` is not one trustee, one right and one mailbox. {EXAMPLE}")
    return before[0], right, after[0]


def effect_words(change: Change, *, until: datetime | None = None) -> str:
    """The change's effect as a sentence, without markup: "admin@business.com will be able to send as
    alice@business.com", "… will no longer be able to open support@business.com's mailbox", "… until 14:00 UTC"."""
    able = "will be able to" if change.kind == "grant" else "will no longer be able to"
    what = _EFFECT[change.right].format(mailbox=change.mailbox)
    tail = f" until {until:%Y-%m-%d %H:%M} UTC" if until is not None and change.kind == "grant" else ""
    return f"{change.trustee} {able} {what}{tail}"
