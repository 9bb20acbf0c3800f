"""Finding, verifying and downloading MNIST and Fashion-MNIST.

Every file is checked against the size and SHA-256 of its decompressed contents,
so a copy is accepted however it was compressed (Debian recompressed
Fashion-MNIST), and a bad one never takes more memory than a good one would.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from .idx import DataError, gunzip_if_compressed, parse_idx, read_decompressed, stored_size_bound
from .watchdog import Watchdog

__all__ = ["CLASS_NAMES", "DATASET_NAMES", "Dataset", "find_dataset_files", "load_dataset"]

FILE_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# SHA-256 of the decompressed contents of each file, in FILE_STEMS order.
_DIGESTS = {
    "mnist": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
    "fashion-mnist": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
SHA256 = {name: dict(zip(FILE_STEMS, d, strict=True)) for name, d in _DIGESTS.items()}

# Size in bytes of the decompressed contents of each file, in FILE_STEMS order: the same
# for both datasets (60,000 and 10,000 images of 28 x 28 bytes, and as many label bytes,
# after a header of 16 or 8 bytes). Nothing is ever decompressed beyond these sizes.
_SIZES = (47_040_016, 60_008, 7_840_016, 10_008)
SIZES = {name: dict(zip(FILE_STEMS, _SIZES, strict=True)) for name in _DIGESTS}

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}

DATASET_NAMES = tuple(SHA256)
# What each label 0..9 stands for: MNIST's digits, and Fashion-MNIST's articles as Zalando
# Research names them.
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
}  # fmt: skip

# Where Debian's package dataset-fashion-mnist installs the files. Read at call
# time, so tests can point it elsewhere.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

PathArg = str | os.PathLike[str]

TIMEOUT = 30.0  # seconds per connect or read when downloading

# The slowest download accepted, in bytes (of decompressed contents) per second. A file must
# arrive within TIMEOUT plus its decompressed size at this rate, else the mirror is given up
# for the next: 0.4 Mbit/s, below any link worth waiting on, and counted on the decompressed
# size, an upper bound of what a mirror sends (gzip sends 2 to 5 times less), so a slow but
# working link is never cut off, while a server that trickles bytes costs at most 16 minutes
# (the 47 MB train images; 31 s for a labels file), not forever. The deadline covers the
# whole request (connecting, TLS, status line, headers, body; not the DNS lookup): a watchdog
# thread shuts the connection down when it passes, whatever read is under way.
MIN_RATE = 50_000.0


class Dataset(NamedTuple):
    """Train and test splits: uint8 images of shape (n, 784), int64 labels of shape (n,)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def load_dataset(
    name: str = "mnist",
    data_dir: PathArg | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    cache_dir: PathArg | None = None,
    progress: bool = True,
) -> Dataset:
    """Load MNIST or Fashion-MNIST, verifying every file by its SHA-256.

    Looks in ``data_dir`` (holding the four files, or a ``<name>/`` subfolder
    with them), ``$FASTNN_DATA_DIR/<name>``, the cache (``cache_dir``, default
    ``$XDG_CACHE_HOME/fastnn`` or ``~/.cache/fastnn``, then ``/<name>``) and,
    for Fashion-MNIST, Debian's folder; then, if ``download``, fetches missing
    files from ``mirrors`` (default: the public ones) into the cache. A bad
    file in a folder you gave is an error; in the cache it is replaced.
    """
    _check_name(name)
    cache = _cache_root(cache_dir) / name
    looked: list[str] = []  # what was tried, for the error if nothing works
    cached: dict[str, np.ndarray] = {}
    for where, folder in _search_path(name, data_dir, cache):
        found = _files_in(folder)
        if where == "cache" and found:
            cached = _load_cache(name, found, looked)
            if len(cached) == len(FILE_STEMS):
                return _assemble(cached, folder)
            looked.append(f"cache: {folder} (missing {_missing(cached)})")
        elif not found:
            state = "no dataset files" if folder.is_dir() else "does not exist"
            looked.append(f"{where}: {folder} ({state})")
        elif len(found) < len(FILE_STEMS):
            raise DataError(
                f"{folder} ({where}) holds only part of {name}: {_missing(found)} missing. "
                "Put all four files there (.gz or uncompressed)."
            )
        else:
            return _assemble({stem: _load_file(name, stem, p) for stem, p in found.items()}, folder)

    if not download:
        raise _not_found(name, cache, looked, failures=None)
    urls = list(MIRRORS[name] if mirrors is None else mirrors)
    for stem in FILE_STEMS:
        if stem not in cached:
            cached[stem], urls = _download(name, stem, cache, urls, progress, looked)
    return _assemble(cached, cache)


def find_dataset_files(
    name: str = "mnist", data_dir: PathArg | None = None, *, cache_dir: PathArg | None = None
) -> dict[str, Path] | None:
    """The first complete local copy (file stem -> path) where load_dataset looks, or None.

    The files are not verified here.
    """
    _check_name(name)
    for _, folder in _search_path(name, data_dir, _cache_root(cache_dir) / name):
        found = _files_in(folder)
        if len(found) == len(FILE_STEMS):
            return found
    return None


