"""The dataset registry, ``check_config`` (every field kind, exact messages) and the load-time
checks of labels and float inputs, on tiny fabricated files."""

from __future__ import annotations

import dataclasses
import os
import socket
import struct

import numpy as np
import pytest
from fixtures_data import write_idx

from tclif_jax import data, testing
from tclif_jax.data import gsc, mnist, spiking_audio

VALID_NAMES = "smnist, psmnist, gsc, shd, ssc, delayed_cue, digits"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if args else kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ----------------------------------------------------------------------------- registry


def test_registry_records():
    assert data.DATASETS == tuple(data.REGISTRY) == tuple(VALID_NAMES.split(", "))
    expected = {  # name: (classes, features, input_scale, splits)
        "smnist": (10, 1, 1 / 255, ("train", "test")),
        "psmnist": (10, 1, 1 / 255, ("train", "test")),
        "gsc": (12, 40, 1.0, ("train", "valid", "test")),
        "shd": (20, 700, 1.0, ("train", "test")),
        "ssc": (35, 700, 1.0, ("train", "valid", "test")),
        "delayed_cue": (4, 16, 1.0, ("train", "test")),
        "digits": (10, 1, 1 / 16, ("train", "test")),
    }
    for name, (classes, features, scale, splits) in expected.items():
        s = data.spec(name)
        assert (s.name, s.classes(), s.features(), s.input_scale, s.splits) == (
            name,
            classes,
            features,
            scale,
            splits,
        )
        assert s.default_config() == data.default_config(name)
        assert data.check_config(name) == data.default_config(name)  # defaults are valid
    assert data.NUM_CLASSES == {n: c for n, (c, *_) in expected.items() if n != "delayed_cue"}
    # Counts set by data fields follow the config.
    cue = data.spec("delayed_cue")
    assert (cue.classes({"num_classes": 7}), cue.features({"num_channels": 9})) == (7, 9)
    assert data.spec("shd").features(data.check_config("shd", {"num_channels": 128})) == 128
    assert data.spec("gsc").features({"n_mels": 20}) == 20


def test_registry_loader_gives_the_declared_shapes():
    ds = data.load_dataset("delayed_cue", {"num_classes": 3, "num_channels": 7, "delay": 4})
    s = data.spec("delayed_cue")
    cfg = data.check_config("delayed_cue", {"num_classes": 3, "num_channels": 7})
    assert (ds.num_classes, ds.num_features) == (s.classes(cfg), s.features(cfg)) == (3, 7)
    assert ds.split_names == s.splits and ds.time_steps == 5 + 4 + 1


@pytest.mark.parametrize(
    "fn", [data.spec, data.default_config, data.check_config, data.load_dataset]
)
def test_unknown_task_names_the_valid_ones(fn):
    with pytest.raises(ValueError) as e:
        fn("cifar10")
    assert str(e.value) == f"Unknown dataset 'cifar10'; valid names are: {VALID_NAMES}."


# ----------------------------------------------------------------------------- check_config

