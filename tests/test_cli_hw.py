"""`ffneuro hw list|show|validate`."""
import json

from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.profiler import shipped_profiles


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_hw_list_names_every_shipped_profile():
    result = run("hw", "list")
    assert result.exit_code == 0
    for name in shipped_profiles():
        assert name in result.stdout


def test_hw_list_json_marks_truenorth_as_inference_only():
    rows = {r["name"]: r for r in json.loads(run("hw", "list", "--json").stdout)}
    assert rows["truenorth"]["supports_training"] is False
    assert rows["loihi"]["cores"] == 128


def test_hw_show_prints_numbers_with_sources():
    result = run("hw", "show", "horowitz45")
    assert result.exit_code == 0
    assert "Horowitz" in result.stdout and "pJ" in result.stdout


def test_hw_show_json_round_trips_through_the_profile_schema():
    from ffneuro.profiler import load_profile, profile_from_dict

    data = json.loads(run("hw", "show", "loihi", "--json").stdout)
    assert profile_from_dict(data) == load_profile("loihi")


def test_hw_validate_accepts_a_shipped_file_and_names_the_bad_key(tmp_path):
    from importlib.resources import files

    good = files("ffneuro.hw_profiles") / "loihi.toml"
    assert run("hw", "validate", str(good)).exit_code == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('kind = "neuromorphic"', 'kind = "neuromorphic"\nwatts = 3'))
    result = run("hw", "validate", str(bad))
    assert result.exit_code == 1
    assert "bad.toml" in result.stderr and "watts" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_profile_lists_the_shipped_ones():
    result = run("hw", "show", "nope")
    assert result.exit_code == 1
    assert "loihi" in result.stderr
