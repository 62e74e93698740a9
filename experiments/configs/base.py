"""Fields shared by every task config (not a config itself).

Schedule-dependent fields (``train.batch_size``, ``train.num_epochs``,
``optimizer.learning_rate``, ...) are left as None here and filled at run time
from ``schedules[schedule]``, so ``--config.schedule=official`` switches them all
while an explicit ``--config.optimizer.learning_rate=...`` still wins.
"""

from ml_collections import config_dict

from tclif_jax import data as data_lib

_p = config_dict.placeholder


def base_config(task: str, preset: str, schedules: dict, neuron: str = "tclif"):
    config = config_dict.ConfigDict()
    config.task = task
    config.seed = 0
    config.schedule = "paper"
    config.schedules = schedules

    config.model = config_dict.ConfigDict()
    config.model.preset = preset
    config.model.neuron = neuron  # tclif | lif | plif | alif | two_compartment
    # None means "the preset's value" (reference Table 6 / section 4).
    config.model.gamma = _p(float)
    config.model.v_th = _p(float)
    config.model.init_b = _p(tuple)
    config.model.init_c = _p(tuple)
    config.model.surrogate = _p(str)
    config.model.surrogate_width = _p(float)
    config.model.reset_order = _p(str)  # official | paper
    config.model.detach_reset = _p(bool)
    config.model.per_neuron = _p(bool)
    config.model.decay = _p(object)  # LIF: float; two_compartment: (a1, a2)
    config.model.learn_decay = _p(bool)
    config.model.reset = _p(str)
    config.model.hidden = _p(tuple)
    config.model.recurrent = _p(tuple)
    config.model.dropout = _p(float)
    config.model.readout = _p(str)  # sum | mean | last
    config.model.strategy = _p(str)  # auto | layerwise | fused
    config.model.matmul_dtype = _p(str)  # float32 | bfloat16
    config.model.remat_chunk = _p(int)

    config.data = data_lib.default_config(task)
    config.data.on_device = "auto"  # place whole splits on device when they fit

    config.train = config_dict.ConfigDict()
    config.train.batch_size = _p(int)
    config.train.eval_batch_size = 0  # 0: same as batch_size
    config.train.num_epochs = _p(int)
    config.train.max_steps = 0  # stop after this many steps (0: no limit); still evaluates
    config.train.checkpoint_every_steps = 0  # also checkpoint inside epochs (0: epoch ends only)
    config.train.keep_checkpoints = 3
    config.train.skip_nonfinite = False
    config.train.progress = True

    config.optimizer = config_dict.ConfigDict()
    config.optimizer.name = "adam"
    config.optimizer.learning_rate = _p(float)
    config.optimizer.schedule = _p(str)  # multistep | step | constant
    config.optimizer.decay_epochs = _p(tuple)
    config.optimizer.decay_every = _p(int)
    config.optimizer.decay_factor = _p(float)
    config.optimizer.b1 = 0.9
    config.optimizer.b2 = 0.999
    config.optimizer.eps = 1e-8
    config.optimizer.grad_clip = 0.0  # global-norm clip; 0 = off

    config.mesh = config_dict.ConfigDict()
    config.mesh.shard_params = False  # replicate params (False) or shard dim 0 over devices
    config.distributed = False  # call jax.distributed.initialize() (multi-host)
    return config


def schedule(batch_size, num_epochs, learning_rate, kind="multistep", decay_epochs=(),
             decay_every=0, decay_factor=0.1):
    """One entry of ``config.schedules``."""
    return {"train": {"batch_size": batch_size, "num_epochs": num_epochs},
            "optimizer": {"learning_rate": learning_rate, "schedule": kind,
                          "decay_epochs": tuple(decay_epochs), "decay_every": decay_every,
                          "decay_factor": decay_factor}}
