"""One source for every setting: ``NetworkConfig``, the presets, and the task configs.

* Every setting of every registered neuron, set in a task config's ``model`` section,
  reaches the built model (the dropped ``beta_adapt`` override was the bug this guards).
* The task configs' ``model`` fields are derived from ``config_fields()``, and a
  command-line override of each type parses.
* Bad values and unknown names are one clear ValueError naming the valid ones.
"""

import math

import pytest
from absl import flags
from ml_collections import config_flags

from experiments.configs import base, delayed_cue, shd, smnist
from tclif_jax import NEURONS, PRESETS, Execution, NetworkConfig, from_preset
from tclif_jax.config import config_fields
from tclif_jax.execution import EXECUTION_FIELDS
from tclif_jax.train import build_model

# A valid value other than the default, per setting. A new neuron setting fails
# test_every_setting_has_an_alternative until it is listed here.
ALTERNATIVE = {
    "v_th": 1.3,
    "detach_reset": True,
    "surrogate": "arctan",
    "gamma": 0.3,
    "init_b": (-0.3, 0.6),
    "init_c": (0.2, -0.1),
    "per_neuron": True,
    "reset_order": "paper",
    "learn_decay": True,
    "reset": "hard",
    "init_w": -1.0,
    "tau_m": 10.0,
    "tau_adapt": 300.0,
    "beta_adapt": 1.0,
    "init_tau": 0.3,
    "init_leak": 0.1,
    "init_reset": 0.4,
    "init_conduct": 0.6,
    "init_gates": (0.3, 0.4, 0.7),
}
DECAY = {"lif": 0.7, "two_compartment": (0.9, 0.8)}
# Where a neuron needs another value than ALTERNATIVE's (GLIF's values are sigmoids).
PER_NEURON = {("glif", "v_th"): 0.7}


def _value(neuron: str, setting: str):
    if (neuron, setting) in PER_NEURON:
        return PER_NEURON[neuron, setting]
    return DECAY[neuron] if setting == "decay" else ALTERNATIVE[setting]


CASES = [(n, s) for n in sorted(NEURONS) for s in NEURONS[n].settings()]


def test_every_setting_has_an_alternative():
    missing = sorted({s for n, s in CASES if s != "decay" and s not in ALTERNATIVE})
    assert not missing, f"add alternative values for {missing} to this test"


@pytest.mark.parametrize("neuron,setting", CASES)
def test_every_neuron_setting_reaches_the_model(neuron, setting):
    config = delayed_cue.get_config()
    config.model.neuron = neuron
    value = _value(neuron, setting)
    config.model[setting] = value
    built = build_model(config, 16, 4).layers[0].neuron
    got = getattr(built, setting)
    assert (got.name if setting == "surrogate" else got) == value, (neuron, setting)
    assert built.name == neuron


def test_surrogate_width_and_preset_overrides_reach_the_model():
    config = smnist.get_config("rec")
    config.model.surrogate, config.model.surrogate_width = "sigmoid", 7.0
    config.model.gamma, config.model.hidden = 0.25, (8, 8, 8)
    model = build_model(config, 1, 10)
    n = model.layers[2].neuron
    assert (n.surrogate.name, n.surrogate.width, n.gamma) == ("sigmoid", 7.0, 0.25)
    assert model.hidden == (8, 8, 8) and model.config.recurrent == (True, True, False)


def test_a_setting_the_neuron_lacks_is_an_error_not_dropped():
    config = smnist.get_config("ff")
    config.model.neuron, config.model.beta_adapt = "lif", 1.0
    with pytest.raises(ValueError, match=r"\['beta_adapt'\] do not apply to neuron 'lif'"):
        build_model(config, 1, 10)


def test_model_fields_are_derived_from_network_config_and_neurons():
    fields = config_fields()
    every_setting = {s for cls in NEURONS.values() for s in cls.settings()}
    assert every_setting | {"surrogate_width"} <= set(fields)
    assert {"hidden", "recurrent", "dropout", "readout"} <= set(fields)
    # How a network runs is not part of it: the execution section holds Execution's fields.
    assert not set(EXECUTION_FIELDS) & set(fields)
    config = smnist.get_config("ff")
    assert set(config.model) == set(fields) | {"preset", "neuron"}
    assert all(config.model[k] is None for k in fields)
    assert config.execution.to_dict() == Execution().to_dict()


