"""The console script's dispatcher: every listed subcommand exists; a missing one fails."""

from __future__ import annotations

import importlib

import pytest

from astrobayes.cli import main as cli_main


def test_every_listed_subcommand_has_a_module():
    for name in cli_main.COMMANDS:
        module = importlib.import_module(f"astrobayes.cli.{name}")
        assert callable(module.add_parser), name
    parser = cli_main.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert set(subparsers.choices) == set(cli_main.COMMANDS)


def test_missing_subcommand_module_fails_loudly():
    with pytest.raises(ImportError, match="subcommand 'nonexistent' is listed but its module"):
        cli_main.build_parser(("evidence", "nonexistent"))


def test_subcommand_module_without_add_parser_fails_loudly():
    # ``main`` itself is a module of astrobayes.cli without add_parser.
    with pytest.raises(ImportError, match="defines no add_parser"):
        cli_main.build_parser(("main",))


def test_no_command_prints_help_and_returns_2(capsys):
    assert cli_main.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_version_names_astrobayes_its_commit_and_the_numerical_stack(capsys):
    import jax

    import astrobayes
    from astrobayes.io import software_provenance

    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["--version"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"astrobayes {astrobayes.__version__} (")
    assert f"jax {jax.__version__}" in printed
    commit = (software_provenance()["source"] or {}).get("commit")
    assert (f"commit {commit[:12]}" if commit else "installed package") in printed


def test_ctrl_c_is_one_line_and_exit_code_130(capsys, monkeypatch):
    import astrobayes.cli.evidence as evidence

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(evidence, "run", interrupted)
    assert cli_main.main(["evidence", "chains.npz"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("astrobayes evidence: interrupted.")
    assert "Traceback" not in err
