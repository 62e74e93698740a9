"""Our train step against the SNN libraries people use: spyx, snnTorch and norse, in one run.

Examples (the config file's docstring lists every field)::

    python -m benchmarks.peers --config=benchmarks/configs/peers.py:setting=a,batch=64
    python -m benchmarks.peers --config=benchmarks/configs/peers.py:setting=b,n=1024,json=True

Two settings, the same network and the same step in every library:

* ``a``: the SHD-shaped network 700-128-128-20, LIF (decay 0.5, threshold 1, soft reset),
  a Linear readout summed over T = 250, softmax cross-entropy, and one Adam update: a
  whole train step. Input: Bernoulli(0.05) spikes, as SHD's. The spiking layers' weights
  are scaled by ``weight_scale`` (4 by default, the same in every library) so that the
  hidden layers fire (LIF about 4% and 3%, TC-LIF 7% and 15% at the first step; with
  PyTorch's init alone they stay near 0%, and anything spike-dependent would look too
  cheap). Ours runs with dense input and, with ``inputs=events``, with the spikes as an
  ``EventBatch`` (``tclif_jax.events``).
* ``b``: the Open Neuromorphic library benchmark (open-neuromorphic.org, "SNN library
  benchmarks"): one Linear(n, n) + LIF layer, T = 500, batch 16, standard-normal input,
  forward + backward of ``loss = sum of the output spikes`` (the benchmark's
  ``output.sum()``), no optimizer. Our networks always end in a readout, so ours gets a
  fixed one, kernel of ones and zero bias, that turns the logits into the spike count
  (``sum_t (s_t W + b) = sum_t sum_i s_t,i``); its cost is one (B, n) x (n, 1) product.

Every library starts from the same weights (PyTorch's default Linear init drawn once with
numpy from ``seed``) and the same data. Each peer is built as its own documentation shows
(see ``PEER_NOTES``, which also goes into the JSON): spyx 1.0 in this process, snnTorch and
norse (PyTorch) in a worker process each, as ``benchmarks.step_time`` runs its torch
reference, with torch's default threads (``threads=0``: every core) and denormals flushed
to zero as XLA does. The LIF is the same function in every library, up to where each puts
the reset and the spike (``tests/test_peers.py`` checks the spike trains on shared weights):

* ours, ``neuron=lif``: ``U[t] = decay (U[t-1] - S[t-1]) + I[t]``, ``S[t] = H(U[t] - 1)``;
* snnTorch ``Leaky``: ``U[t] = decay U[t-1] + I[t] - S[t-1]`` (ours with
  ``reset_order="paper"``; the reset is detached);
* spyx ``LIF``: the same recurrence, but the spike it returns at t is S[t-1] (one step
  later);
* norse ``LIFBoxCell`` (Euler step ``v += dt/tau (i - v)``, dt/tau = 1 - decay, reset by
  subtraction): ours exactly once its input weights are scaled by 1 / (1 - decay), which
  we do;
* norse ``LIF`` (the module that loops over time, ``norse-lif``): with dt/tau_syn = 1 its
  synaptic current holds one step's input, so it is the same LIF with a hard reset
  (ours with ``reset="hard"``), same weight scaling.

Timing: every configuration is built and compiled first (compile time reported apart),
runs ``warmup`` steps, then ``repeats`` rounds (15 by default) in which each, in an order
shuffled per round, runs ``settle`` untimed steps and one timed step, blocked on its
result (``jax.block_until_ready``; torch on CUDA: ``torch.cuda.synchronize``). We report
median, min, max and IQR per configuration, counted matmul GFLOP/s, each row's median
over the fastest peer's, and the median of the per-round ratios to that peer with a
bootstrap 95% interval, and the hidden layers' firing rates of ours. The
first step's loss is recorded too: in setting ``b`` it is the spike count of the first
forward, nearly equal across libraries by the above.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import time

import numpy as np

from benchmarks import common

TORCH_PEERS = ("snntorch", "norse", "norse-lif")
JAX_PEERS = ("spyx",)
# The Python module each library is imported as and its distribution name.
PEER_MODULES = {"spyx": "spyx", "snntorch": "snntorch", "norse": "norse", "norse-lif": "norse"}
# norse is outside the extra: its torchvision requirement would replace torch (pyproject).
INSTALL = "pip install -e '.[bench]' && pip install --no-deps 'norse>=1.1.0'"
# How each peer is configured (goes into the JSON and RESULTS.md).
PEER_NOTES = {
    "ours": (
        "tclif_jax: setting a, tclif_jax.train.make_train_step (jit, params and Adam state "
        "donated); setting b, jax.jit(jax.value_and_grad) of the spike count through "
        "tclif_jax.apply. LIF (decay, threshold 1) and TC-LIF (setting a: the shd-ff "
        "preset's settings; b: the defaults), every strategy asked for (auto is fused on "
        "CPU, layerwise on GPU)."
    ),
    "spyx": (
        "spyx.nn.Sequential(nnx.Linear, spyx.nn.LIF(beta=decay), ...) run over time-major "
        "input by spyx.nn.run (lax.scan); nnx.split/merge, jax.value_and_grad, optax.adam, "
        "jax.jit with params and Adam state donated; loss spyx.fn.integral_crossentropy"
        "(smoothing=0, time_axis=0); default surrogate (superspike) and matmul precision "
        "(TF32 on Ampere+ GPUs)."
    ),
    "snntorch": (
        "torch.nn.Sequential(nn.Linear, snntorch.Leaky(beta=decay, init_hidden=True), ...), "
        "snntorch.utils.reset then one call per time step, outputs stacked; default surrogate "
        "(atan) and reset (subtract, delayed); torch.optim.Adam."
    ),
    "norse": (
        "norse.torch.SequentialState(nn.Linear, LIFBoxCell(LIFBoxParameters(tau_mem_inv="
        "1-decay, reset_method=reset_subtract), dt=1), ...) stepped over time as norse's "
        "README shows for cells; default surrogate (superspike, alpha 100); "
        "torch.optim.Adam."
    ),
    "norse-lif": (
        "norse.torch.SequentialState(nn.Linear, norse.torch.LIF(LIFParameters(tau_syn_inv=1, "
        "tau_mem_inv=1-decay), dt=1), ...) called once on the time-major sequence (the "
        "Linear layers act on all steps at once, the LIF module loops over time), as "
        "norse's quickstart shows; hard reset (LIF has no other); torch.optim.Adam."
    ),
}


# ----------------------------------------------------------------------------- the problem


@dataclasses.dataclass(frozen=True)
class Problem:
    """One setting's shapes and hyperparameters, the same in every process."""

    setting: str
    batch: int
    steps: int
    widths: tuple[int, ...]  # input, then every spiking layer
    classes: int  # readout size; 0: none (setting b)
    decay: float = 0.5
    learning_rate: float = 1e-3
    seed: int = 0
    weight_scale: float = 1.0  # times every spiking layer's Linear weights

    @classmethod
    def from_config(cls, config) -> Problem:
        if config.setting == "a":
            widths, classes, batch, steps, scale = (700, 128, 128), 20, 64, 250, 4.0
        else:
            widths, classes, batch, steps, scale = (config.n, config.n), 0, 16, 500, 1.0
        return cls(
            config.setting,
            config.batch or batch,
            config.steps or steps,
            widths,
            classes,
            float(config.decay),
            float(config.learning_rate),
            int(config.seed),
            float(config.weight_scale or scale),
        )

    @property
    def hidden(self) -> tuple[int, ...]:
        return self.widths[1:]

    def data(self):
        """``x (B, T, F)`` float32 and ``y (B,)`` int32: SHD-like spikes and labels (a),
        standard-normal currents (b, labels unused)."""
        import numpy as np

        rng = np.random.default_rng(self.seed)
        shape = (self.batch, self.steps, self.widths[0])
        if self.setting == "a":
            x = (rng.random(shape, dtype=np.float32) < 0.05).astype(np.float32)
            y = rng.integers(0, self.classes, size=(self.batch,)).astype(np.int32)
        else:
            x = rng.standard_normal(shape, dtype=np.float32)
            y = np.zeros((self.batch,), np.int32)
        return x, y

    def weights(self):
        """``[(W (in, out), b (out,)), ...]`` for every Linear (the readout last, setting a),
        PyTorch's default init U(-1/sqrt(in), 1/sqrt(in)), drawn once from ``seed``; the
        spiking layers' ``W`` times ``weight_scale`` (so that the hidden layers fire)."""
        import numpy as np

        rng = np.random.default_rng(self.seed + 1)
        dims = self.widths + ((self.classes,) if self.classes else ())
        out = []
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / np.sqrt(fan_in)
            w = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
            b = rng.uniform(-bound, bound, (fan_out,)).astype(np.float32)
            if len(out) < len(self.hidden):
                w = (w * np.float32(self.weight_scale)).astype(np.float32)
            out.append((w, b))
        return out

    def flops(self) -> dict[str, float]:
        """Counted matmul FLOPs of one step, the same for every library (readout once on
        the spike count, as ours; the peers apply it at every step, ~3% more in a)."""
        if self.setting == "a":
            n = len(self.hidden)
            return common.matmul_flops(
                self.hidden, self.widths[0], self.classes, (False,) * n, self.batch, self.steps
            )
        f = 2.0 * self.batch * self.steps * self.widths[0] * self.widths[1]
        return {"forward": f, "backward": f, "total": 2 * f}  # the input gets no gradient


