"""The one table of downloadable files (MD5s, mirrors), and fetching missing files from it."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath

from ..errors import DataError
from .dataset import DATASETS
from .paths import ENV_VAR, resolve_data_dir

log = logging.getLogger(__name__)

TIMEOUT_S = 30


@dataclass(frozen=True)
class RemoteFile:
    name: str
    md5: str


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from and where they land under the data root.

    Plain files go to ``root/folder``; an ``archive`` (tar.gz) goes to ``root``, is kept there for
    :func:`verify_dataset`, and is extracted into ``root`` (it contains ``folder``).
    """

    folder: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]
    archive: bool = False

    def location(self, root: Path) -> Path:
        return root if self.archive else root / self.folder


_IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist",
        tuple(map(RemoteFile, _IDX_NAMES, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                           "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"))),
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    ),
    "fashion-mnist": Source(
        "fashion-mnist",
        tuple(map(RemoteFile, _IDX_NAMES, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                           "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"))),
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ),
    "cifar10": Source(
        "cifar-10-batches-py",
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        archive=True,
    ),
    "cifar100": Source(
        "cifar-100-python",
        (RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        ("https://www.cs.toronto.edu/~kriz/",),
        archive=True,
    ),
}


def dataset_folder(name: str, root: Path) -> Path:
    """The folder under ``root`` that holds dataset ``name``'s files."""
    return root / SOURCES[name].folder


def require_files(name: str, root: Path, needed: Sequence[str], download: bool) -> None:
    """Make sure every file in ``needed`` is in the dataset's folder, downloading it if allowed.

    Fails with a DataError saying which files are missing, where they belong and how to point
    ffneuro at a local copy.
    """
    source, folder = SOURCES[name], dataset_folder(name, root)
    missing = [n for n in needed if not (folder / n).exists()]
    if not missing:
        return
    reason = "download disabled"
    if download:
        wanted = source.files if source.archive else [f for f in source.files if f.name in missing]
        if all(_fetch(source, f, root) for f in wanted):
            if source.archive:
                for f in wanted:
                    _extract(root / f.name, root)
            missing = [n for n in needed if not (folder / n).exists()]
            if not missing:
                return
            reason = "not in the downloaded files"
        else:
            reason = "no mirror reachable"
    raise DataError(
        f"{name}: missing {', '.join(missing)} in {folder} ({reason}). "
        f"Put the files there, or point ffneuro at a local copy with --data-dir DIR or {ENV_VAR}=DIR "
        f"(DIR holding {source.folder}/)."
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(source: Source, remote: RemoteFile, root: Path) -> bool:
    """Download ``remote`` into place from the first working mirror; False if none answers.

    A file already there is kept. A download with the wrong MD5 is deleted and raises DataError.
    """
    dest = source.location(root) / remote.name
    if dest.exists():
        return True
    dest.parent.mkdir(parents=True, exist_ok=True)
    for mirror in source.mirrors:
        url = mirror + remote.name
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{remote.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            log.info("downloading %s", url)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                shutil.copyfileobj(response, out)
            actual = _md5(tmp)
            if actual != remote.md5:
                raise DataError(f"{url}: MD5 {actual} instead of {remote.md5}; the download was deleted")
            tmp.replace(dest)
            return True
        except (OSError, HTTPException) as exc:  # URLError, timeouts and HTTP errors are OSErrors
            log.warning("could not download %s: %s", url, exc)
        finally:
            tmp.unlink(missing_ok=True)
    return False


def _extract(archive: Path, root: Path) -> None:
    """Extract a tar archive into ``root``, refusing absolute paths, '..' and anything but files and folders."""
    log.info("extracting %s", archive)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith(("/", "\\")) or ".." in PurePosixPath(m.name).parts or not (m.isfile() or m.isdir()):
                    raise DataError(f"{archive}: refusing unsafe archive member {m.name!r}")
            # the "data" filter (Python >= 3.11.4) re-checks the same on extraction
            tar.extractall(root, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: cannot extract ({exc})") from exc


def verify_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, bool]:
    """MD5-check the local copies of a dataset's table files: ``{file: matches}`` (False when absent).

    Datasets without checksums in the table (synthetic, npz:PATH) give ``{}``. For CIFAR the table
    knows only the official archive, which is kept after download.
    """
    if name not in SOURCES:
        if not name.startswith("npz:"):
            DATASETS.get(name)  # unknown names raise, listing the valid ones
        return {}
    source = SOURCES[name]
    where = source.location(resolve_data_dir(data_dir))
    return {f.name: (where / f.name).is_file() and _md5(where / f.name) == f.md5 for f in source.files}
