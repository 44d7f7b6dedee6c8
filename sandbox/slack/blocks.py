"""Block Kit validation: small, but real enough that a bot bug comes back as ``invalid_blocks``.

It checks what Slack checks first: known block and element types, text objects, required fields
(``action_id`` on interactive elements is required here, stricter than Slack which generates one,
because a listener can only match what it named), the documented length and count limits, and
unique ``block_id`` / ``action_id``. Errors read like Slack's: ``must be less than 3001 characters
[json-pointer:/blocks/0/text/text]``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any, Literal

from sandbox.slack.model import JsonObject

Surface = Literal["message", "modal"]

MAX_BLOCKS = {"message": 50, "modal": 100}
BLOCK_TYPES = {
    "section",
    "divider",
    "header",
    "context",
    "actions",
    "image",
    "input",
    "rich_text",
    "markdown",
    "file",
    "video",
}
SELECTS = {
    "static_select",
    "multi_static_select",
    "external_select",
    "multi_external_select",
    "users_select",
    "multi_users_select",
    "conversations_select",
    "multi_conversations_select",
    "channels_select",
    "multi_channels_select",
}
PICKERS = {"datepicker", "timepicker", "datetimepicker", "checkboxes", "radio_buttons", "overflow"}
ACTION_ELEMENTS = {"button", "workflow_button", *SELECTS, *PICKERS}
INPUT_ELEMENTS = {
    "plain_text_input",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
    *SELECTS,
    *PICKERS - {"overflow"},
}
ACCESSORY_ELEMENTS = {
    "button",
    "image",
    "overflow",
    "datepicker",
    "timepicker",
    "checkboxes",
    "radio_buttons",
    *SELECTS,
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class BlocksFormatError(ValueError):
    """``blocks`` is not a JSON array of objects (Slack: ``invalid_blocks_format``)."""


def parse_json_arg(value: Any, name: str) -> Any:
    """Form bodies carry ``blocks`` / ``view`` / ``files`` as JSON strings, JSON bodies as values."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise BlocksFormatError(f"{name} is not valid JSON: {exc.msg}") from exc
    return value


def parse_blocks(value: Any) -> list[JsonObject]:
    parsed = parse_json_arg(value, "blocks")
    if not isinstance(parsed, list) or not all(isinstance(block, dict) for block in parsed):
        raise BlocksFormatError("blocks must be a JSON array of objects")
    return parsed


def normalize_blocks(blocks: list[JsonObject]) -> list[JsonObject]:
    """What Slack stores: a copy with a ``block_id`` on every block and ``emoji: true`` on plain_text."""
    out = copy.deepcopy(blocks)
    for index, block in enumerate(out):
        if "block_id" not in block:
            digest = hashlib.sha1(json.dumps(block, sort_keys=True).encode(), usedforsecurity=False).hexdigest()
            block["block_id"] = f"{digest[:4]}{index}"
    _add_emoji(out)
    return out