def library_version(lib: str) -> str | None:
    """The installed version of a library (``ours``: tclif_jax's), or None."""
    if lib == "ours":
        import tclif_jax

        return tclif_jax.__version__
    dist = PEER_MODULES[lib]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed(lib: str) -> bool:
    if lib == "ours":
        return True
    if importlib.util.find_spec(PEER_MODULES[lib]) is None:
        return False
    return lib in JAX_PEERS or importlib.util.find_spec("torch") is not None


# ----------------------------------------------------------------------------- ours


class OursRunner:
    """tclif_jax with one neuron and strategy: the train step (a) or fwd + bwd (b).

    ``settings`` overrides neuron settings (the tests set ``reset_order`` and ``reset``).
    """

    def __init__(
        self,
        problem,
        neuron,
        strategy,
        weights,
        x,
        y,
        precision="highest",
        inputs="dense",
        **settings,
    ):
        import jax
        import jax.numpy as jnp
        import optax

        from tclif_jax import events
        from tclif_jax.config import NetworkConfig
        from tclif_jax.execution import Execution
        from tclif_jax.models import apply, from_config
        from tclif_jax.params import Dense
        from tclif_jax.train import make_train_step

        self.problem, self.library, self.neuron = problem, "ours", neuron
        if neuron == "lif":
            settings = {"decay": problem.decay, "v_th": 1.0, **settings}
        if problem.setting == "a":  # the SHD preset's network (its TC-LIF settings)
            cfg = NetworkConfig.from_preset("shd-ff", neuron=neuron, **settings)
        else:
            cfg = NetworkConfig(1, (1,), 1, neuron, settings)
        cfg = cfg.replace(
            in_features=problem.widths[0],
            hidden=problem.hidden,
            num_classes=problem.classes or 1,
        )
        self.config = cfg
        self.execution = Execution(strategy=strategy, matmul_precision=precision)
        self.strategy, self.resolved = strategy, self.execution.resolved_strategy()
        auto = f"({self.resolved})" if strategy == "auto" else ""
        self.inputs = inputs
        kind = "-events" if inputs == "events" else ""
        self.name = f"ours-{neuron}-{strategy}{auto}{kind}"
        self.model = from_config(cfg, seed=problem.seed, execution=self.execution)
        typed = self.model.params()
        layers = tuple(
            lp._replace(dense=Dense(w, b))
            for lp, (w, b) in zip(typed.layers, weights[: len(problem.hidden)])
        )
        if problem.classes:
            w, b = weights[-1]
        else:  # the readout that sums the spikes (module docstring)
            w, b = jnp.ones((problem.hidden[-1], 1)), jnp.zeros((1,))
        params = typed._replace(layers=layers, readout=Dense(w, b))
        # Copies: the train step donates its params.
        params = jax.tree.map(lambda a: jnp.array(a, jnp.float32), params)
        if inputs == "events":
            x = events.from_dense(x)  # setting a's spikes (checked by the config)
        self.x, self.y = jax.device_put(x), jax.device_put(y)
        # The hidden layers' firing at the initial weights, which every library shares.
        rates = apply(cfg, params, self.x, self.execution)[1]["firing_rates"]
        self.firing_rates = [round(float(r), 5) for r in rates]
        t0 = time.perf_counter()
        if problem.setting == "a":
            tx = optax.adam(problem.learning_rate)
            opt = tx.init(params)
            step = make_train_step(self.model, tx)
            self.compiled = step.lower(params, opt, self.x, self.y, jax.random.key(0)).compile()
            self.state = [params, opt]
            self.key = jax.random.key(0)
        else:

            def spike_count(p, x):
                return jnp.sum(apply(cfg, p, x, self.execution)[0])

            self.compiled = jax.jit(jax.value_and_grad(spike_count)).lower(params, self.x).compile()
            self.state = [params]
        self.compile_s = time.perf_counter() - t0

    def step(self):
        if self.problem.setting == "a":
            p, o, metrics = self.compiled(self.state[0], self.state[1], self.x, self.y, self.key)
            self.state = [p, o]
            return metrics["loss"], p
        return self.compiled(self.state[0], self.x)

    @staticmethod
    def block(out):
        import jax

        jax.block_until_ready(out)

    @staticmethod
    def loss(out) -> float:
        return float(out[0])

    def output(self):
        """Logits ``(B, C)`` (a) or the spikes ``(B, T, n)`` (b) with the current params."""
        import numpy as np

        from tclif_jax.models import apply

        if self.problem.setting == "a":
            return np.asarray(apply(self.config, self.state[0], self.x)[0])
        aux = apply(self.config, self.state[0], self.x, record=True)[1]
        return np.asarray(aux["spikes"][0])


