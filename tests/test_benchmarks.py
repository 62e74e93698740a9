"""Smoke tests of the benchmark CLI (tiny batch and T), its configs, and our PyTorch reference.

The torch parts are skipped when torch is not installed (CI does not install it).
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import common
from tclif_jax.config import PRESETS
from tclif_jax.models import from_preset, parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAS_TORCH = importlib.util.find_spec("torch") is not None
BENCHMARKS = (
    "step_time",
    "breakdown",
    "memory",
    "precision_accuracy",
    "event_projection",
    "event_step",
)


def _run(module, *args, timeout=300):
    out = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli(arg, *overrides, timeout=300):
    """``benchmarks.step_time`` with config argument ``arg``, JSON output."""
    config = f"--config=benchmarks/configs/step_time.py:{arg}"
    return _run("step_time", config, *overrides, "--config.json=True", timeout=timeout)


def _check_common_fields(res, n_jax):
    assert res["benchmark"] == "step_time" and res["preset"] == "smnist-ff-64"
    assert res["batch"] == 4 and res["steps"] == 16
    m = res["machine"]
    for key in ("jax", "flax", "host_cpu", "cpu_count", "backend", "date"):
        assert m[key]
    assert res["flops_counted"]["total"] > 0
    assert res["matmul_peak_gflops"]["float32"] > 0 and res["matmul_peak_gflops"]["bfloat16"] > 0
    jax_rows = [r for r in res["results"] if r["name"].startswith("jax-")]
    assert len(jax_rows) == n_jax
    for r in res["results"]:
        assert r["n"] == 2 and 0 < r["min_s"] <= r["median_s"] <= r["max_s"] <= r["total_s"]
        assert r["gflops"] > 0 and r["frac_f32_peak"] > 0
    for r in jax_rows:
        assert r["loss_finite"] and r["compile_s"] > 0
        assert r["strategy"] in ("layerwise", "fused")
        assert r["matmul_dtype"] in ("float32", "bfloat16")
    return jax_rows


@pytest.mark.slow
@pytest.mark.parametrize("torch_process", ["separate", "same"])
def test_step_time_cli_json_fields_and_torch(torch_process):
    if torch_process == "same" and not HAS_TORCH:
        pytest.skip("torch not installed")
    arg = (
        "preset=smnist-ff-64,batch=4,steps=16,repeats=2,strategy=all,matmul_dtype=float32,"
        "threads=1,peak_size=256,memory=False"
    )
    overrides = []
    if HAS_TORCH:
        overrides = ["--config.against=torch", f"--config.torch_process={torch_process}"]
    res = _cli(arg, *overrides)
    jax_rows = _check_common_fields(res, n_jax=2)
    assert {r["strategy"] for r in jax_rows} == {"layerwise", "fused"}
    assert res["command"].startswith("python -m benchmarks.step_time --config=")
    if HAS_TORCH:
        t = [r for r in res["results"] if r["name"] == "torch-reference"][0]
        assert t["ratio_vs_torch"] == 1.0 and all(r["ratio_vs_torch"] > 0 for r in jax_rows)
        assert res["torch_threads"] == 1 and t["process"] == torch_process
        assert res["config"]["torch_process"] == torch_process
    from benchmarks.report import step_time_table

    table = step_time_table(res).splitlines()
    assert len(table) == 4 + len(res["results"]) and table[-1].startswith("| ")


@pytest.mark.slow
def test_memory_probe_reports_peak_rss():
    # The per-configuration subprocess that step_time (without memory=False) and
    # benchmarks.memory run: build, compile, two steps, then VmHWM.
    out = common.run_json_subprocess(
        "benchmarks.step_time",
        [
            "--config=benchmarks/configs/step_time.py:preset=smnist-ff-64,batch=4,steps=16,"
            "remat_chunk=8",
            "--memory_probe=jax:fused:float32",
        ],
    )
    assert "error" not in out, out
    assert (
        out["peak_rss_bytes"]
        >= out["rss_after_compile_bytes"]
        > out["rss_before_build_bytes"]
        > 50 * 2**20
    )


@pytest.mark.slow
def test_memory_cli_sweeps_through_the_probe():
    # benchmarks.memory -> one step_time memory probe per (T, remat) row (the torch probe
    # builds the same TorchRunner that test_step_time_cli_json_fields_and_torch times).
    res = _run(
        "memory",
        "--config=benchmarks/configs/memory.py:preset=smnist-ff-64,batch=4,steps=16,"
        "remat_chunk=8,json=True",
    )
    assert res["benchmark"] == "memory" and res["batch"] == 4
    assert [(r["kind"], r["remat_chunk"]) for r in res["rows"]] == [("jax", 0), ("jax", 8)]
    for r in res["rows"]:
        assert "error" not in r, r
        assert r["steps"] == 16 and r["peak_rss_gb"] > 0.05
    from benchmarks.report import memory_table

    assert len(memory_table(res).splitlines()) == 4 + len(res["rows"])


def test_counted_flops_match_the_issue():
    # ~100 GFLOP (ff) and ~190 GFLOP (rec) of matrix work per S-MNIST step at B=256.
    for name, expected in (("smnist-ff-64", 98.7e9), ("smnist-rec-64", 182.6e9)):
        p = PRESETS[name]
        f = common.matmul_flops(p.hidden, p.in_features, p.num_classes, p.recurrent, 256, 784)
        assert f["total"] == pytest.approx(expected, rel=0.01)
        assert common.config_flops(p, 256, 784) == f


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", BENCHMARKS)
def test_configs_open_with_their_command_and_reject_unknown_keys(name):
    module = importlib.import_module(f"benchmarks.configs.{name}")
    assert (
        module.__doc__.lstrip()
        .splitlines()[2]
        .strip()
        .startswith(f"python -m benchmarks.{name} --config=benchmarks/configs/{name}.py:")
    )
    config = module.get_config()
    assert config.malloc_tuning is True and config.json is False
    assert module.get_config("json=True,preset=shd-rec").json is True
    with pytest.raises(ValueError, match="Unknown config argument 'bogus'"):
        module.get_config("bogus=1")
    with pytest.raises(ValueError, match="smnist-ff-64"):
        module.get_config("preset=no-such-preset")


def test_step_time_config_lists():
    from benchmarks.configs.step_time import get_config

    assert get_config("strategy=all,matmul_dtype=all").strategy == "all"
    valid = ("auto", "fused", "layerwise")
    assert common.choose_list("strategy", "layerwise, fused", valid, ()) == ["layerwise", "fused"]
    assert common.choose_list("strategy", "all", valid, valid[1:]) == ["fused", "layerwise"]
    with pytest.raises(ValueError, match="layerwise"):
        get_config("strategy=wavefront")
    with pytest.raises(ValueError, match="bfloat16"):
        get_config("matmul_dtype=float16")
    with pytest.raises(ValueError, match="torch"):
        get_config("against=tf")


@pytest.mark.slow
def test_cli_rejects_unknown_overrides_and_positional_arguments():
    for args in (["--config.no_such_field=1"], ["stray"]):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.breakdown", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert out.returncode != 0
        assert "no_such_field" in out.stderr or "Unexpected arguments ['stray']" in out.stderr


# ----------------------------------------------------------------------------- step workers


def test_serve_steps_protocol(monkeypatch, capsys):
    # The child side of the torch workers: ready line, one line per "step", stop at "quit".
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("step\nstep\nquit\nstep\n"))
    times = iter([0.25, 0.5])
    common.serve_steps(("cpu", 1.5), lambda: (next(times), 3.0))
    assert capsys.readouterr().out == "ready cpu 1.5\n0.25 3.0\n0.5 3.0\n"


@pytest.mark.slow
def test_step_worker_that_does_not_start_says_how_to_see_why():
    worker = common.StepWorker("ghost", "benchmarks.no_such_module", ["--x=1"])
    with pytest.raises(SystemExit) as e:
        worker.ready_line()
    assert str(e.value) == (
        f"The ghost worker did not start; run it alone to see why: {sys.executable} -m "
        f"benchmarks.no_such_module --x=1"
    )
    worker.proc.wait(timeout=60)
    worker.close()  # already gone: nothing to send


def test_torch_device_auto_follows_jax():
    assert common.torch_device("cuda:1") == "cuda:1"
    assert common.torch_device("auto") == ("cuda" if jax.default_backend() == "gpu" else "cpu")


# ----------------------------------------------------------------------------- torch reference


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (optional extra '.[bench]')")
@pytest.mark.parametrize("preset,steps", [("smnist-rec-64", 30), ("shd-rec", 15)])
def test_torch_reference_matches_ours(preset, steps):
    import torch

    from benchmarks.torch_reference import build_from_model, build_from_preset, official_stride
    from tclif_jax.convert import to_official
    from tclif_jax.models import apply

    torch.set_num_threads(1)
    model = from_preset(preset, seed=2)
    p = PRESETS[preset]
    rng = np.random.default_rng(0)
    if p.in_features == 1:
        x = rng.random((3, steps, 1), dtype=np.float32)
    else:
        x = (rng.random((3, steps, p.in_features)) < 0.3).astype(np.float32)
    y = np.array([1, 0, 2])
    stride = official_stride(preset)
    assert stride == (2 if "mnist" in preset else 3)
    net = build_from_preset(preset, to_official(model, stride))
    # Copying by NNX names gives exactly the weights the official names carry.
    twin = build_from_model(model, stride).state_dict()
    official = to_official(model, stride)
    assert sorted(twin) == sorted(official)
    for k, v in official.items():
        np.testing.assert_array_equal(twin[k].numpy(), v, err_msg=k)
    xt = torch.from_numpy(x)
    logits_t = net(xt)
    loss_t = torch.nn.functional.cross_entropy(logits_t, torch.from_numpy(y))
    loss_t.backward()

    def loss(params):
        logits, _ = apply(model.config, params, jnp.asarray(x))
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), jnp.asarray(y)]), logits

    (l, logits), g = jax.value_and_grad(loss, has_aux=True)(parameters(model))
    np.testing.assert_allclose(np.asarray(logits), logits_t.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(float(l), loss_t.item(), rtol=1e-5)
    # Gradients agree too: the hand-written backward of our fused scan against torch autograd.
    grads = {name: prm.grad.numpy() for name, prm in net.named_parameters()}
    first_w = np.asarray(g["layers"][0]["dense"]["kernel"]).T
    np.testing.assert_allclose(
        first_w, grads["features.0.weight"], rtol=2e-4, atol=2e-4 * np.abs(first_w).max()
    )
    last = len(model.layers) - 1
    key = f"features.{stride * last + stride - 1}"
    key += ".sub_module.decay_factor" if model.layers[last].is_recurrent else ".decay_factor"
    np.testing.assert_allclose(
        np.asarray(g["layers"][last]["neuron_params"]["c"]), grads[key][0], rtol=2e-4, atol=1e-5
    )


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (optional extra '.[bench]')")
def test_torch_reference_refuses_what_it_cannot_run():
    from benchmarks.torch_reference import build, build_from_model, copy_params

    with pytest.raises(ValueError, match="TC-LIF"):
        build(PRESETS["smnist-ff-64"].replace(neuron="lif"))
    with pytest.raises(ValueError, match="readout"):
        build(PRESETS["smnist-ff-64"].replace(readout="mean"))
    with pytest.raises(ValueError, match="recurrent"):
        copy_params(build(PRESETS["smnist-ff-64"]), parameters(from_preset("smnist-rec-64")))
    assert build_from_model(from_preset("gsc-rec"), 3).features[1].p == 0.3


# ----------------------------------------------------------------------------- breakdown


def test_breakdown_products_cover_the_counted_work():
    from benchmarks.breakdown import loop_products

    assert loop_products(PRESETS["smnist-ff-64"]) == [(64, 256), (256, 256)]
    assert loop_products(PRESETS["smnist-rec-64"]) == [(64, 256), (256, 256), (64, 64), (256, 256)]
    # The in-loop products are all the counted matrix work of S-MNIST but the 1 -> 64
    # input projection (hoisted) and the readout (applied once to the spike sum).
    for name in ("smnist-ff-64", "smnist-rec-64"):
        p = PRESETS[name]
        loop = sum(2.0 * 256 * a * b * 3 for a, b in loop_products(p)) * 784
        total = common.matmul_flops(p.hidden, 1, 10, p.recurrent, 256, 784)["total"]
        assert loop / total == pytest.approx(1.0, abs=0.005)


@pytest.mark.slow
def test_breakdown_cli_reports_consistent_times():
    res = _run(
        "breakdown",
        "--config=benchmarks/configs/breakdown.py:preset=smnist-rec-64,batch=4,steps=16,"
        "repeats=2,peak_size=128",
        "--config.json=True",
    )
    assert res["benchmark"] == "breakdown" and res["steps"] == 16 and res["batch"] == 4
    assert 0 < res["forward_s"] and 0 < res["loop_matmuls_s"]
    assert res["rest_s"] == pytest.approx(res["forward_backward_s"] - res["loop_matmuls_s"])
    assert res["loop_matmul_gflop"] == pytest.approx(
        2 * 4 * 16 * 3 * (64 * 256 + 2 * 256 * 256 + 64 * 64) / 1e9
    )
    from benchmarks.report import breakdown_table

    row = breakdown_table([res]).splitlines()[-1]
    assert row.startswith("| smnist-rec-64 | tclif | float32 | fused |")


def test_event_projection_interval_and_densities():
    from benchmarks.configs.event_projection import densities, get_config

    assert common.bootstrap_interval([2.0] * 15) == (2.0, 2.0)
    low, high = common.bootstrap_interval(np.arange(1.0, 16.0))
    assert low < 8.0 < high and 1.0 <= low and high <= 15.0  # around the median, inside the data
    config = get_config()
    assert densities(config) == [0.01, 0.05, 0.2]
    config.densities = "0.5, 1.5"  # as --config.densities="0.5,1.5" sets it
    with pytest.raises(ValueError, match=r"fractions in \(0, 1\]"):
        densities(config)
    assert densities(get_config("densities=0.3")) == [0.3]


def test_event_projection_times_the_native_kernel_against_dense(capsys):
    from benchmarks import event_projection
    from benchmarks.configs.event_projection import get_config

    config = get_config("batch=2,steps=8,rounds=2,warmup=1,densities=0.3,json=True")
    event_projection.run(config)
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rows"] == 16 and res["features"] == 700 and res["width"] == 128
    entry = res["results"]["0.3"]
    for part in ("forward", "weight_grad"):
        assert entry["max_abs_deviation"]["native"][part] < 1e-4, entry["max_abs_deviation"]
        low, high = entry[f"ratio_native_{part}"]["ci95"]
        assert 0 < low <= entry[f"ratio_native_{part}"]["median"] <= high
        assert entry[f"native_{part}"]["n"] == entry[f"dense_{part}"]["n"] == 2
    assert entry["k"] >= 700 * 0.3 * 0.5  # about 210 of 700 channels per row are active


def test_spike_products_times_both_products_per_density(capsys, native_kernels):
    from benchmarks import spike_products
    from benchmarks.configs import spike_products as config_module
    from benchmarks.configs.spike_products import get_config
    from tclif_jax import event_kernel

    assert (
        config_module.__doc__.lstrip().startswith("Time products of spikes inside a time loop")
        and "python -m benchmarks.spike_products --config=benchmarks/configs/spike_products.py"
        in (config_module.__doc__.splitlines()[2])
    )
    with pytest.raises(ValueError, match="Unknown config argument 'bogus'"):
        get_config("bogus=1")
    with pytest.raises(ValueError, match="densities"):
        get_config("densities=0")
    if not event_kernel.available():
        pytest.skip(event_kernel.status())
    config = get_config("batch=3,steps=4,width=10,out=6,rounds=2,densities=0.2,json=True")
    spike_products.run(config)
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["shape"] == {"steps": 4, "batch": 3, "width": 10, "out": 6}
    assert [(r["density"], r["product"]) for r in res["results"]] == [
        (0.2, "forward"),
        (0.2, "weight_grad"),
    ]
    for r in res["results"]:
        assert r["dense"]["n"] == r["kernel"]["n"] == 2
        low, high = r["kernel_over_dense"]["ci95"]
        assert 0 < low <= r["kernel_over_dense"]["median"] <= high


@pytest.mark.slow  # compiles three train steps
def test_event_breakdown_times_the_products_and_the_steps(capsys):
    from benchmarks import event_breakdown
    from benchmarks.configs.event_breakdown import get_config

    with pytest.raises(ValueError, match="Unknown config argument 'bogus'"):
        get_config("bogus=1")
    with pytest.raises(ValueError, match="lif"):
        get_config("neurons=alif")
    event_breakdown.run(get_config("batch=2,steps=6,rounds=2,neurons=lif,json=True"))
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["batch"] == 2 and res["steps"] == 6 and res["rounds"] == 2
    kinds = ("dense", "events", "floor")
    products = [f"product/{p}_{q}" for p in ("dense", "native") for q in ("forward", "weight_grad")]
    for name in [*products, *(f"lif/{k}" for k in kinds)]:
        assert res["results"][name]["n"] == 2 and res["results"][name]["median_s"] > 0, name
    for kind in ("events", "floor"):
        ratio = res["results"][f"lif/{kind}_over_dense"]
        assert ratio["ci95"][0] <= ratio["median"] <= ratio["ci95"][1]
