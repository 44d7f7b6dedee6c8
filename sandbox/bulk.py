"""Large synthetic tenants for the audit benchmark: the example tenant plus N generated mailboxes with a
realistic spread of SendAs, SendOnBehalf and FullAccess grants (deterministic for a given seed)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

from sandbox.clock import Clock
from sandbox.loader import load_tenant
from sandbox.rights import Trustee
from sandbox.state import Group, Tenant, User

FIRST = ["Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo", "Iris", "Jon", "Kai", "Lena", "Max", "Nora", "Omar", "Pia"]  # fmt: skip
LAST = ["Abbott", "Brown", "Cole", "Diaz", "Ellis", "Ford", "Gray", "Hale", "Ito", "Jung", "King", "Lee", "Moss", "Noor"]  # fmt: skip


def build_large_tenant(
    mailboxes: int, *, seed: int = 0, clock: Clock | None = None, base: Path | None = None
) -> Tenant:
    """The example tenant (or ``base``) with ``mailboxes`` more mailboxes (about 10% shared) and grants:
    about 6% of mailboxes carry SendAs, 4% SendOnBehalf, 12% FullAccess (some through groups, a few to
    orphaned SIDs or disabled accounts). Groups nest three deep: one "Team" per 500 mailboxes (8 people each), one
    "Department" per 4 teams (the teams and 2 people), and "All Departments"; the example's admin@ is in Team 000,
    so it holds, through nesting, what any of those groups hold. 10,000 mailboxes build in well under a second."""
    rng = random.Random(seed)
    tenant = load_tenant(base, clock)
    domain = tenant.domains[0] if tenant.domains else "contoso.com"
    created: list[User] = []
    for index in range(mailboxes):
        user_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        shared = rng.random() < 0.10
        first, last = rng.choice(FIRST), rng.choice(LAST)
        local = f"shared{index:05d}" if shared else f"{first.lower()}.{last.lower()}{index:05d}"
        address = f"{local}@{domain}"
        user = User(
            id=user_id,
            upn=address,
            display_name=f"Shared {index:05d}" if shared else f"{first} {last} {index:05d}",
            mail=address,
            proxy_addresses=[f"SMTP:{address}"],
            account_enabled=not shared and rng.random() > 0.02,
            mailbox="shared" if shared else "user",
            name=user_id,
            alias=local,
            mailbox_guid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            given_name=None if shared else first,
            surname=None if shared else last,
        )
        tenant.add_user(user)
        created.append(user)
    if not created:
        return tenant
    people = [u for u in created if u.mailbox == "user"] or created
    groups = []
    for index in range(max(1, mailboxes // 500)):
        group = Group(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            display_name=f"Team {index:03d}",
            mail=f"team{index:03d}@{domain}",
            members={rng.choice(people).id for _ in range(8)},
        )
        tenant.add_group(group)
        groups.append(group)
    groups += _nested_groups(tenant, rng, groups, people, domain)

    def trustee() -> Trustee:
        roll = rng.random()
        if roll < 0.08:
            return Trustee("group", rng.choice(groups).id)
        if roll < 0.10:
            return Trustee(
                "sid",
                f"S-1-5-21-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{rng.randrange(1000, 9999)}",
            )
        return Trustee("user", rng.choice(people).id)

    rights = tenant.rights
    for mailbox in created:
        if rng.random() < 0.06:
            for _ in range(rng.randint(1, 2)):
                rights.grant("SendAs", mailbox.id, trustee(), None)
        if rng.random() < 0.04:
            rights.grant("SendOnBehalf", mailbox.id, Trustee("user", rng.choice(people).id), None)
        if rng.random() < 0.12 or mailbox.mailbox == "shared":
            for _ in range(rng.randint(1, 3)):
                rights.grant("FullAccess", mailbox.id, trustee(), None)
    return tenant


def _nested_groups(
    tenant: Tenant, rng: random.Random, teams: list[Group], people: list[User], domain: str
) -> list[Group]:
    """Departments holding teams (and two people each), and one group holding every department."""
    admin = tenant.user_by_address(f"admin@{domain}")
    if admin is not None:
        teams[0].members.add(admin.id)
    made: list[Group] = []
    for index in range(max(1, len(teams) // 4)):
        members = {t.id for t in rng.sample(teams, min(4, len(teams)))} | {rng.choice(people).id for _ in range(2)}
        made.append(
            Group(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                display_name=f"Department {index:02d}",
                mail=f"department{index:02d}@{domain}",
                members=members,
            )
        )
    made.append(
        Group(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            display_name="All Departments",
            mail=f"all-departments@{domain}",
            members={d.id for d in made},
        )
    )
    for group in made:
        tenant.add_group(group)
    return made