# ----------------------------------------------------------------------------- spyx


class SpyxRunner:
    """spyx 1.0: Sequential of nnx.Linear + spyx.nn.LIF under spyx.nn.run, jitted step."""

    def __init__(self, problem, weights, x, y):
        import functools

        import jax
        import jax.numpy as jnp
        import numpy as np
        import optax
        import spyx
        from flax import nnx

        self.problem, self.library, self.name = problem, "spyx", "spyx"
        rngs = nnx.Rngs(problem.seed)
        layers = []
        for i, (w, b) in enumerate(weights):
            lin = nnx.Linear(w.shape[0], w.shape[1], rngs=rngs)
            lin.kernel.set_value(jnp.asarray(w))
            lin.bias.set_value(jnp.asarray(b))
            layers.append(lin)
            if i < len(problem.hidden):
                layers.append(spyx.nn.LIF((w.shape[1],), beta=problem.decay, rngs=rngs))
        model = spyx.nn.Sequential(*layers)
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        params = jax.tree.map(jnp.array, params)  # a copy: the step donates it
        self._run = lambda p, xs: spyx.nn.run(nnx.merge(graphdef, p, rest), xs)[0]
        self.x = jax.device_put(np.ascontiguousarray(np.swapaxes(x, 0, 1)))  # time-major
        self.y = jax.device_put(y)
        t0 = time.perf_counter()
        if problem.setting == "a":
            xent = spyx.fn.integral_crossentropy(smoothing=0.0, time_axis=0)
            tx = optax.adam(problem.learning_rate)

            def loss_fn(p, xs, ys):
                return xent(self._run(p, xs), ys)

            @functools.partial(jax.jit, donate_argnums=(0, 1))
            def step(p, opt, xs, ys):
                loss, grads = jax.value_and_grad(loss_fn)(p, xs, ys)
                updates, opt = tx.update(grads, opt, p)
                return optax.apply_updates(p, updates), opt, loss

            opt = tx.init(params)
            self.compiled = step.lower(params, opt, self.x, self.y).compile()
            self.state = [params, opt]
        else:

            def spike_count(p, xs):
                return jnp.sum(self._run(p, xs))

            self.compiled = jax.jit(jax.value_and_grad(spike_count)).lower(params, self.x).compile()
            self.state = [params]
        self.compile_s = time.perf_counter() - t0

    def step(self):
        if self.problem.setting == "a":
            p, o, loss = self.compiled(self.state[0], self.state[1], self.x, self.y)
            self.state = [p, o]
            return loss, p
        return self.compiled(self.state[0], self.x)

    block = staticmethod(OursRunner.block)
    loss = staticmethod(OursRunner.loss)

    def output(self):
        import numpy as np

        out = np.asarray(self._run(self.state[0], self.x))  # (T, B, C or n)
        return out.sum(0) if self.problem.setting == "a" else np.swapaxes(out, 0, 1)