def _add_emoji(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "plain_text" and isinstance(node.get("text"), str):
            node.setdefault("emoji", True)
        for value in node.values():
            _add_emoji(value)
    elif isinstance(node, list):
        for item in node:
            _add_emoji(item)


def validate_blocks(blocks: list[JsonObject], surface: Surface = "message", pointer: str = "/blocks") -> list[str]:
    """Slack-style error strings (empty when the blocks are acceptable)."""
    checker = _Checker()
    checker.blocks(blocks, surface, pointer)
    return checker.errors


def validate_view(view: Any) -> list[str]:
    """Errors of a ``views.open`` / ``views.update`` view (modal; home tabs are accepted too)."""
    checker = _Checker()
    if not isinstance(view, dict):
        return ["must provide an object [json-pointer:/view]"]
    kind = view.get("type")
    if kind not in ("modal", "home"):
        checker.fail("/view/type", "must be one of: modal, home")
        return checker.errors
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", plain=True, limit=24, required=True)
        checker.text(view.get("close"), "/view/close", plain=True, limit=24)
        checker.text(view.get("submit"), "/view/submit", plain=True, limit=24)
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        checker.fail("/view/blocks", "must provide an array of objects")
        return checker.errors
    checker.blocks(blocks, "modal", "/view/blocks")
    if kind == "modal" and "submit" not in view and any(b.get("type") == "input" for b in blocks):
        checker.fail("/view", "submit is required when a modal has input blocks")
    for key, limit in (("private_metadata", 3000), ("callback_id", 255), ("external_id", 255)):
        if key in view and (not isinstance(view[key], str) or len(view[key]) > limit):
            checker.fail(f"/view/{key}", f"must be a string of at most {limit} characters")
    return checker.errors


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, pointer: str, message: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def string(self, value: Any, pointer: str, limit: int, *, required: bool = False, minimum: int = 0) -> None:
        if value is None:
            if required:
                self.fail(pointer, "must provide a string")
            return
        if not isinstance(value, str):
            self.fail(pointer, "must be a string")
        elif len(value) > limit:
            self.fail(pointer, f"must be less than {limit + 1} characters")
        elif len(value) < minimum:
            self.fail(pointer, f"must be more than {minimum - 1} characters")

    def text(self, obj: Any, pointer: str, *, limit: int = 3000, plain: bool = False, required: bool = False) -> None:
        if obj is None:
            if required:
                self.fail(pointer, "must provide an object")
            return
        if not isinstance(obj, dict):
            self.fail(pointer, "must provide an object")
            return
        kind = obj.get("type")
        if kind not in ("plain_text", "mrkdwn") or (plain and kind != "plain_text"):
            self.fail(f"{pointer}/type", "must be plain_text" if plain else "must be one of: plain_text, mrkdwn")
            return
        self.string(obj.get("text"), f"{pointer}/text", limit, required=True, minimum=1)
        if kind == "mrkdwn" and "emoji" in obj:
            self.fail(f"{pointer}/emoji", "emoji is only allowed on plain_text")
        if kind == "plain_text" and "verbatim" in obj:
            self.fail(f"{pointer}/verbatim", "verbatim is only allowed on mrkdwn")

    def blocks(self, blocks: list[JsonObject], surface: Surface, pointer: str) -> None:
        if len(blocks) > MAX_BLOCKS[surface]:
            self.fail(pointer, f"no more than {MAX_BLOCKS[surface]} items allowed")
        block_ids: set[str] = set()
        for index, block in enumerate(blocks):
            here = f"{pointer}/{index}"
            block_id = block.get("block_id")
            if block_id is not None:
                self.string(block_id, f"{here}/block_id", 255, minimum=1)
                if block_id in block_ids:
                    self.fail(f"{here}/block_id", f"duplicate block_id {block_id!r}")
                if isinstance(block_id, str):
                    block_ids.add(block_id)
            self.block(block, here)

    def block(self, block: JsonObject, here: str) -> None:
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            self.fail(f"{here}/type", f"unsupported type: {kind}" if kind else "missing required field: type")
            return
        if kind == "section":
            if "text" not in block and "fields" not in block:
                self.fail(here, "must provide either text or fields")
            self.text(block.get("text"), f"{here}/text")
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or not 0 < len(fields) <= 10:
                    self.fail(f"{here}/fields", "must provide an array of 1 to 10 text objects")
                else:
                    for i, field in enumerate(fields):
                        self.text(field, f"{here}/fields/{i}", limit=2000, required=True)
            if "accessory" in block:
                self.element(block["accessory"], f"{here}/accessory", ACCESSORY_ELEMENTS)
        elif kind == "header":
            self.text(block.get("text"), f"{here}/text", limit=150, plain=True, required=True)
        elif kind == "context":
            self.context(block.get("elements"), f"{here}/elements")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 25:
                self.fail(f"{here}/elements", "must provide an array of 1 to 25 elements")
                return
            action_ids: set[str] = set()
            for i, element in enumerate(elements):
                self.element(element, f"{here}/elements/{i}", ACTION_ELEMENTS)
                action_id = element.get("action_id") if isinstance(element, dict) else None
                if isinstance(action_id, str):
                    if action_id in action_ids:
                        self.fail(f"{here}/elements/{i}/action_id", f"duplicate action_id {action_id!r} in block")
                    action_ids.add(action_id)
        elif kind == "image":
            self.string(block.get("alt_text"), f"{here}/alt_text", 2000, required=True, minimum=1)
            if "slack_file" not in block:
                self.string(block.get("image_url"), f"{here}/image_url", 3000, required=True, minimum=1)
            self.text(block.get("title"), f"{here}/title", limit=2000, plain=True)
        elif kind == "input":
            self.text(block.get("label"), f"{here}/label", limit=2000, plain=True, required=True)
            self.text(block.get("hint"), f"{here}/hint", limit=2000, plain=True)
            if "element" not in block:
                self.fail(here, "missing required field: element")
            else:
                self.element(block["element"], f"{here}/element", INPUT_ELEMENTS)
        elif kind == "rich_text":
            if not isinstance(block.get("elements"), list):
                self.fail(f"{here}/elements", "must provide an array")
        elif kind == "markdown":
            self.string(block.get("text"), f"{here}/text", 12000, required=True, minimum=1)

    def context(self, elements: Any, here: str) -> None:
        if not isinstance(elements, list) or not 0 < len(elements) <= 10:
            self.fail(here, "must provide an array of 1 to 10 elements")
            return
        for i, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                self.string(element.get("alt_text"), f"{here}/{i}/alt_text", 2000, required=True, minimum=1)
            else:
                self.text(element, f"{here}/{i}", required=True)

    def element(self, element: Any, here: str, allowed: set[str]) -> None:
        if not isinstance(element, dict):
            self.fail(here, "must provide an object")
            return
        kind = element.get("type")
        if kind not in allowed:
            self.fail(f"{here}/type", f"unsupported type: {kind}" if kind else "missing required field: type")
            return
        if kind == "image":
            self.string(element.get("alt_text"), f"{here}/alt_text", 2000, required=True, minimum=1)
            return
        self.string(element.get("action_id"), f"{here}/action_id", 255, required=True, minimum=1)
        if "confirm" in element:
            self.confirm(element["confirm"], f"{here}/confirm")
        if kind == "button":
            self.text(element.get("text"), f"{here}/text", limit=75, plain=True, required=True)
            self.string(element.get("value"), f"{here}/value", 2000)
            self.string(element.get("url"), f"{here}/url", 3000)
            if "style" in element and element["style"] not in ("primary", "danger"):
                self.fail(f"{here}/style", "must be one of: primary, danger")
        elif kind in ("static_select", "multi_static_select", "overflow", "checkboxes", "radio_buttons"):
            self.options(element, here, kind)
        elif kind == "datepicker" and "initial_date" in element and not _DATE.match(str(element["initial_date"])):
            self.fail(f"{here}/initial_date", "must be a date in the format YYYY-MM-DD")
        if kind in SELECTS:
            self.text(element.get("placeholder"), f"{here}/placeholder", limit=150, plain=True)
        if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
            self.text(element.get("placeholder"), f"{here}/placeholder", limit=150, plain=True)

    def options(self, element: JsonObject, here: str, kind: str) -> None:
        limit = {"overflow": 5, "checkboxes": 10, "radio_buttons": 10}.get(kind, 100)
        options = element.get("options")
        if options is None and "option_groups" in element and kind.endswith("static_select"):
            groups = element["option_groups"]
            options = (
                [o for g in groups if isinstance(g, dict) for o in g.get("options", [])]
                if isinstance(groups, list)
                else None
            )
        if not isinstance(options, list) or not 0 < len(options) <= limit:
            self.fail(f"{here}/options", f"must provide an array of 1 to {limit} options")
            return
        values: list[Any] = []
        for i, option in enumerate(options):
            if not isinstance(option, dict):
                self.fail(f"{here}/options/{i}", "must provide an object")
                continue
            plain = kind not in ("checkboxes", "radio_buttons")
            self.text(option.get("text"), f"{here}/options/{i}/text", limit=75, plain=plain, required=True)
            self.string(option.get("value"), f"{here}/options/{i}/value", 150, required=True, minimum=1)
            values.append(option.get("value"))
        initial = element.get("initial_option")
        if isinstance(initial, dict) and initial.get("value") not in values:
            self.fail(f"{here}/initial_option", "must match one of the provided options")

    def confirm(self, confirm: Any, here: str) -> None:
        if not isinstance(confirm, dict):
            self.fail(here, "must provide an object")
            return
        self.text(confirm.get("title"), f"{here}/title", limit=100, plain=True, required=True)
        self.text(confirm.get("text"), f"{here}/text", limit=300, required=True)
        self.text(confirm.get("confirm"), f"{here}/confirm", limit=30, plain=True, required=True)
        self.text(confirm.get("deny"), f"{here}/deny", limit=30, plain=True, required=True)
