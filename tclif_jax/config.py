"""One typed description of a spiking network, ``NetworkConfig``, and the paper's presets.

Every setting of a network lives here once: the architecture fields of ``NetworkConfig``
and the settings of its neuron type (``tclif_jax.neurons``). Presets (``PRESETS``) are
values of it; ``tclif_jax.models.SpikingNetwork(config, rngs=...)`` builds a model from
it; task configs (``experiments/configs``) derive their ``model`` fields from
``config_fields()``, so no list of keys is kept by hand anywhere else.

Example::

    cfg = NetworkConfig.from_preset("smnist-ff-64", neuron="lif", v_th=0.8)
    cfg.hidden, cfg.settings                 # (64, 256, 256), {'v_th': 0.8}
    cfg.replace(dropout=0.1)                 # a validated copy

How the network runs (loop strategy, backward, remat, product precision) is not part of
it: that is ``tclif_jax.execution.Execution``, passed beside it.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import typing
from typing import Any

from tclif_jax.execution import EXECUTION_FIELDS
from tclif_jax.neurons import NEURONS, Neuron, make_neuron, neuron_settings

__all__ = [
    "NetworkConfig",
    "PRESETS",
    "READOUTS",
    "config_fields",
]

READOUTS = ("sum", "mean", "last")


def _choice(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {', '.join(valid)}.")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """A stack of spiking layers (Linear + neuron, optionally recurrent) and a readout.

    Attributes:
      in_features: input features per time step (1 for S-MNIST, 700 for SHD).
      hidden: widths of the spiking layers, e.g. ``(64, 256, 256)``.
      num_classes: readout size.
      neuron: a ``NEURONS`` name, a built ``Neuron`` (every layer), or one per layer.
      neuron_settings: settings of the named neuron type (a dict; kept sorted), e.g.
        ``{"gamma": 0.5, "v_th": 1.0}``; empty when ``neuron`` is built.
      recurrent: per-layer flags, padded with False (a recurrent layer adds Linear(n, n)
        on its own S[t-1]).
      dropout: rate on every layer's feed-forward current (training only).
      readout: ``"sum"`` (official: logits summed over steps), ``"mean"`` or ``"last"``.
      time_steps: the sequence length a preset was made for (0: unspecified); the
        network itself runs any length.
    """

    in_features: int
    hidden: tuple[int, ...]
    num_classes: int
    neuron: Any = "tclif"
    neuron_settings: Any = ()
    recurrent: tuple[bool, ...] = ()
    dropout: float = 0.0
    readout: str = "sum"
    time_steps: int = 0

    def __post_init__(self):
        def put(name, value):
            object.__setattr__(self, name, value)

        try:
            hidden = tuple(int(h) for h in self.hidden)
            whole = all(int(h) == h and not isinstance(h, bool) for h in self.hidden)
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ValueError(
                f"hidden={self.hidden!r} must be a tuple of whole layer widths, e.g. (64, 64)."
            )
        if not hidden or any(h <= 0 for h in hidden):
            raise ValueError(
                f"hidden={self.hidden!r} needs at least one layer and every width > 0, "
                "e.g. (64, 64)."
            )
        put("hidden", hidden)
        for name in ("in_features", "num_classes"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or int(value) != value or value <= 0:
                raise ValueError(f"{name}={value!r} must be a positive integer.")
            put(name, int(value))
        recurrent = tuple(bool(r) for r in (self.recurrent or ()))
        if len(recurrent) > len(hidden):
            raise ValueError(
                f"recurrent={self.recurrent!r} has more flags than the {len(hidden)} layers."
            )
        put("recurrent", recurrent + (False,) * (len(hidden) - len(recurrent)))
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout={self.dropout!r} must be in [0, 1).")
        put("dropout", float(self.dropout))
        _choice("readout", self.readout, READOUTS)
        settings = dict(self.neuron_settings or ())
        put(
            "neuron_settings",
            tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items())),
        )
        if isinstance(self.neuron, list):
            put("neuron", tuple(self.neuron))
        if isinstance(self.neuron, tuple):
            if len(self.neuron) != len(hidden) or not all(
                isinstance(n, Neuron) for n in self.neuron
            ):
                raise ValueError(
                    f"neuron: need one built Neuron per layer ({len(hidden)}), got {self.neuron!r}."
                )
        self.neurons  # builds (and so validates) the neuron specs once  # noqa: B018

    @functools.cached_property
    def neurons(self) -> tuple[Neuron, ...]:
        """The neuron spec of every layer."""
        if isinstance(self.neuron, (tuple, Neuron)):
            if self.neuron_settings:
                raise ValueError("neuron_settings apply to a neuron given by name only.")
            return (
                self.neuron if isinstance(self.neuron, tuple) else (self.neuron,) * len(self.hidden)
            )
        built = make_neuron(self.neuron, **self.settings)
        return (built,) * len(self.hidden)

    @property
    def settings(self) -> dict[str, Any]:
        """The neuron settings as a dict."""
        return dict(self.neuron_settings)

    @property
    def neuron_name(self) -> str:
        """The neuron type's registry name (of the first layer when built per layer)."""
        return self.neuron if isinstance(self.neuron, str) else self.neurons[0].name

    def replace(self, **overrides) -> NetworkConfig:
        """A validated copy with ``overrides``: any field, or any setting of the neuron.

        ``neuron=`` swaps the neuron type and keeps the preset settings the new type takes
        over (``Neuron.preset_settings``). A setting the neuron does not have, or a name
        that is neither a field nor a setting, is a ValueError listing the valid ones.
        """
        moved = sorted(set(overrides) & set(EXECUTION_FIELDS))
        if moved:
            raise ValueError(
                f"{', '.join(moved)} describe how a network runs, not the network: pass "
                f"tclif_jax.Execution({moved[0]}=...) to the model or apply (changed in 0.3)."
            )
        arch = {k: overrides.pop(k) for k in list(overrides) if k in _FIELDS}
        unknown = sorted(set(overrides) - set(neuron_settings()))
        if unknown:
            raise ValueError(
                f"Unknown network setting(s) {unknown}; valid: fields "
                f"{', '.join(_OVERRIDABLE)}; neuron settings {', '.join(neuron_settings())}."
            )
        settings = dict(arch.pop("neuron_settings", self.settings))
        new_neuron = arch.pop("neuron", self.neuron)
        if new_neuron != self.neuron and isinstance(new_neuron, str):
            if new_neuron not in NEURONS:
                raise ValueError(
                    f"Unknown neuron {new_neuron!r}; valid names are: {', '.join(NEURONS)}."
                )
            cls = NEURONS[new_neuron]
            keep = set(cls.settings()) if cls.preset_settings is None else cls.preset_settings
            settings = {k: v for k, v in settings.items() if k in keep}
        elif not isinstance(new_neuron, str):
            settings = {}
        if overrides and not isinstance(new_neuron, str):
            raise ValueError(f"Neuron settings {sorted(overrides)} need a neuron given by name.")
        settings.update(overrides)
        return dataclasses.replace(self, neuron=new_neuron, neuron_settings=settings, **arch)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> NetworkConfig:
        """A preset of ``PRESETS`` with ``overrides`` (see ``replace``)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; valid presets are: {', '.join(PRESETS)}.")
        return PRESETS[name].replace(**overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for logs and JSON): fields, with the neuron settings as a dict."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["neuron_settings"] = {k: _plain(v) for k, v in self.neuron_settings}
        if not isinstance(self.neuron, str):
            out["neuron"] = [repr(n) for n in self.neurons]
        return out


def _plain(value):
    return getattr(value, "name", value)  # a Surrogate by its name


_FIELDS = tuple(f.name for f in dataclasses.fields(NetworkConfig))
_OVERRIDABLE = tuple(f for f in _FIELDS if f != "neuron_settings")


def config_fields() -> dict[str, type]:
    """Every name a task config's ``model`` section may set, with the type an override
    is parsed as: the architecture fields (not ``in_features``/``num_classes``, which come
    from the data) and every neuron setting."""
    hints = typing.get_type_hints(NetworkConfig)
    arch = {}
    for name in _OVERRIDABLE:
        if name in ("in_features", "num_classes", "neuron", "time_steps"):
            continue
        origin = typing.get_origin(hints[name])
        arch[name] = tuple if origin is tuple else hints[name]
    return {**arch, **neuron_settings()}


# ----------------------------------------------------------------------------- presets

# Paper Table 6 architectures with each task's neuron settings (reference sections 3-4).
# Where the official README's command sets c (--beta1/--beta2, GSC: --beta_init1/2), init_c
# holds it exactly; init_b keeps the paper's rounded (b1, b2) beside it.
_SMNIST_FF = dict(gamma=0.5, init_b=(-0.5, 0.5), v_th=1.0)
_SMNIST_REC = dict(gamma=0.5, init_b=(-0.8, 0.4), init_c=(1.5, -0.5), v_th=1.0)
_PSMNIST_FF = dict(gamma=0.7, init_b=(-0.5, 0.5), v_th=1.5)
# Official command: --beta1 -1.4 --beta2 1.4; paper v_th 1.8, the official rec model forces 1.0.
_PSMNIST_REC = dict(gamma=0.5, init_b=(-0.2, 0.8), init_c=(-1.4, 1.4), v_th=1.0)
_GSC_FF = dict(gamma=0.6, init_b=(-0.5, 0.5), init_c=(1.4, 1.4), v_th=1.2)
_GSC_REC = dict(gamma=0.7, init_b=(-0.8, 0.8), init_c=(1.4, 1.4), v_th=1.25)
_AUDIO = dict(gamma=0.5, init_b=(-0.5, 0.5), v_th=1.5)


def _net(in_features, hidden, classes, settings, steps, recurrent=(), dropout=0.0):
    return NetworkConfig(
        in_features,
        hidden,
        classes,
        "tclif",
        settings,
        recurrent=recurrent,
        dropout=dropout,
        time_steps=steps,
    )


PRESETS: dict[str, NetworkConfig] = {
    "smnist-ff-64": _net(1, (64, 256, 256), 10, _SMNIST_FF, 784),
    "smnist-rec-64": _net(1, (64, 256, 256), 10, _SMNIST_REC, 784, (True, True)),
    "smnist-ff-40": _net(1, (40, 256, 128), 10, _SMNIST_FF, 784),
    "smnist-rec-40": _net(1, (40, 200, 64), 10, _SMNIST_REC, 784, (True, True)),
    "gsc-ff": _net(40, (300, 300), 12, _GSC_FF, 101, dropout=0.3),
    "gsc-rec": _net(40, (300, 300), 12, _GSC_REC, 101, (True,), 0.3),
    "shd-ff": _net(700, (128, 128), 20, _AUDIO, 250),
    "shd-rec": _net(700, (128, 128), 20, _AUDIO, 250, (True, True)),
    "ssc-ff": _net(700, (128, 128), 35, _AUDIO, 250),
    "ssc-rec": _net(700, (128,), 35, _AUDIO, 250, (True,)),
    # What the official SSC script builds (SHD-SSC/main.py: ff_SHD / fb_SHD_v1 with
    # hidden=400, no dropout), against the paper's Table 6 sizes above.
    "ssc-ff-official": _net(700, (400, 400), 35, _AUDIO, 250),
    "ssc-rec-official": _net(700, (400, 400), 35, _AUDIO, 250, (True, True)),
}
# PS-MNIST uses the S-MNIST networks with its own neuron settings.
for _size in ("64", "40"):
    PRESETS[f"psmnist-ff-{_size}"] = PRESETS[f"smnist-ff-{_size}"].replace(
        neuron_settings=_PSMNIST_FF
    )
    PRESETS[f"psmnist-rec-{_size}"] = PRESETS[f"smnist-rec-{_size}"].replace(
        neuron_settings=_PSMNIST_REC
    )