# ----------------------------------------------------------------------------- torch peers


def _torch_linear(w, b, scale=1.0):
    import torch

    lin = torch.nn.Linear(w.shape[0], w.shape[1])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy((w * scale).T.copy()))
        lin.bias.copy_(torch.from_numpy(b * scale))
    return lin


def _build_snntorch(problem, weights):
    import snntorch
    import torch
    from snntorch import utils

    mods = []
    for i, (w, b) in enumerate(weights):
        mods.append(_torch_linear(w, b))
        if i < len(problem.hidden):
            mods.append(snntorch.Leaky(beta=problem.decay, threshold=1.0, init_hidden=True))
    net = torch.nn.Sequential(*mods)

    def forward(x):  # (T, B, F) -> (T, B, C or n)
        utils.reset(net)
        return torch.stack([net(x[t]) for t in range(x.shape[0])])

    return net, forward


def _build_norse(problem, weights):
    import torch
    from norse.torch import LIFBoxCell, LIFBoxParameters, SequentialState
    from norse.torch.functional.reset import reset_subtract

    a = 1.0 - problem.decay  # dt / tau_mem with dt = 1: v += a (i - v)
    p = LIFBoxParameters(
        tau_mem_inv=torch.as_tensor(a),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(1.0),
        v_reset=torch.as_tensor(0.0),
        reset_method=reset_subtract,
    )
    mods = []
    for i, (w, b) in enumerate(weights):
        cell = i < len(problem.hidden)
        mods.append(_torch_linear(w, b, 1.0 / a if cell else 1.0))
        if cell:
            mods.append(LIFBoxCell(p, dt=1.0))
    net = SequentialState(*mods)

    def forward(x):
        state, outs = None, []
        for t in range(x.shape[0]):
            out, state = net(x[t], state)
            outs.append(out)
        return torch.stack(outs)

    return net, forward


