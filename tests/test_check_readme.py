"""benchmarks/check_readme.py: README transcripts are found and compared with wildcards."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_readme", ROOT / "benchmarks" / "check_readme.py")
check_readme = sys.modules.setdefault("check_readme", importlib.util.module_from_spec(spec))
spec.loader.exec_module(check_readme)


def test_readme_transcripts_cover_the_walk_through():
    commands = [t.command for t in check_readme.transcripts((ROOT / "README.md").read_text().splitlines())]
    assert commands[0].startswith("autoq search --space lenet5 --target m4 --budget 16")
    for needed in ("autoq pareto runs/lenet5-m4", "autoq export runs/lenet5-m4", "autoq inspect model.qbin",
                   "./model_host digits10.f32"):
        assert any(c.startswith(needed) for c in commands), needed


def test_matching_with_wildcards_and_durations():
    m = check_readme.matches
    assert m(["search finished in 110.1 s"], ["search finished in 98.7 s"])
    assert not m(["flash 25,076 B"], ["flash 25,080 B"])
    assert m(["a", "...", "z"], ["a", "b", "c", "z"]) and m(["a", "...", "z"], ["a", "z"])
    assert not m(["a", "...", "z"], ["a", "b"])
    assert m(["cc -O2 -o model_host ..."], ["cc -O2 -o model_host model.c main.c"])
    assert not m(["x"], ["x", "extra line"])
