"""Official state_dict import: logits equal a numpy implementation of the official code."""

import jax
import numpy as np
import pytest

from tclif_jax import PRESETS, from_official, from_preset, parameters, to_official


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def official_numpy_forward(sd, x, preset):
    """The official models' forward (reference sections 1 and 3), float64, batch-major x."""
    p = PRESETS[preset]
    s = preset.split("-")[0].replace("ps", "s")
    settings = p.settings
    gamma, v_th = settings["gamma"], settings["v_th"]
    stride = 2 if s == "smnist" else 3
    L = len(p.hidden)
    B, T, _ = x.shape
    v1 = [np.zeros((B, n)) for n in p.hidden]
    v2 = [np.zeros((B, n)) for n in p.hidden]
    y = [np.zeros((B, n)) for n in p.hidden]
    out = 0.0
    for t in range(T):
        h = x[:, t].astype(np.float64)
        for i in range(L):
            lin, neu = stride * i, stride * i + stride - 1
            cur = h @ sd[f"features.{lin}.weight"].T + sd[f"features.{lin}.bias"]
            if f"features.{neu}.hid_weight.weight" in sd:
                cur = (
                    cur
                    + y[i] @ sd[f"features.{neu}.hid_weight.weight"].T
                    + sd[f"features.{neu}.hid_weight.bias"]
                )
                c = sd[f"features.{neu}.sub_module.decay_factor"][0]
            else:
                c = sd[f"features.{neu}.decay_factor"][0]
            v1[i] = v1[i] - _sig(c[0]) * v2[i] + cur
            v2[i] = v2[i] + _sig(c[1]) * v1[i]
            spike = (v2[i] - v_th >= 0).astype(np.float64)
            v1[i] = v1[i] - gamma * spike
            v2[i] = v2[i] - v_th * spike
            y[i] = spike
            h = spike
        ro = stride * L
        out = out + h @ sd[f"features.{ro}.weight"].T + sd[f"features.{ro}.bias"]
    return out


def random_official_state_dict(preset, seed):
    """Random arrays in the official layout, scaled so the neurons spike sometimes."""
    model = from_preset(preset, seed=seed)
    stride = 2 if preset.startswith(("smnist", "psmnist")) else 3
    rng = np.random.default_rng(seed)
    return {
        k: (
            rng.normal(0, 0.6, v.shape)
            if "decay" in k
            else rng.normal(0, 1.0, v.shape) / np.sqrt(v.shape[-1])
        ).astype(np.float32)
        for k, v in to_official(model, stride).items()
    }


@pytest.mark.parametrize(
    "preset,T",
    [
        ("smnist-ff-64", 40),
        ("smnist-rec-64", 40),
        ("smnist-rec-40", 40),
        ("gsc-rec", 15),
        ("shd-rec", 15),
        ("shd-ff", 15),
        ("ssc-rec", 15),
    ],
)
@pytest.mark.parametrize("strategy", ["layerwise", "fused"])
def test_converted_weights_reproduce_official_logits(preset, T, strategy):
    # Forward only; tests/test_parity.py checks every gradient too, against torch.
    sd = random_official_state_dict(preset, seed=0)
    model = from_official(from_preset(preset, seed=123, strategy=strategy), sd)
    assert model.execution.strategy == strategy
    x = (
        np.random.default_rng(1)
        .uniform(0, 2, (3, T, PRESETS[preset].in_features))
        .astype(np.float32)
    )
    logits, aux = model(x, return_aux=True)
    expected = official_numpy_forward({k: v.astype(np.float64) for k, v in sd.items()}, x, preset)
    rates = np.asarray(aux["firing_rates"])
    assert np.all(rates > 0.01) and np.all(rates < 0.99), rates  # the test exercises spikes
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-5, atol=1e-5)


def test_round_trip_to_official_and_back():
    a = from_preset("shd-rec", seed=1)
    sd = to_official(a, stride=3)
    assert sd["features.2.hid_weight.weight"].shape == (128, 128)
    assert sd["features.5.sub_module.decay_factor"].shape == (1, 2)
    b = from_official(from_preset("shd-rec", seed=2), sd)
    pa, pb = parameters(a), parameters(b)
    assert jax.tree.structure(pa) == jax.tree.structure(pb)
    for u, v in zip(jax.tree.leaves(pa), jax.tree.leaves(pb)):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v))


def test_mismatches_list_every_offending_key():
    sd = to_official(from_preset("smnist-ff-64"), stride=2)
    del sd["features.3.decay_factor"]
    sd["features.9.weight"] = np.zeros((2, 2), np.float32)
    sd["features.4.weight"] = np.zeros((256, 128), np.float32)
    with pytest.raises(ValueError) as err:
        from_official(from_preset("smnist-ff-64"), sd)
    msg = str(err.value)
    assert "features.3.decay_factor" in msg and "features.9.weight" in msg
    assert "features.4.weight: expected (256, 256), got (256, 128)" in msg


def test_rec_checkpoint_into_ff_model_is_refused():
    sd = to_official(from_preset("smnist-rec-64"), stride=2)
    with pytest.raises(ValueError, match="hid_weight"):
        from_official(from_preset("smnist-ff-64"), sd)


def test_only_tclif_has_an_official_layout_and_other_neurons_are_refused():
    # The official ALIF also has a parameter named c; the layout is chosen by neuron name.
    for neuron in ("alif_official", "lif", "glif"):
        model = from_preset("smnist-ff-40", neuron=neuron)
        with pytest.raises(ValueError, match=f"TC-LIF networks only; layer 0 is '{neuron}'"):
            to_official(model)
        with pytest.raises(ValueError, match=f"TC-LIF networks only; layer 0 is '{neuron}'"):
            from_official(model, to_official(from_preset("smnist-ff-40")))
