"""Fetch datasets into the folders the loaders search (``--config.data.download=True``).

| task | fetched through | from | lands in |
|---|---|---|---|
| smnist, psmnist | TFDS ``mnist`` | https://storage.googleapis.com/cvdf-datasets/mnist/ | ``<dir or ~/tensorflow_datasets>/mnist/`` |
| gsc, ``split="official"`` | the raw v0.02 archive (2.4 GB) | http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz | ``<dir>/speech_commands_v0.02/`` |
| gsc, ``split="tfds"`` | TFDS ``speech_commands`` | the same archive and ``speech_commands_test_set_v0.02.tar.gz`` | ``<dir or ~/tensorflow_datasets>/speech_commands/`` |
| shd, ssc | ``tonic.datasets.SHD`` / ``SSC`` | https://zenkelab.org/datasets/ (``*.h5.zip``) | ``<dir>/SHD/``, ``<dir>/SSC/`` |

``<dir>`` is ``config.dir``, else ``$TCLIF_DATA_DIR`` or ``~/tclif_data``. Nothing is
fetched unless asked. Each ``fetch_*`` goes to the network through one module-level
function (``_urlretrieve``, ``_tonic_dataset``, ``_tfds_prepare``) that tests replace.
A failed fetch raises ``DownloadError`` with the URL and the shell command that does
the same on a machine with internet. From the command line::

    python -m tclif_jax.data.download shd --dir ~/tclif_data
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tarfile
import urllib.request
import zipfile

from absl import logging

from tclif_jax.data._common import DataCorruptError, DownloadError, default_data_dir

__all__ = [
    "MNIST_URL",
    "SPEECH_COMMANDS_URL",
    "SPEECH_COMMANDS_DIR",
    "HSD_URL",
    "fetch_mnist",
    "fetch_speech_commands_raw",
    "fetch_speech_commands_tfds",
    "fetch_shd",
    "fetch_ssc",
    "fetch_hsd",
    "fetch",
]

MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEECH_COMMANDS_TEST_URL = (
    "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz"
)
# Size and SHA-256 of the archive (as TFDS's checksums.tsv records them); "" skips a check.
SPEECH_COMMANDS_BYTES = 2428923189
SPEECH_COMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
SPEECH_COMMANDS_DIR = "speech_commands_v0.02"  # the extracted archive, under <dir>
HSD_URL = "https://zenkelab.org/datasets/"
HSD_SPLITS = {"shd": ("train", "test"), "ssc": ("train", "valid", "test")}


def root_of(dir: str) -> str:
    """``dir`` with ``~`` expanded, or the default data folder when empty."""
    return os.path.expanduser(dir) if dir else default_data_dir()


# ----------------------------------------------------------------------------- network seams


def _urlretrieve(url: str, path: str) -> None:
    """Download ``url`` to ``path`` (the only network call of ``fetch_speech_commands_raw``)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as f:
        shutil.copyfileobj(response, f, length=1 << 22)


def _tonic_dataset(name: str, split: str, save_to: str):
    """Construct tonic's dataset class, which downloads and unzips into ``save_to/SHD|SSC``."""
    import tonic

    if name == "shd":
        return tonic.datasets.SHD(save_to=save_to, train=split == "train")
    return tonic.datasets.SSC(save_to=save_to, split=split)


def _tfds_prepare(name: str, data_dir: str | None) -> None:
    """``tfds.builder(name, data_dir=data_dir).download_and_prepare()``."""
    import tensorflow_datasets as tfds

    tfds.builder(name, data_dir=data_dir).download_and_prepare()


# ----------------------------------------------------------------------------- commands


