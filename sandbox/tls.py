"""TLS for the sandbox: one throwaway CA per run, server certificates for 127.0.0.1 and localhost, and
self-signed app certificates for certificate sign-in."""

from __future__ import annotations

import functools
import hashlib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.state import AppCertificate

SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")


@dataclass
class SandboxTLS:
    """The CA of one sandbox run and the server context every HTTPS and SMTP listener uses."""

    ca: trustme.CA
    server_context: ssl.SSLContext
    ca_path: Path

    @classmethod
    def create(cls, workdir: Path) -> SandboxTLS:
        ca = trustme.CA(organization_name="emaildoctor sandbox")
        server_cert = ca.issue_cert(*SERVER_IDENTITIES)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        server_cert.configure_cert(context)
        workdir.mkdir(parents=True, exist_ok=True)
        ca_path = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        return cls(ca=ca, server_context=context, ca_path=ca_path)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this sandbox's CA only."""
        return ssl.create_default_context(cafile=str(self.ca_path))


@functools.cache
def _rsa_key(purpose: str) -> rsa.RSAPrivateKey:
    """One RSA key per purpose and process: generating 2048-bit keys costs tens of milliseconds, and
    tests start a sandbox each."""
    del purpose
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signing_key() -> rsa.RSAPrivateKey:
    return _rsa_key("token-signing")


@functools.cache
def generated_app_certificate(name: str) -> AppCertificate:
    """A self-signed certificate for an app registration, with its private key (sandbox only)."""
    key = _rsa_key(f"app:{name}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} (emaildoctor sandbox)")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return app_certificate_from_pem(cert_pem, private_key_pem=key_pem)


def app_certificate_from_pem(cert_pem: str, private_key_pem: str | None = None) -> AppCertificate:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    der = cert.public_bytes(serialization.Encoding.DER)
    return AppCertificate(
        pem=cert_pem,
        thumbprint_sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        thumbprint_sha256=hashlib.sha256(der).hexdigest().upper(),
        private_key_pem=private_key_pem,
    )
