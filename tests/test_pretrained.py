"""Published models (tclif_jax.pretrained): the file format, its errors, and the shipped
S-MNIST model checked on the real test set to the last example.

The slow tests need the MNIST IDX files in ``$TCLIF_SHARED_DATA/mnist`` (or
``../shared/data/mnist`` beside the repository) and skip without them; the PyTorch one
needs torch (``pip install torch==2.13.0``: the local CPU wheel).
"""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tclif_jax import NetworkConfig, pretrained
from tclif_jax.models import from_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
NAME = "smnist-ff-64"
# The official ff network's forward over 784 steps is a Python loop in torch: the first
# TORCH_EXAMPLES test images take about 50 s on 2 shared CPU cores (all 10,000: ~16 min).
TORCH_EXAMPLES = 512


def _small(seed=3):
    config = NetworkConfig(3, (8, 5), 4, recurrent=(True,), neuron_settings={"v_th": 0.4})
    return from_config(config, seed=seed)


def _x(n=6, steps=20):
    return jax.random.uniform(jax.random.key(0), (n, steps, 3), minval=0, maxval=2)


@pytest.fixture
def published(tmp_path):
    model = _small()
    paths = pretrained.save(model, str(tmp_path / "tiny"), correct=7, total=8, epoch=2)
    return model, paths


def test_save_load_round_trip_gives_identical_logits(published):
    model, (weights, card_path) = published
    again = pretrained.load(weights)
    assert again.config == model.config
    np.testing.assert_array_equal(np.asarray(again(_x())), np.asarray(model(_x())))
    assert not np.array_equal(np.asarray(_small(seed=4)(_x())), np.asarray(model(_x())))
    card = pretrained.card(card_path)
    assert (card["correct"], card["total"], card["accuracy"], card["epoch"]) == (7, 8, 0.875, 2)
    assert card["parameters"] == 3 * 8 + 8 + 8 * 8 + 8 + 2 + 8 * 5 + 5 + 2 + 5 * 4 + 4
    keys = set(load_file(weights))
    assert "layers/0/dense/kernel" in keys and "readout/kernel" in keys
    # The path may be given with either extension or none.
    assert pretrained.load(card_path).config == model.config
    assert pretrained.load(weights[: -len(".safetensors")]).config == model.config


def test_missing_model_names_the_shipped_ones():
    with pytest.raises(
        FileNotFoundError, match=rf"No published model 'nope'.*Shipped models: .*{NAME}"
    ):
        pretrained.load("nope")
    assert NAME in pretrained.available()


def test_damaged_weights_file_is_a_clear_error(published):
    _, (weights, _) = published
    data = pathlib.Path(weights).read_bytes()
    pathlib.Path(weights).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"tiny.safetensors is damaged .*publish the model again"):
        pretrained.load(weights)
    pathlib.Path(weights).write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="is damaged"):
        pretrained.load(weights)


def test_damaged_card_is_a_clear_error(published):
    _, (weights, card_path) = published
    pathlib.Path(card_path).write_text("{ truncated")
    with pytest.raises(ValueError, match=r"model card .*tiny.json cannot be read"):
        pretrained.load(weights)


def test_card_of_another_network_is_refused(published):
    _, (weights, card_path) = published
    card = json.loads(pathlib.Path(card_path).read_text())
    card["network_config"]["hidden"] = [8, 6]
    pathlib.Path(card_path).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="header differs from its card .*different models"):
        pretrained.load(weights)


def test_weights_that_do_not_fit_the_network_are_refused(published):
    _, (weights, _) = published
    from safetensors import safe_open

    with safe_open(weights, framework="numpy") as f:
        header = f.metadata()
    tensors = load_file(weights)
    tensors["readout/kernel"] = tensors["readout/kernel"][:, :3]
    del tensors["readout/bias"]
    tensors["extra"] = np.zeros(2, np.float32)
    save_file(tensors, weights, metadata=header)
    with pytest.raises(
        ValueError, match=r"do not fit .*extra; readout/bias; readout/kernel: \(5, 3\)"
    ):
        pretrained.load(weights)


def test_save_refuses_impossible_counts(tmp_path):
    with pytest.raises(ValueError, match=r"correct=9 must lie in 0..total \(8\)"):
        pretrained.save(_small(), str(tmp_path / "x"), correct=9, total=8)


def test_count_correct_pads_the_last_batch_and_does_not_count_it():
    model = _small()
    x = _x(7)
    pred = np.asarray(model(x)).argmax(-1)
    labels = pred.copy()
    labels[[1, 6]] = (labels[[1, 6]] + 1) % 4  # two wrong, one of them in the padded batch
    assert pretrained.count_correct(model, np.asarray(x), labels, batch_size=3) == 5
    assert pretrained.count_correct(model, np.asarray(x) * 2, labels, input_scale=0.5) == 5


def test_shipped_model_is_the_smnist_ff_64_network():
    model = pretrained.load(NAME)
    assert model.config == NetworkConfig.from_preset(NAME)
    card = pretrained.card(NAME)
    assert card["correct"] == round(card["accuracy"] * card["total"]) and card["total"] == 10_000
    weights = pathlib.Path(pretrained.WEIGHTS_DIR) / f"{NAME}.safetensors"
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == card["sha256"]
    # The model-card page is rendered from the card, not kept by hand.
    from experiments.publish import render_card

    page = ROOT / "docs" / "models" / f"{NAME}.md"
    assert page.read_text() == render_card(card)


