"""Every neuron setting is checked when the neuron is built, with one exact one-line error.

Wrong choices, wrong types, NaN and infinities, and each type's own ranges, on every
registered neuron (``NEURONS``: a new type and a new setting are covered without editing
this file); the normalised values (tuples, floats) and the state layout a new type
derives from its ``State``.
"""

import dataclasses
import math
import typing
from typing import Any, ClassVar

import numpy as np
import pytest

from tclif_jax import NEURONS, NetworkConfig, make_neuron
from tclif_jax.neurons import TCLIF, LIFState, Neuron, TCLIFState
from tclif_jax.surrogate import SURROGATES

NAMES = sorted(NEURONS)


def _error(name, **settings) -> str:
    with pytest.raises(ValueError) as info:
        make_neuron(name, **settings)
    message = str(info.value)
    assert "\n" not in message
    return message


def _hints(name):
    cls = NEURONS[name]
    hints = typing.get_type_hints(cls)
    return {field: hints[field] for field in cls.settings()}


def _float_settings():
    # (neuron, setting, element): every float setting, and every element of a tuple of floats.
    out = []
    for name in NAMES:
        for field, hint in _hints(name).items():
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if hint is float or args == [float]:
                out.append((name, field, None))
            tuples = [a for a in [hint, *args] if typing.get_origin(a) is tuple]
            for tup in tuples:
                out += [(name, field, i) for i in range(len(typing.get_args(tup)))]
    return out


FLOATS = _float_settings()


def _with(name, field, element, value):
    if element is None:
        return value
    hint = _hints(name)[field]
    (tup,) = [a for a in [hint, *typing.get_args(hint)] if typing.get_origin(a) is tuple]
    default = NEURONS[name].__dataclass_fields__[field].default
    default = (0.0,) * len(typing.get_args(tup)) if default is None else default
    return tuple(value if i == element else v for i, v in enumerate(default))


def test_the_float_settings_cover_every_neuron_and_its_tuples():
    covered = {(n, f) for n, f, _ in FLOATS}
    assert {("tclif", "gamma"), ("tclif", "init_b"), ("tclif", "init_c")} <= covered
    assert {("glif", "init_reset"), ("glif", "init_gates"), ("alif", "tau_m")} <= covered
    assert {("two_compartment", "decay"), ("lif", "decay"), ("plif", "init_w")} <= covered
    assert {n for n, _, _ in FLOATS} == set(NAMES)  # v_th, at least


