"""Reading a NIR file for its shapes (ffneuro/spec/nir_shapes.py, issue 18 item 9): no weight is read, what is
read is bounded by the file's size, and HDF5 tricks that would read other files are refused in one line."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")

from click.testing import CliRunner  # noqa: E402
from ffneuro.cli.main import main  # noqa: E402

from ffneuro.errors import ConfigError  # noqa: E402
from ffneuro.spec.nir_io import graph_to_spec, read_nir  # noqa: E402
from ffneuro.spec.nir_shapes import read_budget, read_nir_shapes  # noqa: E402


def conv_net(path: Path) -> Path:
    """Input (1,6,6) → Conv2d 2×1×3×3 → IF → SumPool2d → Flatten → Affine → LIF → Output, written by nir."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=np.arange(18.0).reshape(2, 1, 3, 3), stride=1, padding=1,
                           dilation=1, groups=1, bias=np.array([0.5, 0.0])),
        "if1": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.full((2, 6, 6), 2.0)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
        "fc": nir.Affine(weight=np.ones((4, 18)), bias=np.arange(4.0)),
        "lif": nir.LIF(tau=np.full(4, 0.02), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.array([1.0, 1, 1, 2])),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    keys = list(nodes)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(zip(keys, keys[1:])), type_check=False))
    return path


def linear_net(path: Path, n_in: int = 8, n_out: int = 4, *, small_weight: bool = False) -> Path:
    """Input → Linear → LIF → Output (``small_weight``: a 1×1 weight written, for a test to replace)."""
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}),
             "fc": nir.Linear(weight=np.ones((1, 1) if small_weight else (n_out, n_in), np.float32)),
             "lif": nir.LIF(tau=np.full(n_out, 0.02), r=np.ones(n_out), v_leak=np.zeros(n_out),
                            v_threshold=np.ones(n_out)),
             "output": nir.Output(output_type={"output": np.array([n_out])})}
    keys = list(nodes)
    nir.write(str(path), nir.NIRGraph(nodes=nodes, edges=list(zip(keys, keys[1:])), type_check=False))
    return path


def test_the_shapes_read_gives_the_same_spec_as_nir_read_without_reading_a_weight(tmp_path):
    path = conv_net(tmp_path / "net.nir")
    graph = read_nir_shapes(path)
    for key in ("conv", "fc"):
        w = graph.nodes[key].weight
        assert w.strides == (0,) * w.ndim and w.shape == nir.read(str(path), type_check=False).nodes[key].weight.shape
    full = graph_to_spec(nir.read(str(path), type_check=False), name="net.nir")
    assert read_nir(path) == full
    assert read_nir(path).units[0].nodes[0].bias and full.macs > 0   # the bias is read: it counts


def _fill_value_weight(path: Path, shape: tuple[int, int]) -> Path:
    """``/node/nodes/fc/weight`` replaced by a dataset of ``shape`` never written: HDF5 keeps only its fill value."""
    with h5py.File(path, "r+") as f:
        del f["node/nodes/fc/weight"]
        f.create_dataset("node/nodes/fc/weight", shape=shape, dtype="f4", chunks=(1, min(shape[1], 65536)),
                         fillvalue=0.5)
    return path


def test_a_weight_claiming_gigabytes_costs_no_memory_to_profile(tmp_path):
    """4 GiB of fill-value weight in a small file: read_nir and profile read its shape only."""
    n_in, n_out = 1 << 18, 1 << 12
    path = _fill_value_weight(linear_net(tmp_path / "bomb.nir", n_in, n_out, small_weight=True), (n_out, n_in))
    assert path.stat().st_size < 200_000
    probe = textwrap.dedent("""
        import resource, sys
        from ffneuro.spec.nir_io import read_nir
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        spec = read_nir(sys.argv[1])
        print(spec.units[0].macs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    macs, grew_kb = map(int, done.stdout.split())
    assert macs == n_in * n_out and grew_kb < 100 * 1024


def _hostile(tmp_path: Path, name: str, change) -> Path:
    path = linear_net(tmp_path / name)
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def _external_storage(tmp_path: Path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(32, dtype=np.float32).tobytes())

    def change(f):
        del f["node/nodes/fc/weight"]
        f.create_dataset("node/nodes/fc/weight", shape=(4, 8), dtype="f4", external=[(str(secret), 0, 128)])
    return change


def _virtual(tmp_path: Path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as g:
        g["x"] = np.ones(4)

    def change(f):
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(4,))
        del f["node/nodes/lif/tau"]
        f["node/nodes/lif"].create_virtual_dataset("tau", layout)
    return change


def _parameter_bomb(f):
    """A neuron's tau claiming 2 GiB (fill value): a parameter is read, so the budget refuses it."""
    del f["node/nodes/lif/tau"]
    f.create_dataset("node/nodes/lif/tau", shape=(1 << 28,), dtype="f8", chunks=(1 << 16,), fillvalue=0.02)


HOSTILE = {
    "external storage": (_external_storage, "uses external storage"),
    "virtual dataset": (_virtual, "is a virtual dataset"),
    "external link": (lambda d: lambda f: f.__setitem__("node/nodes/extra", h5py.ExternalLink(str(d / "x.h5"), "/")),
                      "is an external link"),
    "soft link": (lambda d: lambda f: f.__setitem__("node/nodes/again", h5py.SoftLink("/node/nodes/fc")),
                  "is a soft link"),
    "hard link loop": (lambda d: lambda f: f["node/nodes/fc"].__setitem__("loop", f["node"]), "a link loop"),
    "parameter fill-value bomb": (lambda d: _parameter_bomb, "is too large"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_structures_are_refused_in_one_line_naming_the_file(tmp_path, case):
    make, why = HOSTILE[case]
    path = _hostile(tmp_path, "hostile.nir", make(tmp_path))
    with pytest.raises(ConfigError) as exc:
        read_nir(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: not a readable NIR file: ") and why in message and "\n" not in message
    result = CliRunner().invoke(main, ["profile", str(path), "--hw", "loihi", "--no-store"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


def test_the_budget_follows_the_file_size_and_missing_files_are_one_line(tmp_path):
    assert read_budget(0) == 256 * 2**20 and read_budget(10**8) == 64 * 10**8
    with pytest.raises(ConfigError, match="no such NIR file"):
        read_nir_shapes(tmp_path / "absent.nir")
    (tmp_path / "text.nir").write_text("not hdf5")
    with pytest.raises(ConfigError, match="text.nir: not a readable NIR file: not an HDF5 file"):
        read_nir_shapes(tmp_path / "text.nir")
