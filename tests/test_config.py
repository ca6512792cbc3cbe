"""RunConfig validation, serialisation, the lr schedule, and presets."""
from __future__ import annotations

import dataclasses
import json

import pytest

from ffneuro.config import RunConfig
from ffneuro.data import dataset_shape
from ffneuro.errors import ConfigError, FFNeuroError
from ffneuro.presets import PRESETS, resolve_config
from ffneuro.registry import UnknownNameError


def test_defaults_are_the_paper_setting_and_valid():
    cfg = RunConfig()
    assert (cfg.layers, cfg.filters, cfg.kernel, cfg.labels, cfg.label_strength) == (3, 128, 7, "fourier1", 0.35)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.cooldown_start) == (200, 50, 5e-5, 0.5)


@pytest.mark.parametrize("overrides,message", [
    (dict(epochs=-1), "epochs"),
    (dict(label_strength=-0.1), "K"),
    (dict(label_strength=1.5), "K"),
    (dict(kernel=4), "kernel"),
    (dict(kernel=0), "kernel"),
    (dict(labels="stripes"), "fourier1"),          # the message lists the valid schemes
    (dict(goodness="l1"), "meansq"),
    (dict(algo="hebb"), "bp"),
    (dict(readout="knn"), "linear"),
    (dict(device="tpu"), "cuda"),
    (dict(precision="fp8"), "bf16"),
    (dict(pool="min"), "max"),
    (dict(pool="min"), "stride"),                  # the message lists stride too
    (dict(pool_every=0), "pool-every must be >= 1, got 0"),
    (dict(readout_from=0), "readout_from"),
    (dict(readout_from=4), "readout_from"),
    (dict(layers=0, readout_from=1), "layers"),
    (dict(filters=0), "filters"),
    (dict(batch_size=0), "batch"),
    (dict(lr=0.0), "learning rate"),
    (dict(linear_lr=-1.0), "learning rate"),
    (dict(cooldown_start=1.5), "cooldown"),
    (dict(train_limit=0), "train limit"),
    (dict(val_size=-1), "validation"),
    (dict(layers=1, readout_from=1, train_first_layer=False), "train-first-layer"),
    ({"lr": float("inf")}, "lr must be a finite number, got inf"),
    ({"linear_lr": float("inf")}, "linear_lr must be a finite number"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan"),
    ({"theta": float("nan")}, "theta must be a finite number"),
    ({"theta": float("-inf")}, "theta must be a finite number"),
    ({"label_strength": float("nan")}, "label_strength must be a finite number"),
    ({"cooldown_start": float("nan")}, "cooldown_start must be a finite number"),
    ({"lr": "0.1"}, "lr must be a finite number"),
    ({"unit_lrs": (1e-3, float("inf"), 1e-3)}, "unit_lrs must be finite"),
    ({"unit_lrs": (1e-3, float("nan"), 1e-3)}, "unit_lrs must be finite"),
])
def test_invalid_values_raise_config_error_with_useful_message(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        RunConfig(**overrides)
    assert isinstance(err.value, FFNeuroError)  # the CLI turns these into clean one-line errors


@pytest.mark.parametrize("field,bad", [("labels", "stripes"), ("goodness", "l1")])
def test_unknown_registry_names_name_the_bad_value(field, bad):
    with pytest.raises(ConfigError, match=repr(bad)):
        RunConfig(**{field: bad})


def test_boundary_values_are_accepted():
    RunConfig(label_strength=0.0, epochs=0, cooldown_start=1.0, readout_from=3, kernel=1)
    RunConfig(label_strength=1.0, cooldown_start=0.0, readout_from=1)
    RunConfig(algo="bp", layers=1, readout_from=1)  # BP trains its first layer anyway
    RunConfig(layers=1, readout_from=1, train_first_layer=True)
    assert RunConfig(pool="stride", pool_every=1).pool == "stride"
    RunConfig(layers=2, pool="avg", pool_every=5)   # more than the layers: no unit downsamples


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown config keys: bogus, lr_max"):
        RunConfig.from_dict({"epochs": 3, "bogus": 1, "lr_max": 2})


def test_network_differences_name_every_key_that_shapes_the_network():
    """The one rule for "the same network" (an FF run and its BP twin): cfse's grouping counts, what only
    trains differently does not."""
    base = RunConfig(arch="cfse", filters=10)
    assert base.network_differences(dataclasses.replace(base, algo="bp", lr=1e-3, epochs=1)) == []
    assert base.network_differences(dataclasses.replace(base, block_options={"group_at": ()})) == \
        ["block_options None vs {'group_at': ()}"]
    assert base.network_differences(dataclasses.replace(base, filters=20, kernel=5)) == \
        ["filters 10 vs 20", "kernel 7 vs 5"]


def test_to_dict_from_dict_round_trip():
    cfg = RunConfig(dataset="synthetic", layers=2, filters=8, kernel=3, pool="max", labels="onehot",
                    theta=2.5, readout_from=1, readout="linear", train_limit=100, preset="smoke", precision="bf16")
    d = cfg.to_dict()
    assert d == json.loads(json.dumps(d))  # JSON-safe, as stored in run files
    assert set(d) == {f.name for f in dataclasses.fields(RunConfig)}
    back = RunConfig.from_dict(d)
    assert back == cfg and back is not cfg


def test_from_dict_of_a_config_stored_before_pool_every():
    stored = RunConfig(pool="max").to_dict()
    del stored["pool_every"]
    assert RunConfig.from_dict(stored).pool_every == 1


def test_from_dict_still_validates():
    with pytest.raises(ConfigError):
        RunConfig.from_dict({"kernel": 2})


def test_lr_schedule_constant_then_linear_to_zero():
    cfg = RunConfig(epochs=10, cooldown_start=0.5)
    base = 0.01
    lrs = [cfg.lr_at(e, base) for e in range(10)]
    assert lrs[:6] == [base] * 6                       # epochs 0..5 at base (5 = start of cool-down)
    assert lrs[9] == pytest.approx(base / 5)
    assert lrs[5:] == pytest.approx([base * (10 - e) / 5 for e in range(5, 10)])
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))  # strictly falling during cool-down
    assert cfg.lr_at(10, base) == 0.0 and cfg.lr_at(12, base) == 0.0


