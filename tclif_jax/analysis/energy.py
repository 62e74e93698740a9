"""Energy estimates of the paper's Table 2 (supplementary Table 4).

Per layer and time step, with ``m`` inputs, ``n`` neurons and firing rates ``Fr_in``
(of the layer's input) and ``Fr_out`` (of its own spikes):

* LIF:    ``m n Fr_in E_AC + (n^2 + n) Fr_out E_AC + n E_MAC``
* TC-LIF: ``m n Fr_in E_AC + (n^2 + 2n) Fr_out E_AC + 2 n E_MAC``
* LSTM:   ``4 (m n + n^2) E_MAC + 17 n E_MAC``

where the ``n^2`` terms count only for recurrent layers, ``E_AC = 0.9`` pJ and
``E_MAC = 4.6`` pJ (45 nm CMOS, Horowitz 2014). The spiking formulas charge every
synaptic event as an accumulate and every neuron update (one per compartment) as a
multiply-accumulate.

Assumptions are explicit arguments: ``input_rate`` (the first layer's ``Fr_in``; 1 for
real-valued input currents, which reach every synapse at every step), ``readout``
(whether the Linear readout, ``H x classes`` accumulates per step, counts) and
``time_steps`` (1: per step; T: per sample). ``PAPER_TABLE2`` holds the paper's figures;
``paper_table2_check`` evaluates the formulas under each set of assumptions.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from tclif_jax.neurons import NEURONS, Neuron

__all__ = [
    "E_AC",
    "E_MAC",
    "PAPER_TABLE2",
    "PAPER_RATES",
    "num_compartments",
    "spiking_layer_energy",
    "snn_energy",
    "lstm_energy",
    "energy_table",
    "paper_table2_check",
    "lstm_check",
]

E_AC = 0.9  # pJ per accumulate
E_MAC = 4.6  # pJ per multiply-accumulate

# Paper Table 2 (S-MNIST), nJ, and the layer-wise firing rates it quotes.
PAPER_TABLE2 = {"lstm": 2834.7, "lif": 23.8, "tclif": 28.2}
PAPER_RATES = {"lif": (0.219, 0.145, 0.004), "tclif": (0.294, 0.146, 0.030)}


def num_compartments(neuron: str | Neuron) -> int:
    """Membrane compartments a neuron updates per step (``len(Neuron.compartments)``):
    1 for LIF, PLIF and ALIF, 2 for TC-LIF; ``neuron`` is a ``NEURONS`` name or a spec."""
    if isinstance(neuron, str):
        if neuron not in NEURONS:
            raise ValueError(f"Unknown neuron {neuron!r}; valid: {', '.join(NEURONS)}.")
        neuron = NEURONS[neuron]
    return len(neuron.compartments)


def spiking_layer_energy(
    m: int,
    n: int,
    fr_in: float,
    fr_out: float,
    *,
    recurrent: bool,
    compartments: int = 1,
    e_ac: float = E_AC,
    e_mac: float = E_MAC,
) -> float:
    """pJ for one spiking layer and one time step (LIF: ``compartments=1``, TC-LIF: 2)."""
    ff = m * n * fr_in * e_ac
    out = ((n * n if recurrent else 0) + compartments * n) * fr_out * e_ac
    return ff + out + compartments * n * e_mac


def snn_energy(
    in_features: int,
    hidden: Sequence[int],
    rates: Sequence[float],
    *,
    neuron: str | Neuron = "tclif",
    recurrent: Sequence[bool] = (),
    input_rate: float = 1.0,
    num_classes: int | None = None,
    readout: bool = False,
    time_steps: int = 1,
    e_ac: float = E_AC,
    e_mac: float = E_MAC,
) -> dict[str, Any]:
    """Energy of a spiking network, nJ. ``rates`` are the hidden layers' firing rates
    (spikes per neuron per step). Returns per-layer pJ per step and the total in nJ over
    ``time_steps`` steps."""
    if len(rates) != len(hidden):
        raise ValueError(
            f"Need one firing rate per hidden layer ({len(hidden)}), got {len(rates)}."
        )
    k = num_compartments(neuron)
    rec = tuple(bool(r) for r in recurrent) + (False,) * (len(hidden) - len(recurrent))
    widths = (in_features,) + tuple(hidden)
    fr_in = (input_rate,) + tuple(rates[:-1])
    layers = [
        spiking_layer_energy(
            widths[i],
            widths[i + 1],
            fr_in[i],
            rates[i],
            recurrent=rec[i],
            compartments=k,
            e_ac=e_ac,
            e_mac=e_mac,
        )
        for i in range(len(hidden))
    ]
    if readout:
        if num_classes is None:
            raise ValueError("readout=True needs num_classes.")
        layers.append(hidden[-1] * num_classes * rates[-1] * e_ac)
    return _summary(layers, time_steps)


def _summary(layers: list[float], time_steps: int) -> dict[str, Any]:
    """Per-layer pJ per step, their sum, and the total in nJ over ``time_steps`` steps."""
    per_step = sum(layers)
    return {
        "layers_pJ_per_step": layers,
        "pJ_per_step": per_step,
        "nJ": per_step * time_steps / 1000.0,
        "time_steps": time_steps,
    }


def lstm_energy(
    in_features: int,
    hidden: Sequence[int],
    *,
    num_classes: int | None = None,
    readout: bool = False,
    time_steps: int = 1,
    e_mac: float = E_MAC,
    gate_term: int = 17,
) -> dict[str, Any]:
    """Energy of a stacked LSTM of the given widths, nJ: ``4 (m n + n^2) + 17 n`` MACs per
    layer and step (``gate_term`` is the 17)."""
    widths = (in_features,) + tuple(hidden)
    layers = [
        (4 * (widths[i] * widths[i + 1] + widths[i + 1] ** 2) + gate_term * widths[i + 1]) * e_mac
        for i in range(len(hidden))
    ]
    if readout:
        layers.append(hidden[-1] * num_classes * e_mac)
    return _summary(layers, time_steps)


def energy_table(
    in_features: int,
    hidden: Sequence[int],
    rates: dict[str, Sequence[float]],
    *,
    recurrent: Sequence[bool] = (),
    num_classes: int = 10,
    time_steps: int = 784,
    input_rate: float = 1.0,
    readout: bool = False,
) -> list[dict[str, Any]]:
    """LSTM and each spiking network in ``rates`` side by side: nJ per step and per sample."""
    rows = []
    lstm = lstm_energy(in_features, hidden, num_classes=num_classes, readout=readout)
    rows.append(
        {
            "model": "lstm",
            "rates": None,
            "nJ_per_step": lstm["nJ"],
            "nJ_per_sample": lstm["nJ"] * time_steps,
            "paper_nJ": PAPER_TABLE2["lstm"],
        }
    )
    for name, r in rates.items():
        e = snn_energy(
            in_features,
            hidden,
            r,
            neuron=name,
            recurrent=recurrent,
            input_rate=input_rate,
            num_classes=num_classes,
            readout=readout,
        )
        rows.append(
            {
                "model": name,
                "rates": [round(float(v), 6) for v in r],
                "nJ_per_step": e["nJ"],
                "nJ_per_sample": e["nJ"] * time_steps,
                "paper_nJ": PAPER_TABLE2.get(name),
                "layers_pJ_per_step": [round(v, 3) for v in e["layers_pJ_per_step"]],
            }
        )
    return rows


def paper_table2_check(mean_pixel: float = 0.1307, nonzero_pixels: float = 0.1914) -> list[dict]:
    """The paper's S-MNIST energies recomputed with its own firing rates under every
    combination of assumptions: network (ff or rec 1-64-256-256), per step or per sample
    (T = 784), the input layer's ``Fr_in`` (1, the mean pixel value, or the share of
    non-zero pixels) and whether the readout counts. Each row gives LIF, TC-LIF and the
    LSTM (same widths) in nJ with the relative error to the paper's 23.8 / 28.2 / 2,834.7."""
    rows = []
    nets = {"ff": (), "rec": (True, True)}
    inputs = {"1": 1.0, "mean_pixel": mean_pixel, "nonzero_pixels": nonzero_pixels}
    for (net, rec), (inp, fr0), ro, T in itertools.product(
        nets.items(), inputs.items(), (False, True), (1, 784)
    ):
        row = {"network": net, "input_rate": inp, "readout": ro, "time_steps": T}
        for name in ("lif", "tclif"):
            e = snn_energy(
                1,
                (64, 256, 256),
                PAPER_RATES[name],
                neuron=name,
                recurrent=rec,
                input_rate=fr0,
                num_classes=10,
                readout=ro,
                time_steps=T,
            )
            row[name] = e["nJ"]
        row["lstm"] = lstm_energy(1, (64, 256, 256), num_classes=10, readout=ro, time_steps=T)["nJ"]
        for name in ("lif", "tclif", "lstm"):
            row[f"{name}_rel_err"] = row[name] / PAPER_TABLE2[name] - 1.0
        rows.append(row)
    rows.sort(key=lambda r: abs(r["lif_rel_err"]) + abs(r["tclif_rel_err"]))
    return rows


def lstm_check() -> list[dict]:
    """The paper's LSTM figure (2,834.7 nJ) against a 1-64-256-256 LSTM under variants of
    the formula: with or without the ``17 n`` term, with or without a 256 x 10 readout,
    and with ``E_MAC`` 4.6 pJ (fp32, the paper's constant) or 3.2 pJ (int32, Horowitz)."""
    rows = []
    for gate, ro, e_mac in itertools.product((17, 0), (False, True), (E_MAC, 3.2)):
        nj = lstm_energy(
            1, (64, 256, 256), num_classes=10, readout=ro, e_mac=e_mac, gate_term=gate
        )["nJ"]
        rows.append(
            {
                "gate_term": gate,
                "readout": ro,
                "e_mac_pJ": e_mac,
                "nJ_per_step": nj,
                "rel_err": nj / PAPER_TABLE2["lstm"] - 1.0,
            }
        )
    rows.sort(key=lambda r: abs(r["rel_err"]))
    return rows
