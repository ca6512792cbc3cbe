"""Training many run files into one folder (a sweep, or a study): resumable, with a manifest.

A point whose file holds a complete run of its config is skipped, an interrupted or crashed one resumes
from its last committed epoch, a diverged one is kept as a result; every file is checked and the data
loaded before anything is written. The CLI (``ffneuro sweep``, ``ffneuro study run``) only parses and prints.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ..config import RunConfig
from ..data import data_source
from ..data.loading import load_data
from ..errors import ConfigError, Diverged, RunFileError
from ..jsonable import jsonable
from ..store.atomic import replace_file
from ..store.folder import error_reason, read_checked
from .runfile import check_out_path, config_diff, open_for_resume, resume_run, train_to_file
from .stop import StopSignals
from .trainer import Progress, _Silent

log = logging.getLogger(__name__)

def stored_plan(path: Path, config: dict) -> tuple[str, object]:
    """What to do with a point whose file exists: ("skip" | "diverged" | "resume" | "retrain", record or
    reason); raises if the file holds a complete run of another config."""
    try:
        rec = read_checked(path)
    except Exception as exc:  # noqa: BLE001  whatever a malformed file raises, the point is retrained
        why = error_reason(path, exc)
        log.warning("%s: not a readable run (%s); the point is trained again", path, why)
        return "retrain", f"not a readable run ({why})"
    diff = config_diff(rec.config, config)
    if rec.status == "complete" and not rec.pending:
        if diff:
            shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in list(diff.items())[:4])
            raise RunFileError(f"{path} holds a complete run with another config ({shown}); "
                               "use another --out-dir or --force")
        return "skip", rec
    if diff:
        return "retrain", f"{rec.status} with another config"
    if rec.status == "failed" and rec.failure == "diverged":
        return "diverged", rec
    holder = rec.writer()
    if holder is not None:
        raise RunFileError(f"{path} is being trained by {holder.describe()}; "
                           "two sweeps cannot train one point at once")
    if rec.epochs_done and rec.state_epoch != rec.epochs_done:
        return "retrain", f"{rec.status}, without resume state"
    return "resume", rec


def write_manifest(path: Path, manifest: dict) -> None:
    """Replace ``path`` with ``manifest`` as JSON, atomically (NaN as null)."""
    replace_file(path, (json.dumps(jsonable(manifest), indent=2, allow_nan=False) + "\n").encode())


def train_points(plan: Sequence[tuple[dict, RunConfig, Path]], out_dir: Path, data_dir, *, force: bool,
                 manifest: str, head: dict, progress: Progress | None = None) -> tuple[list[dict], dict[str, int]]:
    """Train every (point, config, path) of ``plan`` whose file is not a complete run of that config.

    Interrupted or crashed points resume from their last committed epoch; a point that diverged is kept
    as a result (``force`` retrains it). Checks every file and loads the data before anything is
    written, keeps a manifest (``out_dir/manifest``: ``head`` plus each point's status) up to date, and
    stops cleanly on Ctrl-C or SIGTERM. ``progress`` advances once per point. Returns (results, counts).
    """
    names = [p[2].name for p in plan]
    if len(set(names)) != len(names):
        raise ConfigError("two grid points map to the same file name; make the values differ in letters/digits")
    for _, _, path in plan:
        check_out_path(path, force=True)  # a folder in the way, or no writable ancestor
    # what each point needs (a mismatched complete run stops here), and its data, before any folder or
    # file is written: a bad dataset fails fast
    decisions = [stored_plan(path, config.to_dict()) if path.exists() and not force else ("train", None)
                 for _, config, path in plan]
    data_cache: dict[tuple, object] = {}
    for (_, config, _), (action, _) in zip(plan, decisions):
        key = (config.dataset, data_dir)
        if action in ("train", "retrain", "resume") and key not in data_cache:
            data_cache[key] = load_data(config.dataset, data_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from exc

    entries = [{"point": point, "file": path.name, "status": "pending"} for point, _, path in plan]
    state = {**head, "points": entries}
    write_manifest(out_dir / manifest, state)

    bar = progress or _Silent()
    results = []
    counts = dict.fromkeys(("trained", "resumed", "skipped", "diverged"), 0)
    bar.start("sweep", len(plan))
    try:
        with StopSignals() as stop:
            for i, ((_point, config, path), entry, (action, detail)) in enumerate(zip(plan, entries, decisions), 1):
                if action in ("skip", "diverged"):  # another sweep sharing the folder may have run it since
                    action, detail = stored_plan(path, config.to_dict()) if path.exists() else ("train", None)
                if action == "skip":
                    log.info("[%d/%d] %s: skipped (complete)", i, len(plan), path.name)
                    counts["skipped"] += 1
                    entry["status"] = "skipped"
                elif action == "diverged":
                    log.warning("[%d/%d] %s: kept as diverged (%s); --force retrains it", i, len(plan), path.name,
                                detail.message)
                    counts["diverged"] += 1
                    entry["status"] = "diverged"
                else:
                    entry["status"] = "running"
                    write_manifest(out_dir / manifest, state)
                    data = data_cache[(config.dataset, data_dir)]
                    source = data_source(config.dataset, data_dir)
                    try:
                        if action == "resume":
                            log.info("[%d/%d] %s: resuming after epoch %d (was %s)", i, len(plan), path.name,
                                     detail.epochs_done, detail.status)
                            record, resumed = open_for_resume(path, {"device": config.device})
                            summary = resume_run(record, resumed, data, stop=stop, data_source=source)
                        else:
                            if action == "retrain":
                                log.info("[%d/%d] %s: retraining (%s)", i, len(plan), path.name, detail)
                            # the sweep's bar is the only bar: a per-epoch bar would fight it on the terminal
                            summary = train_to_file(config, data, path, force=path.exists(), stop=stop,
                                                    data_source=source)
                    except Diverged as exc:
                        log.warning("[%d/%d] %s: %s", i, len(plan), path.name, exc)
                        counts["diverged"] += 1
                        entry["status"] = "diverged"
                    else:
                        counts["resumed" if action == "resume" else "trained"] += 1
                        entry["status"] = "resumed" if action == "resume" else "trained"
                        if summary is not None:
                            log.info("[%d/%d] %s: test %s", i, len(plan), path.name,
                                     ", ".join(f"{r} {a:.4f}" for r, a in summary.test.items()))
                results.append({"run": str(path), **entry})
                bar.advance()
    except BaseException as exc:
        for entry in entries:
            if entry["status"] == "running":
                entry["status"] = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            write_manifest(out_dir / manifest, state)
        except RunFileError as err:
            log.warning("%s", err)
        raise
    finally:
        bar.finish()
    write_manifest(out_dir / manifest, state)
    return results, counts