def test_lr_schedule_edge_cases():
    assert RunConfig(epochs=10, cooldown_start=1.0).lr_at(9, 1.0) == 1.0
    no_plateau = RunConfig(epochs=4, cooldown_start=0.0)
    assert [no_plateau.lr_at(e, 1.0) for e in range(4)] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert RunConfig(epochs=0).lr_at(0, 0.3) == 0.3


def test_resolve_config_applies_preset_then_non_none_overrides():
    cfg = resolve_config("smoke", {"epochs": 5, "lr": None, "filters": 4, "theta": None})
    smoke = PRESETS.get("smoke")
    assert cfg.preset == "smoke"
    assert cfg.epochs == 5 and cfg.filters == 4          # overridden
    assert cfg.lr == smoke["lr"]                          # None does not override
    assert cfg.dataset == "synthetic" and cfg.kernel == smoke["kernel"]
    assert cfg.eval_batch_size == smoke["eval_batch_size"]
    assert cfg.val_size is None                          # automatic: from the dataset (data.split_sizes)


def test_resolve_config_does_not_mutate_the_preset():
    before = dict(PRESETS.get("smoke"))
    resolve_config("smoke", {"epochs": 99})
    assert PRESETS.get("smoke") == before


def test_resolve_config_without_preset_uses_defaults():
    cfg = resolve_config(None, {"epochs": 3})
    assert cfg.preset is None and cfg.epochs == 3 and cfg.filters == RunConfig().filters


def test_resolve_config_rejects_unknown_override_keys():
    with pytest.raises(ConfigError, match="nonsense"):
        resolve_config("smoke", {"nonsense": 1})


def test_resolve_config_overrides_are_validated():
    with pytest.raises(ConfigError, match="readout_from"):
        resolve_config("smoke", {"readout_from": 3})  # smoke has 2 layers


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_yields_a_valid_config(name):
    cfg = resolve_config(name, {})
    assert isinstance(cfg, RunConfig) and cfg.preset == name
    for key, value in PRESETS.get(name).items():
        assert getattr(cfg, key) == value


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_fits_its_dataset(name):
    cfg = resolve_config(name, {})
    cfg.check_shapes(*dataset_shape(cfg.dataset))  # e.g. paper-cifar10's 5×5 kernel on unit 4's 4×4 map is fine


@pytest.mark.parametrize("overrides,shape,fragments", [
    ({"kernel": 99}, (1, 28, 28), ["unit1:", "28×28 input map", "99×99 kernel", "--kernel 55 or less"]),
    ({"layers": 50, "pool": "max", "kernel": 5}, (1, 28, 28),  # 28 → 14 → 7 → 3 → 1
     ["unit5:", "1×1 input map", "--kernel 1 or less", "at most 4 layers", "--pool-every"]),
    ({"layers": 50, "pool": "max", "kernel": 1}, (1, 28, 28), ["unit5 cannot pool its 1×1 input map", "at most 4 layers"]),
    ({"layers": 6, "pool": "stride", "kernel": 1, "algo": "bp"}, (3, 32, 32), ["layer6 cannot downsample its 1×1"]),
    ({"layers": 4, "pool": "max", "kernel": 9}, (3, 32, 32), ["unit4: its 4×4 input map", "--kernel 7 or less"]),
])
def test_check_shapes_refuses_what_cannot_work(overrides, shape, fragments):
    with pytest.raises(ConfigError) as err:
        RunConfig(**overrides).check_shapes(shape)
    assert "\n" not in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_check_shapes_accepts_the_limits():
    RunConfig(kernel=55).check_shapes((1, 28, 28))                 # every weight still meets the image somewhere
    RunConfig(layers=4, pool="max", kernel=1).check_shapes((1, 28, 28))  # the last unit sees 1×1 and keeps it
    RunConfig(layers=8, pool="max", pool_every=2, kernel=3).check_shapes((3, 32, 32))  # 32,32,16,16,8,8,4,4


def test_expected_presets_exist():
    assert {"paper-mnist", "mnist-small", "smoke"} <= set(PRESETS.names())
    assert resolve_config("paper-mnist", {}).to_dict() | {"preset": None} == RunConfig().to_dict()


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(UnknownNameError) as err:
        resolve_config("paper-cifar-huge", {})
    for name in PRESETS.names():
        assert name in str(err.value)
