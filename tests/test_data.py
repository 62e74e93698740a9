"""Tests of tclif_jax.data: shapes, dtypes, exact values, caching, and errors, all offline."""

from __future__ import annotations

import logging
import os
import socket

import jax
import numpy as np
import pytest
from fixtures_data import write_idx

from tclif_jax import data, testing
from tclif_jax import events as events_lib
from tclif_jax.data import download, gsc, mnist, spike_store, spiking_audio, synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TCLIF_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
MNIST_DIR = os.path.join(SHARED, "mnist")
HAVE_MNIST = mnist.find_idx_dir(MNIST_DIR) == MNIST_DIR
needs_mnist = pytest.mark.skipif(
    not HAVE_MNIST,
    reason=f"real MNIST IDX files not found in {MNIST_DIR} (set TCLIF_SHARED_DATA "
    f"to the shared data folder that holds mnist/)",
)
# Known MNIST label histograms (train, test).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if args else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fake_mnist(tmp_path):
    """Tiny IDX folder: 30 train and 12 test random images."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "mnist"
    folder.mkdir()
    arrays = {}
    for split, n in (("train", 30), ("test", 12)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        img_name, lab_name = mnist.IDX_FILES[split]
        write_idx(str(folder / (img_name + ".gz")), images)
        write_idx(str(folder / lab_name), labels)  # raw: both forms in one folder
        arrays[split] = (images, labels)
    return str(folder), arrays


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_default_fields():
    assert set(data.DATASETS) == {"smnist", "psmnist", "gsc", "shd", "ssc", "delayed_cue", "digits"}
    for name in data.DATASETS:
        cfg = data.default_config(name)
        assert cfg.dir == "" and cfg.train_limit == 0 and cfg.test_limit == 0, name


@pytest.mark.parametrize("fn", [data.default_config, data.load_dataset])
def test_unknown_name_lists_valid_names(fn):
    with pytest.raises(ValueError) as e:
        fn("cifar10")
    for name in data.DATASETS:
        assert name in str(e.value)


def test_unknown_field_is_rejected():
    with pytest.raises(ValueError, match="train_limt"):
        data.load_dataset("digits", {"train_limt": 5})


# ----------------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def real_smnist():
    if not HAVE_MNIST:
        pytest.skip(f"real MNIST IDX files not found in {MNIST_DIR}")
    return data.load_dataset("smnist", {"dir": MNIST_DIR, "source": "idx"})


@needs_mnist
def test_smnist_real_idx_files(real_smnist):
    ds = real_smnist
    xtr, ytr = ds.splits["train"]
    xte, yte = ds.splits["test"]
    assert ds.split_names == ("train", "test")
    assert xtr.shape == (60000, 784, 1) and xte.shape == (10000, 784, 1)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int32 and yte.dtype == np.int32
    assert (ds.time_steps, ds.num_features, ds.num_classes) == (784, 1, 10)
    assert np.bincount(ytr, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(yte, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert ytr[0] == 5 and yte[0] == 7
    scaled = xtr[:1000].astype(np.float32) * ds.input_scale
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    assert ds.info["source"] == "idx"
    # Row-major: the first image's 28x28 grid read row by row.
    img = xtr[0, :, 0].reshape(28, 28)
    assert img[:4].sum() == 0 and img[14].sum() > 0  # blank top rows, ink in the middle


@needs_mnist
def test_smnist_limits_slice_the_head(real_smnist):
    ds = data.load_dataset("smnist", {"dir": MNIST_DIR, "train_limit": 100, "test_limit": 7})
    assert len(ds.splits["train"][1]) == 100 and len(ds.splits["test"][1]) == 7
    np.testing.assert_array_equal(ds.splits["train"][0], real_smnist.splits["train"][0][:100])
    np.testing.assert_array_equal(ds.splits["test"][1], real_smnist.splits["test"][1][:7])


@needs_mnist
def test_smnist_raw_idx_files(real_smnist, tmp_path):
    # Decompress only the head of each real file into a raw IDX with a matching header.
    n = {"train": 50, "test": 20}
    for split, names in mnist.IDX_FILES.items():
        for base in names:
            head = mnist.read_idx(os.path.join(MNIST_DIR, base + ".gz"), n[split])
            write_idx(str(tmp_path / base), head)
    ds = data.load_dataset("smnist", {"dir": str(tmp_path), "source": "idx"})
    for split in ("train", "test"):
        np.testing.assert_array_equal(ds.splits[split][0], real_smnist.splits[split][0][: n[split]])
        np.testing.assert_array_equal(ds.splits[split][1], real_smnist.splits[split][1][: n[split]])


def test_idx_reader_on_fake_folder(fake_mnist):
    folder, arrays = fake_mnist
    ds = data.load_dataset("smnist", {"dir": folder, "train_limit": 10})
    np.testing.assert_array_equal(
        ds.splits["train"][0], arrays["train"][0][:10].reshape(10, 784, 1)
    )
    np.testing.assert_array_equal(ds.splits["test"][1], arrays["test"][1])
    assert ds.input_scale == pytest.approx(1 / 255)
    # <dir>/mnist is searched too, so the parent folder works.
    assert mnist.find_idx_dir(os.path.dirname(folder)) == folder


def test_idx_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist.read_idx(str(bad))


# ----------------------------------------------------------------------------- PS-MNIST


def test_psmnist_permutation_is_seeded_saved_and_reused(fake_mnist, tmp_path):
    folder, _ = fake_mnist
    plain = data.load_dataset("smnist", {"dir": folder})
    workdir = str(tmp_path / "run")
    ds = data.load_dataset("psmnist", {"dir": folder, "permutation_seed": 3}, workdir=workdir)
    perm = np.load(os.path.join(workdir, "permutation.npy"))
    np.testing.assert_array_equal(np.sort(perm), np.arange(784))  # a true permutation
    assert not np.array_equal(perm, np.arange(784))
    np.testing.assert_array_equal(perm, mnist.permutation(3)[0])  # same seed, same order
    assert not np.array_equal(perm, mnist.permutation(4)[0])
    for split in ("train", "test"):
        np.testing.assert_array_equal(ds.splits[split][0], plain.splits[split][0][:, perm])
        np.testing.assert_array_equal(ds.splits[split][1], plain.splits[split][1])
    assert ds.info["permutation_loaded"] is False

    # A saved permutation wins over the seed, and the disagreement is recorded.
    again = data.load_dataset("psmnist", {"dir": folder, "permutation_seed": 99}, workdir=workdir)
    assert again.info["permutation_loaded"] is True and "differs" in again.info["permutation_note"]
    np.testing.assert_array_equal(again.splits["train"][0], ds.splits["train"][0])


def test_psmnist_rejects_a_corrupt_saved_permutation(fake_mnist, tmp_path):
    folder, _ = fake_mnist
    np.save(tmp_path / "permutation.npy", np.zeros(784, np.int64))
    with pytest.raises(ValueError, match="not a permutation"):
        data.load_dataset("psmnist", {"dir": folder}, workdir=str(tmp_path))


# ----------------------------------------------------------------------------- TFDS (mocked)


@pytest.fixture
def tfds_mock():
    tfds = pytest.importorskip("tensorflow_datasets")

    def mock(n):
        return tfds.testing.mock_data(num_examples=n)

    return mock


def test_smnist_and_psmnist_from_mocked_tfds(tfds_mock, tmp_path):
    cfg = {"dir": str(tmp_path), "train_limit": 5}  # no IDX there -> TFDS
    with tfds_mock(8):
        ds = data.load_dataset("smnist", cfg)
        ps = data.load_dataset("psmnist", dict(cfg, source="tfds"), workdir=str(tmp_path / "w"))
    assert ds.info["source"] == "tfds"
    xtr, ytr = ds.splits["train"]
    assert xtr.shape == (5, 784, 1) and ds.splits["test"][0].shape == (8, 784, 1)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int32
    assert ytr.min() >= 0 and ytr.max() <= 9
    assert 0 <= xtr.min() and xtr.max() * ds.input_scale <= 1.0
    perm = np.load(tmp_path / "w" / "permutation.npy")
    np.testing.assert_array_equal(ps.splits["train"][0], xtr[:, perm])


def test_gsc_features_from_mocked_tfds_and_cache(tfds_mock, tmp_path, monkeypatch):
    cfg = {"dir": str(tmp_path), "test_limit": 4, "split": "tfds"}
    with tfds_mock(6):
        ds = data.load_dataset("gsc", cfg)
    assert ds.split_names == ("train", "valid", "test") and ds.num_classes == 12
    assert [len(ds.splits[s][1]) for s in ds.split_names] == [6, 4, 4]
    for x, y in ds.splits.values():
        assert x.shape[1:] == (101, 40) and x.dtype == np.float32 and np.isfinite(x).all()
        assert y.dtype == np.int32 and 0 <= y.min() and y.max() <= 11
        flat = x.reshape(len(x), -1).astype(np.float64)
        np.testing.assert_allclose(flat.mean(1), 0.0, atol=1e-5)
        np.testing.assert_allclose(flat.std(1, ddof=1), 1.0, atol=1e-5)
    assert ds.info["cache_hits"] == []
    cache_dir = os.path.join(str(tmp_path), "tclif_gsc_features")
    assert sorted(os.listdir(cache_dir)) == sorted(
        os.path.basename(p) for p in ds.info["cache_files"].values()
    )

    # Second load: neither TFDS nor the feature code may run.
    def boom(*a, **k):
        raise AssertionError("cache miss")

    monkeypatch.setattr(gsc, "compute_features", boom)
    monkeypatch.setattr(gsc, "_read_split", boom)
    again = data.load_dataset("gsc", cfg)
    assert again.info["cache_hits"] == ["train", "valid", "test"]
    for s in ds.split_names:
        np.testing.assert_array_equal(again.splits[s][0], ds.splits[s][0])
        np.testing.assert_array_equal(again.splits[s][1], ds.splits[s][1])
    # Another recipe or limit is another cache entry.
    with pytest.raises(AssertionError, match="cache miss"):
        data.load_dataset("gsc", dict(cfg, n_mels=20))


@pytest.mark.filterwarnings("ignore:n_fft=480 is too large")
@pytest.mark.slow  # librosa's first import compiles numba kernels (~25 s)
def test_gsc_features_match_librosa_recipe():
    librosa = pytest.importorskip("librosa")
    recipe = gsc.recipe_of(data.default_config("gsc"))
    np.testing.assert_allclose(
        gsc.mel_basis(recipe),
        librosa.filters.mel(sr=16000, n_fft=480, n_mels=40, fmin=40.0, fmax=4000.0),
        atol=1e-8,
    )
    rng = np.random.default_rng(0)
    # Full 1 s, short (padded), long (cropped), tiny, and silent clips.
    clips = [
        (rng.normal(0, 2000, n) * np.hanning(n)).astype(np.int16) for n in (16000, 9000, 17000, 300)
    ] + [np.zeros(16000, np.int16)]
    feats = gsc.compute_features(clips, recipe, chunk=3)
    assert feats.shape == (5, 101, 40)
    for clip, f in zip(clips, feats):
        m = librosa.feature.melspectrogram(
            y=clip.astype(np.float32) / 32768,
            sr=16000,
            n_fft=480,
            hop_length=160,
            power=1.0,
            n_mels=40,
            fmin=40.0,
            fmax=4000.0,
            pad_mode="reflect",
        )
        s = librosa.power_to_db(m, ref=np.max)
        s = np.hstack([s, np.zeros((40, max(0, 101 - s.shape[1])))])[:, :101]
        if s.std(ddof=1) != 0:
            s = (s - s.mean()) / s.std(ddof=1)
        np.testing.assert_allclose(f, s.T, atol=2e-5)
    assert np.all(feats[-1] == 0.0)  # silent clip: std 0, left as is


# ----------------------------------------------------------------------------- SHD / SSC


def test_shd_binning_closed_form(tmp_path, caplog):
    # Edges e_j = 1.4 j / 249; np.digitize gives k for e_{k-1} <= t < e_k.
    times = [
        np.array(
            [0.0, 0.001, 0.005, 0.0057, 0.7, 1.3999, np.nan, np.inf, -np.inf, 1.4, -0.01, 0.5]
        ),
        np.array([]),  # a silent sample (ragged, empty)
        np.array([0.3, 0.3]),
    ]
    units = [
        np.array([3, 3, 3, 4, 10, 699, 1, 2, 2, 5, 6, 700]),  # 700 is not a channel
        np.array([]),
        np.array([0, 0]),
    ]
    for split in ("train", "test"):
        testing.write_hsd(
            str(tmp_path / f"shd_{split}.h5"), times, units, [4, 0, 19], time_dtype=np.float64
        )
    caplog.set_level(logging.INFO, logger="absl")
    ds = data.load_dataset("shd", {"dir": str(tmp_path)})
    x, y = ds.splits["train"]
    assert x.shape == (3, 250, 700) and x.dtype == np.uint8
    assert y.dtype == np.int32 and y.tolist() == [4, 0, 19] and ds.num_classes == 20
    expected = np.zeros((3, 250, 700), np.int64)
    expected[0, 1, 3] = 3  # 0, 1 ms and 5 ms share bin 1 (width 5.62 ms) and add up
    expected[0, 2, 4] = 1  # 5.7 ms >= e_1
    expected[0, 125, 10] = 1  # 0.7 s / (1.4 / 249) = 124.5
    expected[0, 249, 699] = 1  # the last bin ends at 1.4 s (exclusive)
    expected[2, 54, 0] = 2  # 0.3 s -> 53.36 -> bin 54, twice
    np.testing.assert_array_equal(x, expected)
    assert x[:, 0].sum() == 0  # as in the official code, step 0 only holds t < 0
    assert ds.info["dropped"]["train"] == {"nan": 1, "inf": 2, "outside_window": 2, "bad_unit": 1}
    assert ds.info["dropped_total"]["inf"] == 4  # train + test
    lines = [r.getMessage() for r in caplog.records if "dropped spikes" in r.getMessage()]
    assert len(lines) == 1 and "nan=1" in lines[0] and "outside_window=2" in lines[0]


def test_binning_matches_official_digitize_on_random_data(tmp_path):
    path = testing.write_fake_hsd(
        str(tmp_path / "SHD" / "shd_train.h5"),
        40,
        20,
        seed=1,
        nan_times=3,
        inf_times=2,
        late_times=4,
    )
    testing.write_fake_hsd(str(tmp_path / "SHD" / "shd_test.h5"), 10, 20, seed=2)
    ds = data.load_dataset("shd", {"dir": str(tmp_path), "test_limit": 4})  # tonic's SHD/ layout
    import h5py

    with h5py.File(path, "r") as f:
        times, units = f["spikes/times"][:], f["spikes/units"][:]
    expected = np.zeros((40, 250, 700), np.int64)
    edges = np.linspace(0, 1.4, 250)
    for i, (t, u) in enumerate(zip(times, units)):
        ok = np.isfinite(t) & (t >= 0) & (t < 1.4)
        np.add.at(expected[i], (np.digitize(t[ok], edges), u[ok].astype(int)), 1)
    np.testing.assert_array_equal(ds.splits["train"][0], expected)
    assert ds.info["dropped"]["train"] == {"nan": 3, "inf": 2, "outside_window": 4, "bad_unit": 0}
    assert len(ds.splits["test"][1]) == 4
    # The vectorised digitize agrees with np.digitize at and around every edge.
    probe = np.concatenate(
        [
            edges,
            np.nextafter(edges, -1),
            np.nextafter(edges, 2),
            np.random.default_rng(0).random(10_000) * 1.4,
        ]
    )
    np.testing.assert_array_equal(
        spike_store.digitize_uniform(probe, edges), np.digitize(probe, edges)
    )


def test_fake_files_are_learnable(tmp_path):
    # Demos train on these: a nearest-class-mean decoder on channel histograms must work.
    testing.write_fake_hsd(str(tmp_path / "shd_train.h5"), 100, 20, seed=3)
    testing.write_fake_hsd(str(tmp_path / "shd_test.h5"), 40, 20, seed=4)
    ds = data.load_dataset("shd", {"dir": str(tmp_path)})
    (xtr, ytr), (xte, yte) = ds.splits["train"], ds.splits["test"]
    means = np.stack([xtr[ytr == k].sum(1).mean(0) for k in range(20)])
    pred = np.argmin(((xte.sum(1)[:, None].astype(float) - means[None]) ** 2).sum(-1), 1)
    assert np.mean(pred == yte) >= 0.9


def test_counts_above_255_use_uint16_unclipped():
    x, dropped = spiking_audio.bin_spikes([np.full(300, 0.5)], [np.full(300, 7)])
    assert x.dtype == np.uint16 and x[0, 89, 7] == 300 and x.sum() == 300
    assert sum(dropped.values()) == 0


def test_ssc_has_valid_split_and_35_classes(tmp_path):
    for split, n in (("train", 12), ("valid", 5), ("test", 6)):
        testing.write_fake_hsd(str(tmp_path / f"ssc_{split}.h5"), n, 35, seed=n)
    ds = data.load_dataset("ssc", {"dir": str(tmp_path), "train_limit": 10})
    assert ds.split_names == ("train", "valid", "test") and ds.num_classes == 35
    assert [len(ds.splits[s][1]) for s in ds.split_names] == [10, 5, 6]
    assert ds.splits["valid"][0].shape == (5, 250, 700)


def test_fake_file_is_readable_by_tonic(tmp_path):
    tonic = pytest.importorskip("tonic")
    folder = tmp_path / "SHD"
    testing.write_fake_hsd(str(folder / "shd_train.h5"), 6, 20, seed=0)
    (folder / "shd_train.h5.zip").write_bytes(
        b""
    )  # tonic checks the archive exists, else downloads
    ds = tonic.datasets.SHD(save_to=str(tmp_path), train=True)
    events, label = ds[2]
    assert len(ds) == 6 and len(ds.classes) == 20
    with __import__("h5py").File(folder / "shd_train.h5", "r") as f:
        np.testing.assert_allclose(events["t"], np.floor(f["spikes/times"][2] * 1e6), atol=1)
        np.testing.assert_array_equal(events["x"], f["spikes/units"][2])
        assert label == f["labels"][2]


# ----------------------------------------------------------------------------- SHD / SSC events


def read_h5(path):
    import h5py

    with h5py.File(path, "r") as f:
        return f["spikes/times"][:], f["spikes/units"][:]


def test_spike_events_bin_bit_identical_to_bin_spikes(tmp_path):
    # Ragged samples, an empty one, NaN/inf/late times, a bad unit; read in small chunks.
    path = testing.write_fake_hsd(
        str(tmp_path / "shd_train.h5"), 90, 20, seed=5, nan_times=4, inf_times=3, late_times=5
    )
    times, units = read_h5(path)
    times[7], units[7] = np.zeros(0, np.float32), np.zeros(0, np.uint16)
    units[3][0] = 700
    shuffle = np.random.default_rng(1).permutation(len(times[0]))  # spikes out of time order
    times[0], units[0] = times[0][shuffle], units[0][shuffle]
    testing.write_hsd(path, times, units, np.arange(90) % 20)
    events, labels, dropped = spiking_audio.read_events(path, chunk=16)
    ref, ref_dropped = spiking_audio.bin_spikes(times, units)
    assert dropped == ref_dropped and dropped["bad_unit"] == 1 and dropped["nan"] == 4
    assert events.shape == ref.shape and events.dtype == ref.dtype == np.uint8
    assert events.nbytes == ref.nbytes and events.events_nbytes < ref.nbytes / 50
    assert labels.dtype == np.int32 and labels.tolist() == (np.arange(90) % 20).tolist()
    np.testing.assert_array_equal(np.asarray(events), ref)
    idx = np.random.default_rng(0).permutation(90)[:33]  # a shuffled batch
    np.testing.assert_array_equal(events[idx], ref[idx])
    np.testing.assert_array_equal(events[np.array([5, 5, 7, -1])], ref[[5, 5, 7, -1]])
    np.testing.assert_array_equal(events[4], ref[4])
    np.testing.assert_array_equal(events[10:20:3], ref[10:20:3])
    np.testing.assert_array_equal(events[idx, 100:], ref[idx, 100:])
    np.testing.assert_array_equal(events.subset(idx)[2:5], ref[idx[2:5]])
    assert events[np.zeros(0, np.int64)].shape == (0, 250, 700)
    with pytest.raises(IndexError):
        events[np.array([90])]
    # A limit keeps the head; counts above 255 switch to uint16 exactly as bin_spikes.
    head, _, _ = spiking_audio.read_events(path, 10)
    np.testing.assert_array_equal(np.asarray(head), ref[:10])
    loud = [np.full(300, 0.5), np.array([0.1, 0.1])]
    testing.write_hsd(str(tmp_path / "loud.h5"), loud, [np.full(300, 7), np.array([3, 3])], [0, 1])
    loud_events, _, _ = spiking_audio.read_events(str(tmp_path / "loud.h5"))
    loud_ref, _ = spiking_audio.bin_spikes(loud, [np.full(300, 7), np.array([3, 3])])
    assert loud_events.dtype == loud_ref.dtype == np.uint16
    np.testing.assert_array_equal(loud_events[[1, 0]], loud_ref[[1, 0]])
    # 300 spikes in one step but on 300 channels: no cell above 255, so still uint8.
    busy = ([np.full(300, 0.5)], [np.arange(300)])
    testing.write_hsd(str(tmp_path / "busy.h5"), *busy, [0])
    busy_events, _, _ = spiking_audio.read_events(str(tmp_path / "busy.h5"))
    assert busy_events.dtype == spiking_audio.bin_spikes(*busy)[0].dtype == np.uint8
    np.testing.assert_array_equal(busy_events[0], spiking_audio.bin_spikes(*busy)[0][0])


@pytest.mark.parametrize(
    "name,splits", [("shd", ("train", "test")), ("ssc", ("train", "valid", "test"))]
)
def test_stream_modes_give_the_same_batches(tmp_path, name, splits):
    for i, split in enumerate(splits):
        classes = spiking_audio.SPEC[name][3]
        testing.write_fake_hsd(str(tmp_path / f"{name}_{split}.h5"), 24 + i, classes, seed=i)
    cfg = {"dir": str(tmp_path), "train_limit": 20}
    auto = data.load_dataset(name, cfg)  # tiny: dense
    lazy = data.load_dataset(name, dict(cfg, stream="events"))
    small_bound = data.load_dataset(name, dict(cfg, dense_max_gb=0.001))  # auto streams
    assert auto.info["stream"] == "dense" and isinstance(auto.splits["train"][0], np.ndarray)
    assert lazy.info["stream"] == small_bound.info["stream"] == "events"
    assert isinstance(lazy.splits["train"][0], spiking_audio.SpikeEvents)
    assert lazy.info["events_bytes"] < lazy.info["dense_bytes"] / 50
    assert len(lazy.splits["train"][1]) == 20 and lazy.time_steps == 250
    assert lazy.num_features == 700 and "dtype=uint8" in repr(lazy)
    for split in splits:
        (xd, yd), (xl, yl) = auto.splits[split], lazy.splits[split]
        np.testing.assert_array_equal(yd, yl)
        order = np.random.default_rng(1).permutation(len(yd))
        np.testing.assert_array_equal(xl[order], xd[order])
        assert xl.nbytes == xd.nbytes  # the training loop's placement sees the dense size
    with pytest.raises(ValueError, match="stream"):
        data.load_dataset(name, dict(cfg, stream="lazy"))
    # input="events": batches as EventBatch, one k per split, equal to the dense counts.
    as_events = data.load_dataset(name, dict(cfg, input="events"))
    for split in splits:
        xe, xd = as_events.splits[split][0], auto.splits[split][0]
        assert isinstance(xe, spiking_audio.EventRows) and xe.shape == xd.shape
        busiest = int((xd != 0).sum(-1).max())
        assert xe.store.max_active() == busiest and xe.k == events_lib.bucket_k(busiest)
        order = np.random.default_rng(2).permutation(len(xd))[:7]
        batch = xe[order]
        events_lib.validate(batch)
        assert batch.k == xe.k and batch.shape == (7, 250, 700)
        want = events_lib.from_dense(xd[order], k=xe.k)
        for got, ref in zip(jax.tree.leaves(batch), jax.tree.leaves(want)):
            np.testing.assert_array_equal(got, ref)
    with pytest.raises(ValueError, match="input"):
        data.load_dataset(name, dict(cfg, input="sparse"))


# ----------------------------------------------------------------------------- corrupt files


def test_corrupt_idx_files_name_the_file(fake_mnist):
    folder, _ = fake_mnist
    path = os.path.join(folder, mnist.IDX_FILES["train"][0] + ".gz")
    payload = open(path, "rb").read()
    open(path, "wb").write(payload[: len(payload) // 2])  # truncated gzip
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("smnist", {"dir": folder})
    assert path in str(e.value) and "delete it" in str(e.value)
    open(path, "wb").write(b"\x1f\x8b\x08\x00garbage-not-deflate" * 10)  # garbage gzip
    with pytest.raises(data.DataCorruptError, match="cannot be decompressed") as e:
        data.load_dataset("smnist", {"dir": folder})
    assert path in str(e.value)
    raw = os.path.join(folder, mnist.IDX_FILES["test"][1])
    payload = open(raw, "rb").read()
    open(raw, "wb").write(payload[:-3])  # truncated raw IDX
    with pytest.raises(data.DataCorruptError, match="truncated"):
        mnist.read_idx(raw)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing_labels"])
def test_corrupt_h5_names_the_file(tmp_path, damage):
    path = testing.write_fake_hsd(str(tmp_path / "shd_train.h5"), 8, 20, seed=0)
    testing.write_fake_hsd(str(tmp_path / "shd_test.h5"), 4, 20, seed=1)
    if damage == "garbage":
        open(path, "wb").write(b"not an hdf5 file" * 100)
    elif damage == "truncated":
        payload = open(path, "rb").read()
        open(path, "wb").write(payload[: len(payload) // 3])
    else:
        import h5py

        with h5py.File(path, "a") as f:
            del f["labels"]
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("shd", {"dir": str(tmp_path)})
    assert path in str(e.value) and "delete it" in str(e.value) and "download" in str(e.value)


def test_check_finite_counts_and_names():
    x = np.zeros((3, 4, 2), np.float32)
    data.check_finite(x, "ok")
    data.check_finite(np.zeros(3, np.uint8), "ints are never scanned")
    x[0, 1, 1], x[2, 0, 0] = np.nan, -np.inf
    with pytest.raises(data.DataCorruptError, match=r"some/file.npz: 2 of 24 input values"):
        data.check_finite(x, "some/file.npz")


# ----------------------------------------------------------------------------- delayed cue


def test_delayed_cue_shapes_determinism_and_balance():
    cfg = {
        "delay": 50,
        "num_classes": 4,
        "cue_steps": 3,
        "go_steps": 2,
        "num_channels": 9,
        "num_train": 400,
        "num_test": 100,
        "seed": 1,
    }
    ds = data.load_dataset("delayed_cue", cfg)
    xtr, ytr = ds.splits["train"]
    assert xtr.shape == (400, 3 + 50 + 2, 9) and xtr.dtype == np.uint8 and ytr.dtype == np.int32
    assert set(np.unique(xtr)) <= {0, 1} and ds.num_classes == 4 and ds.input_scale == 1.0
    assert np.bincount(ytr).tolist() == [100] * 4
    again = data.load_dataset("delayed_cue", cfg)
    np.testing.assert_array_equal(again.splits["train"][0], xtr)
    np.testing.assert_array_equal(again.splits["test"][1], ds.splits["test"][1])
    other = data.load_dataset("delayed_cue", dict(cfg, seed=2))
    assert not np.array_equal(other.splits["train"][0], xtr)
    assert not np.array_equal(ds.splits["test"][0][:100], xtr[:100])  # independent streams
    limited = data.load_dataset("delayed_cue", dict(cfg, train_limit=10))
    assert len(limited.splits["train"][1]) == 10
    # The go signal: last channel, last go_steps steps, for everyone.
    assert np.all(xtr[:, -2:, -1] == 1) and np.all(xtr[:, :-2, -1] == 0)


def test_delayed_cue_information_only_in_the_cue():
    cfg = data.default_config("delayed_cue")
    cfg.update(num_train=2000, delay=100)
    ds = data.load_dataset("delayed_cue", cfg)
    x, y = ds.splits["train"]
    groups = synthetic.cue_groups(cfg.num_channels, cfg.num_classes)
    # Decoder on the cue window: the most active channel group is the label, always.
    cue = x[:, : cfg.cue_steps].sum(1)
    votes = np.stack([cue[:, g].mean(1) for g in groups], 1)
    assert np.mean(votes.argmax(1) == y) == 1.0
    # After the cue, the per-class mean of every channel is the same noise rate.
    rest = x[:, cfg.cue_steps :].astype(np.float64).mean(1)  # (N, C) spike rate per channel
    class_means = np.stack([rest[y == k].mean(0) for k in range(cfg.num_classes)])
    stderr = np.sqrt(cfg.noise * (1 - cfg.noise) / (500 * (cfg.delay + cfg.go_steps)))
    assert np.abs(class_means[:, :-1] - cfg.noise).max() < 5 * stderr
    assert np.ptp(class_means[:, -1]) == 0  # go channel identical for every class
    # A nearest-class-mean decoder on the post-cue window is at chance on fresh data.
    xt, yt = ds.splits["test"]
    rest_t = xt[:, cfg.cue_steps :].astype(np.float64).mean(1)
    pred = np.argmin(((rest_t[:, None, :] - class_means[None]) ** 2).sum(-1), 1)
    assert abs(np.mean(pred == yt) - 0.25) < 0.08


def test_delayed_cue_rejects_bad_settings():
    with pytest.raises(ValueError, match="num_channels"):
        data.load_dataset("delayed_cue", {"num_channels": 4, "num_classes": 4})
    with pytest.raises(ValueError, match="noise"):
        data.load_dataset("delayed_cue", {"noise": 1.5})


# ----------------------------------------------------------------------------- digits


def test_digits_split_range_and_determinism():
    ds = data.load_dataset("digits")
    (xtr, ytr), (xte, yte) = ds.splits["train"], ds.splits["test"]
    assert xtr.shape == (1437, 64, 1) and xte.shape == (360, 64, 1) and xtr.dtype == np.uint8
    assert ds.input_scale == 1 / 16 and xtr.min() == 0 and xtr.max() * ds.input_scale == 1.0
    assert ytr.dtype == np.int32 and ds.num_classes == 10
    assert np.bincount(np.concatenate([ytr, yte])).tolist() == [
        178,
        182,
        177,
        183,
        181,
        182,
        181,
        179,
        174,
        180,
    ]
    again = data.load_dataset("digits", {"seed": 0})
    np.testing.assert_array_equal(again.splits["test"][0], xte)
    other = data.load_dataset("digits", {"seed": 1})
    assert not np.array_equal(other.splits["test"][1], yte)
    from sklearn.datasets import load_digits

    np.testing.assert_array_equal(
        np.sort(np.concatenate([xtr, xte]).reshape(-1, 64), axis=0),
        np.sort(load_digits().data.astype(np.uint8), axis=0),
    )


# ----------------------------------------------------------------------------- errors


def test_missing_idx_folder(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset("smnist", {"dir": missing, "source": "idx"})
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert "smnist" in msg and missing in msg and "train-images-idx3-ubyte" in msg


def test_missing_tfds_mnist_does_not_download(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset("psmnist", {"dir": str(tmp_path)})
    assert "psmnist" in str(e.value) and str(tmp_path) in str(e.value) and "tfds" in str(e.value)


@pytest.mark.parametrize("name,file", [("shd", "shd_train.h5"), ("ssc", "ssc_train.h5")])
def test_missing_spiking_audio_files(tmp_path, name, file):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset(name, {"dir": str(tmp_path)})
    msg = str(e.value)
    assert name in msg and str(tmp_path) in msg and file in msg and "tonic" in msg


def test_missing_gsc(tmp_path):
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset("gsc", {"dir": str(tmp_path)})  # the official split
    msg = str(e.value)
    assert "gsc" in msg and str(tmp_path) in msg and "testing_list.txt" in msg
    assert download.SPEECH_COMMANDS_URL in msg and "download=True" in msg


def test_missing_gsc_tfds(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_dataset("gsc", {"dir": str(tmp_path), "split": "tfds"})
    assert "gsc" in str(e.value) and str(tmp_path) in str(e.value)
    assert "speech_commands" in str(e.value)
