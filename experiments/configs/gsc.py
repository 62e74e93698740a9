"""Google Speech Commands v2, 12 classes (40 log-mels x 101 frames), with TC-LIF.

  python -m experiments.gsc --config=experiments/configs/gsc.py:ff  --workdir=runs/gsc-ff   # paper 91.35%
  python -m experiments.gsc --config=experiments/configs/gsc.py:rec --workdir=runs/gsc-rec  # paper 94.84%

Defaults are what the official command runs (GSC-v2/gg12_train.py; experiments/configs/
official.py cites each value): 200 epochs, Adam 1e-3, x0.1 at epochs 30, 60, 90 and 120,
batch 128, the last partial batch kept, dropout 0.3, the triangle surrogate, and both
commands' initial c = (1.4, 1.4), i.e. (b1, b2) = (-0.802, 0.802) (ff: gamma 0.6,
v_th 1.2; rec: gamma 0.7, v_th 1.25, first layer recurrent).
The paper's text, as options: ``schedule=paper`` (100 epochs, /10 at 60, 90, 120, so
the drop at 120 never comes; batch 128, which the paper does not state) and
``settings=paper`` (initial (b1, b2) = (-0.5, 0.5) for ff, (-0.8, 0.8) for rec), e.g.
``:variant=rec,schedule=paper,settings=paper``.

Data: the official TC-LIF split of the raw Speech Commands v0.02 archive (data.split=
official, the default; --config.data.split=tfds for TFDS's split, whose numbers are not
comparable); --config.data.download=True fetches the archive into --config.data.dir.
Features are computed once and cached under the data dir. Differences from the official
data path:
* The official script trains on the train folder and evaluates the test folder every
  epoch; it never reads the validation clips. Here the best checkpoint is chosen on the
  validation split, and the paper's number is the best test accuracy (best_test_acc,
  logged every epoch), as the official log reports it.
* The official download fetches speech_commands_v0.01.tar.gz (GSC-v2/data.py l. 12)
  whatever --version says; its "v2" results need the v0.02 archive put in place by hand.
  Here the v0.02 archive is used.
* The shuffling order (numpy's generator, seeded by --config.seed, against torch's).
"""

from experiments.configs.base import base_config, choose, paper_settings, parse_arg, schedule

PRESETS = {"ff": "gsc-ff", "rec": "gsc-rec"}
PAPER_ACCURACY = {"ff": 91.35, "rec": 94.84}
SCHEDULES = {
    "official": schedule(128, 200, 1e-3, "multistep", (30, 60, 90, 120), decay_factor=0.1),
    "paper": schedule(128, 100, 1e-3, "multistep", (60, 90, 120), decay_factor=0.1),
}
# The paper's initial (b1, b2), where both commands pass c = (1.4, 1.4).
PAPER_SETTINGS = {"ff": dict(init_b=(-0.5, 0.5)), "rec": dict(init_b=(-0.8, 0.8))}


def get_config(arg: str = "ff"):
    """``arg``: a variant (ff, rec), or e.g. ``variant=rec,schedule=paper,settings=paper``
    (``schedule`` and ``settings``: official or paper)."""
    a = parse_arg(arg, variant="ff", schedule="official", settings="official")
    choose("variant", a.variant, PRESETS)
    choose("settings", a.settings, ("official", "paper"))
    config = base_config(
        "gsc",
        PRESETS[a.variant],
        f"gsc-{a.variant}",
        SCHEDULES[choose("schedule", a.schedule, SCHEDULES)],
    )
    if a.settings == "paper":
        paper_settings(config.model, **PAPER_SETTINGS[a.variant])
    config.paper_accuracy = PAPER_ACCURACY[a.variant]
    return config
