"""``--output json|table`` for the commands that print lists (``perms``, ``audit``, ``check``), with ``--json`` kept
as its alias."""

from __future__ import annotations

import argparse

FORMATS = ("table", "json")


def add_output_option(parser: argparse.ArgumentParser, json_help: str) -> None:
    parser.add_argument(
        "--output",
        "-o",
        choices=FORMATS,
        default="table",
        help=f"table (default: lines for people) or json ({json_help})",
    )
    parser.add_argument("--json", dest="output", action="store_const", const="json", help="same as --output json")


def wants_json(args: argparse.Namespace) -> bool:
    return getattr(args, "output", "table") == "json"