BAD_FIELDS = [
    # (task, fields, message after "data.")
    ("delayed_cue", {"delay": -5}, "delay=-5 is not valid for 'delayed_cue': expected an integer >= 0."),
    ("smnist", {"train_limit": -1}, "train_limit=-1 is not valid for 'smnist': expected an integer >= 0."),
    ("shd", {"time_steps": 2.5}, "time_steps=2.5 is not valid for 'shd': expected an integer >= 2."),
    ("shd", {"time_steps": 1}, "time_steps=1 is not valid for 'shd': expected an integer >= 2."),
    ("delayed_cue", {"seed": True}, "seed=True is not valid for 'delayed_cue': expected an integer >= 0."),
    ("digits", {"seed": 2**32}, "seed=4294967296 is not valid for 'digits': expected an integer in 0..4294967295."),
    ("psmnist", {"permutation_seed": -3}, "permutation_seed=-3 is not valid for 'psmnist': expected an integer >= 0."),
    ("delayed_cue", {"noise": 1.5}, "noise=1.5 is not valid for 'delayed_cue': expected a finite number >= 0.0 and <= 1.0."),
    ("ssc", {"max_time": float("nan")}, "max_time=nan is not valid for 'ssc': expected a finite number > 0.0."),
    ("ssc", {"max_time": 0}, "max_time=0 is not valid for 'ssc': expected a finite number > 0.0."),
    ("shd", {"max_time": None}, "max_time=None is not valid for 'shd': expected a finite number > 0.0."),
    ("shd", {"dense_max_gb": "2"}, "dense_max_gb='2' is not valid for 'shd': expected a finite number >= 0.0."),
    ("digits", {"test_fraction": 1.0}, "test_fraction=1.0 is not valid for 'digits': expected a finite number > 0.0 and < 1.0."),
    ("gsc", {"top_db": 0.0}, "top_db=0.0 is not valid for 'gsc': expected a finite number > 0.0, or None (no floor)."),
    ("gsc", {"split": "v1"}, "split='v1' is not valid for 'gsc': expected one of: official, tfds."),
    ("gsc", {"pad_mode": "mirror"}, "pad_mode='mirror' is not valid for 'gsc': expected one of: reflect, constant, edge, symmetric, wrap."),
    ("shd", {"stream": "lazy"}, "stream='lazy' is not valid for 'shd': expected one of: auto, events, dense."),
    ("smnist", {"source": "csv"}, "source='csv' is not valid for 'smnist': expected one of: auto, idx, tfds."),
    ("smnist", {"download": "yes"}, "download='yes' is not valid for 'smnist': expected True or False."),
    ("gsc", {"use_cache": 1}, "use_cache=1 is not valid for 'gsc': expected True or False."),
    ("ssc", {"dir": 3}, "dir=3 is not valid for 'ssc': expected a string."),
    ("smnist", {"on_device": "sometimes"}, "on_device='sometimes' is not valid for 'smnist': expected one of: auto, True, False."),
    # Rules between fields.
    ("gsc", {"fmin": 5000.0}, "fmin=5000.0, data.fmax=4000.0 are not valid for 'gsc': expected fmin < fmax <= sample_rate / 2 = 8000 Hz."),
    ("gsc", {"sample_rate": 4000}, "fmin=40.0, data.fmax=4000.0 are not valid for 'gsc': expected fmin < fmax <= sample_rate / 2 = 2000 Hz."),
    ("delayed_cue", {"num_classes": 4, "num_channels": 4}, "num_channels=4 is not valid for 'delayed_cue' with data.num_classes=4: expected num_channels >= num_classes + 1 (a sensory channel per class at least, plus the go channel)."),
]  # fmt: skip


@pytest.mark.parametrize("task,fields,message", BAD_FIELDS)
def test_check_config_names_the_field_and_its_valid_values(task, fields, message):
    with pytest.raises(ValueError) as e:
        data.check_config(task, fields)
    assert str(e.value) == "data." + message
    assert "\n" not in str(e.value)


def test_check_config_reads_nothing_and_load_refuses_the_same(tmp_path):
    # A folder with no data is fine: nothing is read, so nothing is missing.
    missing = str(tmp_path / "nowhere")
    cfg = data.check_config("shd", {"dir": missing, "on_device": True, "max_time": 2})
    assert cfg.dir == missing and cfg.max_time == 2.0 and cfg.time_steps == 250
    assert "on_device" not in cfg  # the training loop's field, not the loader's
    assert not os.path.exists(missing)
    for ok in ("auto", False):
        data.check_config("smnist", {"on_device": ok})
    assert data.check_config("gsc", {"top_db": None}).top_db is None
    # A ConfigDict (what the command line holds) is checked the same way.
    c = data.default_config("delayed_cue")
    c.delay = -5
    with pytest.raises(ValueError, match=r"^data.delay=-5 is not valid"):
        data.check_config("delayed_cue", c)
    # load_dataset refuses with the same message before reading anything.
    with pytest.raises(ValueError) as e:
        data.load_dataset("shd", {"dir": missing, "stream": "lazy"})
    assert str(e.value) == (
        "data.stream='lazy' is not valid for 'shd': expected one of: auto, events, dense."
    )


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        data.check_config("digits", {"train_limt": 5, "seed": 1})
    assert str(e.value) == (
        "Unknown data field(s) ['train_limt'] for 'digits'; valid fields: dir, on_device, "
        "seed, test_fraction, test_limit, train_limit."
    )
    # load_dataset takes only the loader's fields (the training loop strips on_device).
    with pytest.raises(ValueError, match=r"\['on_device'\] for 'digits'; valid fields: dir, seed,"):
        data.load_dataset("digits", {"on_device": True})


