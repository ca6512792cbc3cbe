"""``ffneuro plot curves`` and ``ffneuro plot sweep`` on tiny smoke runs."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")

import ffneuro.cli.main
from ffneuro.cli.plot import plot

PNG = b"\x89PNG\r\n\x1a\n"


def _train(path, seed, filters, *extra):
    args = ["-q", "train", "--preset", "smoke", "--epochs", "2", "--train-limit", "100", "--val-size", "50",
            "--seed", str(seed), "--filters", str(filters), *extra, "--out", str(path)]
    result = CliRunner().invoke(ffneuro.cli.main.main, args)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two FF runs (filters 4 and 8) in one folder and a BP run in another, trained once."""
    root = tmp_path_factory.mktemp("plot")
    ff, bp = root / "ff", root / "bp"
    ff.mkdir()
    bp.mkdir()
    _train(ff / "f4.h5", 0, 4)
    _train(ff / "f8.h5", 1, 8)
    _train(bp / "bp.h5", 0, 4, "--algo", "bp")
    return ff, bp


def one_error(result, *needles):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for n in needles:
        assert n in lines[0]


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG


def test_curves(runs, tmp_path):
    ff, bp = runs
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(plot, ["curves", str(ff), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert is_png(out)
    # a BP run (no unit metrics), alone and overlaid on an FF run
    for args, name in (([str(bp / "bp.h5")], "bp.png"), ([str(ff / "f4.h5"), str(bp)], "mixed.png")):
        result = CliRunner().invoke(plot, ["curves", *args, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert is_png(tmp_path / name)


def test_sweep(runs, tmp_path):
    ff, bp = runs
    out = tmp_path / "sweep.png"
    result = CliRunner().invoke(plot, ["sweep", str(ff), "--param", "filters", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert is_png(out)
    # categorical parameter, flag spelling, test metric
    for param in ("algo", "label-strength"):
        target = tmp_path / f"{param}.png"
        result = CliRunner().invoke(plot, ["sweep", str(ff), str(bp), "--param", param, "--metric", "test",
                                           "--out", str(target)])
        assert result.exit_code == 0, result.output
        assert is_png(target)


def test_errors(runs, tmp_path):
    ff, _ = runs
    out = str(tmp_path / "x.png")
    one_error(CliRunner().invoke(plot, ["sweep", str(ff), "--param", "nope", "--out", out]), "nope", "filters")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error(CliRunner().invoke(plot, ["curves", str(empty), "--out", out]), "no ffneuro runs")
    one_error(CliRunner().invoke(plot, ["sweep", str(empty), "--param", "filters", "--out", out]), "no complete")
    junk = tmp_path / "junk.h5"
    junk.write_text("not a run")
    one_error(CliRunner().invoke(plot, ["curves", str(junk), "--out", out]), "junk.h5")
    one_error(CliRunner().invoke(plot, ["curves", str(tmp_path / "missing"), "--out", out]), "no such file")
    assert not (tmp_path / "x.png").exists()


def test_sweep_series_splits_lines(runs, tmp_path, monkeypatch):
    """--series algo: one line per (algo, readout); a readout a series lacks gets no line."""
    import ffneuro.cli.plot as plotmod

    ff, bp = runs
    saved = {}
    monkeypatch.setattr(plotmod, "_save", lambda fig, plt, out: saved.setdefault("fig", fig))
    records = plotmod._records([str(ff), str(bp)], False)
    plotmod.plot_sweep(records, "filters", tmp_path / "s.png", "test", series=["algo"])
    ax = saved["fig"].axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["algo=bp linear", "algo=ff linear", "algo=ff goodness"]
    out = str(tmp_path / "x.png")
    one_error(CliRunner().invoke(plot, ["sweep", str(ff), "--param", "filters", "--series", "algoo", "--out", out]),
              "algoo")
    result = CliRunner().invoke(plot, ["sweep", str(ff), str(bp), "--param", "filters", "--series", "algo", "--out", out])
    assert result.exit_code == 0, result.output
