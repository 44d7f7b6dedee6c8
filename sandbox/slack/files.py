"""File uploads the way ``files_upload_v2`` does them: ``files.getUploadURLExternal`` hands out an
upload URL served here, the client POSTs the bytes to it, and ``files.completeUploadExternal``
shares the files to a channel (optionally in a thread) with an initial comment.
"""

from __future__ import annotations

import secrets

from aiohttp import BodyPartReader, web

from sandbox.slack.api_chat import check_can_post
from sandbox.slack.model import JsonObject, SlackFile
from sandbox.slack.render import file_json
from sandbox.slack.web_api import ApiError, ApiRequest, Method, RouteHandler
from sandbox.slack.workspace import SlackWorkspace

MAX_FILE_BYTES = 50 * 1024 * 1024


async def get_upload_url(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    filename = request.required("filename")
    length_arg = request.text("length")
    if not length_arg or length_arg == "0":
        raise ApiError("missing_argument")
    try:
        length = int(length_arg)
    except ValueError:
        raise ApiError("invalid_arguments", "[ERROR] length must be an integer") from None
    if length > MAX_FILE_BYTES:
        raise ApiError("file_upload_size_restricted")
    alt_txt = request.text("alt_txt")
    if alt_txt and len(alt_txt) > 1000:
        raise ApiError("alt_txt_too_large")
    file = SlackFile(
        id=workspace.next_id("F"),
        name=filename,
        title=filename,
        length=length,
        user=workspace.bot.user_id,
        created=int(workspace.clock.now().timestamp()),
        upload_token=secrets.token_urlsafe(24),
        alt_txt=alt_txt,
        snippet_type=request.text("snippet_type"),
    )
    await workspace.save_file(file)
    return {"ok": True, "upload_url": f"{request.origin}/upload/v1/{file.upload_token}", "file_id": file.id}


async def complete_upload(request: ApiRequest) -> JsonObject:
    workspace = request.workspace
    items = request.json_arg("files")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) and "id" in i for i in items):
        raise ApiError("invalid_arguments", "[ERROR] files must be a non-empty array of objects with an id")
    files: list[tuple[SlackFile, str | None]] = []
    for item in items:
        file = workspace.find_file(str(item["id"]))
        if file is None or not file.uploaded:
            raise ApiError("file_not_found")
        title = item.get("title")
        files.append((file, title if isinstance(title, str) and title else None))
    channel_ids = [c for c in (request.text("channels") or "").split(",") if c.strip()]
    single = request.text("channel_id")
    if single:
        channel_ids.insert(0, single)
    channels = []
    for channel_id in dict.fromkeys(c.strip() for c in channel_ids):
        channel = workspace.find_channel(channel_id)
        if channel is None:
            raise ApiError("invalid_channel")
        check_can_post(workspace, channel)
        channels.append(channel)
    comment = request.text("initial_comment")
    thread_ts = request.text("thread_ts") or None
    for file, title in files:
        file.title = title or file.title
        file.completed = True
        file.channels = [c.id for c in channels]
        file.initial_comment = comment
        file.thread_ts = thread_ts
        await workspace.save_file(file)
    for channel in channels:
        await workspace.post_message(
            channel.id,
            text=comment or "",
            thread_ts=thread_ts,
            files=tuple(f.id for f, _ in files),
            via="files.completeUploadExternal",
        )
    return {"ok": True, "files": [file_json(workspace, f, request.origin) for f, _ in files]}


def upload_handler(workspace: SlackWorkspace) -> RouteHandler:
    """``POST /upload/v1/{token}``: the raw bytes (slack_sdk) or a multipart ``file`` part."""

    async def handle(request: web.Request) -> web.Response:
        file = workspace.find_upload(request.match_info["token"])
        if file is None:
            return web.Response(status=404, text="upload URL not found", content_type="text/plain")
        if file.uploaded:
            return web.Response(status=410, text="upload URL already used", content_type="text/plain")
        content = b""
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    content = await part.read(decode=False)
                    break
        else:
            content = await request.read()
        file.content = bytes(content)
        file.uploaded = True
        await workspace.save_file(file)
        return web.Response(status=200, text=f"OK - {len(file.content)}", content_type="text/plain")

    return handle


def download_handler(workspace: SlackWorkspace) -> RouteHandler:
    """``GET /files-pri/{team}-{file}/…``: ``url_private``, readable with the bot token."""

    async def handle(request: web.Request) -> web.Response:
        if request.headers.get("Authorization", "") != f"Bearer {workspace.bot.token}":
            return web.Response(status=403, text="forbidden", content_type="text/plain")
        _, _, file_id = request.match_info["team_file"].partition("-")
        file = workspace.find_file(file_id)
        if file is None or not file.completed:
            return web.Response(status=404, text="file not found", content_type="text/plain")
        return web.Response(body=file.content, content_type="application/octet-stream")

    return handle


METHODS = {
    "files.getUploadURLExternal": Method(get_upload_url, "files:write"),
    "files.completeUploadExternal": Method(complete_upload, "files:write"),
}
