"""`ffneuro profile` and `ffneuro compare` on presets and on stored runs."""
import csv
import io
import json

import pytest
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.profiler import shipped_profiles
from ffneuro.store import read_run


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "smoke.h5"
    result = run("-q", "train", "--preset", "smoke", "--out", path)  # the whole preset: seconds, and it learns
    assert result.exit_code == 0, result.output
    return path


def test_training_records_measured_activation_sparsity(smoke_run):
    rec = read_run(smoke_run)
    # the activity is measured on a network that learned (chance is 10%), not on a random one
    assert rec.groups["test"]["acc_goodness"] >= 0.5 and rec.groups["test"]["acc_linear"] >= 0.5
    act = rec.groups["activity"]
    assert act["units"] == ["unit1", "unit2"]
    assert all(0.0 <= v <= 1.0 for v in act["input_zero_fraction"])
    assert act["attrs"]["split"] == "val"


@pytest.mark.parametrize("hw", shipped_profiles())
def test_profile_preset_on_every_shipped_target(hw):
    result = run("profile", "--preset", "smoke", "--hw", hw, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["workloads"]) == {"ff_train", "bp_train", "infer_linear", "infer_goodness", "bp_infer"}
    goodness, linear = report["workloads"]["infer_goodness"], report["workloads"]["infer_linear"]
    assert goodness["supported"] and goodness["energy_j"] > linear["energy_j"] > 0


def test_truenorth_refuses_training_but_estimates_inference():
    report = json.loads(run("profile", "--preset", "smoke", "--hw", "truenorth", "--json").stdout)
    assert report["workloads"]["ff_train"]["supported"] is False
    assert "training" in report["workloads"]["ff_train"]["reason"]
    assert report["workloads"]["infer_linear"]["energy_j"] > 0


