"""`emaildoctor check` flags an app certificate that expires within 30 days (certificates made here, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

from graph.checks import certificate_rows
from plugin.checks import CheckResult
from plugin.settings import M365Settings, Settings


def _certificate(tmp_path: Path, days: int) -> Path:
    ca = trustme.CA()
    cert = ca.issue_cert("emaildoctor", not_after=datetime.now(UTC) + timedelta(days=days))
    path = tmp_path / f"app-{days}.pem"
    path.write_bytes(cert.private_key_pem.bytes() + cert.cert_chain_pems[0].bytes())
    return path


def test_a_certificate_that_expires_within_30_days_is_flagged(tmp_path: Path) -> None:
    def rows(days: int) -> list[CheckResult]:
        m365 = M365Settings(tenant_id="t.example", client_id="c", certificate_path=_certificate(tmp_path, days))
        return certificate_rows(Settings(m365=m365))

    (soon,) = rows(10)
    assert soon.ok is True and "in 9 days" in soon.detail, soon
    assert "Certificates & secrets" in soon.fix
    (fine,) = rows(200)
    assert fine.ok is True and fine.fix == "" and fine.detail.startswith("valid until")
