"""Import TensorFlow quietly and only when needed.

TensorFlow takes seconds to import and logs noisily; everything that does not build or train
a model must work without it, so modules call :func:`import_tf` inside the functions that
need it instead of importing at module level.
"""
from __future__ import annotations

import os

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}


def set_quiet_env() -> None:
    """Set the quiet-log variables unless the user already chose values."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def set_threads(intra: int | None = None, inter: int | None = None) -> None:
    """Limit TensorFlow's thread pools; must run before the first TF op."""
    tf = import_tf()
    try:
        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(int(intra))
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(int(inter))
    except RuntimeError:  # already initialised: TF keeps its first setting
        pass


def import_tf():
    """Return the tensorflow module, imported with the quiet-log environment."""
    set_quiet_env()
    import tensorflow as tf  # noqa: PLC0415 (deliberately lazy)

    return tf
