"""Benchmark: the real bot under a burst of `/emailtest` commands, answered over HTTP, with Microsoft 365 slow.

    .venv/bin/python bench/slack_load.py --store sqlite --concurrency 50 --latency 5
    .venv/bin/python bench/slack_load.py --store sqlite postgres --concurrency 50 200 --latency 5 0 --json

Three processes per configuration: ``emaildoctor sandbox`` (Microsoft 365 and Slack on loopback, a fresh one each
time), ``emaildoctor bot`` (HTTP, on a fresh SQLite file or a fresh PostgreSQL schema) and this one, the load
generator, which plays Slack: it sends N ``/emailtest`` slash commands at once, form-encoded and signed as Slack
signs them (``v0=HMAC-SHA256(signing secret, "v0:{timestamp}:{body}")``), from three people in #helpdesk, for
the directory's employees in turn. Microsoft latency is injected in the sandbox on every sign-in, Graph and
Exchange request (``PATCH /_sandbox/faults/{login,graph,exchange}``); SMTP is not slowed. Each command is a real
test (``EMAILDOCTOR_LIMITS__EMAILTEST_REUSE_SECONDS=0``, and the per-person limits raised), and the sandbox's
SMTP connections per mailbox are raised so that concurrent tests of one employee are not refused.

Recorded per configuration: the acknowledgement times (the bot's HTTP answer, which Slack waits 3 s for; here the
generator waits up to 30 s so the slowest are measured, not cut off) as p50/p95/p99/max over all N (an unanswered
request, an error status or no answer in 30 s, counts as slower than any answer: shown as ``-``), how many took
over 3 s (unanswered ones included) and how many were unanswered,
and, from the sandbox's record of Slack (``GET /_sandbox/slack/state``, polled every 0.5 s), when the report of
each test appeared in its thread: the median and the last, from the moment the burst was sent.

``--code DIR`` runs the sandbox and the bot from another checkout (e.g. a ``git worktree`` at an older commit) with
this interpreter, for before/after figures. Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import os
import platform
import secrets
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = "postgresql://root@127.0.0.1:5432/test"
CHANNEL = "C0HELPDESK"
PEOPLE = (("U0HANNAH", "hannah"), ("U0IVAN", "ivan"), ("U0ALICE", "alice"))
EMPLOYEES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "henry", "kim", "ivy", "jack")
SLACK_ACK_S = 3.0
ACK_WAIT_S = 30.0
POLL_S = 0.5
BOT_SETTINGS = {
    "EMAILDOCTOR_LIMITS__EMAILTEST_REUSE_SECONDS": "0",
    "EMAILDOCTOR_LIMITS__EMAILTEST_PER_REQUESTER_PER_MINUTE": "1000",
}


@dataclass
class Result:
    store: str
    concurrency: int
    latency_s: float
    ack_ms: list[float] = field(default_factory=list)
    failed_acks: int = 0
    report_s: list[float] = field(default_factory=list)
    """Seconds from the burst to each report seen in its thread."""
    reports_missing: int = 0

    def summary(self) -> dict[str, Any]:
        acks = sorted(self.ack_ms) + [math.inf] * self.failed_acks  # unanswered: slower than any answer
        return {
            "store": self.store,
            "concurrency": self.concurrency,
            "latency_s": self.latency_s,
            "ack_p50_ms": _pct(acks, 50),
            "ack_p95_ms": _pct(acks, 95),
            "ack_p99_ms": _pct(acks, 99),
            "ack_max_ms": _pct(acks, 100),
            "acks_over_3s": sum(1 for a in acks if a > SLACK_ACK_S * 1000),
            "failed_acks": self.failed_acks,
            "report_p50_s": round(statistics.median(self.report_s), 1) if self.report_s else None,
            "last_report_s": round(max(self.report_s), 1) if self.report_s else None,
            "reports_missing": self.reports_missing,
        }


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    rank = max(0, min(len(values) - 1, math.ceil(pct / 100 * len(values)) - 1))  # nearest rank
    return round(values[rank], 1) if math.isfinite(values[rank]) else None  # None: that one was never answered


# --- processes -----------------------------------------------------------------------------------------------------
class Processes:
    """The sandbox and the bot as subprocesses of this interpreter, from ``code`` (a checkout)."""

    def __init__(self, code: Path, folder: Path) -> None:
        self.code = code
        self.folder = folder
        self.running: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, until: str, log: str) -> tuple[asyncio.subprocess.Process, list[str]]:
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", str(self.folder)),
            "PYTHONPATH": str(self.code),
        }
        with (self.folder / log).open("ab") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "plugin.cli", *args,
                cwd=self.code, env=env, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            )  # fmt: skip
        self.running.append(process)
        assert process.stdout is not None
        lines: list[str] = []
        while True:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            if not line:
                raise RuntimeError(f"{args[0]} stopped; see {self.folder / log}")
            lines.append(line.rstrip())
            if until in line:
                asyncio.get_running_loop().create_task(_drain(process.stdout))
                return process, lines

    async def stop(self) -> None:
        for process in reversed(self.running):
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        self.running.clear()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def _field(lines: list[str], label: str) -> str:
    return next(line.split(label, 1)[1].strip() for line in lines if label in line)


@dataclass
class Store:
    kind: str
    url: str
    schema: str | None = None


def _postgres_store(base: str) -> Store:
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"bench_slack_load_{int(time.time())}_{secrets.token_hex(3)}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return Store("postgres", url.render_as_string(hide_password=False), schema)


def _drop(store: Store, base: str) -> None:
    if store.schema is None:
        return
    import psycopg

    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{store.schema}" CASCADE')


# --- one configuration ---------------------------------------------------------------------------------------------
async def run_one(args: argparse.Namespace, store_kind: str, concurrency: int, latency_s: float) -> Result:
    result = Result(store_kind, concurrency, latency_s)
    folder = Path(tempfile.mkdtemp(prefix="slack-load-"))
    processes = Processes(args.code, folder)
    store = Store("sqlite", f"sqlite:///{folder / 'bot.db'}") if store_kind == "sqlite" else _postgres_store(args.pg)
    try:
        _, lines = await processes.start(
            "sandbox", "--env-file", str(folder / "sandbox.env"), "--workdir", str(folder / "sandbox"),
            "--propagation-delay", "0", until="serving", log="sandbox.log",
        )  # fmt: skip
        admin = _field(lines, "sandbox admin").rstrip("/").removesuffix("/_sandbox")
        env = {k: v or "" for k, v in dotenv_values(folder / "sandbox.env").items()}
        bot_env = folder / "bot.env"
        settings = {**env, **BOT_SETTINGS, "EMAILDOCTOR_STORE__URL": store.url}
        bot_env.write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in settings.items()), encoding="utf-8")
        bot_env.chmod(0o600)
        _, lines = await processes.start(
            "--env-file", str(bot_env), "bot", "--port", "0", until="listening on", log="bot.log"
        )
        bot_url = _field(lines, "listening on").split()[0]
        context = ssl.create_default_context(cafile=env["EMAILDOCTOR_SLACK__CA_FILE"])
        slack_api = env["EMAILDOCTOR_SLACK__API_URL"]
        parts = urlsplit(slack_api)
        slack_origin = f"{parts.scheme}://{parts.netloc}"
        connector = aiohttp.TCPConnector(limit=0, ssl=context)
        async with aiohttp.ClientSession(connector=connector) as http:
            for service in ("login", "graph", "exchange"):
                await _patch(http, f"{admin}/_sandbox/faults/{service}", {"latency_ms": latency_s * 1000})
            await _patch(http, f"{admin}/_sandbox/settings", {"smtp_max_connections_per_mailbox": 10_000})
            state = await _state(http, slack_origin)
            before = {m["ts"] for m in state["messages"]}
            bodies = [
                _command(state["team"], i, slack_origin, env["EMAILDOCTOR_SLACK__SIGNING_SECRET"])
                for i in range(concurrency)
            ]
            started = time.perf_counter()
            acks = await asyncio.gather(*(_deliver(http, bot_url, body, headers) for body, headers in bodies))
            for ack in acks:
                if ack is None:
                    result.failed_acks += 1
                else:
                    result.ack_ms.append(ack)
            seen: dict[str, float] = {}
            deadline = started + args.report_timeout
            while len(seen) < concurrency and time.perf_counter() < deadline:
                state = await _state(http, slack_origin)
                now = time.perf_counter() - started
                for message in state["messages"]:
                    if message["channel"] != CHANNEL or message["ts"] in before or message["ts"] in seen:
                        continue
                    if message.get("reply_count", 0) >= 1 and message.get("thread_ts") == message["ts"]:
                        seen[message["ts"]] = now
                await asyncio.sleep(POLL_S)
            result.report_s = sorted(seen.values())
            result.reports_missing = concurrency - len(seen)
    finally:
        await processes.stop()
        if store.schema is not None:
            _drop(store, args.pg)
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def _command(team: str, number: int, slack_origin: str, secret: str) -> tuple[bytes, dict[str, str]]:
    user, name = PEOPLE[number % len(PEOPLE)]
    fields = [
        ("token", "sandbox-verification"),
        ("team_id", team),
        ("team_domain", "business"),
        ("channel_id", CHANNEL),
        ("channel_name", "helpdesk"),
        ("user_id", user),
        ("user_name", name),
        ("command", "/emailtest"),
        ("text", EMPLOYEES[number % len(EMPLOYEES)]),
        ("api_app_id", "A0EMAILDOC"),
        ("is_enterprise_install", "false"),
        ("response_url", f"{slack_origin}/response/bench-{number}"),
        ("trigger_id", f"bench.{number}.{secrets.token_hex(8)}"),
    ]
    body = urlencode(fields).encode()
    timestamp = str(int(time.time()))
    signature = "v0=" + hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return body, headers


async def _deliver(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> float | None:
    """Milliseconds until the bot's answer (None: no 200 within ACK_WAIT_S)."""
    started = time.perf_counter()
    try:
        async with http.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=ACK_WAIT_S)) as r:
            await r.read()
            if r.status != 200:
                return None
    except (TimeoutError, aiohttp.ClientError):
        return None
    return (time.perf_counter() - started) * 1000


