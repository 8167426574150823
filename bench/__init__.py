"""Benchmarks: rtinfer side by side with onnxruntime, NumPy, PyTorch and tract (``python -m bench``).

bench.run is the command line; bench.suite_models, bench.suite_engines, bench.suite_limits,
bench.suite_startup and bench.suite_report hold its parts. bench_train.py and bench_runtime.py
are standalone scripts by their authors. Nothing here is imported by rtinfer.
"""
