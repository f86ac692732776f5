"""``python -m metrics``: serve by default, ``rebuild`` as a sub-command."""

from __future__ import annotations

import pytest

from metrics import __main__ as cli


def test_no_command_serves_and_rebuild_is_a_sub_command(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[object] = []
    monkeypatch.setattr(cli, "run_service", lambda settings, create_app: served.append(settings))
    assert cli.main([]) == 0
    assert cli.main(["serve"]) == 0
    assert len(served) == 2
    args = cli._parser().parse_args(["rebuild", "--keep-previous", "--force"])
    assert (args.command, args.keep_previous, args.force) == ("rebuild", True, True)


def test_unknown_command_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["rebuilt"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
