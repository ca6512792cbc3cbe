"""A target's numerics, read from its hardware profile: how it stores weights and activations, what
neuron runs a ReLU unit, and the limits it puts on a layer (TrueNorth's fan-in). Torch-free.

The profiles (``hw_profiles/*.toml``) give a kind, native precisions, ``[executed_as]`` and ``[mapping]``;
what they do not state as fields is derived here, and said in :attr:`TargetNumerics.assumptions`:

* neuromorphic, an integer format (Loihi, Loihi 2, SpiNNaker 2): weights of that format's bits with one
  scale per layer (Loihi's weight exponent is per synapse group); ReLU units become integrate-and-fire
  neurons (rate coding), or sigma-delta neurons when the profile says the chip has graded spikes.
* neuromorphic, ``binary`` (TrueNorth): binary crossbar connectivity with a signed 9-bit weight per axon
  type per neuron. We use two of the four axon types (an excitatory and an inhibitory copy of every
  input line), which gives ternary synapses {-a, 0, +a} per neuron (Esser et al. 2016); a needs 8 bits of
  magnitude. A neuron may then take inputs from at most axons_per_core / 2 input lines.
* mcu with int8: int8 weights per output channel (symmetric, as CMSIS-NN / TFLite Micro), int8
  activations with one scale per layer calibrated on training data.
* gpu (and cpu): floats as its ``[executed_as]`` says for the run's precision (H100: fp32 convs on TF32
  tensor cores, fp32 matmuls in fp32; a bf16 run in bf16).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..profiler.hardware import PRECISION_BITS, HardwareProfile

NEURONS = ("relu", "if", "sigma_delta")
WEIGHT_FORMATS = ("float", "int", "ternary")
#: axon copies per input line for ternary synapses on a binary crossbar (excitatory and inhibitory type)
TERNARY_AXONS_PER_INPUT = 2


@dataclass(frozen=True)
class TargetNumerics:
    """How one target runs a network: ``neuron`` (relu: one dense pass; if: rate-coded integrate-and-fire
    over T timesteps; sigma_delta: graded spikes over T), ``weights`` (float, int of ``weight_bits`` with
    per-channel or per-layer scales, ternary), activations (``activation_bits`` per layer, or float),
    the float format of each op (gpu), whether the per-sample RMS norm becomes a fixed calibrated scale,
    and the fan-in limit of one neuron (input lines), if any."""

    name: str
    kind: str
    neuron: str
    weights: str
    weight_bits: int | None = None
    per_channel: bool = False
    activation_bits: int | None = None
    conv_format: str = "fp32"
    linear_format: str = "fp32"
    fixed_norm: bool = True
    fan_in_limit: int | None = None
    assumptions: tuple[str, ...] = ()

    @property
    def timed(self) -> bool:
        """Whether the target runs the network over timesteps (spiking) rather than in one dense pass."""
        return self.neuron != "relu"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "assumptions"} | \
            {"assumptions": list(self.assumptions)}


def _graded(hw: HardwareProfile) -> bool:
    """Whether the profile says its spikes can be graded (carry a payload): Loihi 2's description and notes."""
    text = " ".join((hw.description, *hw.notes)).lower()
    return "graded spike" in text or "spikes can be graded" in text


def numerics_for(hw: HardwareProfile, run_precision: str = "fp32") -> TargetNumerics:
    """The numerics ``hw`` runs a network in (see the module docstring); a reference table is refused."""
    ints = [p for p in hw.precisions if p.startswith("int")]
    if hw.kind == "reference":
        raise ConfigError(f"{hw.name} is a reference energy table (kind reference), not a target that runs "
                          f"networks; simulate on a chip: loihi, loihi2, spinnaker2, truenorth, cortex-m7, h100")
    if hw.kind == "neuromorphic":
        if "binary" in hw.precisions:
            limit = None
            if hw.cores is not None and hw.cores.axons_per_core is not None and hw.mapping is not None \
                    and hw.mapping.axons is not None and hw.mapping.axons.value == "per_input":
                limit = int(hw.cores.axons_per_core.value_si) // TERNARY_AXONS_PER_INPUT
            return TargetNumerics(
                hw.name, hw.kind, "if", "ternary", weight_bits=9, fixed_norm=True, fan_in_limit=limit,
                assumptions=(
                    "binary crossbar with 2 of the 4 axon types (an excitatory and an inhibitory copy of each input): "
                    "ternary synapses {-a_c, 0, +a_c} per neuron (Esser et al. 2016), a_c a signed 9-bit weight "
                    "(8-bit magnitude, one quantum per layer); the bias is the neuron's leak on that quantum",
                    "a neuron reads at most axons_per_core / 2 input lines; layers with more are reported, "
                    "and simulated as if the partial sums were merged exactly (an upper bound on accuracy)",
                ))
        if not ints:
            raise ConfigError(f"{hw.name}: a neuromorphic profile without an integer or binary precision; "
                              f"precisions: {', '.join(hw.precisions)}")
        bits = max(PRECISION_BITS[p] for p in ints)
        neuron = "sigma_delta" if _graded(hw) else "if"
        how = ("sigma-delta neurons with graded spikes: each sends the change of its activation (quantised "
               f"to {bits} bits on a per-layer scale) when it is at least one quantum"
               if neuron == "sigma_delta" else
               "rate-coded integrate-and-fire neurons (threshold 1, reset by subtraction) with data-based "
               "threshold balancing")
        return TargetNumerics(
            hw.name, hw.kind, neuron, "int", weight_bits=bits, per_channel=False,
            activation_bits=bits if neuron == "sigma_delta" else None, fixed_norm=True,
            assumptions=(f"{bits}-bit weights with one scale per layer (the profile's {max(ints, key=PRECISION_BITS.get)})",
                         how))
    if hw.kind in ("mcu", "cpu") and "int8" in hw.precisions and hw.kind == "mcu":
        return TargetNumerics(
            hw.name, hw.kind, "relu", "int", weight_bits=8, per_channel=True, activation_bits=8, fixed_norm=True,
            assumptions=("int8 weights per output channel (symmetric) and int8 activations per layer "
                         "(scale from the training data's maximum), int32 accumulators and biases, as CMSIS-NN runs them",))
    conv, _ = hw.executed_precision(run_precision, "conv")
    linear, _ = hw.executed_precision(run_precision, "linear")
    for fmt in (conv, linear):
        if fmt not in ("fp32", "fp64", "tf32", "bf16", "fp16"):
            raise ConfigError(f"{hw.name}: a {run_precision} run executes in {fmt}, which simulate cannot emulate")
    return TargetNumerics(hw.name, hw.kind, "relu", "float", conv_format=conv, linear_format=linear, fixed_norm=False,
                          assumptions=(f"a {run_precision} run: convolutions in {conv}, matmuls in {linear} "
                                       "(operands rounded, fp32 accumulation), the per-sample RMS norm kept",))