def _mnist_test_files() -> str:
    """The real MNIST test images' path; skips the test when they are absent."""
    shared = os.environ.get("TCLIF_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    path = os.path.join(shared, "mnist", "t10k-images-idx3-ubyte.gz")
    if not os.path.exists(path):
        pytest.skip(f"MNIST IDX files not in {os.path.dirname(path)} (set TCLIF_SHARED_DATA)")
    return path


def _mnist_test():
    from tclif_jax import data as data_lib

    folder = os.path.dirname(_mnist_test_files())
    ds = data_lib.load_dataset("smnist", {"dir": folder, "source": "idx"})
    x, y = ds.splits["test"]
    return x, y, ds.input_scale


COUNT_CORRECT = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
from tclif_jax import data, pretrained
ds = data.load_dataset("smnist", {"dir": sys.argv[2], "source": "idx"})
x, y = ds.splits["test"]
card = pretrained.card(sys.argv[3])
correct = pretrained.count_correct(
    pretrained.load(sys.argv[3]), x, y, input_scale=ds.input_scale, batch_size=card["eval_batch_size"]
)
print(json.dumps({"n": len(y), "correct": correct}))
"""


@pytest.mark.slow
def test_shipped_model_reproduces_its_recorded_test_accuracy_exactly():
    # In a child process compiled as the recording was (XLA's default optimisations; the
    # suite turns them off, tests/conftest.py): the count must match to the last example.
    from conftest import DEFAULT_XLA_FLAGS

    folder = os.path.dirname(_mnist_test_files())
    res = subprocess.run(
        [sys.executable, "-c", COUNT_CORRECT, str(ROOT), folder, NAME],
        env=dict(os.environ, XLA_FLAGS=DEFAULT_XLA_FLAGS, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    card = pretrained.card(NAME)
    assert out["n"] == card["total"] == 10_000
    assert out["correct"] == card["correct"]


@pytest.mark.slow
def test_shipped_weights_give_the_same_results_in_the_torch_reference():
    # Float32 sums in another order (XLA against torch's GEMM) move a membrane that sits
    # within rounding of V_th to the other side in a few of the 784-step sequences; that
    # spike changes the rest of the run. Measured on the first 512 test images with the
    # published weights (epoch 24, 2026-12-03): 488 agree to 1e-4 in every logit (the
    # other 24 differ by up to 2.2), all 512 in the prediction, and both classify 475
    # correctly.
    torch = pytest.importorskip("torch")
    from benchmarks.torch_reference import build
    from tclif_jax.convert import to_official

    x, y, scale = _mnist_test()
    x = np.asarray(x[:TORCH_EXAMPLES]).astype(np.float32) * np.float32(scale)
    y = np.asarray(y[:TORCH_EXAMPLES])
    model = pretrained.load(NAME)
    net = build(model.config, stride=2)
    official = to_official(model, 2)
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in official.items()})
    torch.set_num_threads(1)
    with torch.no_grad():
        theirs = net(torch.from_numpy(x)).numpy()
    ours = np.asarray(model(x))
    close = np.abs(theirs - ours).max(-1) < 1e-4
    same = theirs.argmax(-1) == ours.argmax(-1)
    assert close.mean() >= 0.95, f"{close.sum()} of {TORCH_EXAMPLES} agree to 1e-4"
    assert same.mean() >= 0.99, f"{same.sum()} of {TORCH_EXAMPLES} predictions agree"
    assert same[close].all()
    correct = [int(np.sum(logits.argmax(-1) == y)) for logits in (theirs, ours)]
    assert abs(correct[0] - correct[1]) <= 2, correct


def test_publish_records_the_command_that_trained_the_run():
    from experiments.configs import smnist
    from experiments.publish import training_command

    config = smnist.get_config("rec40").to_dict()
    config["train"]["num_epochs"] = 25
    config["optimizer"]["decay_epochs"] = (10,)
    config["data"]["dir"] = "/data/mnist"
    del config["train"]["drop_last"]  # a field of a newer config is left out
    assert training_command(config, "/abs/runs/smnist-rec40-tclif/") == (
        "python -m experiments.smnist --config=experiments/configs/smnist.py:rec40 "
        "--workdir=runs/smnist-rec40-tclif --config.data.dir=/data/mnist "
        "--config.optimizer.decay_epochs=(10,) --config.train.num_epochs=25"
    )


def test_publish_counts_the_epochs_the_run_went_on_after_its_best_checkpoint(tmp_path):
    from experiments.publish import epochs_run

    history = [{"epoch": e, "step": 10 * e} for e in (1, 2)]  # the best checkpoint's
    assert epochs_run(str(tmp_path), history) == 2  # no metrics.jsonl: the checkpoint's
    lines = [json.dumps({"epoch": e, "step": 10 * e}) for e in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    assert epochs_run(str(tmp_path), history) == 4
