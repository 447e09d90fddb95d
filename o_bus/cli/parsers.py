"""Walking the `o-bus` argument parsers: every default in `--help`, and what completion offers."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

__all__ = [
    "DefaultsFormatter",
    "actions",
    "meaningful_default",
    "show_defaults",
    "subcommands",
]


def meaningful_default(action: argparse.Action) -> bool:
    """A default worth showing: set, not a flag's False, not an empty list."""
    default: Any = action.default
    if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
        return False
    return not (isinstance(default, list | tuple) and not default)


class DefaultsFormatter(argparse.HelpFormatter):
    """Help that names each option's default (flags and unset options excepted)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        said = "%(default)" in text or "(default:" in text  # the help names it already
        if said or not action.option_strings or not meaningful_default(action):
            return text
        return f"{text} (default: %(default)s)".lstrip()


def actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every option and positional ``parser`` declares (argparse keeps them unexported)."""
    return list(parser._actions)


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of each direct subcommand."""
    for action in actions(parser):
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` and every subparser show defaults in ``--help``; an option with a
    default and no help gets a help line that is only its default."""
    parser.formatter_class = DefaultsFormatter
    for action in actions(parser):
        if action.option_strings and action.help is None and meaningful_default(action):
            action.help = "(default: %(default)s)"
    for _, child in subcommands(parser):
        show_defaults(child)
    return parser