def _build_norse_lif(problem, weights):
    import torch
    from norse.torch import LIF, LIFParameters, SequentialState

    a = 1.0 - problem.decay
    p = LIFParameters(
        tau_syn_inv=torch.as_tensor(1.0),  # dt / tau_syn = 1: the current lasts one step
        tau_mem_inv=torch.as_tensor(a),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(1.0),
        v_reset=torch.as_tensor(0.0),
    )
    mods = []
    for i, (w, b) in enumerate(weights):
        cell = i < len(problem.hidden)
        mods.append(_torch_linear(w, b, 1.0 / a if cell else 1.0))
        if cell:
            mods.append(LIF(p, dt=1.0))
    net = SequentialState(*mods)

    def forward(x):
        return net(x)[0]

    return net, forward


_TORCH_BUILDERS = {
    "snntorch": _build_snntorch,
    "norse": _build_norse,
    "norse-lif": _build_norse_lif,
}


class TorchPeerRunner:
    """A torch peer (``TORCH_PEERS``) in this process: its network and step."""

    def __init__(self, lib, problem, weights, x, y, threads=0, device="cpu", compile_=False):
        import numpy as np
        import torch

        torch.set_num_threads(threads or os.cpu_count())
        # XLA's CPU runtime flushes denormals to zero; torch does not unless told.
        torch.set_flush_denormal(True)
        self.problem, self.library, self.name = problem, lib, lib
        self.device = torch.device(device)
        net, forward = _TORCH_BUILDERS[lib](problem, weights)
        self.net = net.to(self.device)
        self.forward = forward
        self._fwd = torch.compile(forward) if compile_ else forward
        self.x = torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).to(self.device)
        self.y = torch.from_numpy(y.astype(np.int64)).to(self.device)
        if problem.setting == "a":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=problem.learning_rate)
        self.compile_s = 0.0

    def step(self):
        import torch

        if self.problem.setting == "a":
            self.opt.zero_grad(set_to_none=True)
            logits = self._fwd(self.x).sum(0)
            loss = torch.nn.functional.cross_entropy(logits, self.y)
            loss.backward()
            self.opt.step()
            return loss
        self.net.zero_grad(set_to_none=True)
        loss = self._fwd(self.x).sum()
        loss.backward()
        return loss

    def block(self, out):
        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize()
        return out

    @staticmethod
    def loss(out) -> float:
        return float(out.detach().cpu())

    def output(self):
        import numpy as np
        import torch

        with torch.no_grad():
            out = self.forward(self.x).cpu().numpy()
        return out.sum(0) if self.problem.setting == "a" else np.swapaxes(out, 0, 1)


