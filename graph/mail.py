"""The Graph test send: ``POST /users/{principal}/sendMail`` with the From of the send plan, then (where the
app may read mail) a look into the recipient's mailbox for the test message.

Send As and Send on Behalf are written the same way, as Microsoft documents for Graph
(shared/reference/exchange-online.md §2): ``message.from`` is the mailbox the mail claims to be from and
``sender`` is left out. Exchange decides: it sends as that mailbox when ``principal`` holds Send As, stamps
``sender`` = ``principal`` when it holds Send on Behalf (Send As wins when both are held), and otherwise
answers 403 ``ErrorSendAsDenied``. The delivered copy shows which one happened, and the evidence says so.
``saveToSentItems`` is false: posting to ``/users/{principal}`` must not need Full Access on the From mailbox,
and a test leaves no trace in Sent Items.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from graph.graph_client import GraphClient, GraphError, odata_literal
from graph.users import address_filter, messages_config, users_config
from plugin.addresses import same_address, validate_address
from plugin.diagnosis import Code
from plugin.errors import ConfigError, ServiceError
from plugin.interfaces import GraphSendResult
from plugin.testmessage import test_subject

if TYPE_CHECKING:
    from msgraph.generated.models.message import Message
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

TEST_ID_HEADER = "X-Emaildoctor-Test-Id"
MESSAGE_FIELDS = ("subject", "from", "sender", "receivedDateTime", "internetMessageId")
_NOT_CHECKABLE = {
    Code.GRAPH_ACCESS_DENIED: "the app may not read that mailbox",
    Code.MAILBOX_NOT_FOUND: "the recipient has no Exchange Online mailbox",
    Code.USER_NOT_FOUND: "the recipient is not a user of this tenant",
}


class GraphMailer:
    """:class:`plugin.interfaces.TestMailer` on Microsoft Graph (app-only ``Mail.Send``).

    With ``confirm_delivery`` (``settings.m365.read_mail_to_confirm``) a successful send is followed by up to
    ``confirm_attempts`` looks into the recipient's mailbox, the first after ``confirm_first_delay`` seconds,
    each wait doubling up to ``confirm_max_delay`` (about 8 s in all by default).
    """

    def __init__(
        self,
        graph: GraphClient,
        *,
        confirm_delivery: bool = True,
        confirm_attempts: int = 5,
        confirm_first_delay: float = 0.5,
        confirm_max_delay: float = 4.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._graph = graph
        self._confirm = confirm_delivery
        self._attempts = max(1, confirm_attempts)
        self._first_delay = confirm_first_delay
        self._max_delay = confirm_max_delay
        self._sleep = sleep

    async def send_test(
        self, *, principal: str, from_addr: str, to_addr: str, sender: str | None, test_id: str
    ) -> GraphSendResult:
        """Send the test message; refusals come back as a result (``ok`` False, ``code`` from the catalogue),
        bad addresses raise :class:`~plugin.errors.ConfigError`."""
        for name, value in (("principal", principal), ("from", from_addr), ("to", to_addr), ("sender", sender)):
            if value is not None:
                try:
                    validate_address(value)
                except ValueError as exc:
                    raise ConfigError(f"Graph test send, {name}: {exc}") from exc
        attempt = f"Graph POST /users/{principal}/sendMail with From {from_addr}, To {to_addr}"
        if sender and not same_address(sender, principal):
            attempt += f" (Graph stamps the posting mailbox {principal} as Sender, not {sender})"
        try:
            await self._graph.run(
                f"sending the test message as {principal} from {from_addr}",
                lambda c: c.users.by_user_id(principal).send_mail.post(_request_body(from_addr, to_addr, test_id)),
            )
        except GraphError as exc:
            return GraphSendResult(
                ok=False,
                status=exc.status,
                code=exc.code,
                error_code=exc.error_code,
                message=exc.graph_message or exc.message,
                evidence=(attempt, *exc.evidence()),
            )
        except ServiceError as exc:  # signing in failed (graph.auth.SignInError), so nothing was sent
            return GraphSendResult(
                ok=False, status=None, code=exc.code, message=exc.message, evidence=(attempt, f"Sign-in: {exc}")
            )
        accepted = (attempt, f"Graph accepted the test message (202 Accepted), test id {test_id}")
        if not self._confirm:
            return GraphSendResult(ok=True, status=202, evidence=accepted)
        delivered, lines = await self._look_for(to_addr, test_id, from_addr, principal)
        return GraphSendResult(ok=True, status=202, delivered=delivered, evidence=(*accepted, *lines))

    async def _look_for(
        self, to_addr: str, test_id: str, from_addr: str, principal: str
    ) -> tuple[bool | None, tuple[str, ...]]:
        mailbox = to_addr
        delay, waited = self._first_delay, 0.0
        for _ in range(self._attempts):
            await self._sleep(delay)
            waited += delay
            try:
                found = await self._find(mailbox, test_id)
            except GraphError as exc:
                resolved = await self._user_id(to_addr) if exc.code is Code.USER_NOT_FOUND else None
                if resolved is not None and mailbox == to_addr:
                    mailbox = resolved  # an alias or proxy address: look again by object id, now
                    delay = 0.0
                    continue
                reason = _NOT_CHECKABLE.get(exc.code or Code.UNKNOWN, "Graph failed")
                return None, (f"Delivery not checked ({reason}): {exc}",)
            except ServiceError as exc:
                return None, (f"Delivery not checked: {exc}",)
            if found is not None:
                return True, _delivery_lines(found, to_addr, from_addr, principal)
            delay = min(max(delay * 2, self._first_delay), self._max_delay)
        return False, (f"The test message is not in {to_addr}'s mailbox after {waited:g} s (test id {test_id}).",)

    async def _find(self, mailbox: str, test_id: str) -> Message | None:
        subject = f"subject eq {odata_literal(test_subject(test_id))}"
        page = await self._graph.run(
            f"looking for the test message in {mailbox}'s mailbox",
            lambda c: c.users.by_user_id(mailbox).messages.get(
                request_configuration=messages_config(MESSAGE_FIELDS, 5, subject)
            ),
        )
        messages = page.value if page is not None else None
        return messages[0] if messages else None

    async def _user_id(self, address: str) -> str | None:
        """The object id of the user with ``address`` as mail or proxy address (``/users/{x}`` needs the UPN)."""
        try:
            page = await self._graph.run(
                f"finding the recipient {address}",
                lambda c: c.users.get(request_configuration=users_config(address_filter(address), ["id"], 2)),
            )
        except GraphError:
            return None
        users = page.value if page is not None else None
        return users[0].id if users and len(users) == 1 else None


def _request_body(from_addr: str, to_addr: str, test_id: str) -> SendMailPostRequestBody:
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.internet_message_header import InternetMessageHeader
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

    text = (
        "This is a test message from emaildoctor, sent through Microsoft Graph.\n\n"
        f"Test id: {test_id}\nFrom: {from_addr}\n\n"
        "If it arrived, this account can send mail as configured. You can delete it.\n"
    )
    message = Message(
        subject=test_subject(test_id),
        body=ItemBody(content_type=BodyType.Text, content=text),
        from_=Recipient(email_address=EmailAddress(address=from_addr)),
        to_recipients=[Recipient(email_address=EmailAddress(address=to_addr))],
        internet_message_headers=[InternetMessageHeader(name=TEST_ID_HEADER, value=test_id)],
    )
    return SendMailPostRequestBody(message=message, save_to_sent_items=False)


def _delivery_lines(message: Message, to_addr: str, from_addr: str, principal: str) -> tuple[str, ...]:
    def address(recipient: object) -> str:
        email = getattr(recipient, "email_address", None)
        return str(getattr(email, "address", None) or "?")

    sent_from, sender = address(message.from_), address(message.sender)
    received = f" at {message.received_date_time:%Y-%m-%d %H:%M:%S}" if message.received_date_time else ""
    lines = [f"Delivered to {to_addr}'s mailbox{received}: From {sent_from}, Sender {sender}."]
    if not same_address(from_addr, principal):
        if same_address(sender, principal) and not same_address(sender, sent_from):
            lines.append(f"Exchange sent it on behalf: {principal} holds Send on Behalf on {from_addr}.")
        elif same_address(sender, sent_from):
            lines.append(f"Exchange sent it as {from_addr}: {principal} holds Send As on {from_addr}.")
    return tuple(lines)
