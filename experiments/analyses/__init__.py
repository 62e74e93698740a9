"""Entry points that regenerate the paper's figures and tables.

  python -m experiments.analyses.<name> --config=experiments/configs/analyses/<name>.py:size=cpu

gradient_norms (Table 7, Eq. 14-15), beta_grid (Figure 2), gradient_flow (Figure 3),
learning_curves (Figure 4), landscape (Figure 5), energy (Table 2). Each writes a PNG and
the numbers behind it (JSON/CSV) to runs/analyses/<name>/ (docs/figures/<name>/ with
--config.docs=True); the config argument's size picks smoke, cpu or paper.
"""
