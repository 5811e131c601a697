"""``broker completion bash|zsh|tcsh``: print a shell completion script for the ``broker`` command (made by
shtab from the command's own argument parser, so it always matches the installed version)::

    broker completion bash > ~/.local/share/bash-completion/completions/broker
    broker completion zsh > "${fpath[1]}/_broker"
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

import shtab

SHELLS = ("bash", "zsh", "tcsh")


def root_parser(commands: Any) -> argparse.ArgumentParser:
    """A ``broker`` parser with every command registered in ``commands`` (the subparsers of the real one)."""
    root = argparse.ArgumentParser(prog="broker")
    sub = root.add_subparsers(title="commands", metavar="COMMAND")
    # The same parsers and their help lines; argparse has no public way to list a subparser's help actions,
    # and shtab (like argparse's own help) reads them from _choices_actions.
    sub.choices.update(commands.choices)
    sub._choices_actions.extend(commands._choices_actions)
    return root


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``completion`` to the ``broker`` command's subparsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "completion", help="print a shell completion script (bash, zsh, tcsh)",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog=("install, e.g.:\n"
                "  broker completion bash > ~/.local/share/bash-completion/completions/broker\n"
                '  broker completion zsh > "${fpath[1]}/_broker"'),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell")

    def handler(args: argparse.Namespace) -> int:
        script = shtab.complete(root_parser(commands), shell=args.shell)
        with contextlib.suppress(BrokenPipeError):  # | head
            print(script, flush=True)
        return 0

    parser.set_defaults(handler=handler)
    return parser
