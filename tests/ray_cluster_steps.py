"""Steps for the Ray cluster tests, importable in Ray's worker processes (module level; the
tests put this folder on the workers' PYTHONPATH): test_search's FakeSteps, slowed down, and
leaving a marker naming the raylet (= the node) running each trial."""
from __future__ import annotations

import json
import os
from pathlib import Path

from test_search import FakeSteps

SLEEP = 4.0   # s per trial: long enough to kill a node in mid-trial


class MarkedSteps(FakeSteps):
    def train(self, config, epochs, ctx):
        markers = os.environ.get("AUTOQ_TEST_MARKERS")
        if markers:
            Path(markers, f"{ctx.number:05d}-{os.getpid()}.json").write_text(
                json.dumps({"trial": ctx.number, "raylet": os.getppid(), "pid": os.getpid()}))
        return super().train(config, epochs, ctx)


def marked_steps(opts):
    return MarkedSteps(sleep=SLEEP)
