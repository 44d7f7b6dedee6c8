"""Certificate client assertions: the signed JWT a confidential client sends instead of a secret."""

from __future__ import annotations

import base64
import time

import jwt
from aiohttp import web
from cryptography import x509

from sandbox.entra_errors import EntraError
from sandbox.state import App


def check_client_assertion(request: web.Request, tenant_id: str, app: App, assertion: str) -> None:
    """Validate a certificate client assertion (RFC 7523) against the app's registered certificates."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from exc
    thumbprint_256 = b64_hex(header.get("x5t#S256"))
    thumbprint_1 = b64_hex(header.get("x5t"))
    cert = next(
        (
            c
            for c in app.certificates
            if c.thumbprint_sha256 == thumbprint_256 or (thumbprint_1 and c.thumbprint_sha1 == thumbprint_1)
        ),
        None,
    )
    if cert is None:
        raise EntraError(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint_1 or thumbprint_256}', "
            f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app "
            f"Id '{app.client_id}'.]",
        )
    public_key = x509.load_pem_x509_certificate(cert.pem.encode()).public_key()
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise EntraError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    tenant_segment = request.match_info["tenant"]
    valid_audiences = {f"https://{request.host}/{name}/oauth2/v2.0/token" for name in (tenant_segment, tenant_id)}
    valid_audiences.add(f"https://{request.host}/{tenant_id}/v2.0")
    if claims.get("aud") not in valid_audiences:
        raise EntraError(401, "invalid_client", 50012, "Client assertion audience claim does not match Realm issuer.")
    now = time.time()  # the client's wall clock made the assertion, not the sandbox clock
    if float(claims.get("exp", 0)) < now - 300 or float(claims.get("nbf", 0)) > now + 300:
        raise EntraError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")


def b64_hex(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex().upper()
    except ValueError:
        return ""
