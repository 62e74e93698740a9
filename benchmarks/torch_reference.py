"""Our PyTorch reference: the paper's networks in the official code's style.

This is the baseline that ``benchmarks.step_time`` races (``against=torch``) and the
independent reference of ``tests/test_parity.py`` (logits and every parameter gradient,
both strategies): it is written from the reference facts on the paper and the official
code (reference sections 1-3), never from ``tclif_jax``'s neuron or network code, which it
does not import. It is written the way the official TC-LIF code is:
stateful neuron modules that keep their potentials between calls, an
``nn.Sequential`` named ``features`` called once per time step from a Python
loop, eager mode, autograd through every step. Nothing here is vectorised over
time on purpose: that is what the JAX library does differently.

Per step and layer (v1 = dendrite, v2 = soma, both start at 0)::

    v1 = v1 - sigmoid(c1) * v2 + x
    v2 = v2 + sigmoid(c2) * v1
    s  = H(v2 - V_th)            # triangle surrogate in the backward
    v1 = v1 - gamma * s          # soft resets, not detached
    v2 = v2 - V_th * s

A recurrent layer wraps its neuron: ``x + hid_weight(s[t-1])`` (Linear(n, n) with
bias, applied to zeros at t = 0). The readout Linear runs at every step and the
logits are the sum over steps. State-dict names equal the official ones, so
``tclif_jax.convert.to_official(model, stride)`` loads straight in; ``build_from_model``
copies a ``tclif_jax`` model's parameters by their NNX names instead (``copy_params``).

torch is optional (``pip install -e .[bench]``; on the CPU machines here
``pip install torch==2.13.0`` takes the local CPU wheel).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

__all__ = [
    "TriangleSpike",
    "TCLIFNode",
    "RecurrentTCLIF",
    "OfficialStyleNet",
    "official_stride",
    "build",
    "build_from_preset",
    "build_from_model",
    "copy_params",
    "make_torch_train_step",
]


class TriangleSpike(torch.autograd.Function):
    """Heaviside forward (fires at x >= 0); backward max(0, 1 - |x|) (paper Eq. 21)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.clamp(1.0 - x.abs(), min=0.0)


class TCLIFNode(nn.Module):
    """Stateful TC-LIF neuron: one (c1, c2) pair per layer in ``decay_factor`` (1, 2)."""

    def __init__(self, gamma: float, v_th: float, init_c=(0.0, 0.0)):
        super().__init__()
        self.gamma, self.v_th = float(gamma), float(v_th)
        self.decay_factor = nn.Parameter(torch.tensor([list(init_c)], dtype=torch.float32))
        self.v1 = self.v2 = None

    def reset(self):
        self.v1 = self.v2 = None

    def forward(self, x):
        if self.v1 is None:
            self.v1 = torch.zeros_like(x)
            self.v2 = torch.zeros_like(x)
        c = torch.sigmoid(self.decay_factor[0])
        v1 = self.v1 - c[0] * self.v2 + x
        v2 = self.v2 + c[1] * v1
        s = TriangleSpike.apply(v2 - self.v_th)
        self.v1 = v1 - self.gamma * s
        self.v2 = v2 - self.v_th * s
        return s


class RecurrentTCLIF(nn.Module):
    """Official recurrent wrapper: adds ``hid_weight`` (Linear(n, n)) of the previous spikes."""

    def __init__(self, n: int, node: TCLIFNode):
        super().__init__()
        self.hid_weight = nn.Linear(n, n)
        self.sub_module = node
        self.prev = None

    def reset(self):
        self.prev = None
        self.sub_module.reset()

    def forward(self, x):
        prev = torch.zeros_like(x) if self.prev is None else self.prev
        s = self.sub_module(x + self.hid_weight(prev))
        self.prev = s
        return s


