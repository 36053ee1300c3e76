"""``--help`` works for ``v2meow`` and every one of its subcommands (nested ones included)."""

from __future__ import annotations

import argparse

import pytest

from v2meow.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of ``parser``: ``()``, ``("generate",)``, ``("study", "serve")``, ..."""
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, prefix + (name,))
    return out


COMMANDS = _commands(build_parser())


def test_every_subcommand_is_listed() -> None:
    assert ("generate",) in COMMANDS and ("study", "export") in COMMANDS
    assert len(COMMANDS) > 10


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "v2meow")
def test_help_exits_cleanly(command: tuple[str, ...], capsys) -> None:
    try:
        rc = main([*command, "--help"])  # main returns argparse's exit status
    except SystemExit as e:
        rc = e.code
    assert rc == 0
    out = capsys.readouterr().out
    assert out.strip()
    assert out.startswith("usage: v2meow " + " ".join(command))