def test_profile_of_a_run_uses_its_sparsity_and_is_stored_in_the_run(smoke_run):
    result = run("profile", smoke_run, "--hw", "loihi", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    stored = read_run(smoke_run).groups["activity"]["input_zero_fraction"]
    assert report["sparsity"] == pytest.approx(list(stored))
    group = read_run(smoke_run).groups["profile-loihi"]
    assert group["target"] == "loihi"
    assert group["ff_train"]["total_energy_j"] == pytest.approx(report["workloads"]["ff_train"]["energy_j"])


def test_profile_refuses_a_run_together_with_model_flags(smoke_run):
    result = run("profile", smoke_run, "--hw", "loihi", "--filters", "4")
    assert result.exit_code == 1 and "not both" in result.stderr


def test_compare_table_csv_and_json_agree(smoke_run):
    targets = "horowitz45,loihi,truenorth"
    table = run("compare", smoke_run, "--hw", targets)
    assert table.exit_code == 0 and "not supported" in table.stdout
    rows = list(csv.DictReader(io.StringIO(run("compare", smoke_run, "--hw", targets, "--format", "csv").stdout)))
    assert [(r["target"], r["workload"]) for r in rows][:2] == [("horowitz45", "ff_train"), ("horowitz45", "bp_train")]
    assert len(rows) == 15   # 5 workloads (bp_infer too) × 3 targets
    data = json.loads(run("compare", smoke_run, "--hw", targets, "--format", "json").stdout)
    by_key = {(r["target"], r["workload"]): r for r in data["rows"]}
    assert float(rows[0]["energy_j"]) == pytest.approx(by_key[("horowitz45", "ff_train")]["energy_j"])
    assert by_key[("truenorth", "ff_train")]["energy_j"] is None


def test_compare_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp.png"
    result = run("compare", "--preset", "smoke", "--hw", "horowitz45,truenorth", "--plot", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["profile", "compare"])
def test_impossible_network_is_one_line_error_not_internal(command):
    result = run(command, "--layers", "50", "--pool", "max", "--hw", "loihi")
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 1 and len(errors) == 1, result.output
    assert "unit5" in errors[0] and "1×1 input map" in errors[0] and "internal error" not in errors[0]


def test_compare_unknown_target_lists_the_shipped_ones():
    result = run("compare", "--preset", "smoke", "--hw", "loihi,nope")
    assert result.exit_code == 1 and "truenorth" in result.stderr and "Traceback" not in result.output


@pytest.fixture(scope="module")
def bp_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "smoke-bp.h5"
    result = run("-q", "train", "--preset", "smoke", "--algo", "bp", "--readout", "linear", "--epochs", "1", "--out", path)
    assert result.exit_code == 0, result.output
    return path


def test_bp_run_activity_feeds_the_bp_estimate(smoke_run, bp_run):
    """--bp-run pairs an FF run with its BP twin: each training estimate uses its own measured activity."""
    alone = json.loads(run("profile", smoke_run, "--hw", "loihi", "--json").stdout)
    result = run("profile", smoke_run, "--hw", "loihi", "--bp-run", bp_run, "--json")
    assert result.exit_code == 0, result.output
    paired = json.loads(result.stdout)
    measured = read_run(bp_run).groups["activity"]["input_zero_fraction"]
    assert paired["bp_sparsity"] == pytest.approx(list(measured)) and alone["bp_sparsity"] is None
    assert paired["sparsity"] == alone["sparsity"]
    assert paired["workloads"]["ff_train"] == alone["workloads"]["ff_train"]
    bp_dense, bp_measured = alone["workloads"]["bp_train"], paired["workloads"]["bp_train"]
    assert bp_measured["effective_macs"] < bp_dense["effective_macs"]   # layer 2 sees ReLU zeros
    # a BP run given as RUN_FILE: its activity is the BP twin's, the FF units are dense
    solo = json.loads(run("compare", bp_run, "--hw", "loihi", "--format", "json").stdout)["reports"][0]
    assert solo["sparsity"] is None and solo["bp_sparsity"] == pytest.approx(list(measured))
    text = run("compare", smoke_run, "--hw", "loihi,h100", "--bp-run", bp_run).output
    assert "sparsity FF measured, BP measured" in text


def test_bp_run_must_be_a_bp_run_of_the_same_network(smoke_run, bp_run, tmp_path):
    for args, needle in (([smoke_run, "--bp-run", smoke_run], "is an FF run"),
                         (["--preset", "smoke", "--filters", "4", "--bp-run", bp_run], "filters 8 vs 4")):
        result = run("compare", *args, "--hw", "loihi")
        assert result.exit_code == 1, result.output
        assert needle in result.output and "Traceback" not in result.output


def test_bp_run_with_another_cfse_grouping_is_not_the_twin(tmp_path):
    """group_at shapes a cfse network (which convs are grouped by class), so a BP run grouped otherwise is
    refused as the twin; grouped alike, it pairs. (Zero epochs: the pairing needs only its config.)"""
    bp = tmp_path / "cfse-bp.h5"
    result = run("-q", "train", "--preset", "smoke", "--algo", "bp", "--arch", "cfse", "--filters", "10",
                 "--group-at", "none", "--readout", "linear", "--epochs", "0", "--train-limit", "20", "--out", bp)
    assert result.exit_code == 0, result.output
    other = run("compare", "--preset", "smoke", "--arch", "cfse", "--filters", "10", "--bp-run", bp, "--hw", "loihi")
    assert other.exit_code == 1 and "another network" in other.output and "group_at" in other.output, other.output
    same = run("compare", "--preset", "smoke", "--arch", "cfse", "--filters", "10", "--group-at", "none",
               "--bp-run", bp, "--hw", "loihi")
    assert same.exit_code == 0, same.output


def test_the_header_names_the_block_type_and_each_width():
    from cli_runner import invoke

    head = invoke("profile", "--preset", "mnist-fast-deploy", "--hw", "loihi", ok=True).output.splitlines()[0]
    assert "3 trifecta units of 20/40/80 filters 3×3" in head
    head = invoke("profile", "--preset", "mnist-small", "--hw", "loihi", ok=True).output.splitlines()[0]
    assert "3 conv units × 32 filters 5×5" in head


def test_profile_at_two_operating_points_of_one_target_stores_and_shows_both(smoke_run, tmp_path):
    """Results are keyed by the full target string (name, stack, clock): two clocks of one chip are two
    groups and two reports, not one overwritten."""
    path = tmp_path / "points.h5"
    path.write_bytes(smoke_run.read_bytes())
    targets = ("loihi", "cortex-m7@140MHz", "cortex-m7@280MHz")
    hw_args = [a for t in targets for a in ("--hw", t)]
    text = run("profile", path, *hw_args)
    assert text.exit_code == 0, text.output
    for t in targets:
        assert f"\n{t} (" in text.stdout          # each report's header names its full target
    groups = read_run(path).groups
    slow, fast = groups["profile-cortex-m7@140MHz"], groups["profile-cortex-m7@280MHz"]
    assert (slow["target"], fast["target"]) == ("cortex-m7@140MHz", "cortex-m7@280MHz")
    assert slow["infer_linear"]["total_latency_s"] > fast["infer_linear"]["total_latency_s"]
    assert "profile-cortex-m7" not in groups and groups["profile-loihi"]["target"] == "loihi"
    assert read_run(path).group_attrs("profile-cortex-m7@140MHz")["hw_target"] == "cortex-m7@140MHz"
    data = json.loads(run("profile", path, *hw_args, "--json", "--no-store").stdout)
    assert data["targets"] == list(targets) and set(data["reports"]) == set(targets)
    assert data["reports"]["cortex-m7@140MHz"]["target"] == "cortex-m7@140MHz"
    shown = run("runs", "show", path)
    assert "profiled on: cortex-m7@140MHz, cortex-m7@280MHz, loihi" in shown.stdout, shown.output
    assert json.loads(run("runs", "show", path, "--json").stdout)["profiled_on"] == sorted(targets)


def test_profile_groups_of_older_files_are_read_by_their_stored_target(smoke_run, tmp_path):
    """Before, the group was named by the profile's name alone (``profile-cortex-m7`` for cortex-m7@140MHz);
    such a group is read under the target it records, beside a new one."""
    from ffneuro.profiler.stored import stored_profiles
    from ffneuro.store import write_back

    path = tmp_path / "old.h5"
    path.write_bytes(smoke_run.read_bytes())
    write_back(path, "profile-cortex-m7", {"target": "cortex-m7@140MHz", "kind": "mcu"}, {"hw_origin": "shipped"})
    write_back(path, "profile-horowitz45", {"kind": "asic"})          # no target recorded: the group's suffix
    assert run("profile", path, "--hw", "cortex-m7@280MHz").exit_code == 0
    profiles = stored_profiles(read_run(path).groups)
    earlier = [t for t in profiles if t == "loihi"]    # another test of this module may have profiled the run
    assert list(profiles) == ["cortex-m7@140MHz", "cortex-m7@280MHz", "horowitz45", *earlier]
    assert profiles["cortex-m7@140MHz"]["kind"] == "mcu"
    assert "profiled on: " + ", ".join(profiles) in run("runs", "show", path).stdout


def test_profile_repeated_target_is_profiled_once_and_a_bad_one_is_one_line():
    data = json.loads(run("profile", "--preset", "smoke", "--hw", "loihi", "--hw", "loihi", "--json").stdout)
    assert data["target"] == "loihi"      # one target: the single-report JSON as before
    bad = run("profile", "--preset", "smoke", "--hw", "loihi", "--hw", "cortex-m7@999MHz")
    assert bad.exit_code != 0 and bad.stderr.startswith("Error:") and len(bad.stderr.strip().splitlines()) == 1