async def _patch(http: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> None:
    async with http.patch(url, json=payload) as answer:
        if answer.status != 200:
            raise RuntimeError(f"PATCH {url}: {answer.status} {await answer.text()}")


async def _state(http: aiohttp.ClientSession, slack_origin: str) -> dict[str, Any]:
    async with http.get(f"{slack_origin}/_sandbox/slack/state") as answer:
        state: dict[str, Any] = await answer.json()
        return state


# --- output --------------------------------------------------------------------------------------------------------
COLUMNS = (
    ("store", "store"),
    ("concurrency", "N"),
    ("latency_s", "latency s"),
    ("ack_p50_ms", "ack p50 ms"),
    ("ack_p95_ms", "p95"),
    ("ack_p99_ms", "p99"),
    ("ack_max_ms", "max"),
    ("acks_over_3s", "> 3 s"),
    ("failed_acks", "unanswered"),
    ("report_p50_s", "report p50 s"),
    ("last_report_s", "last report s"),
    ("reports_missing", "missing"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="emaildoctor bot: /emailtest bursts")
    for _, title in COLUMNS:
        table.add_column(title, justify="right")
    for row in rows:
        table.add_row(*("-" if row[key] is None else str(row[key]) for key, _ in COLUMNS))
    Console(width=160).print(table)


def machine() -> str:
    return f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for store in args.store:
        for concurrency in args.concurrency:
            for latency in args.latency:
                for _ in range(args.runs):
                    print(f"running: {store}, {concurrency} at once, {latency:g} s latency", file=sys.stderr)
                    rows.append((await run_one(args, store, concurrency, latency)).summary())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", nargs="+", choices=("sqlite", "postgres"), default=["sqlite"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[50], metavar="N")
    parser.add_argument("--latency", nargs="+", type=float, default=[5.0], metavar="S",
                        help="seconds added to every Microsoft 365 request (default 5)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=1, help="runs of each configuration (default 1)")
    parser.add_argument("--report-timeout", type=float, default=300.0, metavar="S",
                        help="stop waiting for reports after this long (default 300 s)")  # fmt: skip
    parser.add_argument("--pg", default=os.environ.get("EMAILDOCTOR_TEST_POSTGRES_URL") or POSTGRES_URL,
                        help=f"PostgreSQL server (a schema is made and dropped per run; default {POSTGRES_URL})")  # fmt: skip
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to run the sandbox and bot from")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder (logs, env files)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = parser.parse_args(argv)
    args.code = args.code.resolve()
    if any(n < 1 for n in args.concurrency) or any(s < 0 for s in args.latency) or args.runs < 1:
        parser.error("--concurrency and --runs must be at least 1, --latency not negative")
    rows = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({"machine": machine(), "code": str(args.code), "rows": rows}, indent=2))
    else:
        print(machine())
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
