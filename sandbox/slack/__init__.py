"""A faithful local Slack workspace for tests and the demo.

- :func:`load_workspace` reads the ``slack:`` section of ``tenant.yaml`` into a :class:`SlackWorkspace`,
  the live state (messages and their versions, views, files, Web API calls, response_url posts,
  deliveries to the bot) with query helpers and ``await workspace.wait_for(...)``;
- :func:`build_slack_app` serves it as Slack's Web API (``/api/{method}``), response_urls and file
  uploads, for the real slack_sdk ``AsyncWebClient(base_url=f"{url}/api/")``;
- :class:`SlackClient` plays Slack towards the bot: signed slash commands, clicks and submissions;
- Socket Mode (``socket_mode``): ``apps.connections.open`` with the app-level token hands out a one-time
  ``wss://`` URL on the same server; ``workspace.socket_mode`` (a :class:`SocketModeHub`) holds the app's
  connections, the envelopes sent and their acks, and can disconnect or drop them;
  :class:`SlackSocketModeClient` delivers the same interactions over it.
"""

from sandbox.slack.app import build_slack_app
from sandbox.slack.client import SlackClient
from sandbox.slack.loader import WorkspaceConfigError, load_workspace
from sandbox.slack.model import ApiCall, MessageRef, ResponsePost, SlackDelivery, SlackFile, SlackMessage, SlackView
from sandbox.slack.socket_client import SlackSocketModeClient
from sandbox.slack.socket_mode import SocketAck, SocketConnection, SocketModeHub
from sandbox.slack.workspace import SlackWorkspace

__all__ = [
    "ApiCall",
    "MessageRef",
    "ResponsePost",
    "SlackClient",
    "SlackDelivery",
    "SlackFile",
    "SlackMessage",
    "SlackSocketModeClient",
    "SlackView",
    "SlackWorkspace",
    "SocketAck",
    "SocketConnection",
    "SocketModeHub",
    "WorkspaceConfigError",
    "build_slack_app",
    "load_workspace",
]
