"""Activity of two Loihi measurements, derived from their sources (issue 17, item 6; BENCHMARKS 15f).

    python benchmarks/loihi_activity.py --model PATH/b_cifar_pseudo_mobile_net_0.87.h5 \
        --cifar DIR/cifar-10-batches-py [--images run100|first1000] [--ntidigits PATH/ntidigits.net]

* **NxTF CIFAR-10** (``loihi-nxtf-cifar``): the tutorial converts a trained Keras network (the model file
  is in intel-nrc-ecosystem/models @ 3dc53bf, ``nxsdk_modules_ncl/dnn/tutorials/models``) into IF neurons
  with reset by subtraction, the input injected as bias currents (``(x_test * 255).astype(int)`` against
  the input layer's threshold of 255). Such a neuron under a constant drive fires at its ANN activation
  times the layer's slope, clipped to one spike a step; the conversion log (cell 32) prints each layer's
  slope (1/6 for the layers "based on saturating activation value of 6.0", then 0.38539 and 0.63403). So
  the rate-coded activity of every layer is the mean of ``clip(slope * a, 0, 1)`` over the ANN's
  activations ``a`` on the run's images (``np.random.seed(0); np.random.choice(10000, 100, replace=False)``,
  cell 45). A forward pass of the model file in numpy gives them; no timing of the run is used.
* **SLAYER NTIDIGITS** (``loihi-slayer-ntidigits``): the benchmark loops a preloaded input stream
  (``streamOnce``); ``benchmarking.py`` (``Network.writeHeader``) notes "4578 for NTIDIGITS", the packets
  of 2,048 words the full test set's stream takes per embedded CPU (``numPackets``). Each CPU's stream holds
  one time-advance word per tick and its share of the input spikes (``slayer2loihi.prepSpikeData``), so
  the packet count gives the input spikes per tick: :func:`slayer_stream_input_rate`. The hidden layers'
  rates need the recordings themselves (not in any reachable source): :func:`slayer_rates` simulates the
  network file on surrogate inputs of that rate, which brackets them (not used as the case's activity).
"""
from __future__ import annotations

import argparse
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

# the conversion log's slopes (spike rate per unit of ANN activation), by the measurement file's layer names
CIFAR_SLOPES = {**{n: 1 / 6 for n in ("conv0", "dw1", "pw1", "dw2", "pw2", "dw3", "pw3", "dw4", "pw4", "dw5")},
                "pw5": 0.3853882968644236, "avgpool": 0.6340259077446969}


def slayer_stream_input_rate(packets: int, *, samples: int, sample_length: int, lmts: int, channels: int,
                             spikes_per_packet: int = 2048, tail_ticks: int = 2000) -> float:
    """Input spikes per input channel per tick of a SLAYER-Loihi stream that fills ``packets`` packets per
    embedded CPU (``lmts`` of them share the spikes round-robin). prepSpikeData writes, per CPU, one word
    per spike and one time-advance word per tick up to its last timestamp (``samples * sample_length``
    plus the ``tail_ticks`` of its closing sentinel), rounded up to a packet plus one packet; the middle of
    that rounding is taken (it moves the result by under 0.1%)."""
    if min(packets, samples, sample_length, lmts, channels, spikes_per_packet) < 1:
        raise ValueError("every count must be at least 1")
    words = (packets - 1.5) * spikes_per_packet           # spikes + ticks of one CPU's stream
    ticks = samples * sample_length
    spikes = lmts * (words - ticks - tail_ticks)
    if spikes < 0:
        raise ValueError(f"{packets} packets hold fewer words than the {ticks} ticks of the run")
    return spikes / ticks / channels


def rates(activations: Mapping[str, np.ndarray], slopes: Mapping[str, float]) -> dict[str, float]:
    """Mean spike rate per neuron per step of each layer: ``clip(slope * a, 0, 1)`` averaged over every
    neuron and image (an IF neuron with reset by subtraction under a constant drive)."""
    return {name: float(np.clip(a * slopes.get(name, 1.0), 0.0, 1.0).mean()) for name, a in activations.items()}


def _pad_same(x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, int]:
    """TensorFlow's 'same' padding of NHWC ``x`` for a k x k kernel at stride s (the odd pixel at the
    bottom and right), and the output size."""
    size = x.shape[1]
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    a = total // 2
    return np.pad(x, ((0, 0), (a, total - a), (a, total - a), (0, 0))), out


def conv_same(x: np.ndarray, w: np.ndarray, s: int, *, depthwise: bool = False) -> np.ndarray:
    """A Keras Conv2D (``w``: k, k, Cin, Cout) or DepthwiseConv2D (``w``: k, k, C, 1) with 'same' padding."""
    k = w.shape[0]
    xp, out = _pad_same(x, k, s)
    y = 0.0
    for i in range(k):
        for j in range(k):
            patch = xp[:, i:i + s * out:s, j:j + s * out:s, :]
            y = y + (patch * w[i, j, :, 0] if depthwise else patch @ w[i, j])
    return y


