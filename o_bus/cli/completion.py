"""`o-bus completion bash|zsh`: a shell completion script generated from the parsers.

Completes commands, their options and their fixed choices (``evolve start|status|...``);
other words complete as file names. zsh runs the bash function through ``bashcompinit``.
"""

from __future__ import annotations

import argparse
import shlex

from o_bus.cli.parsers import actions, subcommands

__all__ = ["completion_script"]

FUNCTION = "_o_bus_complete"


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """(options, choices of the first positional with fixed choices)."""
    options: list[str] = []
    choices: list[str] = []
    for action in actions(parser):
        options += [o for o in action.option_strings if o.startswith("--") or o == "-h"]
        if not action.option_strings and action.choices and not choices:
            if isinstance(action, argparse._SubParsersAction):
                choices = list(action.choices)
            else:
                choices = [str(c) for c in action.choices]
    return sorted(set(options)), choices


def completion_script(
    parser: argparse.ArgumentParser,
    shell: str,
    extra_choices: dict[str, list[str]] | None = None,
) -> str:
    """The completion script for ``shell`` ("bash" or "zsh")."""
    commands = dict(subcommands(parser))
    cases = []
    for name, sub in commands.items():
        options, choices = _words(sub)
        choices += (extra_choices or {}).get(name, [])
        cases.append(
            f"    {name}) opts={shlex.quote(' '.join(options))}; "
            f"choices={shlex.quote(' '.join(choices))};;"
        )
    top_options, _ = _words(parser)
    body = "\n".join(cases)
    script = f"""# o-bus shell completion ({shell}): eval "$(o-bus completion {shell})"
{FUNCTION}() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" opts="" choices=""
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W {shlex.quote(" ".join([*commands, *top_options]))} -- "$cur"))
    return
  fi
  case "${{COMP_WORDS[1]}}" in
{body}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif [[ $COMP_CWORD -eq 2 && -n "$choices" ]]; then
    COMPREPLY=($(compgen -W "$choices" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}}
complete -o default -F {FUNCTION} o-bus
"""
    if shell == "zsh":
        return "autoload -U +X bashcompinit && bashcompinit\n" + script
    return script
