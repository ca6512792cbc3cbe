"""Where datasets live on disk: explicit directory, then $FFNEURO_DATA, then the user cache."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FFNEURO_DATA"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root (one folder per dataset): ``data_dir`` > ``$FFNEURO_DATA`` > ``<cache>/ffneuro/datasets``.

    ``<cache>`` is ``$XDG_CACHE_HOME`` if set, else ``~/.cache``. Nothing is created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "ffneuro" / "datasets"