def command(name: str, dir: str = "", split: str = "official") -> str:
    """The shell commands that fetch ``name`` for ``config.dir = dir`` on a machine with
    internet (our command line, and a plain curl equivalent where there is one)."""
    cli = "mnist" if name in ("smnist", "psmnist") else name
    ours = f"python -m tclif_jax.data.download {cli}" + (f" --dir {dir}" if dir else "")
    root = root_of(dir)
    if cli == "mnist":
        urls = " ".join(f"{MNIST_URL}{f}.gz" for f in MNIST_FILES)
        idx = os.path.join(root, "mnist")
        return (
            f"  {ours}\nor, without TFDS, the IDX files (read directly from {idx}):\n"
            f"  mkdir -p {idx} && cd {idx} && curl -L --remote-name-all {urls}"
        )
    if cli == "gsc" and split == "tfds":
        return f"  {ours} --split tfds"
    if cli == "gsc":
        target = os.path.join(root, SPEECH_COMMANDS_DIR)
        return (
            f"  {ours}\nor\n  mkdir -p {target} && curl -L {SPEECH_COMMANDS_URL} | "
            f"tar -xz -C {target}"
        )
    folder = os.path.join(root, cli.upper())
    zips = [f"{cli}_{s}.h5.zip" for s in HSD_SPLITS[cli]]
    return f"  {ours}\nor\n  mkdir -p {folder} && cd {folder} && " + " && ".join(
        f"curl -LO {HSD_URL}{z} && unzip -o {z}" for z in zips
    )


def _failed(what: str, url: str, dir: str, cmd: str, err: BaseException) -> DownloadError:
    if isinstance(err, ImportError):  # not the network: a package the fetcher needs
        return DownloadError(
            f"{what}: fetching {url} needs the Python module {err.name!r}, which is not "
            f"installed: pip install {err.name}. Or, on a machine with internet, run\n{cmd}"
        )
    return DownloadError(
        f"{what}: could not fetch {url} into {dir} ({type(err).__name__}: {err}).\n"
        f"On a machine with internet run\n{cmd}\nthen copy {dir} to this machine "
        f"(or point config.dir at the copy)."
    )


# ----------------------------------------------------------------------------- fetchers


def fetch_mnist(dir: str = "") -> str:
    """Prepare TFDS ``mnist`` in ``dir`` (TFDS's default folder when empty); returns it."""
    where = os.path.expanduser(dir) if dir else None
    shown = where or "~/tensorflow_datasets"
    try:
        _tfds_prepare("mnist", where)
    except Exception as e:  # noqa: BLE001 - any failure becomes one actionable error
        raise _failed("mnist", MNIST_URL, shown, command("mnist", dir), e) from e
    return shown


def fetch_speech_commands_tfds(dir: str = "") -> str:
    """Prepare TFDS ``speech_commands`` in ``dir`` (TFDS's default when empty); returns it."""
    where = os.path.expanduser(dir) if dir else None
    shown = where or "~/tensorflow_datasets"
    try:
        _tfds_prepare("speech_commands", where)
    except Exception as e:  # noqa: BLE001
        url = f"{SPEECH_COMMANDS_URL} and {SPEECH_COMMANDS_TEST_URL}"
        raise _failed("gsc", url, shown, command("gsc", dir, "tfds"), e) from e
    return shown


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def fetch_speech_commands_raw(dir: str = "") -> str:
    """Download and extract the raw Speech Commands v0.02 archive into
    ``<dir>/speech_commands_v0.02/`` (word folders, ``_background_noise_``, the two list
    files); returns that folder. The archive is checked (size, SHA-256) and deleted after
    extraction; the folder appears only once complete."""
    root = root_of(dir)
    target = os.path.join(root, SPEECH_COMMANDS_DIR)
    if os.path.isfile(os.path.join(target, "testing_list.txt")):
        return target
    os.makedirs(root, exist_ok=True)
    archive = os.path.join(root, os.path.basename(SPEECH_COMMANDS_URL))
    cmd = command("gsc", dir)
    if not os.path.isfile(archive):
        logging.info("gsc: downloading %s (2.4 GB) to %s", SPEECH_COMMANDS_URL, archive)
        try:
            _urlretrieve(SPEECH_COMMANDS_URL, archive + ".part")
        except Exception as e:  # noqa: BLE001
            if os.path.exists(archive + ".part"):
                os.remove(archive + ".part")
            raise _failed("gsc", SPEECH_COMMANDS_URL, root, cmd, e) from e
        os.replace(archive + ".part", archive)
    size = os.path.getsize(archive)
    problem = None
    if SPEECH_COMMANDS_BYTES and size != SPEECH_COMMANDS_BYTES:
        problem = f"{size} bytes, expected {SPEECH_COMMANDS_BYTES}"
    elif SPEECH_COMMANDS_SHA256 and _sha256(archive) != SPEECH_COMMANDS_SHA256:
        problem = f"SHA-256 differs from {SPEECH_COMMANDS_SHA256}"
    if problem:
        os.remove(archive)
        raise DataCorruptError(
            f"gsc: the downloaded {archive} is damaged ({problem}); it was deleted. Fetch it "
            f"again (config.download=True) or run\n{cmd}"
        )
    partial = target + ".extracting"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise DataCorruptError(
            f"gsc: cannot extract {archive} ({type(e).__name__}: {e}); delete it and fetch "
            f"it again (config.download=True), or run\n{cmd}"
        ) from e
    if not os.path.isfile(os.path.join(partial, "testing_list.txt")):
        shutil.rmtree(partial, ignore_errors=True)
        raise DataCorruptError(
            f"gsc: {archive} has no testing_list.txt at its top level; it is not the Speech "
            f"Commands v0.02 archive. Delete it and run\n{cmd}"
        )
    os.replace(partial, target)
    os.remove(archive)
    logging.info("gsc: extracted Speech Commands v0.02 into %s", target)
    return target