@pytest.mark.parametrize("name,field,element", FLOATS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_refused_naming_the_setting(name, field, element, bad):
    label = field if element is None else f"{field}[{element}]"
    message = _error(name, **{field: _with(name, field, element, bad)})
    assert (
        message
        == f"{label}={bad!r} is not valid for neuron {name!r}; give a finite number (float)."
    )


@pytest.mark.parametrize("name,field,element", FLOATS)
def test_a_string_for_a_number_is_refused_with_the_expected_type(name, field, element):
    label = field if element is None else f"{field}[{element}]"
    message = _error(name, **{field: _with(name, field, element, "0.5")})
    assert message == (
        f"{label}='0.5' is not valid for neuron {name!r}; give a finite number (float), not a str."
    )


def test_the_issue_examples():
    assert _error("tclif", gamma="0.5") == (
        "gamma='0.5' is not valid for neuron 'tclif'; give a finite number (float), not a str."
    )
    assert _error("lif", reset="softish") == (
        "reset='softish' is not valid for neuron 'lif'; choose one of: soft, hard."
    )
    for name in ("tclif", "lif"):
        assert _error(name, reset_order="bogus") == (
            f"reset_order='bogus' is not valid for neuron {name!r}; choose one of: official, paper."
        )


@pytest.mark.parametrize(
    "name,settings,message",
    [
        (
            "tclif",
            dict(gamma=True),
            "gamma=True is not valid for neuron 'tclif'; give a finite number (float), not a bool.",
        ),
        (
            "tclif",
            dict(detach_reset="yes"),
            "detach_reset='yes' is not valid for neuron 'tclif'; give True or False (bool).",
        ),
        (
            "lif",
            dict(learn_decay=1),
            "learn_decay=1 is not valid for neuron 'lif'; give True or False (bool).",
        ),
        (
            "tclif",
            dict(per_neuron=None),
            "per_neuron=None is not valid for neuron 'tclif'; give True or False (bool).",
        ),
        (
            "tclif",
            dict(init_b=0.5),
            "init_b=0.5 is not valid for neuron 'tclif'; give a tuple of 2 numbers.",
        ),
        (
            "glif",
            dict(init_gates=(0.5, 0.5)),
            "init_gates=(0.5, 0.5) is not valid for neuron 'glif'; give a tuple of 3 numbers.",
        ),
        (
            "two_compartment",
            dict(decay="0.9,0.8"),
            "decay='0.9,0.8' is not valid for neuron 'two_compartment'; give a tuple of 2 numbers.",
        ),
        ("lif", dict(reset=1), "reset=1 is not valid for neuron 'lif'; choose one of: soft, hard."),
        (
            "plif",
            dict(surrogate=3),
            "surrogate=3 is not valid for neuron 'plif'; give a surrogate "
            "name (str) or a Surrogate.",
        ),
        (
            "alif",
            dict(surrogate="gaussianish"),
            f"Unknown surrogate 'gaussianish'; valid names are: {', '.join(SURROGATES)}.",
        ),
    ],
)
def test_wrong_types_and_choices(name, settings, message):
    assert _error(name, **settings) == message


@pytest.mark.parametrize(
    "name,settings,message",
    [
        (
            "tclif",
            dict(init_b=(0.5, 0.5)),
            "init_b=(0.5, 0.5) is not valid for neuron 'tclif'; "
            "-b1 = -0.5 is a sigmoid's value, so it must lie in (0, 1).",
        ),
        (
            "tclif",
            dict(init_b=(-0.5, 1.0)),
            "init_b=(-0.5, 1.0) is not valid for neuron 'tclif'; "
            "b2 = 1 is a sigmoid's value, so it must lie in (0, 1).",
        ),
        (
            "glif",
            dict(v_th=1.5),
            "v_th=1.5 is not valid for neuron 'glif'; it is a sigmoid's "
            "value, so it must lie in (0, 1).",
        ),
        (
            "glif",
            dict(init_reset=0.0),
            "init_reset=0.0 is not valid for neuron 'glif'; it is a "
            "sigmoid's value, so it must lie in (0, 1).",
        ),
        (
            "glif",
            dict(init_gates=(0.5, 1.2, 0.5)),
            "init_gates=(0.5, 1.2, 0.5) is not valid for "
            "neuron 'glif'; beta = 1.2 is a sigmoid's value, so it must lie in (0, 1).",
        ),
        (
            "lif",
            dict(learn_decay=True, decay=1.0),
            "decay=1.0 is not valid for neuron 'lif'; a "
            "learned decay = 1 is a sigmoid's value, so it must lie in (0, 1).",
        ),
        (
            "alif",
            dict(tau_m=0.0),
            "tau_m=0.0 is not valid for neuron 'alif'; give a time constant > 0.",
        ),
        (
            "alif",
            dict(tau_adapt=-5.0),
            "tau_adapt=-5.0 is not valid for neuron 'alif'; give a time constant > 0.",
        ),
        (
            "alif_official",
            dict(v_th=0.0),
            "v_th=0.0 is not valid for neuron 'alif_official'; give a baseline threshold > 0.",
        ),
    ],
)
def test_each_types_ranges(name, settings, message):
    assert _error(name, **settings) == message


def test_a_fixed_decay_may_lie_outside_the_unit_interval():
    assert make_neuron("lif", decay=1.0).decay == 1.0  # not learned: no sigmoid


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("width", [math.nan, math.inf, 0.0, "1.0", True])
def test_the_surrogate_width_is_checked(name, width):
    surrogate = make_neuron(name).surrogate.name
    assert _error(name, surrogate_width=width) == (
        f"Surrogate {surrogate!r}: width={width!r} is not valid; give a finite number > 0."
    )


def test_the_same_errors_through_a_network_config():
    with pytest.raises(ValueError, match=r"^gamma='0.5' is not valid for neuron 'tclif'; give a"):
        NetworkConfig.from_preset("shd-ff", gamma="0.5").neurons  # noqa: B018
    with pytest.raises(ValueError, match=r"^reset='softish' is not valid for neuron 'lif'"):
        NetworkConfig.from_preset("shd-ff", neuron="lif", reset="softish").neurons  # noqa: B018


def test_values_are_normalised_so_equal_specs_hash_equal():
    a = TCLIF(init_b=[np.float32(-0.25), 0.5], v_th=1, gamma=np.float64(0.5))
    b = TCLIF(init_b=(-0.25, 0.5), v_th=1.0, gamma=0.5)
    assert a == b and hash(a) == hash(b)
    assert type(a.init_b) is tuple and all(type(v) is float for v in (*a.init_b, a.v_th, a.gamma))
    assert make_neuron("glif", init_gates=[0.3, 0.4, 0.7]).init_gates == (0.3, 0.4, 0.7)
    assert make_neuron("tclif", detach_reset=np.bool_(True)).detach_reset is True


# ----------------------------------------------------------------------------- the layout


def test_a_new_type_derives_its_layout_from_its_state():
    @dataclasses.dataclass(frozen=True)
    class OneField(Neuron):  # no name: not registered
        State: ClassVar[type] = LIFState

    assert OneField.state_fields == OneField.saved_fields == ("potential",)
    assert (OneField.threshold_compartment, OneField.compartments) == ("potential", ("potential",))
    assert OneField(v_th=0.5).v_th == 0.5 and OneField not in NEURONS.values()

    @dataclasses.dataclass(frozen=True)
    class TwoFields(Neuron):
        State: ClassVar[type] = TCLIFState
        threshold_compartment: ClassVar[str] = "soma"

    assert TwoFields.state_fields == ("dendrite", "soma")
    assert TwoFields.compartments == ("soma",)


def test_a_type_without_its_state_is_refused_when_defined():
    step: Any = staticmethod(lambda *a, **k: None)
    with pytest.raises(TypeError, match=r"^Neuron type 'stateless' declares no State: set State"):

        class Stateless(Neuron):
            name: ClassVar[str] = "stateless"
            step_fn: ClassVar[Any] = step

    assert "stateless" not in NEURONS
    with pytest.raises(TypeError, match=r"several potentials; set threshold_compartment"):

        class Ambiguous(Neuron):
            State: ClassVar[type] = TCLIFState

    class NoSpike(typing.NamedTuple):
        potential: Any

    with pytest.raises(TypeError, match=r"State must end with the field 'spike'"):

        class Spikeless(Neuron):
            State: ClassVar[type] = NoSpike
