"""Graph mail: ``sendMail`` with Exchange's SendAs / SendOnBehalf rules, delivered messages, and
``mailboxSettings``."""

from __future__ import annotations

import base64
import email.policy
import json
import uuid
from dataclasses import replace
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from typing import Any, Literal
from urllib.parse import urlencode

from sandbox.graph_core import (
    MAIL_READ_APP,
    MAIL_READ_DELEGATED,
    MAIL_READ_SHARED,
    SETTINGS_READ,
    Call,
    GraphError,
    Reply,
    access_denied,
    mailbox_for,
    require,
    signed_in_user,
)
from sandbox.odata import FilterSyntaxError, Schema, UnsupportedQueryError, parse_filter
from sandbox.state import Message, Tenant, User

SEND_AS_DENIED = (
    "The user account which was used to submit this request does not have the right to send mail on behalf of the "
    "specified sending account. Cannot submit message."
)
MESSAGE_FIELDS = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isRead",
    "isDraft",
    "webLink",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "internetMessageHeaders",
]
BASIC_HIDDEN = {"body", "bodyPreview", "internetMessageHeaders"}
FOLDERS = {"inbox": "inbox", "sentitems": "sentitems"}


def _message_value(message: Message, prop: str) -> Any:
    return {
        "subject": message.subject,
        "internetMessageId": message.internet_message_id,
        "from/emailAddress/address": message.from_address,
        "sender/emailAddress/address": message.sender_address,
        "receivedDateTime": _iso(message),
        "isRead": False,
    }.get(prop)


MESSAGE_SCHEMA = Schema(
    entity="message",
    operators={
        "subject": frozenset({"eq", "ne", "startswith", "contains"}),
        "internetMessageId": frozenset({"eq"}),
        "from/emailAddress/address": frozenset({"eq"}),
        "sender/emailAddress/address": frozenset({"eq"}),
        "receivedDateTime": frozenset({"eq", "ge", "gt", "le", "lt"}),
        "isRead": frozenset({"eq", "ne"}),
    },
    collections={},
    getter=_message_value,
)


def _iso(message: Message) -> str:
    return message.received.strftime("%Y-%m-%dT%H:%M:%SZ")