class PeerWorker(common.StepWorker):
    """A torch peer in a child process (``--peer_worker=<lib>``) that steps on request and
    times each step itself, so the pipe is not timed. It builds the same weights and data
    from the config's seed."""

    def __init__(self, lib, config, device):
        fields = {k: config[k] for k in _WORKER_FIELDS}
        args = [f"--peer_worker={lib}", *common.config_args("peers", **fields, torch_device=device)]
        super().__init__(lib, "benchmarks.peers", args)
        self.library = lib
        self.device, self.compile_s, self.last_loss = None, 0.0, None

    def wait_ready(self) -> None:
        """Wait for the worker's ``ready`` line (the workers start while JAX compiles)."""
        self.device, compile_s = self.ready_line()
        self.compile_s = float(compile_s)

    def timed_step(self) -> float:
        dt, (loss,) = self.step_line()
        self.last_loss = float(loss)
        return dt


_WORKER_FIELDS = (
    "setting",
    "batch",
    "steps",
    "n",
    "decay",
    "learning_rate",
    "threads",
    "torch_compile",
    "seed",
    "malloc_tuning",
)


def serve_peer(config, lib: str) -> None:
    """Child side of ``PeerWorker``: build, compile (torch.compile only), announce, step."""
    import warnings

    import torch

    # norse registers its parameter tuples with torch's pytree (harmless, but it warns).
    warnings.filterwarnings("ignore", message="PyTree type", category=UserWarning)
    problem = Problem.from_config(config)
    x, y = problem.data()
    device = config.torch_device
    if device == "auto":  # run by hand; the parent passes cpu or cuda
        device = "cuda" if torch.cuda.is_available() else "cpu"
    r = TorchPeerRunner(
        lib, problem, problem.weights(), x, y, config.threads, device, config.torch_compile
    )
    t0 = time.perf_counter()
    if config.torch_compile:  # compile now (the first call), untimed like XLA's
        r.block(r.step())
    compile_s = time.perf_counter() - t0

    def step():
        t0 = time.perf_counter()
        out = r.block(r.step())
        dt = time.perf_counter() - t0
        return dt, r.loss(out)

    common.serve_steps((r.device, compile_s), step)


# ----------------------------------------------------------------------------- the run


