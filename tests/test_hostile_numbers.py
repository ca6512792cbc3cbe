"""Numbers that overflow (issue 18, item 10): ``hw validate`` refuses profile values whose products
overflow or that underflow to zero, naming the file and key; deep TOML nesting is one line; the
profile report prints no null for an energy; NIR strides and pooling kernels of 0 are one-line errors."""
from __future__ import annotations

import json
import math
import re
from importlib.resources import files

import numpy as np
import pytest
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.errors import ConfigError
from ffneuro.profiler.hardware.quantities import Quantity
from ffneuro.spec.nodes import Pool2d

HOROWITZ = files("ffneuro.hw_profiles") / "horowitz45.toml"
FP32_MAC = 'mac  = { value = 4.6, unit = "pJ"'


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return errors[0]


def profile_with_mac(tmp_path, value: str, unit: str):
    text = HOROWITZ.read_text()
    assert FP32_MAC in text
    path = tmp_path / "chip.toml"
    path.write_text(text.replace(FP32_MAC, f'mac  = {{ value = {value}, unit = "{unit}"'))
    return path


@pytest.mark.parametrize("value,unit", [("1e308", "J"), ("1e308", "mJ"), ("1e300", "J"), ("5e-324", "J"),
                                        ("5e-324", "pJ"), ("1e-300", "fJ"), ("2.2e-308", "J")])
def test_hw_validate_refuses_numbers_out_of_range_naming_file_and_key(tmp_path, value, unit):
    path = profile_with_mac(tmp_path, value, unit)
    line = one_error(run("hw", "validate", path))
    assert str(path) in line and "compute.fp32.mac.value" in line, line


def test_the_range_holds_for_profiles_built_without_a_file():
    from ffneuro.profiler.hardware.quantities import MAX_SI, MIN_SI

    with pytest.raises(Exception, match="outside the range"):
        Quantity(1e308, "J", "x", "measured")
    with pytest.raises(Exception, match="outside the range"):
        Quantity(5e-324, "J", "x", "measured")
    assert Quantity(MAX_SI, "J", "x", "measured").value_si == MAX_SI
    assert Quantity(MIN_SI, "J", "x", "measured").value_si == MIN_SI


def test_the_largest_accepted_numbers_give_finite_reports(tmp_path):
    """Every energy at the top of the range: the report's energies are numbers (no overflow, no null)."""
    from ffneuro.profiler.hardware.quantities import MAX_SI

    text = HOROWITZ.read_text()
    for unit in ("pJ",):
        text = text.replace(f'unit = "{unit}"', 'unit = "J"')
    path = tmp_path / "huge.toml"
    path.write_text(re.sub(r'value = [0-9.]+, unit = "J"', f'value = {MAX_SI:g}, unit = "J"', text))
    assert run("hw", "validate", path).exit_code == 0
    result = run("profile", "--preset", "smoke", "--hw", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)

    def energies(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from energies(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from energies(v, key)
        elif key.endswith("_j") or key == "energy_j":
            yield key, value

    found = list(energies(report))
    assert any(k == "energy_j" for k, _ in found)
    for key, value in found:
        if key == "energy_j":
            assert isinstance(value, float) and math.isfinite(value), (key, value)
    result = run("compare", "--preset", "smoke", "--hw", path)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("nested", ["x = " + "[" * 3000 + "]" * 3000, "x = " + "{a=" * 3000 + "1" + "}" * 3000,
                                    "".join(f"[{'a.' * 2000}b]\n")])
def test_deeply_nested_toml_is_one_line(tmp_path, nested):
    path = tmp_path / "deep.toml"
    path.write_text('schema = "ffneuro.hw"\n' + nested + "\n")
    line = one_error(run("hw", "validate", path))
    assert str(path) in line


# ------------------------------------------------------------------------------------------------ NIR


def test_pool_kernel_and_stride_must_be_positive():
    for kernel, stride in ((0, 2), (2, 0), ((2, 0), 2), (-1, 1)):
        with pytest.raises(ConfigError, match="pool2d"):
            Pool2d((1, 4, 4), "sum", kernel, stride)
    with pytest.raises(ConfigError, match="padding"):
        Pool2d((1, 4, 4), "sum", 2, 2, -1)


def _nir_net(path, *, conv_stride=1, pool_kernel=2, pool_stride=2):
    nir = pytest.importorskip("nir")
    pooled = (4 - pool_kernel) // pool_stride + 1 if pool_stride else 2
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                           groups=1, bias=np.zeros(2)),
        "lif": nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4))),
        "pool": nir.SumPool2d(kernel_size=np.array([pool_kernel] * 2), stride=np.array([pool_stride] * 2),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, pooled, pooled])}, start_dim=0),
        "fc": nir.Affine(weight=np.ones((3, 2 * pooled * pooled)), bias=np.ones(3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    nodes["conv"].stride = np.array([conv_stride] * 2)  # as a crafted file would hold it
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "output")]
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


@pytest.mark.parametrize("kw", [{}, {"conv_stride": 0}, {"pool_kernel": 0}, {"pool_stride": 0}])
def test_nir_zero_stride_or_pool_kernel_is_one_line(tmp_path, kw):
    path = _nir_net(tmp_path / "net.nir", **kw)
    result = run("profile", path, "--hw", "loihi")
    if not kw:
        assert result.exit_code == 0, result.output
        return
    line = one_error(result)
    assert "net.nir" in line, line