def _address(entry: Any) -> tuple[str, str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("emailAddress"), dict):
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    email = entry["emailAddress"]
    address = email.get("address")
    if not isinstance(address, str) or "@" not in address:
        raise GraphError(400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
    return address, str(email.get("name") or address)


def send_mail(tenant: Tenant, call: Call, segment: str) -> Reply:
    claims = call.claims
    assert claims is not None
    if claims.app_only:
        require(claims, frozenset({"Mail.Send"}), frozenset(), access_denied())
    mailbox = mailbox_for(tenant, call, segment)
    if claims.app_only:
        caller = mailbox
    else:
        caller = signed_in_user(tenant, claims)
        needed = frozenset({"Mail.Send"}) if caller.id == mailbox.id else frozenset({"Mail.Send.Shared"})
        require(claims, frozenset(), needed, access_denied())
    payload = (
        _mime_payload(call.body)
        if call.headers.get("content-type", "").startswith("text/plain")
        else _json_payload(call.body)
    )
    # Action parameters are matched case-insensitively (the SDKs send "Message" and "SaveToSentItems").
    payload = {str(k).lower(): v for k, v in payload.items()} if isinstance(payload, dict) else {}
    if not isinstance(payload.get("message"), dict):
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
    message = payload["message"]
    recipients = {
        kind: [_address(e) for e in message.get(kind) or []]
        for kind in ("toRecipients", "ccRecipients", "bccRecipients")
    }
    if not any(recipients.values()):
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    from_address, from_name = (
        _address(message["from"]) if message.get("from") else (mailbox.mail or mailbox.upn, mailbox.display_name)
    )
    sender = _sender_for(tenant, caller, from_address)
    if sender is None:
        raise GraphError(403, "ErrorSendAsDenied", SEND_AS_DENIED)
    body = message.get("body") if isinstance(message.get("body"), dict) else {}
    content_type: Literal["text", "html"] = "html" if str(body.get("contentType", "text")).lower() == "html" else "text"
    headers = {
        str(h.get("name")): str(h.get("value"))
        for h in message.get("internetMessageHeaders") or []
        if isinstance(h, dict)
    }
    record = Message(
        id=_new_id(),
        internet_message_id=f"<{uuid.uuid4().hex.upper()}@{tenant.initial_domain or 'sandbox.local'}>",
        subject=str(message.get("subject") or ""),
        body=str(body.get("content") or ""),
        body_content_type=content_type,
        from_address=from_address,
        from_name=from_name,
        sender_address=sender.mail or sender.upn,
        sender_name=sender.display_name,
        to=[a for a, _ in recipients["toRecipients"]],
        cc=[a for a, _ in recipients["ccRecipients"]],
        received=tenant.now(),
        headers=headers,
        via="graph",
    )
    deliver(tenant, record, [a for entries in recipients.values() for a, _ in entries])
    if payload.get("savetosentitems", True) is not False:
        tenant.deliver(caller, _copy(record, folder="sentitems"))
    return Reply(202)


def _json_payload(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise GraphError(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        ) from exc


def _mime_payload(body: bytes) -> dict[str, Any]:
    """``sendMail`` with a base64 MIME message (``Content-Type: text/plain``), as the JSON form."""
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError as exc:
        raise GraphError(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.") from exc
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)

    def people(header: str) -> list[dict[str, Any]]:
        pairs = getaddresses([str(v) for v in parsed.get_all(header) or []])
        return [{"emailAddress": {"address": address, "name": name or address}} for name, address in pairs if address]

    part = parsed.get_body(preferencelist=("plain", "html")) if isinstance(parsed, EmailMessage) else None
    message: dict[str, Any] = {
        "subject": str(parsed.get("Subject") or ""),
        "body": {
            "contentType": "html" if part is not None and part.get_content_subtype() == "html" else "text",
            "content": part.get_content() if isinstance(part, EmailMessage) else "",
        },
        "toRecipients": people("To"),
        "ccRecipients": people("Cc"),
        "bccRecipients": people("Bcc"),
        "internetMessageHeaders": [
            {"name": k, "value": str(v)} for k, v in parsed.items() if k.lower().startswith("x-")
        ],
    }
    sender = people("From")
    if sender:
        message["from"] = sender[0]
    return {"message": message}


def _sender_for(tenant: Tenant, caller: User, from_address: str) -> User | None:
    """Who Graph stamps as ``sender``: the From mailbox itself (own mail or SendAs), or the caller (SendOnBehalf)."""
    target = tenant.user_by_address(from_address)
    if target is None or not target.has_mailbox:
        return None
    if target.id == caller.id or tenant.user_may("SendAs", caller, target):
        return target
    if tenant.user_may("SendOnBehalf", caller, target):
        return caller
    return None


def deliver(tenant: Tenant, message: Message, recipients: list[str]) -> None:
    seen: set[str] = set()
    for address in recipients:
        user = tenant.user_by_address(address)
        if user is not None and user.has_mailbox:
            if user.id not in seen:
                seen.add(user.id)
                tenant.deliver(user, _copy(message, folder="inbox"))
        else:
            tenant.outbound.append(message)


def _copy(message: Message, folder: str) -> Message:
    return replace(message, id=_new_id(), folder="sentitems" if folder == "sentitems" else "inbox")


def _new_id() -> str:
    return "AAMkA" + base64.urlsafe_b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")


def list_messages(tenant: Tenant, call: Call, segment: str, folder: str | None) -> Reply:
    claims = call.claims
    assert claims is not None
    mailbox = mailbox_for(tenant, call, segment)
    own = not claims.app_only and claims.oid == mailbox.id
    delegated = MAIL_READ_DELEGATED if own else MAIL_READ_SHARED
    require(claims, MAIL_READ_APP, delegated, access_denied())
    granted = claims.roles if claims.app_only else claims.scopes
    basic_only = not granted & {"Mail.Read", "Mail.ReadWrite", "Mail.Read.Shared", "Mail.ReadWrite.Shared"}
    if folder is not None and folder.lower() not in FOLDERS:
        raise GraphError(404, "ErrorInvalidIdMalformed", "Id is malformed.")
    items = [m for m in tenant.messages.get(mailbox.id, []) if folder is None or m.folder == folder.lower()]
    if "$filter" in call.query:
        try:
            node = parse_filter(call.query["$filter"])
            MESSAGE_SCHEMA.check(node)
        except FilterSyntaxError as exc:
            raise GraphError(400, "BadRequest", f"Invalid filter clause: {exc}") from exc
        except UnsupportedQueryError as exc:
            raise GraphError(
                400, "ErrorInvalidProperty", f"The property '{exc.prop}' does not support filtering."
            ) from exc
        items = [m for m in items if MESSAGE_SCHEMA.matches(node, m)]
    order = call.query.get("$orderby", "receivedDateTime desc").strip()
    parts = order.split()
    if (
        not parts
        or parts[0] != "receivedDateTime"
        or len(parts) > 2
        or (len(parts) == 2 and parts[1] not in ("asc", "desc"))
    ):
        raise GraphError(400, "BadRequest", f"The $orderby expression '{order}' is not supported.")
    items.sort(key=lambda m: m.received, reverse=len(parts) == 1 or parts[1] == "desc")
    top = _int_query(call, "$top", 10, 1000)
    skip = _int_query(call, "$skip", 0, 10**9, minimum=0)
    selected = _select(call, MESSAGE_FIELDS)
    page = items[skip : skip + top]
    body: dict[str, Any] = {
        "@odata.context": f"{call.base_url}/v1.0/$metadata#users('{mailbox.id}')/messages",
        "value": [_render(m, mailbox, selected, basic_only) for m in page],
    }
    if skip + top < len(items):
        query = {k: v for k, v in call.query.items() if k != "$skip"}
        query["$skip"] = str(skip + top)
        body["@odata.nextLink"] = f"{call.base_url}/v1.0/{'/'.join(call.path)}?{urlencode(query)}"
    return Reply(200, body)


def _int_query(call: Call, name: str, default: int, maximum: int, minimum: int = 1) -> int:
    raw = call.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not minimum <= value <= maximum:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid value '{raw}' for query option {name}: must be between {minimum} and {maximum}.",
        )
    return value


def _select(call: Call, known: list[str] | tuple[str, ...]) -> list[str] | None:
    raw = call.query.get("$select")
    if not raw:
        return None
    fields = [f.strip() for f in raw.split(",") if f.strip()]
    for name in fields:
        if name not in known:
            raise GraphError(
                400,
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.message'.",
            )
    return fields


def _render(message: Message, mailbox: User, selected: list[str] | None, basic_only: bool) -> dict[str, Any]:
    def person(address: str, name: str) -> dict[str, Any]:
        return {"emailAddress": {"name": name, "address": address}}

    stamp = _iso(message)
    full: dict[str, Any] = {
        "id": message.id,
        "createdDateTime": stamp,
        "lastModifiedDateTime": stamp,
        "receivedDateTime": stamp,
        "sentDateTime": stamp,
        "hasAttachments": False,
        "internetMessageId": message.internet_message_id,
        "subject": message.subject,
        "bodyPreview": message.body[:255],
        "importance": "normal",
        "parentFolderId": message.folder,
        "conversationId": "AAQk" + message.id[5:30],
        "isRead": False,
        "isDraft": False,
        "webLink": f"https://outlook.office365.com/owa/?ItemID={message.id}&exvsurl=1&viewmodel=ReadMessageItem",
        "body": {"contentType": message.body_content_type, "content": message.body},
        "sender": person(message.sender_address, message.sender_name),
        "from": person(message.from_address, message.from_name),
        "toRecipients": [person(a, a) for a in message.to],
        "ccRecipients": [person(a, a) for a in message.cc],
        "bccRecipients": [],
        "replyTo": [],
        "internetMessageHeaders": [{"name": k, "value": v} for k, v in message.headers.items()],
    }
    wanted = selected or [f for f in MESSAGE_FIELDS if f != "internetMessageHeaders"]
    rendered = {"@odata.etag": f'W/"{message.id[-16:]}"', "id": message.id}
    rendered.update({k: full[k] for k in wanted if not (basic_only and k in BASIC_HIDDEN)})
    return rendered


def mailbox_settings(tenant: Tenant, call: Call, segment: str) -> Reply:
    claims = call.claims
    assert claims is not None
    mailbox = mailbox_for(tenant, call, segment)
    require(claims, SETTINGS_READ, SETTINGS_READ, access_denied())
    return Reply(
        200,
        {
            "@odata.context": f"{call.base_url}/v1.0/$metadata#users('{mailbox.id}')/mailboxSettings",
            "archiveFolder": "AAMkAD" + mailbox.mailbox_guid.replace("-", "")[:20],
            "timeZone": "UTC",
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
            "dateFormat": "M/d/yyyy",
            "timeFormat": "h:mm tt",
            "userPurpose": "shared" if mailbox.mailbox == "shared" else "user",
            "automaticRepliesSetting": {
                "status": "disabled",
                "externalAudience": "all",
                "internalReplyMessage": "",
                "externalReplyMessage": "",
            },
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": "UTC"},
            },
        },
    )