def build_runners(config, problem, log) -> tuple[list, list[dict]]:
    """Every configuration the config asks for, built and compiled; and the skipped ones."""
    from benchmarks.configs.peers import INPUTS, LIBRARIES, NEURONS, STRATEGIES
    from tclif_jax.execution import Execution

    libs = common.choose_list("libraries", config.libraries, LIBRARIES, LIBRARIES)
    neurons = common.choose_list("neurons", config.neurons, NEURONS, NEURONS)
    strategies = common.choose_list("strategy", config.strategy, STRATEGIES, STRATEGIES[1:])
    input_kinds = common.choose_list("inputs", config.inputs, INPUTS, INPUTS)
    x, y = problem.data()
    weights = problem.weights()
    runners, skipped, workers = [], [], {}
    for lib in libs:
        if not installed(lib):
            why = f"{PEER_MODULES[lib]} (or torch) is not installed: {INSTALL}"
            if config.missing == "error":
                raise SystemExit(f"{lib}: {why}")
            log(f"skipping {lib}: {why}")
            skipped.append({"library": lib, "reason": why})
        elif lib in TORCH_PEERS:  # start them first: they load while JAX compiles
            workers[lib] = PeerWorker(lib, config, common.torch_device(config.torch_device))
    missing = {s["library"] for s in skipped}
    for lib in libs:
        if lib in missing:
            continue
        if lib in workers:
            r = workers[lib]
            r.wait_ready()
            runners.append(r)
            log(f"started {lib} worker on {r.device}")
        elif lib == "ours":
            for neuron in neurons:
                seen = set()
                for st in strategies:
                    resolved = Execution(strategy=st).resolved_strategy()
                    if resolved in seen:  # auto = layerwise on GPU: time it once
                        continue
                    seen.add(resolved)
                    for kind in input_kinds:
                        r = OursRunner(
                            problem,
                            neuron,
                            st,
                            weights,
                            x,
                            y,
                            precision=config.matmul_precision,
                            inputs=kind,
                        )
                        runners.append(r)
                        log(f"compiled {r.name} in {r.compile_s:.1f} s; firing {r.firing_rates}")
        elif lib == "spyx":
            r = SpyxRunner(problem, weights, x, y)
            runners.append(r)
            log(f"compiled spyx in {r.compile_s:.1f} s")
    return runners, skipped