# ----------------------------------------------------------------------------- labels: MNIST


def mnist_folder(tmp_path, bad: dict[str, tuple[int, int]]):
    """A tiny IDX folder (6 train, 4 test); ``bad[split] = (index, label)`` plants a label."""
    rng = np.random.default_rng(0)
    paths = {}
    for split, n in (("train", 6), ("test", 4)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        if split in bad:
            labels[bad[split][0]] = bad[split][1]
        images, label_file = mnist.IDX_FILES[split]
        write_idx(str(tmp_path / (images + ".gz")), rng.integers(0, 256, (n, 28, 28)))
        paths[split] = write_idx(str(tmp_path / label_file), labels)
    return paths


def test_mnist_label_out_of_range_names_split_index_value_and_file(tmp_path):
    paths = mnist_folder(tmp_path, {"train": (3, 200)})
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("smnist", {"dir": str(tmp_path)})
    assert str(e.value) == (
        f"{paths['train']}: train label 200 at index 3 is outside 0..9 (10 classes); the file "
        f"is damaged; delete it and fetch it again (IDX files: {mnist.MNIST_URL}"
        f"train-labels-idx1-ubyte.gz; or use --config.data.source=tfds "
        f"--config.data.download=True)."
    )
    # Only the labels kept are checked: a limit that stops before index 3 loads.
    ds = data.load_dataset("psmnist", {"dir": str(tmp_path), "train_limit": 3})
    assert len(ds.splits["train"][1]) == 3


def test_mnist_test_label_out_of_range(tmp_path):
    paths = mnist_folder(tmp_path, {"test": (0, 10)})
    with pytest.raises(
        data.DataCorruptError, match=r": test label 10 at index 0 is outside 0..9"
    ) as e:
        data.load_dataset("smnist", {"dir": str(tmp_path)})
    assert str(e.value).startswith(paths["test"])


def test_idx_float_images_must_be_finite(tmp_path):
    mnist_folder(tmp_path, {})
    images = np.zeros((6, 28, 28), ">f4")
    images[2, 5, 5], images[4, 0, 0] = np.nan, np.inf
    path = tmp_path / mnist.IDX_FILES["train"][0]  # raw, read before the .gz of the same name
    path.write_bytes(bytes([0, 0, 0x0D, 3]) + struct.pack(">III", 6, 28, 28) + images.tobytes())
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("smnist", {"dir": str(tmp_path)})
    assert str(e.value).startswith(f"{path}: 2 of 4704 input values are NaN or inf; the file is")


def test_mnist_tfds_label_out_of_range(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    def as_dataset(self, split, **kwargs):
        images = np.zeros((3, 28, 28, 1), np.uint8)
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": np.array([1, 200, 2], np.int64)}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        with pytest.raises(data.DataCorruptError) as e:
            data.load_dataset("smnist", {"dir": str(tmp_path), "source": "tfds"})
    where = os.path.join(str(tmp_path), "mnist")
    assert str(e.value) == (
        f"smnist: TFDS 'mnist' in {where}: train label 200 at index 1 is outside 0..9 "
        f"(10 classes); delete {where} and fetch it again (--config.data.download=True)."
    )


# ----------------------------------------------------------------------------- labels: SHD / SSC


def h5_with_labels(path, labels):
    times = [np.array([0.1, 0.2])] * len(labels)
    units = [np.array([3, 4])] * len(labels)
    return testing.write_hsd(str(path), times, units, labels)


def test_shd_label_200_names_split_index_value_and_file(tmp_path):
    bad = h5_with_labels(tmp_path / "shd_train.h5", [3, 200, 5, 250])
    h5_with_labels(tmp_path / "shd_test.h5", [0, 19])
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("shd", {"dir": str(tmp_path)})
    assert str(e.value) == (
        f"{bad}: train label 200 at index 1 is outside 0..19 (20 classes); delete it and fetch "
        f"it again (--config.data.download=True, or python -m tclif_jax.data.download shd "
        f"--dir <data dir>)."
    )
    ds = data.load_dataset("shd", {"dir": str(tmp_path), "train_limit": 1})  # 200 not kept
    assert ds.splits["train"][1].tolist() == [3] and ds.splits["test"][1].tolist() == [0, 19]


def test_ssc_valid_label_35_is_refused(tmp_path):
    for split in ("train", "test"):
        h5_with_labels(tmp_path / f"ssc_{split}.h5", [0, 34])
    bad = h5_with_labels(tmp_path / "ssc_valid.h5", [35, 1])
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("ssc", {"dir": str(tmp_path)})
    assert str(e.value).startswith(
        f"{bad}: valid label 35 at index 0 is outside 0..34 (35 classes); delete it"
    )


def test_read_events_checks_labels_only_when_told_the_class_count(tmp_path):
    path = h5_with_labels(tmp_path / "any.h5", [2, 7])
    _, y, _ = spiking_audio.read_events(path)
    assert y.dtype == np.int32 and y.tolist() == [2, 7]
    with pytest.raises(
        data.DataCorruptError, match=r"any.h5: any.h5 label 7 at index 1 is outside 0..4"
    ):
        spiking_audio.read_events(path, num_classes=5)


# ----------------------------------------------------------------------------- labels: GSC


def test_gsc_cached_label_out_of_range(tmp_path):
    cfg = data.check_config("gsc", {"dir": str(tmp_path)})
    path = gsc.cache_path(cfg, "train", 0)
    os.makedirs(os.path.dirname(path))
    np.savez(path, x=np.zeros((3, 101, 40), np.float32), y=np.array([0, 11, 12]))
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("gsc", {"dir": str(tmp_path)})
    assert str(e.value) == (
        f"gsc feature cache {path}: train label 12 at index 2 is outside 0..11 (12 classes); "
        f"delete it and it is recomputed at the next load."
    )


def test_gsc_tfds_label_out_of_range(tmp_path, monkeypatch):
    def read_split(config, tfds_split, limit):
        return [np.zeros(16000, np.int16)] * 2, np.array([11, 12])

    monkeypatch.setattr(gsc, "_read_split", read_split)
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("gsc", {"dir": str(tmp_path), "split": "tfds"})
    where = os.path.join(str(tmp_path), "speech_commands")
    assert str(e.value) == (
        f"gsc: TFDS 'speech_commands' in {where}: train label 12 at index 1 is outside 0..11 "
        f"(12 classes); delete {where} and fetch it again (--config.data.download=True)."
    )


# ----------------------------------------------------------------------------- the last guard


def test_load_dataset_catches_a_loader_that_lets_a_bad_label_through(monkeypatch):
    digits = data.spec("digits")

    def load(config, workdir=None):
        x = np.zeros((4, 64, 1), np.uint8)
        return {"train": (x, np.array([0, 9, 9, 10], np.int32)), "test": (x, np.zeros(4))}, {}

    monkeypatch.setitem(data.REGISTRY, "digits", dataclasses.replace(digits, load=load))
    with pytest.raises(data.DataCorruptError) as e:
        data.load_dataset("digits")
    assert str(e.value) == (
        "digits loader: train label 10 at index 3 is outside 0..9 (10 classes); this is a "
        "bug in the loader."
    )


@pytest.mark.parametrize(
    "labels,message",
    [
        (np.array([0, -1], np.int8), "f: s label -1 at index 1 is outside 0..2 (3 classes); r."),
        (np.array([0.0, 1.5]), "f: s label 1.5 at index 1 is outside 0..2 (3 classes); r."),
        (np.array([2.0, np.nan]), "f: s label nan at index 1 is outside 0..2 (3 classes); r."),
        (np.array(["a"]), "f: s labels are <U1, not integers; r."),
    ],
)
def test_check_labels_rejects(labels, message):
    with pytest.raises(data.DataCorruptError) as e:
        data.check_labels(labels, 3, "s", "f", "r")
    assert str(e.value) == message


def test_check_labels_accepts_integral_values():
    data.check_labels(np.array([0, 1, 2], np.uint16), 3, "s", "f")
    data.check_labels(np.array([0.0, 2.0]), 3, "s", "f")
    data.check_labels(np.zeros(0, np.int32), 3, "s", "f")
