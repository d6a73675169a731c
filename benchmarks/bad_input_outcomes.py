"""Outcome counts of the bad-input suite (tests/test_bad_inputs.py) for the autoq on PYTHONPATH.

Runs every case in-process through ``autoq.cli.main()`` and classifies it: clean error (exit 2,
one stderr line), traceback, accepted (exit 0, or still running after 90 s), code executed (the
crafted CIFAR pickle's marker file exists), and "+ files changed" when the case folder or the
shipped hw_models/ / search_spaces/ differ afterwards. Compare two checkouts:

    PYTHONPATH=/path/to/old/checkout python benchmarks/bad_input_outcomes.py
    PYTHONPATH=. python benchmarks/bad_input_outcomes.py [CASE-ID-PREFIX]

Cases that an old checkout accepts may start training (TensorFlow); each is stopped after 90 s.
"""
import contextlib, io, os, signal, sys, tempfile, json
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_bad_inputs as T
import autoq.cost.profile as profile_mod, autoq.cost.calibrate as calibrate_mod
from autoq import cli
from autoq.resources import resource_dir

class Timeout(Exception): pass
def _alarm(*a): raise Timeout()
signal.signal(signal.SIGALRM, _alarm)
counts, rows = {}, []
only = sys.argv[1] if len(sys.argv) > 1 else ""
for case in T.CASES:
    if only and not case.id.startswith(only): continue
    d = Path(tempfile.mkdtemp()) / "case"; d.mkdir(); os.chdir(d)
    os.environ["AUTOQ_CACHE"] = str(d.parent / "cache")
    os.environ["KERAS_HOME"] = str(d.parent / "no-keras")
    T._materialise(d, case.files)
    saved = (profile_mod.profiles_dir, calibrate_mod.profiles_dir)
    if case.own_profiles:
        hw = d / "hw"; hw.mkdir()
        for p in resource_dir("hw_models").glob("*.yaml"): (hw / p.name).write_bytes(p.read_bytes())
        profile_mod.profiles_dir = calibrate_mod.profiles_dir = (lambda hw=hw: hw)
    for k, v in case.env.items(): os.environ[k] = v.replace("{d}", str(d))
    shipped = (resource_dir("hw_models"), resource_dir("search_spaces"))
    before = T.tree_hash(d, *shipped)
    err, out = io.StringIO(), io.StringIO()
    code, tb = None, None
    sys.argv = ["autoq", *[a.replace("{d}", str(d)) for a in case.argv]]
    signal.alarm(90)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            cli.main()
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else e.code
    except Timeout:
        code = "timeout"
    except BaseException as e:
        tb = f"{type(e).__name__}: {str(e)[:150]}"
    finally:
        signal.alarm(0)
    profile_mod.profiles_dir, calibrate_mod.profiles_dir = saved
    after = T.tree_hash(d, *shipped)
    text = err.getvalue() + out.getvalue()
    changed = after != before
    pwned = (d / "keras" / "PWNED").exists()
    if pwned: kind = "code executed"
    elif tb or "Traceback" in text: kind = "traceback"
    elif code == 0 or code == "timeout": kind = "accepted"
    elif code == 2 and len(err.getvalue().strip().splitlines()) == 1: kind = "clean error"
    else: kind = f"exit {code}"
    if changed: kind += " + files changed"
    counts[kind] = counts.get(kind, 0) + 1
    rows.append((case.id, kind, tb or err.getvalue().strip().splitlines()[-1:] ))
    for k in case.env: os.environ.pop(k, None)
print(json.dumps(counts, indent=1))
for r in rows:
    if not r[1].startswith("clean error") or "changed" in r[1]: print(r[0], "|", r[1], "|", str(r[2])[:160])