def run(config, peer_worker: str = "") -> dict:
    """Run the benchmark ``config`` describes (``benchmarks/configs/peers.py``) and print its
    table, or with ``config.json`` one JSON object; returns that object.

    ``peer_worker`` is the subprocess mode (an internal flag)."""
    from benchmarks.configs.peers import check

    check(config)
    if peer_worker:
        common.check_choice("peer_worker", peer_worker, TORCH_PEERS)
        serve_peer(config, peer_worker)
        return {}
    # JAX must not take most of a GPU's memory up front: the torch workers share it.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    log = common.log_to(config.json)
    problem = Problem.from_config(config)
    runners, skipped = build_runners(config, problem, log)
    if not runners:
        raise SystemExit("Nothing to time: every library asked for was skipped.")

    def time_one(r):
        if isinstance(r, PeerWorker):
            return r.timed_step()
        t0 = time.perf_counter()
        out = r.step()
        r.block(out)
        dt = time.perf_counter() - t0
        r.last_loss = out
        return dt

    first_loss = {}
    for r in runners:
        for i in range(config.warmup):
            time_one(r)
            if i == 0:
                first_loss[r.name] = (
                    r.last_loss if isinstance(r, PeerWorker) else r.loss(r.last_loss)
                )
    times = {r.name: [] for r in runners}
    order = np.random.default_rng(problem.seed)
    for i in range(config.repeats):
        for j in order.permutation(len(runners)):  # a new order every round
            r = runners[j]
            for _ in range(config.settle):
                time_one(r)
            times[r.name].append(time_one(r))
        rounds = ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items())
        log(f"round {i + 1}/{config.repeats}: {rounds}")
    for r in runners:
        if isinstance(r, PeerWorker):
            r.close()

    flops = problem.flops()
    results = []
    for r in runners:
        s = common.summarize(times[r.name])
        rec = {
            "name": r.name,
            "library": r.library,
            "version": library_version(r.library),
            **s,
            "compile_s": round(r.compile_s, 2),
            "gflops": flops["total"] / s["median_s"] / 1e9,
            "first_loss": first_loss.get(r.name),
        }
        if isinstance(r, OursRunner):
            rec.update(
                neuron=r.neuron,
                strategy=r.strategy,
                resolved_strategy=r.resolved,
                inputs=r.inputs,
                firing_rates=r.firing_rates,
            )
        if isinstance(r, PeerWorker):
            rec.update(device=r.device, process="separate")
        results.append(rec)
    peers = [rec for rec in results if rec["library"] != "ours"]
    fastest = min(peers, key=lambda rec: rec["median_s"]) if peers else None
    for rec in results:
        rec["ratio_vs_fastest_peer"] = rec["median_s"] / fastest["median_s"] if peers else None
        if peers:
            # Per round, this configuration's time over the fastest peer's in that round.
            ratios = np.array(times[rec["name"]]) / np.array(times[fastest["name"]])
            rec["ratio_vs_fastest_peer_per_round"] = {
                "peer": fastest["name"],
                "median": float(np.median(ratios)),
                "ci95": list(common.bootstrap_interval(ratios, seed=problem.seed)),
            }

    out = {
        "benchmark": "peers",
        "machine": common.machine_info(),
        "setting": problem.setting,
        "batch": problem.batch,
        "steps": problem.steps,
        "widths": list(problem.widths),
        "classes": problem.classes,
        "repeats": config.repeats,
        "weight_scale": problem.weight_scale,
        "flops_counted": flops,
        "versions": {lib: library_version(lib) for lib in ("ours", *PEER_MODULES)},
        "peer_notes": {k: v for k, v in PEER_NOTES.items() if k in {r.library for r in runners}},
        "results": results,
        "skipped": skipped,
        "config": config.to_dict(),
        "command": common.command("peers"),
    }
    if config.json:
        print(json.dumps(out))
    else:
        print_table(out)
    return out


def print_table(out) -> None:
    m = out["machine"]
    shape = (
        f"{'-'.join(map(str, out['widths']))}-{out['classes']}, train step"
        if out["setting"] == "a"
        else f"Linear({out['widths'][0]}, {out['widths'][1]}) + LIF, fwd + bwd"
    )
    print(
        f"\nsetting {out['setting']}: {shape}, batch {out['batch']}, T {out['steps']} | "
        f"{m['host_cpu']} x{m['cpu_count']} ({m['device']}) | load {m['loadavg_1min']} | "
        f"weights x{out['weight_scale']:g}"
    )
    print(
        f"{'configuration':28s} {'version':>8s} {'median s':>9s} {'min-max s':>15s} "
        f"{'IQR s':>7s} {'GFLOP/s':>8s} {'x best peer':>11s} {'1st loss':>10s}"
    )
    for r in out["results"]:
        ratio = r["ratio_vs_fastest_peer"]
        print(
            f"{r['name']:28s} {r['version'] or '-':>8s} {r['median_s']:9.3f} "
            f"{r['min_s']:7.3f}-{r['max_s']:<7.3f} {r['iqr_s']:7.3f} {r['gflops']:8.1f} "
            f"{ratio if ratio is not None else float('nan'):11.3f} "
            f"{r['first_loss'] if r['first_loss'] is not None else float('nan'):10.4g}"
        )
    for r in out["results"]:
        per_round = r.get("ratio_vs_fastest_peer_per_round")
        if r["library"] == "ours" and per_round:
            low, high = per_round["ci95"]
            print(
                f"{r['name']}: {per_round['median']:.3f}x {per_round['peer']} per round, "
                f"95% CI [{low:.3f}, {high:.3f}]; hidden firing "
                + ", ".join(f"{100 * f:.2f}%" for f in r["firing_rates"])
            )
    for s in out["skipped"]:
        print(f"skipped {s['library']}: {s['reason']}")


def main() -> None:
    common.main("peers", run, peer_worker="")


if __name__ == "__main__":
    main()