def _parse(overrides):
    argv = ["prog", "--config=experiments/configs/delayed_cue.py:rec", *overrides]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "", flag_values=fv, lock_config=True, sys_argv=argv
    )
    fv(argv)
    return fv.config


def test_command_line_overrides_of_every_field_type_parse(root, monkeypatch):
    monkeypatch.chdir(root)
    c = _parse(
        [
            "--config.model.neuron=alif",
            "--config.model.beta_adapt=1.0",
            "--config.model.hidden=(8,4)",
            "--config.model.decay=(0.9,0.8)",
            "--config.model.detach_reset=True",
            "--config.model.surrogate=arctan",
            "--config.execution.remat_chunk=5",
            "--config.optimizer.learning_rate=1e-3",
        ]
    )
    assert (c.model.neuron, c.model.beta_adapt, tuple(c.model.hidden)) == ("alif", 1.0, (8, 4))
    assert tuple(c.model.decay) == (0.9, 0.8) and c.model.detach_reset is True
    assert (c.model.surrogate, c.execution.remat_chunk) == ("arctan", 5)
    assert c.model.recurrent == (True, False) and c.optimizer.learning_rate == 1e-3
    with pytest.raises(Exception, match="beta_adap"):
        _parse(["--config.model.beta_adap=1.0"])


def test_parse_arg_big_vision_style():
    a = base.parse_arg("rec", variant="ff", schedule="paper")
    assert (a.variant, a.schedule) == ("rec", "paper")
    a = base.parse_arg("variant=rec40,schedule=official", variant="ff", schedule="paper")
    assert (a.variant, a.schedule) == ("rec40", "official")
    with pytest.raises(ValueError, match="Unknown config argument 'size'; valid: variant"):
        base.parse_arg("size=cpu", variant="ff")
    with pytest.raises(ValueError, match="needs key=value; valid keys: variant, schedule"):
        base.parse_arg("rec,official", variant="ff", schedule="paper")
    assert shd.get_config("variant=rec").run_name == "shd-rec"


def test_presets_are_values_of_network_config():
    for name, cfg in PRESETS.items():
        assert isinstance(cfg, NetworkConfig)
        assert from_preset(name).config == cfg
    assert PRESETS["psmnist-rec-64"].settings == {
        "gamma": 0.5,
        "init_b": (-0.2, 0.8),
        "init_c": (-1.4, 1.4),  # the official command: --beta1 -1.4 --beta2 1.4
        "v_th": 1.0,
    }
    lif = NetworkConfig.from_preset("shd-ff", neuron="lif")
    assert lif.settings == {"v_th": 1.5}  # LIF takes the preset's threshold only
    # The official ALIF ignores the script's threshold; GLIF's is a learned sigmoid.
    for name in ("alif_official", "glif"):
        assert NetworkConfig.from_preset("smnist-rec-64", neuron=name).settings == {}


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(hidden=(-4, 8)), r"hidden=\(-4, 8\) needs at least one layer and every width > 0"),
        (dict(hidden=()), "needs at least one layer"),
        (dict(dropout=1.0), r"dropout=1.0 must be in \[0, 1\)"),
        (dict(readout="max"), "readout='max' is not valid; choose one of: sum, mean, last"),
        (dict(strategy="fused"), "strategy describe how a network runs, not the network"),
        (dict(hidden=(12.5, 8)), r"hidden=\(12.5, 8\) must be a tuple of whole layer widths"),
        (dict(recurrent=(True, True, True)), "more flags than the 2 layers"),
        (dict(init_b=(0.5, 0.5)), r"must lie in \(0, 1\)"),
        (dict(neuron="hh"), "Unknown neuron 'hh'; valid names are: tclif"),
    ],
)
def test_bad_values_are_one_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        NetworkConfig.from_preset("shd-ff", **overrides)


def test_replace_keeps_validation_and_hashability():
    cfg = PRESETS["smnist-rec-64"].replace(dropout=0.1, v_th=1.1)
    assert cfg.settings["v_th"] == 1.1 and cfg.neurons[0].v_th == 1.1
    assert hash(cfg) == hash(PRESETS["smnist-rec-64"].replace(v_th=1.1, dropout=0.1))
    assert cfg.time_steps == 784 and math.isclose(cfg.neurons[0].gamma, 0.5)
