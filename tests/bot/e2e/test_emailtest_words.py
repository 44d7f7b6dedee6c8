"""`/emailtest` in Slack says ambiguous_user, with every candidate, when two employees share the address asked for."""

from __future__ import annotations

from tests.bot.e2e.conftest import HANNAH, HELPDESK, World


async def test_two_employees_sharing_an_address_are_listed_in_slack(world: World) -> None:
    await world.command(HANNAH, "/emailtest", "sales@business.com")  # Ivy and Jack both send from it
    parent = await world.top(HELPDESK, "sales@business.com")
    report = await world.reply(parent, "Several users match")
    text = report.all_text()
    assert "ambiguous_user" in text and "Ivy Irwin (login ivy)" in text and "Jack Jones (login jack)" in text
    assert "User not found" not in text and "Request fix" not in text
