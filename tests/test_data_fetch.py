"""Fetching on demand (downloads monkeypatched, never the network) and GSC's official split."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tarfile
import urllib.error
import wave
import zipfile

import numpy as np
import pytest
from fixtures_data import write_idx

from tclif_jax import data, testing
from tclif_jax.data import download, gsc, mnist, spiking_audio


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if args else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def offline(*args, **kwargs):
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


def md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


# ----------------------------------------------------------------------------- a fake GSC archive

FAKE_WORDS = {w: 2 for w in gsc.WORDS} | {"bed": 3, "happy": 2}  # word -> clips
TEST_LIST = ["yes/spk0_nohash_0.wav", "go/spk1_nohash_0.wav", "bed/spk2_nohash_0.wav"]
VALID_LIST = ["no/spk0_nohash_0.wav", "happy/spk1_nohash_0.wav"]


def write_wav(path, samples: np.ndarray, rate: int = 16000) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())


def make_gsc_folder(folder) -> str:
    """An extracted v0.02 archive in miniature: short clips per word, one long background
    file (2.5 s, 250 frames), the two list files, and the README files the archive has."""
    rng = np.random.default_rng(0)
    for word, n in FAKE_WORDS.items():
        for i in range(n):
            length = int(rng.integers(3000, 16001))
            write_wav(
                os.path.join(folder, word, f"spk{i}_nohash_0.wav"),
                rng.normal(0, 3000, length).clip(-32768, 32767),
            )
    write_wav(
        os.path.join(folder, gsc.BACKGROUND, "white_noise.wav"),
        rng.normal(0, 2000, 40000) * np.linspace(0.2, 1, 40000),
    )
    open(os.path.join(folder, gsc.BACKGROUND, "README.md"), "w").write("noise\n")
    open(os.path.join(folder, "README.md"), "w").write("speech commands\n")
    open(os.path.join(folder, "testing_list.txt"), "w").write("\n".join(TEST_LIST) + "\n")
    open(os.path.join(folder, "validation_list.txt"), "w").write("\n".join(VALID_LIST) + "\n")
    return str(folder)


@pytest.fixture
def gsc_raw(tmp_path):
    return make_gsc_folder(tmp_path / "data" / download.SPEECH_COMMANDS_DIR)


def expected_label(path: str) -> int:
    word = path.split("/")[0]
    if word == gsc.BACKGROUND:
        return 1
    return 2 + gsc.WORDS.index(word) if word in gsc.WORDS else 0


def test_official_split_membership_and_labels(gsc_raw):
    assert gsc.OFFICIAL_LABELS[:2] == ("_unknown_", "_silence_")
    assert gsc.OFFICIAL_LABELS[2:] == (
        "yes",
        "no",
        "up",
        "down",
        "left",
        "right",
        "on",
        "off",
        "stop",
        "go",
    )
    lists = gsc.official_split(gsc_raw)
    names = {s: lists[s][0] for s in lists}
    assert sorted(names["test"]) == sorted(TEST_LIST)
    assert sorted(names["valid"]) == sorted(VALID_LIST)
    clips = [f"{w}/spk{i}_nohash_0.wav" for w, n in FAKE_WORDS.items() for i in range(n)]
    expected_train = set(clips) - set(TEST_LIST) - set(VALID_LIST) | {
        f"{gsc.BACKGROUND}/white_noise.wav"
    }
    assert set(names["train"]) == expected_train and len(names["train"]) == len(expected_train)
    for split, (paths, labels) in lists.items():
        assert labels.dtype == np.int32
        assert labels.tolist() == [expected_label(p) for p in paths], split
    # Silence (the background file, one example) only in train; unknown words are 0.
    assert int(np.sum(lists["train"][1] == 1)) == 1
    assert not np.any(lists["valid"][1] == 1) and not np.any(lists["test"][1] == 1)
    assert lists["test"][1].tolist().count(0) == 1  # bed
    assert set(lists["train"][1].tolist()) == set(range(12))  # every class in train
    # Fixed order, shuffled (not sorted), the same at every call.
    again = gsc.official_split(gsc_raw)
    assert again["train"][0] == names["train"] and names["train"] != sorted(names["train"])


def test_official_gsc_features_cache_and_limits(gsc_raw, monkeypatch):
    root = os.path.dirname(gsc_raw)
    ds = data.load_dataset("gsc", {"dir": root})  # split="official" is the default
    lists = gsc.official_split(gsc_raw)
    assert ds.split_names == ("train", "valid", "test") and ds.num_classes == 12
    assert ds.info["split"] == "official" and ds.info["labels"][1] == "_silence_"
    assert ds.info["silence_per_split"] == {"train": 1, "valid": 0, "test": 0}
    for split in ds.split_names:
        x, y = ds.splits[split]
        np.testing.assert_array_equal(y, lists[split][1])
        assert x.shape == (len(y), 101, 40) and x.dtype == np.float32 and np.isfinite(x).all()
    # The background file: ref = max over the whole 2.5 s file, then cropped to 101 frames.
    names = lists["train"][0]
    i = names.index(f"{gsc.BACKGROUND}/white_noise.wav")
    whole = gsc.read_wav(os.path.join(gsc_raw, names[i]))
    assert whole.dtype == np.int16 and len(whole) == 40000
    recipe = gsc.recipe_of(data.default_config("gsc"))
    np.testing.assert_array_equal(
        ds.splits["train"][0][i], gsc.compute_features([whole], recipe)[0]
    )
    j = names.index("yes/spk1_nohash_0.wav")
    clip = gsc.read_wav(os.path.join(gsc_raw, names[j]))
    np.testing.assert_allclose(
        ds.splits["train"][0][j], gsc.compute_features([clip], recipe)[0], atol=1e-6
    )
    cache = os.path.join(root, "tclif_gsc_features")
    assert sorted(os.listdir(cache)) == sorted(
        os.path.basename(p) for p in ds.info["cache_files"].values()
    )
    assert all(
        os.path.basename(p).startswith("gsc_official_") for p in ds.info["cache_files"].values()
    )

    def boom(*a, **k):
        raise AssertionError("cache miss")

    monkeypatch.setattr(gsc, "_featurize_files", boom)
    again = data.load_dataset("gsc", {"dir": root})
    assert again.info["cache_hits"] == ["train", "valid", "test"]
    for s in ds.split_names:
        np.testing.assert_array_equal(again.splits[s][0], ds.splits[s][0])
    with pytest.raises(AssertionError, match="cache miss"):  # another limit, another entry
        data.load_dataset("gsc", {"dir": root, "train_limit": 5})
    monkeypatch.undo()
    small = data.load_dataset("gsc", {"dir": root, "train_limit": 5, "test_limit": 2})
    assert [len(small.splits[s][1]) for s in small.split_names] == [5, 2, 2]
    np.testing.assert_array_equal(small.splits["train"][1], lists["train"][1][:5])


def test_official_gsc_damaged_files(gsc_raw):
    root = os.path.dirname(gsc_raw)
    bad = os.path.join(gsc_raw, "up", "spk0_nohash_0.wav")
    open(bad, "wb").write(b"RIFF\x10\x00\x00\x00WAVEjunk")
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("gsc", {"dir": root})
    assert bad in str(e.value) and "fetch it again" in str(e.value)
    os.remove(bad)
    os.remove(os.path.join(gsc_raw, TEST_LIST[0]))  # a listed clip is missing
    with pytest.raises(data.DataCorruptError, match="incomplete"):
        data.load_dataset("gsc", {"dir": root})


def test_official_gsc_nonfinite_float_wav_is_named(tmp_path):
    from scipy.io import wavfile

    raw = make_gsc_folder(tmp_path / download.SPEECH_COMMANDS_DIR)
    path = os.path.join(raw, "left", "spk1_nohash_0.wav")
    audio = np.zeros(8000, np.float32)
    audio[100] = np.nan
    wavfile.write(path, 16000, audio)  # an IEEE-float WAV: read through scipy
    assert gsc.read_wav(path).dtype == np.float32
    with pytest.raises(data.DataCorruptError, match="non-finite audio in 1 file") as e:
        data.load_dataset("gsc", {"dir": str(tmp_path)})
    assert path in str(e.value)


def test_damaged_feature_cache_is_named(gsc_raw):
    root = os.path.dirname(gsc_raw)
    ds = data.load_dataset("gsc", {"dir": root, "train_limit": 3, "test_limit": 1})
    path = ds.info["cache_files"]["valid"]
    open(path, "wb").write(b"PK\x03\x04broken")
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("gsc", {"dir": root, "train_limit": 3, "test_limit": 1})
    assert path in str(e.value) and "delete it" in str(e.value)


def test_gsc_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="official, tfds"):
        data.load_dataset("gsc", {"dir": str(tmp_path), "split": "v1"})


# ----------------------------------------------------------------------------- raw archive


@pytest.fixture
def fake_archive(tmp_path, monkeypatch):
    """A .tar.gz of the fake folder, served by a patched ``download._urlretrieve``."""
    src = make_gsc_folder(tmp_path / "src")
    archive = str(tmp_path / "speech_commands_v0.02.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(os.listdir(src)):  # the archive has no top-level folder
            tar.add(os.path.join(src, entry), arcname=entry)
    calls = []

    def serve(url, path):
        calls.append((url, path))
        shutil.copyfile(archive, path)

    monkeypatch.setattr(download, "_urlretrieve", serve)
    monkeypatch.setattr(download, "SPEECH_COMMANDS_BYTES", os.path.getsize(archive))
    sha = hashlib.sha256(open(archive, "rb").read()).hexdigest()
    monkeypatch.setattr(download, "SPEECH_COMMANDS_SHA256", sha)
    return calls


def test_gsc_download_lands_where_the_loader_looks(tmp_path, fake_archive):
    root = str(tmp_path / "data")
    with pytest.raises(data.DataNotFoundError):  # download defaults to False: no fetch
        data.load_dataset("gsc", {"dir": root})
    assert fake_archive == [] and data.default_config("gsc").download is False
    ds = data.load_dataset("gsc", {"dir": root, "download": True, "train_limit": 4})
    assert fake_archive[0][0] == download.SPEECH_COMMANDS_URL
    target = os.path.join(root, download.SPEECH_COMMANDS_DIR)
    assert ds.info["raw_dir"] == target and gsc.find_raw_dir(root) == target
    assert os.path.isfile(os.path.join(target, "testing_list.txt"))
    assert not os.path.exists(os.path.join(root, "speech_commands_v0.02.tar.gz"))  # deleted
    assert sorted(os.listdir(root)) == ["speech_commands_v0.02", "tclif_gsc_features"]
    assert len(ds.splits["test"][1]) == len(TEST_LIST)
    # Present now: a second fetch is a no-op.
    assert download.fetch_speech_commands_raw(root) == target and len(fake_archive) == 1


def test_gsc_download_checks_the_archive(tmp_path, fake_archive, monkeypatch):
    monkeypatch.setattr(download, "SPEECH_COMMANDS_SHA256", "0" * 64)
    root = str(tmp_path / "data")
    with pytest.raises(data.DataCorruptError, match="SHA-256") as e:
        data.load_dataset("gsc", {"dir": root, "download": True})
    assert "deleted" in str(e.value) and os.listdir(root) == []


def test_gsc_download_offline_gives_command_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_urlretrieve", offline)
    root = str(tmp_path / "data")
    with pytest.raises(data.DownloadError) as e:
        data.load_dataset("gsc", {"dir": root, "download": True})
    msg = str(e.value)
    assert isinstance(e.value, data.DataNotFoundError)
    assert download.SPEECH_COMMANDS_URL in msg and "name resolution" in msg
    assert f"python -m tclif_jax.data.download gsc --dir {root}" in msg
    target = os.path.join(root, download.SPEECH_COMMANDS_DIR)
    assert (
        f"mkdir -p {target} && curl -L {download.SPEECH_COMMANDS_URL} | tar -xz -C {target}" in msg
    )
    assert not os.path.exists(os.path.join(root, "speech_commands_v0.02.tar.gz.part"))


# ----------------------------------------------------------------------------- SHD / SSC via tonic


@pytest.mark.parametrize("name", ["shd", "ssc"])
def test_hsd_download_through_tonic_lands_where_the_loader_looks(tmp_path, monkeypatch, name):
    tonic = pytest.importorskip("tonic")
    import tonic.download_utils as tdu

    served, classes = {}, spiking_audio.SPEC[name][3]
    cls = getattr(tonic.datasets, name.upper())
    for i, split in enumerate(download.HSD_SPLITS[name]):
        h5 = testing.write_fake_hsd(
            str(tmp_path / "src" / f"{name}_{split}.h5"), 6 + i, classes, seed=i
        )
        archive = h5 + ".zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.write(h5, os.path.basename(h5))
        served[f"{download.HSD_URL}{name}_{split}.h5.zip"] = archive
        monkeypatch.setattr(cls, f"{split}_md5", md5(archive))  # tonic checks the md5
    assert cls.base_url == download.HSD_URL
    monkeypatch.setattr(tdu, "_get_redirect_url", lambda url, max_hops=3: url)
    monkeypatch.setattr(tdu, "_urlretrieve", lambda url, path: shutil.copyfile(served[url], path))
    root = str(tmp_path / "data")
    with pytest.raises(data.DataNotFoundError):
        data.load_dataset(name, {"dir": root})  # download=False (default): nothing fetched
    assert not os.path.exists(root)
    ds = data.load_dataset(name, {"dir": root, "download": True})
    folder = os.path.join(root, name.upper())
    for i, split in enumerate(download.HSD_SPLITS[name]):
        assert ds.info["files"][split] == os.path.join(folder, f"{name}_{split}.h5")
        assert len(ds.splits[split][1]) == 6 + i
        ref = data.load_dataset(name, {"dir": str(tmp_path / "src")}).splits[split][0]
        np.testing.assert_array_equal(ds.splits[split][0], ref)


def test_hsd_download_offline_gives_command_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "_tonic_dataset", offline)
    root = str(tmp_path / "data")
    with pytest.raises(data.DownloadError) as e:
        data.load_dataset("ssc", {"dir": root, "download": True})
    msg = str(e.value)
    assert "https://zenkelab.org/datasets/ssc_train.h5.zip" in msg
    assert f"python -m tclif_jax.data.download ssc --dir {root}" in msg
    assert f"cd {root}/SSC && curl -LO https://zenkelab.org/datasets/ssc_train.h5.zip" in msg
    assert "unzip -o ssc_test.h5.zip" in msg


# ----------------------------------------------------------------------------- TFDS


def test_mnist_tfds_download_and_offline_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []
    monkeypatch.setattr(download, "_tfds_prepare", lambda name, d: calls.append((name, d)))
    cfg = {"dir": str(tmp_path), "download": True, "train_limit": 3}
    with tfds.testing.mock_data(num_examples=5):
        ds = data.load_dataset("smnist", cfg)
    assert calls == [("mnist", str(tmp_path))] and ds.info["source"] == "tfds"
    assert len(ds.splits["train"][1]) == 3

    monkeypatch.setattr(download, "_tfds_prepare", offline)
    with pytest.raises(data.DownloadError) as e:
        data.load_dataset("psmnist", cfg)
    msg = str(e.value)
    assert (
        mnist.MNIST_URL in msg
        and f"python -m tclif_jax.data.download mnist --dir {tmp_path}" in msg
    )
    assert f"{mnist.MNIST_URL}train-images-idx3-ubyte.gz" in msg  # the IDX alternative
    monkeypatch.setattr(download, "_tfds_prepare", offline)
    with pytest.raises(data.DownloadError, match="speech_commands_test_set_v0.02"):
        data.load_dataset("gsc", {"dir": str(tmp_path), "download": True, "split": "tfds"})


def test_mnist_tfds_prepare_lands_where_the_loader_looks(tmp_path, monkeypatch):
    """TFDS's real download_and_prepare, its download manager serving local IDX files."""
    tfds = pytest.importorskip("tensorflow_datasets")
    # TFDS's download_and_prepare imports it (through etils.epath), undeclared by tfds.
    pytest.importorskip("importlib_resources")
    from tensorflow_datasets.image_classification import mnist as tfds_mnist

    rng = np.random.default_rng(3)
    files = {}
    for split, n in (("train", 12), ("test", 5)):
        images, labels = mnist.IDX_FILES[split]
        # What the download manager hands over after extracting the .gz: raw IDX files.
        files[images] = write_idx(str(tmp_path / images), rng.integers(0, 256, (n, 28, 28)))
        files[labels] = write_idx(str(tmp_path / labels), rng.integers(0, 10, n))
    monkeypatch.setattr(tfds_mnist, "_TRAIN_EXAMPLES", 12)
    monkeypatch.setattr(tfds_mnist, "_TEST_EXAMPLES", 5)

    def local(self, urls):
        return {k: files[os.path.basename(u)[: -len(".gz")]] for k, u in urls.items()}

    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", local)
    root = str(tmp_path / "tfds")
    ds = data.load_dataset("smnist", {"dir": root, "download": True, "source": "tfds"})
    assert os.path.isdir(os.path.join(root, "mnist"))
    assert [len(ds.splits[s][1]) for s in ("train", "test")] == [12, 5]
    expected = mnist.read_idx(files["t10k-images-idx3-ubyte"]).reshape(5, 784, 1)
    # TFDS stores the examples in its own (hashed) order: compare as sets of images.
    assert sorted(map(bytes, ds.splits["test"][0])) == sorted(map(bytes, expected))
    again = data.load_dataset("smnist", {"dir": root, "source": "tfds"})  # no fetch needed
    np.testing.assert_array_equal(again.splits["train"][1], ds.splits["train"][1])
