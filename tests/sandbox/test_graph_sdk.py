"""Microsoft Graph through the real msgraph-sdk (kiota, azure-identity) over TLS to the sandbox."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from azure.identity.aio import ClientSecretCredential

with warnings.catch_warnings():
    # kiota_abstractions warns at import time (GetQueryParameters is deprecated) in its own module.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphServiceClient
    from msgraph.generated.models.body_type import BodyType
    from msgraph.generated.models.email_address import EmailAddress
    from msgraph.generated.models.item_body import ItemBody
    from msgraph.generated.models.message import Message
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.recipient import Recipient
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    from msgraph.graph_request_adapter import GraphRequestAdapter
    from msgraph_core import GraphClientFactory

from sandbox.runtime import Sandbox

# msgraph-sdk's generated request builders warn when their modules are imported (lazily, inside a call).
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:This class is deprecated. Please use the generic RequestConfiguration:DeprecationWarning"
    ),
    pytest.mark.filterwarnings("ignore:GetQueryParameters is deprecated:DeprecationWarning"),
]


@pytest_asyncio.fixture
async def graph(sandbox: Sandbox) -> AsyncIterator[GraphServiceClient]:
    credential = ClientSecretCredential(
        sandbox.tenant.id,
        sandbox.app.client_id,
        sandbox.app.secrets[0],
        authority=sandbox.urls.login,
        disable_instance_discovery=True,
        connection_verify=str(sandbox.ca_path),
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    # msgraph-core's AsyncGraphTransport does not close the transport it wraps: keep it and close it here.
    transport = httpx.AsyncHTTPTransport(verify=sandbox.client_ssl_context())
    http_client = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(transport=transport, timeout=10)
    )
    adapter = GraphRequestAdapter(auth, http_client)
    adapter.base_url = f"{sandbox.urls.graph}/v1.0"
    yield GraphServiceClient(request_adapter=adapter)
    await http_client.aclose()
    await transport.aclose()
    await credential.close()


def mail(subject: str, sender: str | None, to: str) -> SendMailPostRequestBody:
    message = Message(
        subject=subject,
        body=ItemBody(content_type=BodyType.Text, content="emaildoctor test"),
        to_recipients=[Recipient(email_address=EmailAddress(address=to))],
    )
    if sender:
        message.from_ = Recipient(email_address=EmailAddress(address=sender))
    return SendMailPostRequestBody(message=message, save_to_sent_items=False)


async def test_user_by_id_and_by_upn(graph: GraphServiceClient, sandbox: Sandbox) -> None:
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    by_upn = await graph.users.by_user_id("alice@business.com").get()
    by_id = await graph.users.by_user_id(alice.id).get()
    assert by_upn is not None and by_id is not None
    assert by_upn.id == by_id.id == alice.id
    assert by_upn.display_name == "Alice Archer"
    assert by_upn.mail == "alice@business.com"


async def test_users_filter_and_select(graph: GraphServiceClient) -> None:
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        filter="proxyAddresses/any(p:p eq 'smtp:SALES@business.com') or startswith(displayName,'Hen')",
        select=["id", "displayName", "mail"],
    )
    page = await graph.users.get(request_configuration=RequestConfiguration(query_parameters=query))
    assert page is not None and page.value is not None
    assert sorted(u.display_name or "" for u in page.value) == ["Henry Hill", "Sales"]
    assert all(u.user_principal_name is None for u in page.value)


async def test_unknown_user_is_odata_error(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id("nobody@business.com").get()
    assert caught.value.response_status_code == 404
    assert caught.value.error is not None
    assert caught.value.error.code == "Request_ResourceNotFound"


async def test_send_mail_as_own_mailbox_is_delivered(graph: GraphServiceClient, sandbox: Sandbox) -> None:
    await graph.users.by_user_id("erin@business.com").send_mail.post(mail("sdk hello", None, "alice@business.com"))
    alice = sandbox.tenant.user("alice@business.com")
    assert alice is not None
    received = sandbox.tenant.messages[alice.id]
    assert [(m.subject, m.from_address, m.sender_address) for m in received] == [
        ("sdk hello", "erin@business.com", "erin@business.com")
    ]


async def test_send_mail_without_send_as_is_send_as_denied(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as caught:
        await graph.users.by_user_id("admin@business.com").send_mail.post(
            mail("as alice", "alice@business.com", "alice@business.com")
        )
    assert caught.value.response_status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "ErrorSendAsDenied"
    assert caught.value.error.message == (
        "The user account which was used to submit this request does not have the right to send mail on behalf of the "
        "specified sending account. Cannot submit message."
    )


async def test_throttled_request_is_retried_by_kiota(graph: GraphServiceClient, sandbox: Sandbox) -> None:
    sandbox.faults.set("graph", throttle_burst=1, retry_after_s=1)
    user = await graph.users.by_user_id("bob@business.com").get()
    assert user is not None and user.display_name == "Bob Baker"
    assert sandbox.faults.take_throttle("graph") is False
