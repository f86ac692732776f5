"""The dead-letter tool's command line, without a broker: names and help."""

from __future__ import annotations

import argparse

import pytest

from seminarops_shared.dlq import build_parser, origin_topic


def _commands() -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_command_and_every_argument_has_a_help_text() -> None:
    commands = _commands()
    assert set(commands) == {"list", "show", "redrive"}
    undocumented = [
        f"{name} {action.dest}"
        for name, parser in commands.items()
        for action in parser._actions
        if not action.help
    ]
    assert undocumented == []
    assert all(parser.description for parser in commands.values())


@pytest.mark.parametrize(
    "name", ["registration.requests", "registration.requests.dlq", "seminar.events.dlq"]
)
def test_a_topic_is_named_by_its_origin_or_its_dlq(name: str) -> None:
    assert origin_topic(name) == name.removesuffix(".dlq")


@pytest.mark.parametrize("name", ["seminar.evnts", "registration.requests.dlq.dlq", ".dlq", ""])
def test_an_unknown_topic_is_refused_with_the_names_that_exist(name: str) -> None:
    with pytest.raises(ValueError, match=r"one of registration\.requests, seminar\.events"):
        origin_topic(name)
