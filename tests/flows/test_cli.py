"""The `redweb` console script's own behaviour: the command list, and quiet catalog migrations."""
from __future__ import annotations

import logging

from flows.cli import COMMANDS, build_parser, command_list, main


def test_no_command_lists_every_command_one_line_each(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    names = list(next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices)
    assert names and out == command_list(build_parser())
    for name in names:
        lines = [line for line in out.splitlines() if line.split()[:1] == [name]]
        assert len(lines) == 1 and COMMANDS[name] in lines[0], name


def test_status_on_a_new_data_root_prints_no_alembic_lines(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.delenv("REDWEB_DATABASE_URL", raising=False)
    caplog.set_level(logging.INFO)
    assert main(["status", "--data-root", str(tmp_path / "data"), "--json"]) == 0
    captured = capsys.readouterr()
    assert '"total": 0' in captured.out
    assert not [r for r in caplog.records if r.name.startswith("alembic")]
    assert "alembic" not in captured.err and "alembic" not in captured.out