def fetch_hsd(name: str, dir: str = "", splits=None) -> str:
    """Download SHD or SSC (``name``) through tonic's dataset classes into ``<dir>/SHD`` or
    ``<dir>/SSC`` (tonic's layout: the ``.h5.zip`` and the ``.h5`` beside it); returns it."""
    root = root_of(dir)
    folder = os.path.join(root, name.upper())
    for split in splits or HSD_SPLITS[name]:
        h5 = os.path.join(folder, f"{name}_{split}.h5")
        if os.path.isfile(h5):
            continue
        url = f"{HSD_URL}{name}_{split}.h5.zip"
        try:
            _tonic_dataset(name, split, root)
        except Exception as e:  # noqa: BLE001
            raise _failed(name, url, root, command(name, dir), e) from e
        archive = h5 + ".zip"
        if not os.path.isfile(h5) and os.path.isfile(archive):
            # tonic skips extraction when any other .h5 already sits in the folder.
            with zipfile.ZipFile(archive) as z:
                z.extractall(folder)
        if not os.path.isfile(h5):
            raise DownloadError(
                f"{name}: fetching {url} left no {h5}; delete {folder} and run\n"
                f"{command(name, dir)}"
            )
    return folder


def fetch_shd(dir: str = "") -> str:
    """``fetch_hsd("shd", dir)``: shd_train.h5 and shd_test.h5 into ``<dir>/SHD``."""
    return fetch_hsd("shd", dir)


def fetch_ssc(dir: str = "") -> str:
    """``fetch_hsd("ssc", dir)``: ssc_{train,valid,test}.h5 into ``<dir>/SSC``."""
    return fetch_hsd("ssc", dir)


def fetch(name: str, dir: str = "", split: str = "official") -> str:
    """Fetch the files task ``name`` reads (``gsc``: ``split`` "official" or "tfds")."""
    if name in ("smnist", "psmnist", "mnist"):
        return fetch_mnist(dir)
    if name == "gsc":
        return (
            fetch_speech_commands_raw(dir)
            if split == "official"
            else (fetch_speech_commands_tfds(dir))
        )
    if name in HSD_SPLITS:
        return fetch_hsd(name, dir)
    raise ValueError(f"Nothing to fetch for {name!r}; valid: mnist, gsc, shd, ssc.")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tclif_jax.data.download", description=__doc__.split("\n")[0]
    )
    parser.add_argument("name", choices=("mnist", "gsc", "shd", "ssc"))
    parser.add_argument(
        "--dir", default="", help="data folder (default $TCLIF_DATA_DIR or ~/tclif_data)"
    )
    parser.add_argument("--split", default="official", choices=("official", "tfds"))
    args = parser.parse_args(argv)
    print(fetch(args.name, args.dir, args.split))


if __name__ == "__main__":
    main()
