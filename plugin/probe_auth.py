"""The AUTH exchanges of the SMTP probe, written out step by step so the transcript shows every challenge, and
no credential: PLAIN and LOGIN with a password, XOAUTH2 with a token (RFC 4616, the LOGIN draft, Microsoft's
and Google's XOAUTH2). Each returns the server's final reply; the caller decides what it means.
"""

from __future__ import annotations

import base64
import json

import aiosmtplib

from plugin.transcript import Transcript


async def auth_plain(
    smtp: aiosmtplib.SMTP, transcript: Transcript, user: str, password: str
) -> aiosmtplib.SMTPResponse:
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    transcript.add_secret(blob)
    transcript.sent(f"AUTH PLAIN <credentials of {user}, redacted>")
    response = await smtp.execute_command(b"AUTH", b"PLAIN", blob.encode())
    if response.code == 334:  # a server that wants the credentials after an empty challenge
        transcript.received(response.code, response.message)
        transcript.sent("<credentials redacted>")
        response = await smtp.execute_command(blob.encode())
    return response


async def auth_login(
    smtp: aiosmtplib.SMTP, transcript: Transcript, user: str, password: str
) -> aiosmtplib.SMTPResponse:
    transcript.sent("AUTH LOGIN")
    response = await smtp.execute_command(b"AUTH", b"LOGIN")
    if response.code != 334:
        return response
    transcript.received(response.code, response.message)
    user_b64 = base64.b64encode(user.encode()).decode()
    transcript.sent(f"{user_b64} ({user})")
    response = await smtp.execute_command(user_b64.encode())
    if response.code != 334:
        return response
    transcript.received(response.code, response.message)
    password_b64 = base64.b64encode(password.encode()).decode()
    transcript.add_secret(password_b64)
    transcript.sent("<password redacted>")
    return await smtp.execute_command(password_b64.encode())


async def auth_xoauth2(smtp: aiosmtplib.SMTP, transcript: Transcript, user: str, token: str) -> aiosmtplib.SMTPResponse:
    transcript.add_secret(token)
    blob = base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()
    transcript.add_secret(blob)
    transcript.sent(f"AUTH XOAUTH2 <token for user={user}, redacted>")
    response = await smtp.execute_command(b"AUTH", b"XOAUTH2", blob.encode())
    if response.code == 334:  # an error challenge: Base64 JSON; an empty line fetches the final reply
        transcript.received(response.code, response.message)
        transcript.note(f"Error challenge: {decode_challenge(response.message)}")
        transcript.sent("")
        response = await smtp.execute_command(b"")
    return response


def decode_challenge(message: str) -> str:
    """The JSON inside an XOAUTH2 error challenge (``{"status":"401","schemes":"bearer",…}``), or the raw text."""
    try:
        return json.dumps(json.loads(base64.b64decode(message.strip() + "==")))
    except (ValueError, UnicodeDecodeError):
        return message
