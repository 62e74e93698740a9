"""Benchmarks for tclif_jax: train-step time, memory, precision, and the PyTorch reference.

Each takes a config file of ``benchmarks/configs`` with big_vision arguments and
``--config.<field>=value`` overrides, as the training entry points do:

* ``python -m benchmarks.step_time --config=benchmarks/configs/step_time.py:preset=smnist-ff-64,batch=256``
  (add ``--config.against=torch --config.json=True`` to race our PyTorch reference)
* ``python -m benchmarks.breakdown --config=benchmarks/configs/breakdown.py:preset=smnist-ff-64``
  (a step's in-loop matmuls against the rest)
* ``python -m benchmarks.memory --config=benchmarks/configs/memory.py:preset=smnist-ff-64,batch=256``
  (peak RSS against T, with and without remat)
* ``python -m benchmarks.precision_accuracy --config=benchmarks/configs/precision_accuracy.py``
  (short real S-MNIST run, f32 against bf16)
* ``python -m benchmarks.report benchmarks/results/*.json`` (the tables of RESULTS.md)
* ``benchmarks/gpu_suite.sh`` (the GPU figures, on a machine with one)

Results and the exact commands are in ``benchmarks/RESULTS.md``.
"""
