"""`make demo` runs `emaildoctor demo`: the whole story must happen, and a missing step must fail the demo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.commands import run

REPO = Path(__file__).resolve().parents[2]


async def run_demo(*args: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    code, out, err = await run("demo", "--no-color", *args, within=180)
    return code, out, err, time.monotonic() - started


def test_make_demo_runs_the_demo_command() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "demo: $(STAMP)\n\t@$(BIN)/emaildoctor demo\n" in makefile


@pytest.mark.slow
async def test_the_whole_story_plays_and_exits_0() -> None:
    code, out, err, took = await run_demo("--propagation-delay", "5")
    assert code == 0, out[-3000:] + err[-3000:]
    steps = [
        "①  Hannah (helpdesk) types  /emailtest alice",
        "❌ Email test for Alice Archer failed: Send As denied",
        "[ Request fix ]",
        "②  Hannah presses  [ Request fix ]",
        "@hannah asks to grant admin@business.com Send As on alice@business.com's mailbox.",
        "[ Approve ]  [ Deny ]",
        "③  Ivan (IT admin, member of @it-admins) presses  [ Approve ]",
        "✅ Approved by @ivan: done, read back from Exchange.",
        "✔ Exchange now lists admin@business.com with Send As on alice@business.com.",
        "Granted, waiting for Exchange to apply it",
        "✅ alice's email test passes now",
        "⑤  The scheduled audit runs",
        "Sending that will fail before anyone tries (1):",
        "grace: the application signs in as admin@business.com",
        "📎 mailbox-rights-",
        "hash chain intact",
        "Where to look next:",
    ]
    positions = [out.find(step) for step in steps]
    assert all(p >= 0 for p in positions), [s for s, p in zip(steps, positions, strict=True) if p < 0]
    assert positions == sorted(positions), "the story is told in order"
    assert "correct horse" not in out and "sandbox-emaildoctor-client-secret" not in out
    assert took < 60


async def test_a_step_that_does_not_happen_fails_the_demo(tmp_path: Path) -> None:
    """If admin@ already holds Send As on alice@, her test passes, so step 1 of the story cannot happen."""
    tenant = (REPO / "sandbox" / "examples" / "tenant.yaml").read_text()
    marker = "rights:\n"
    assert marker in tenant
    changed = tenant.replace(
        marker, marker + "  - {right: SendAs, mailbox: alice@business.com, trustee: admin@business.com}\n", 1
    )
    path = tmp_path / "tenant.yaml"
    path.write_text(changed)
    code, _, err, _ = await run_demo("--tenant", str(path), "--propagation-delay", "0")
    assert code == 1
    assert "The demo stopped: Alice's test did not fail with Send As denied." in err
