"""`bot chains list` and `bot chains check` as an operator runs them (the typer app the lead mounts on `bot`)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cli.chains import chains_app
from tests.bot.chains.test_library import GOOD, write


def test_check_names_the_bad_file_and_exits_1(tmp_path: Path) -> None:
    folder = tmp_path / "chains"
    write(folder, "good.yaml", GOOD)
    write(folder, "bad.yaml", GOOD.replace("standup-notes", "bad-one").replace("media.name", "transcrpt"))
    result = CliRunner().invoke(chains_app, ["check", str(folder)])
    assert result.exit_code == 1
    assert "1 problem in chain files:" in result.output
    assert "chains/bad.yaml: step \"notes\": prompt: unknown variable 'transcrpt' (line 11)" in result.output


def test_check_counts_the_chains_that_are_fine(tmp_path: Path) -> None:
    good = write(tmp_path / "chains", "good.yaml", GOOD)
    result = CliRunner().invoke(chains_app, ["check", str(good)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 chain OK"
    everything = CliRunner().invoke(chains_app, ["check"], env={"CHAINS_DIR": str(tmp_path / "chains")})
    assert everything.output.strip() == "5 chains OK", "the shipped four and CHAINS_DIR's one"
    missing = CliRunner().invoke(chains_app, ["check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1
    assert "nope.yaml: no such file or folder" in missing.output


def test_list_shows_each_chain_and_which_file_replaces_a_shipped_one(tmp_path: Path) -> None:
    write(tmp_path / "chains", "digest.yaml", GOOD.replace("standup-notes", "media-digest"))
    result = CliRunner().invoke(chains_app, ["list"], env={"CHAINS_DIR": str(tmp_path / "chains")})
    assert result.exit_code == 0, result.output
    assert "media-digest (version 3) — chains/digest.yaml, replaces the shipped one" in result.output
    assert "thread-summary (version 1) — shipped" in result.output
    assert "/chain run thread-summary | /chain run summary | /chain run tldr; needs thread" in result.output
