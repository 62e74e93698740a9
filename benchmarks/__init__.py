"""Benchmarks for tclif_jax: train-step time, memory, precision, and the PyTorch reference.

* ``python -m benchmarks.step_time --preset smnist-ff-64 --batch 256 [--against torch] [--json]``
* ``python -m benchmarks.memory --preset smnist-ff-64 --batch 256`` (peak RSS against T, remat)
* ``python -m benchmarks.precision_accuracy`` (short real S-MNIST run, f32 against bf16)
* ``benchmarks/gpu_suite.sh`` (the GPU figures, on a machine with one)

Results and the exact commands are in ``benchmarks/RESULTS.md``.
"""
