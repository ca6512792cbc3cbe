"""Choosing the device and describing the environment a run happened in."""
from __future__ import annotations

import os
import platform

import torch

from ..errors import ConfigError


def pick_device(name: str) -> torch.device:
    """``auto`` takes CUDA when available; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available")
    return torch.device(name)


def environment(device: torch.device) -> dict:
    """Versions and hardware, stored with every run so numbers can be traced to a machine."""
    import h5py
    import numpy

    from .. import __version__

    env = {
        "ffneuro": __version__, "python": platform.python_version(), "torch": str(torch.__version__),
        "numpy": numpy.__version__, "h5py": h5py.__version__, "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count() or 0,
        "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda or ""
    return env