class OfficialStyleNet(nn.Module):
    """``features`` = [Linear, (Dropout,) neuron] per layer, then the readout Linear.

    ``stride`` 2 is the S-MNIST layout, 3 the GSC/SHD/SSC layout (a Dropout after
    every hidden Linear). ``forward(x)`` takes batch-major ``(B, T, F)`` and loops
    over T in Python, summing the readout over steps.
    """

    def __init__(
        self,
        in_features: int,
        hidden,
        num_classes: int,
        recurrent,
        *,
        gamma: float,
        v_th: float,
        init_c=(0.0, 0.0),
        stride: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        mods = []
        widths = (in_features,) + tuple(hidden)
        for i, n in enumerate(hidden):
            mods.append(nn.Linear(widths[i], n))
            if stride == 3:
                mods.append(nn.Dropout(dropout))
            node = TCLIFNode(gamma, v_th, init_c)
            mods.append(RecurrentTCLIF(n, node) if i < len(recurrent) and recurrent[i] else node)
        mods.append(nn.Linear(widths[-1], num_classes))
        self.features = nn.Sequential(*mods)
        self.stride = stride

    @property
    def linears(self) -> list[nn.Linear]:
        """The hidden layers' input Linears, in order (the readout excluded)."""
        return [self.features[self.stride * i] for i in range(len(self.neurons))]

    @property
    def neurons(self) -> list[nn.Module]:
        """Each hidden layer's neuron (a ``RecurrentTCLIF`` wrapper where recurrent)."""
        n = (len(self.features) - 1) // self.stride
        return [self.features[self.stride * i + self.stride - 1] for i in range(n)]

    def reset(self):
        for m in self.features:
            if hasattr(m, "reset"):
                m.reset()

    def forward(self, x):
        self.reset()
        out = 0.0
        for t in range(x.shape[1]):
            out = out + self.features(x[:, t, :])
        return out


def official_stride(preset: str) -> int:
    """The official ``features`` layout of a preset: 2 for S/PS-MNIST, 3 (a Dropout after
    every hidden Linear) for GSC, SHD and SSC."""
    return 2 if "mnist" in preset else 3


def build(config, stride: int = 2, seed: int = 0) -> OfficialStyleNet:
    """The torch network a ``tclif_jax.config.NetworkConfig`` describes, torch's default
    init (from ``seed``) and TC-LIF's initial (c1, c2).

    Only what the official code runs has a torch twin here: TC-LIF neurons with the
    official reset order, the triangle surrogate of width 1, attached resets, one (c1, c2)
    per layer, the same gamma and V_th in every layer, and the summed readout. Anything
    else is a ValueError saying what differs.
    """
    neurons = config.neurons
    bad = [
        f"layer {i}: {n!r}"
        for i, n in enumerate(neurons)
        if n.name != "tclif"
        or n.per_neuron
        or n.reset_order != "official"
        or n.detach_reset
        or (n.surrogate.name, n.surrogate.width, n.surrogate.fires_at_zero)
        != ("triangle", 1.0, True)
    ]
    if bad:
        raise ValueError(
            "The torch reference runs TC-LIF with reset_order='official', the triangle "
            "surrogate of width 1 with H(0) = 1, detach_reset=False and per_neuron=False "
            "only; got " + "; ".join(bad)
        )
    if len({(n.gamma, n.v_th) for n in neurons}) != 1:
        raise ValueError("The torch reference needs the same gamma and v_th in every layer.")
    if config.readout != "sum":
        raise ValueError(f"The torch reference sums the readout; got readout={config.readout!r}.")
    torch.manual_seed(seed)
    return OfficialStyleNet(
        config.in_features,
        config.hidden,
        config.num_classes,
        config.recurrent,
        gamma=neurons[0].gamma,
        v_th=neurons[0].v_th,
        init_c=neurons[0].initial_c(),
        stride=stride,
        dropout=config.dropout,
    )


def build_from_preset(
    preset: str, state_dict: Mapping[str, np.ndarray] | None = None, seed: int = 0
) -> OfficialStyleNet:
    """The torch network of a ``tclif_jax`` preset, with weights from ``state_dict``
    (official names, e.g. ``tclif_jax.convert.to_official(model, stride)``) or torch's
    default init."""
    from tclif_jax.config import PRESETS

    net = build(PRESETS[preset], official_stride(preset), seed)
    if state_dict is not None:
        sd = {k: torch.from_numpy(np.array(v, np.float32)) for k, v in state_dict.items()}
        net.load_state_dict(sd, strict=True)
    return net


def build_from_model(model, stride: int = 2) -> OfficialStyleNet:
    """The torch twin of a ``tclif_jax`` model (``model.config``) holding its weights."""
    net = build(model.config, stride)
    copy_params(net, model.params())
    return net


def copy_params(net: OfficialStyleNet, params) -> OfficialStyleNet:
    """Copy ``tclif_jax`` parameters (``NetworkParams``, or the model's state dict) into
    ``net`` in place: each kernel ``(in, out)`` into its Linear's weight ``(out, in)``,
    each bias, recurrent ``hid_weight`` and TC-LIF ``c`` into ``decay_factor``.

    A layer the two do not share, or a shape that differs, is a ValueError; nothing is
    partly copied."""
    from tclif_jax.params import NetworkParams, from_state

    if not isinstance(params, NetworkParams):
        params = from_state(params)
    layers = params.layers
    pairs = []

    def pair(target: torch.Tensor, value, name: str, transpose: bool = False):
        value = np.array(value, np.float32)  # a writable copy
        if transpose:
            value = value.T
        elif value.size == target.numel():
            value = value.reshape(tuple(target.shape))  # c (2,) into decay_factor (1, 2)
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(
                f"{name}: the torch parameter is {tuple(target.shape)}, the JAX one gives "
                f"{tuple(value.shape)}."
            )
        pairs.append((target, value))

    if len(layers) != len(net.neurons):
        raise ValueError(f"params hold {len(layers)} layers, the torch net {len(net.neurons)}.")
    for i, node in enumerate(net.neurons):
        lp = layers[i]
        linear = net.linears[i]
        pair(linear.weight, lp.dense.kernel, f"layer {i} dense kernel", True)
        pair(linear.bias, lp.dense.bias, f"layer {i} dense bias")
        if isinstance(node, RecurrentTCLIF) != (lp.recurrent is not None):
            raise ValueError(f"layer {i} is recurrent in one network and not in the other.")
        if isinstance(node, RecurrentTCLIF):
            pair(node.hid_weight.weight, lp.recurrent.kernel, f"layer {i} recurrent kernel", True)
            pair(node.hid_weight.bias, lp.recurrent.bias, f"layer {i} recurrent bias")
            node = node.sub_module
        pair(node.decay_factor, lp.neuron["c"], f"layer {i} neuron c")
    readout = net.features[-1]
    pair(readout.weight, params.readout.kernel, "readout kernel", True)
    pair(readout.bias, params.readout.bias, "readout bias")
    with torch.no_grad():
        for target, value in pairs:
            target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    return net


def make_torch_train_step(net: OfficialStyleNet, lr: float = 5e-4):
    """``step(x, y) -> loss``: forward over all steps, cross-entropy, backward, Adam."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    return step
