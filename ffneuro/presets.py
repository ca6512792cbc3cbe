"""Named settings (``--preset``); command-line flags override them."""
from __future__ import annotations

from .config import RunConfig
from .registry import Registry

PRESETS: Registry[dict] = Registry("preset")

# The paper's MNIST setting (Scodellaro et al., Table 1): 3 × 128 filters 7×7, Fourier set 1, K=0.35,
# Adam 5e-5, batch 50, 200 epochs with a linear cool-down from mid-training, layer 1 untrained.
PRESETS.register("paper-mnist")(dict(
    dataset="mnist", algo="ff", layers=3, filters=128, kernel=7, pool="none", labels="fourier1",
    label_strength=0.35, goodness="sumsq", train_first_layer=False, readout_from=2, readout="both",
    epochs=200, batch_size=50, lr=5e-5, cooldown_start=0.5,
))

# A CPU-friendly MNIST setting (≈15 min on 2 cores, see BENCHMARKS.md): 32 filters 5×5 with 2×2 max
# pooling after each unit; layer 1 stays a fixed random conv as in the paper; the SymBa loss and a
# larger lr, which learned fastest in a short sweep on the validation split (BENCHMARKS.md).
PRESETS.register("mnist-small")(dict(
    dataset="mnist", algo="ff", layers=3, filters=32, kernel=5, pool="max", labels="fourier1",
    label_strength=0.35, goodness="meansq", loss="symba", train_first_layer=False, readout_from=2,
    readout="both", epochs=5, batch_size=100, lr=6e-3, linear_lr=3e-3, cooldown_start=0.5,
))

# Seconds-long smoke runs on the built-in synthetic dataset (tests, demos).
PRESETS.register("smoke")(dict(
    dataset="synthetic", algo="ff", layers=2, filters=8, kernel=3, pool="none", labels="fourier1",
    label_strength=0.35, goodness="meansq", train_first_layer=True, readout_from=1, readout="both",
    epochs=2, batch_size=50, lr=3e-3, cooldown_start=0.5, val_size=200, eval_batch_size=200,
))


def resolve_config(preset: str | None, overrides: dict) -> RunConfig:
    """The preset's values, then every override that is not None; validated."""
    values = dict(PRESETS.get(preset)) if preset else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["preset"] = preset
    return RunConfig.from_dict(values)