def pseudo_mobilenet_activations(model: Path, images: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ReLU activations of the tutorial's pseudo-MobileNet (``images``: N, 32, 32, 3 in [0, 1]) by the
    measurement file's layer names, with ``input`` first, and the logits. BatchNorm at its moving averages."""
    import h5py

    with h5py.File(model, "r") as f:
        g = f["model_weights"]

        def w(layer: str, name: str) -> np.ndarray:
            return np.array(g[layer][layer][name + ":0"])

        def bn(x: np.ndarray, layer: str) -> np.ndarray:
            gamma, beta, mean, var = (w(layer, n) for n in ("gamma", "beta", "moving_mean", "moving_variance"))
            return (x - mean) / np.sqrt(var + 1e-3) * gamma + beta

        acts = {"input": images}
        a = np.maximum(bn(conv_same(images, w("conv1", "kernel"), 2), "conv1_bn"), 0)
        acts["conv0"] = a
        for b, s in zip(range(1, 6), (1, 2, 1, 2, 1), strict=True):
            a = np.maximum(bn(conv_same(a, w(f"conv_dw_{b}", "depthwise_kernel"), s, depthwise=True),
                              f"conv_dw_{b}_bn"), 0)
            acts[f"dw{b}"] = a
            a = np.maximum(bn(conv_same(a, w(f"conv_pw_{b}", "kernel"), 1), f"conv_pw_{b}_bn"), 0)
            acts[f"pw{b}"] = a
        n = a.shape[0]
        pooled = a.reshape(n, 2, 2, 2, 2, -1).mean(axis=(2, 4))
        acts["avgpool"] = pooled
        return acts, pooled.reshape(n, -1) @ w("dense_1", "kernel")


def slayer_rates(net: Path, spikes: np.ndarray) -> list[float]:
    """Spikes per neuron per tick of each dense layer of a SLAYER-Loihi network file (``ntidigits.net``)
    driven by ``spikes`` (ticks x inputs, 0/1): Loihi's CUBA compartment in integers (current and voltage
    decays of 4096ths, weights times 2**(6 + wgtExp), threshold vThMant * 2**6, reset to 0, refractory
    refDelay ticks), each neuron's output delayed by its layer's axonal ``delay``."""
    import h5py

    out_rates = []
    s = spikes.astype(np.int64)
    ticks = s.shape[0]
    with h5py.File(net, "r") as f:
        layers = [f["layer"][k] for k in sorted(f["layer"], key=int) if f["layer"][k]["type"][0] == b"dense"]
        for lay in layers:
            nrn = lay["neuron"]
            w = lay["weight"][()].astype(np.int64) * 2 ** (6 + int(nrn["wgtExp"][()]))
            i_decay, v_decay = int(nrn["iDecay"][()]), int(nrn["vDecay"][()])
            theta, ref = int(nrn["vThMant"][()]) * 64, int(nrn["refDelay"][()])
            n = w.shape[0]
            u, v, refractory = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
            out = np.zeros((ticks, n), np.int64)
            for t in range(ticks):
                u = (u * (4096 - i_decay)) // 4096 + w @ s[t]
                v = np.where(refractory > 0, 0, (v * (4096 - v_decay)) // 4096 + u)
                refractory = np.maximum(refractory - 1, 0)
                fired = v > theta
                out[t], v[fired], refractory[fired] = fired, 0, ref
            if "delay" in lay:
                delayed = np.zeros_like(out)
                for i, d in enumerate(lay["delay"][()].astype(int)):
                    if d < ticks:
                        delayed[d:, i] = out[:ticks - d, i]
                out = delayed
            out_rates.append(float(out.mean()))
            s = out
    return out_rates


def _cifar_test(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(directory / "test_batch", "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    x = d["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).astype(np.float64) / 255.0
    return x, np.asarray(d["labels"])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="b_cifar_pseudo_mobile_net_0.87.h5")
    ap.add_argument("--cifar", type=Path, required=True, help="a cifar-10-batches-py directory")
    ap.add_argument("--images", choices=("run100", "first1000", "first100"), default="run100")
    ap.add_argument("--ntidigits", type=Path, help="ntidigits.net: also simulate it on surrogate inputs")
    args = ap.parse_args(argv)
    x, y = _cifar_test(args.cifar)
    if args.images == "run100":   # the notebook's test subset (cell 45)
        np.random.seed(0)
        idx = np.random.choice(len(y), 100, replace=False)
    else:
        idx = np.arange(1000 if args.images == "first1000" else 100)
    acts, logits = pseudo_mobilenet_activations(args.model, x[idx])
    print(f"{args.images}: {len(idx)} images, ANN top-1 {np.mean(logits.argmax(1) == y[idx]):.2%}")
    for name, r in rates(acts, CIFAR_SLOPES).items():
        per_image = np.clip(acts[name] * CIFAR_SLOPES.get(name, 1.0), 0, 1).reshape(len(idx), -1).mean(1)
        print(f"  {name:8s} {r:.4f}  (images 10-90%: {np.percentile(per_image, 10):.4f}-{np.percentile(per_image, 90):.4f})")
    rate = slayer_stream_input_rate(4578, samples=2486, sample_length=3000, lmts=3, channels=64)
    print(f"SLAYER NTIDIGITS input: {rate:.5f} spikes per channel per tick (4578 packets, 2486 samples x 3000 ticks, 3 CPUs)")
    if args.ntidigits is not None:   # surrogate inputs at that rate: the recordings are in no reachable source
        rng, ticks = np.random.default_rng(0), 6000
        t, ch = np.arange(ticks)[:, None], np.arange(64)[None, :]
        surrogates = {"Poisson, uniform": rng.random((ticks, 64)) < rate,
                      "bursts, 1/3 of each 3000-tick sample": (rng.random((ticks, 64)) < 3 * rate) & (t % 3000 < 1000),
                      "bursts, 1/6 of each sample on 16 channels":
                          (rng.random((ticks, 64)) < 24 * rate) & (t % 3000 < 500) & (ch % 4 == 0)}
        for name, x in surrogates.items():
            r = slayer_rates(args.ntidigits, x)
            print(f"  {name}: input {x.mean():.5f}, dense1-3 " + ", ".join(f"{v:.4f}" for v in r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