def _check_name(name: str) -> None:
    if name not in SHA256:
        valid = ", ".join(repr(n) for n in DATASET_NAMES)
        raise DataError(f"unknown dataset {name!r}; valid names are {valid}.")


def _cache_root(cache_dir: PathArg | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says to ignore relative paths.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fastnn"


def _search_path(name: str, data_dir: PathArg | None, cache: Path) -> list[tuple[str, Path]]:
    """The folders to look in, in order, each with how it was chosen."""
    folders = []
    if data_dir is not None:
        data_dir = Path(data_dir).expanduser()
        if not data_dir.is_dir():
            raise DataError(f"data_dir {data_dir} is not a folder. Check the path.")
        folders += [("data_dir", data_dir), ("data_dir", data_dir / name)]
    env = os.environ.get("FASTNN_DATA_DIR")
    if env:
        if not Path(env).expanduser().is_dir():
            raise DataError(f"FASTNN_DATA_DIR={env} is not a folder. Fix it or unset it.")
        folders.append(("FASTNN_DATA_DIR", Path(env).expanduser() / name))
    folders.append(("cache", cache))
    if name == "fashion-mnist":
        folders.append(("Debian's dataset-fashion-mnist", DEBIAN_FASHION_MNIST_DIR))
    return folders


def _files_in(folder: Path) -> dict[str, Path]:
    """The dataset files present in ``folder``, compressed preferred over raw."""
    found = {}
    for stem in FILE_STEMS:
        for path in (folder / f"{stem}.gz", folder / stem):
            if path.is_file():
                found[stem] = path
                break
    return found


def _missing(present: dict) -> str:
    return ", ".join(stem for stem in FILE_STEMS if stem not in present)


def _load_file(name: str, stem: str, path: Path) -> np.ndarray:
    """Read, verify and parse one local file; DataError if it is bad."""
    data = read_decompressed(path, SIZES[name][stem], "Replace it with a good copy.")
    _verify(name, stem, data, path)
    return parse_idx(data, path)


def _load_cache(name: str, found: dict[str, Path], looked: list[str]) -> dict[str, np.ndarray]:
    """Load the good cached files; delete bad ones so they get downloaded again."""
    good = {}
    for stem, path in found.items():
        try:
            good[stem] = _load_file(name, stem, path)
        except DataError as e:
            path.unlink(missing_ok=True)
            looked.append(f"deleted a bad cached file: {e}")
    return good


def _verify(name: str, stem: str, data: bytes, source: object, advice: str = "") -> None:
    expected = SHA256[name][stem]
    actual = hashlib.sha256(data).hexdigest()
    if actual == expected:
        return
    known = [f"{n} {s}" for n, table in SHA256.items() for s, d in table.items() if d == actual]
    what = f"it is the {known[0]} file" if known else "the file is corrupt or not from this dataset"
    raise DataError(
        f"{source}: SHA-256 of the decompressed contents is {actual}, but {name} "
        f"{stem} has {expected}; {what}. {advice or 'Replace it with a good copy.'}"
    )


def _assemble(arrays: dict[str, np.ndarray], folder: Path) -> Dataset:
    """Flatten the images and pair them with their labels, checking shapes and counts."""
    parts = []
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images-idx3-ubyte"], arrays[f"{split}-labels-idx1-ubyte"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (len(images),):
            raise DataError(
                f"{folder}: the {split} files hold images of shape {images.shape} and labels "
                f"of shape {labels.shape}, expected (n, 28, 28) and (n,). Replace them."
            )
        parts += [images.reshape(len(images), 28 * 28), labels.astype(np.int64)]
    return Dataset(*parts)


def _download(
    name: str, stem: str, folder: Path, mirrors: list[str], progress: bool, looked: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Fetch one file into ``folder`` from the first mirror that serves a good copy.

    Also returns the mirrors with the one that worked first, so that a dead or
    slow mirror costs one timeout rather than one per file.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the cache folder {folder}: {e}. Pass cache_dir=.") from None
    target = folder / f"{stem}.gz"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + target.name
        try:
            data = _fetch(url, target, name, stem, progress)
        except DataError as e:  # bad contents; the message names the URL
            failures.append(str(e))
        except (OSError, http.client.HTTPException, ValueError) as e:
            # URLError's text wraps the reason in "<urlopen error ...>"; HTTPError's is clear.
            reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", e)
            failures.append(f"{url}: {reason or type(e).__name__}")
        else:
            return parse_idx(data, target), [mirror, *(m for m in mirrors if m != mirror)]
    raise _not_found(name, folder, looked, failures or ["none given (mirrors is empty)"])


_BAD_MIRROR = "This mirror serves a bad copy."


def _deadline(size: int) -> float:
    """Seconds a download of a file of ``size`` decompressed bytes may take in all."""
    return TIMEOUT + size / MIN_RATE


def _fetch(url: str, target: Path, name: str, stem: str, progress: bool) -> bytes:
    """Download ``url`` to a temporary file, renamed to ``target`` once verified.

    A DataError, naming ``url``, if the download takes longer than its deadline
    (TIMEOUT plus the file's decompressed size at MIN_RATE; connecting, the headers
    and redirects included), if more bytes come than any copy of the file can take,
    or if they decompress to more than the file's size: neither time nor memory
    depends on what the server sends.
    """
    size = SIZES[name][stem]
    limit = stored_size_bound(size)
    deadline = _deadline(size)
    start = time.monotonic()
    received = 0
    announced: int | None = None

    def too_slow() -> DataError:
        elapsed = time.monotonic() - start
        return DataError(
            f"{url}: the server is too slow: after {elapsed:.1f} s only "
            f"{received} of {announced or 'an unknown number of'} bytes had "
            f"arrived, and a download of this file may take at most "
            f"{deadline:.1f} s ({TIMEOUT:g} s, plus {MIN_RATE / 1000:g} kB/s "
            f"for its {size} bytes uncompressed)."
        )

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        chunks = []
        with os.fdopen(fd, "wb") as out, Watchdog(start + deadline) as watchdog:
            try:
                with watchdog.open(url, TIMEOUT) as response:
                    announced = getattr(response, "length", None)  # None if the server does not say
                    if announced is not None and announced > limit:
                        raise DataError(
                            f"{url}: the server announces {announced} bytes, more than any copy "
                            f"of this file can take (at most {limit}, for {size} bytes "
                            f"uncompressed). {_BAD_MIRROR}"
                        )
                    # read1 returns what one read of the socket brings, so the deadline is
                    # checked even when the server trickles bytes (read would wait for 64 KiB).
                    read = getattr(response, "read1", response.read)
                    with tqdm(
                        total=announced,
                        desc=f"{name} {target.name}",
                        unit="B",
                        unit_scale=True,
                        disable=not progress,
                    ) as bar:
                        while chunk := read(1 << 16):
                            received += len(chunk)
                            if received > limit:
                                raise DataError(
                                    f"{url}: the server sent more than {limit} bytes, more than "
                                    f"any copy of this file can take ({size} bytes "
                                    f"uncompressed). {_BAD_MIRROR}"
                                )
                            if time.monotonic() - start > deadline:
                                raise too_slow()
                            out.write(chunk)
                            chunks.append(chunk)
                            bar.update(len(chunk))
            except DataError:
                raise
            except (OSError, http.client.HTTPException, ValueError):
                # The watchdog shutting the connection down shows up as whatever the read under
                # way makes of it (a reset, an SSL error, headers ending early, a bad status line).
                if watchdog.expired():
                    raise too_slow() from None
                raise
            if watchdog.expired():  # the body may have been cut short by the watchdog
                raise too_slow()
        # A download cut short shows up here as corrupt gzip or a checksum mismatch.
        data = gunzip_if_compressed(b"".join(chunks), url, size, _BAD_MIRROR)
        _verify(name, stem, data, url, advice=_BAD_MIRROR)
        os.replace(tmp, target)
    finally:
        # On any failure or interrupt, leave no partial file (a no-op after the rename).
        Path(tmp).unlink(missing_ok=True)
    return data


def _not_found(name: str, cache: Path, looked: list[str], failures: list[str] | None) -> DataError:
    """The error for no usable copy: what was tried, and every way to fix it.

    ``failures`` says why each mirror failed, or is None if downloading is off.
    """
    problem = "downloading is off (download=False)" if failures is None else "the download failed"
    debian = (
        "install Debian's package dataset-fashion-mnist (apt install dataset-fashion-mnist), "
        f"which puts the files in {DEBIAN_FASHION_MNIST_DIR}"
    )
    fixes = [
        f"pass --data PATH (command line) or data_dir=PATH (library): a folder holding the "
        f"four files or a {name}/ subfolder with them",
        f"set FASTNN_DATA_DIR to a folder with a {name}/ subfolder holding the four files",
        *([debian] if name == "fashion-mnist" else []),
        f"put the four files in the cache folder {cache}",
        "allow downloading (download=True)"
        if failures is None
        else "connect to the network and try again",
    ]
    return DataError(
        "\n".join(
            [
                f"Cannot get the {name} dataset: no complete local copy, and {problem}.",
                *(["Looked in:", *(f"  - {note}" for note in looked)] if looked else []),
                *(["Mirrors tried:", *(f"  - {fail}" for fail in failures)] if failures else []),
                "To fix this, do one of:",
                *(f"  - {fix}" for fix in fixes),
                f"The four files: {', '.join(f'{stem}.gz' for stem in FILE_STEMS)} "
                "(or uncompressed, without .gz).",
            ]
        )
    )
