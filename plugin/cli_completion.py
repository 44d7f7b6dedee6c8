"""``emaildoctor completion bash|zsh|fish``: a completion script built from the installed commands and their options.

The script is static (generated once, when installed): completing a word never starts Python.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plugin.cli import CliContext

SHELLS = ("bash", "zsh", "fish")

DESCRIPTION = """\
Print a shell completion script for emaildoctor's commands and options.

examples:
  emaildoctor completion bash > ~/.local/share/bash-completion/completions/emaildoctor
  emaildoctor completion zsh > "${fpath[1]}/_emaildoctor"
  emaildoctor completion fish > ~/.config/fish/completions/emaildoctor.fish

Re-run it after upgrading emaildoctor: the script lists the commands and options of the installed version."""


class CompletionCommand:
    name = "completion"
    help = "print a shell completion script (bash, zsh or fish)"
    description = DESCRIPTION

    def configure(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")

    async def run(self, args: argparse.Namespace, context: CliContext) -> int:
        options = command_options()
        script = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}[args.shell](options)
        print(script, file=context.out)
        return 0


def command_options() -> dict[str, tuple[list[str], list[str]]]:
    """Each installed command's (option flags, fixed choices of its first positional), loading every command."""
    from plugin.cli import build_parser, discover_commands

    commands = discover_commands()
    found: dict[str, tuple[list[str], list[str]]] = {"": (["--help", "--version", "--env-file"], [])}
    for entry in commands:
        parser = build_parser(commands, chosen=entry.name)
        sub = _subparser(parser, entry.name)
        flags: list[str] = []
        words: list[str] = []
        for action in sub._actions:
            flags += [flag for flag in action.option_strings if flag.startswith("--")]
            if not action.option_strings and action.choices and not words:
                words = [str(choice) for choice in action.choices]
        found[entry.name] = (sorted(set(flags)), words)
    return found


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices[name]
            return sub
    raise LookupError(name)  # pragma: no cover - build_parser always adds the subcommands


def bash_script(options: dict[str, tuple[list[str], list[str]]]) -> str:
    names = " ".join(name for name in options if name)
    cases = "\n".join(
        f'        {name}) words="{" ".join(choices + flags)}" ;;' for name, (flags, choices) in options.items() if name
    )
    return f"""# bash completion for emaildoctor (emaildoctor completion bash)
_emaildoctor() {{
    local cur command word words i
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    command=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${{COMP_WORDS[i]}}"
        if [[ "${{COMP_WORDS[i - 1]}}" == "--env-file" ]]; then continue; fi
        if [[ "$word" != -* ]]; then command="$word"; break; fi
    done
    if [[ "${{COMP_WORDS[COMP_CWORD - 1]}}" == "--env-file" || "${{COMP_WORDS[COMP_CWORD - 1]}}" == --*file || \\
          "${{COMP_WORDS[COMP_CWORD - 1]}}" == "--csv" ]]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    case "$command" in
        "") words="{names} --help --version --env-file" ;;
{cases}
    esac
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F _emaildoctor emaildoctor"""


def zsh_script(options: dict[str, tuple[list[str], list[str]]]) -> str:
    # zsh runs bash completion functions through bashcompinit: one script to keep right.
    return "#compdef emaildoctor\nautoload -U +X bashcompinit && bashcompinit\n" + bash_script(options)


def fish_script(options: dict[str, tuple[list[str], list[str]]]) -> str:
    names = [name for name in options if name]
    lines = [
        "# fish completion for emaildoctor (emaildoctor completion fish)",
        "complete -c emaildoctor -f",
        "complete -c emaildoctor -l env-file -r -F -d 'settings file'",
        "complete -c emaildoctor -l version -d 'print the version'",
        f"complete -c emaildoctor -n __fish_use_subcommand -a '{' '.join(names)}'",
    ]
    for name in names:
        flags, choices = options[name]
        when = f"__fish_seen_subcommand_from {name}"
        lines += [f"complete -c emaildoctor -n '{when}' -l {flag.removeprefix('--')}" for flag in flags]
        if choices:
            lines.append(f"complete -c emaildoctor -n '{when}' -a '{' '.join(choices)}'")
    return "\n".join(lines)


COMMAND = CompletionCommand()
