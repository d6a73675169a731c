"""Bounds on the numbers a user can give (one place; the CLI, data, space and profile checks
read them). Generous: they exist to turn nonsense (-1 threads, 2**40 classes) into a clear
error, not to restrict real use."""
from __future__ import annotations

MAX_CLASSES = 65536          # labels 0..MAX_CLASSES-1
MAX_SEED = 2**32 - 1         # NumPy / TensorFlow seeds
MAX_EPOCHS = 100_000
MAX_THREADS = 1024
MAX_WORKERS = 1024
MAX_INPUT_SIDE = 4096        # H, W, C of an input image
