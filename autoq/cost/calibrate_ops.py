"""Measure the non-kernel ops of the exported C on this machine and fit their coefficients.

The exported program itself is timed, not a model of it: a few zoo models (CALIBRATION_MODELS,
untrained: latency does not depend on the weight values; other input sizes than the
benchmark's) are exported with autoq.export.c_emit exactly as ``autoq export`` does, the
emitted ``model.c`` gets a timer mark (x86-64: rdtsc) in front of every plan item (each op of
LayerPlan.ops, each kernel call) and the program is built with the export's own compiler flags
(c_emit.HOST_CFLAGS = kernels/flags.mk). It runs ``samples`` inputs ``reps`` times; per item
the time is the median over all those runs (robust to the preemptions of a shared machine, where
a mean is not), minus the median cost of one empty mark pair; the programs are timed in a few
rounds, interleaved, and each item keeps its fastest round. Per op kind the coefficients of
autoq.cost.ops are fitted to one point per distinct op size (median over the model's ops of
that size) with the weighted NNLS of autoq.cost.fit; fit.mape is in-sample, fit.loo_mape holds
out each size in turn.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autoq.cost.fit import relative_nnls
from autoq.cost.ops import op_features, op_keys
from autoq.cost.profile import KernelCost
from autoq.errors import UserError
from autoq.plan import LayerPlan, OpEntry

# (zoo model, input shape, preset): together they have every op kind the zoo's C uses
# (affine, act, maxpool, gap, add, concat, quantize (dorefa / sign), quantize_int8, pack_bits) at
# large and small sizes
CALIBRATION_MODELS = [("squeezenet_bypass", (16, 16, 3), "int8"), ("resnet20", (16, 16, 3), "bnn"),
                      ("vgg7", (16, 16, 3), "drf-a2"), ("tiny", (24, 24, 3), "hybrid"),
                      ("lenet5", (28, 28, 1), "drf-a4"), ("squeezenet_bypass", (32, 32, 3), "base"),
                      # small tensors (a few hundred values): the fixed cost per op
                      ("lenet5", (12, 12, 1), "bnn"), ("lenet5", (16, 16, 1), "hybrid"), ("vgg7", (8, 8, 3), "int8"),
                      ("tiny", (8, 8, 3), "drf-a2")]
QUICK_MODELS = CALIBRATION_MODELS[:2]
# coefficients fitted per op kind (the rest: per element written + a fixed cost)
OP_FIT = {"maxpool": ("ns_per_tap", "ns_fixed"), "avgpool": ("ns_per_tap", "ns_fixed"),
          "gap": ("ns_per_input", "ns_per_element", "ns_fixed")}
DEFAULT_FIT = ("ns_per_element", "ns_fixed")

_COMMENT = re.compile(r"^\s*/\* (\S+): (\w+) -> .*\*/\s*$")
_PROFILE_HEADER = """#define _POSIX_C_SOURCE 199309L
#include <time.h>
long long aq_prof_t[{n}];
#if defined(__x86_64__) && defined(__GNUC__)
/* plain rdtsc, no fence: a serialising timer (clock_gettime's rdtscp / lfence) would stop the
   overlap of one op's tail with the next op's start and add ~100 ns per mark */
#include <x86intrin.h>
#define AQ_PROF_MARK(k) do {{ __asm__ __volatile__("" ::: "memory"); aq_prof_t[k] = (long long)__rdtsc(); \
    __asm__ __volatile__("" ::: "memory"); }} while (0)
#else
#define AQ_PROF_MARK(k) do {{ struct timespec aq_ts_; clock_gettime(CLOCK_MONOTONIC, &aq_ts_); \
    aq_prof_t[k] = (long long)aq_ts_.tv_sec * 1000000000LL + aq_ts_.tv_nsec; }} while (0)
#endif
"""
_PROFILE_MAIN = r"""/* timing driver: INPUT.f32 REPS OUT.i64 -- per run of a sample, the ns between the marks */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "model.h"
#define NMARK %(n)d
extern long long aq_prof_t[NMARK];
%(marks)s
int main(int argc, char **argv) {
    static float y[AUTOQ_MODEL_OUTPUT_SIZE];
    float *x; long long *d, t_start; long n = 0, cap = 64, s; int r, k, reps;
    struct timespec t0, t1;
    FILE *in, *out;
    if (argc < 4 || !(in = fopen(argv[1], "rb")) || !(out = fopen(argv[3], "wb"))) return 2;
    reps = atoi(argv[2]);
    x = malloc(sizeof(float) * AUTOQ_MODEL_INPUT_SIZE * cap);
    while (x && fread(x + n * AUTOQ_MODEL_INPUT_SIZE, sizeof(float), AUTOQ_MODEL_INPUT_SIZE, in) == AUTOQ_MODEL_INPUT_SIZE)
        if (++n == cap) x = realloc(x, sizeof(float) * AUTOQ_MODEL_INPUT_SIZE * (cap *= 2));
    if (!x || !n || !(d = malloc(sizeof(long long) * (NMARK - 1) * n))) return 2;
    AQ_PROF_MARK(0); clock_gettime(CLOCK_MONOTONIC, &t0); t_start = aq_prof_t[0];
    for (r = 0; r < reps; r++) {
        for (s = 0; s < n; s++) {
            if (autoq_model_run(x + s * AUTOQ_MODEL_INPUT_SIZE, y)) return 1;
            for (k = 0; k + 1 < NMARK; k++) d[s * (NMARK - 1) + k] = aq_prof_t[k + 1] - aq_prof_t[k];
        }
        fwrite(d, sizeof(long long), (size_t)(NMARK - 1) * n, out);
    }
    AQ_PROF_MARK(0); clock_gettime(CLOCK_MONOTONIC, &t1);
    /* ns per timer tick over the whole run (1 for clock_gettime marks) */
    printf("%%.9f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (double)(aq_prof_t[0] - t_start));
    return fclose(out) != 0;
}
"""


@dataclasses.dataclass
class Piece:
    """One timed item of the exported program: an op of the plan or a kernel call."""

    what: str            # "op" or "kernel"
    index: int           # into plan.ops or plan.layers
    ns: float = 0.0      # measured (timer cost subtracted)


def instrument(source: str, plan: LayerPlan) -> tuple[str, list[Piece]]:
    """``source`` (c_emit's model.c) with a timer mark before every plan item and at the end.

    Items are found from the per-op comments the emitter writes; a compute layer's statements
    before its ``memset(&a`` are its input ops (``<layer>:...`` in plan.ops, in order)."""
    lines = source.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("int autoq_model_run("))
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("memcpy(output,"))
    layer_index = {e.name: i for i, e in enumerate(plan.layers)}
    op_index = {o.name: i for i, o in enumerate(plan.ops)}
    pieces: list[Piece] = []
    marks: dict[int, list[int]] = {}     # line number -> piece numbers whose mark goes before it
    i = start
    while i < end:
        m = _COMMENT.match(lines[i])
        if not m:
            i += 1
            continue
        name, j = m.group(1), i + 1
        while j < end and not _COMMENT.match(lines[j]):
            j += 1
        body = list(range(i + 1, j))
        if name in layer_index:
            kernel_at = next(k for k in body if lines[k].lstrip().startswith("memset(&a"))
            inputs = [k for k, o in enumerate(plan.ops) if o.name.startswith(name + ":")]
            prep = [k for k in body if k < kernel_at]
            if len(inputs) != len(prep):
                raise UserError(f"layer {name}: plan has {len(inputs)} input ops, the C {len(prep)} statements")
            for line_no, k in zip(prep, inputs):
                marks.setdefault(line_no, []).append(len(pieces))
                pieces.append(Piece("op", k))
            marks.setdefault(kernel_at, []).append(len(pieces))
            pieces.append(Piece("kernel", layer_index[name]))
        elif name in op_index:
            marks.setdefault(body[0], []).append(len(pieces))
            pieces.append(Piece("op", op_index[name]))
        elif any(lines[k].strip() for k in body):
            raise UserError(f"op {name}: the C does work the plan has no entry for")
        i = j
    n_marks = len(pieces) + 2           # mark 0 -> 1: an empty pair (the timer's own cost)
    out = lines[:start]
    out.insert(next(k for k, ln in enumerate(out) if ln.startswith("#include")), _PROFILE_HEADER.format(n=n_marks))
    for k in range(start, end):
        if k == start + 1:
            out.append("    AQ_PROF_MARK(0);")
        out.extend(f"    AQ_PROF_MARK({p + 1});" for p in marks.get(k, []))
        out.append(lines[k])
    out.append(f"    AQ_PROF_MARK({n_marks - 1});")
    out.extend(lines[end:])
    return "\n".join(out) + "\n", pieces


def write_program(graph, out: Path, objects_from: Path | None = None):
    """The C of ``graph`` as ``autoq export`` writes it (kernels, Makefile, model.h/.c, main.c;
    opt kernels with the plan's scratch for this machine), the kernel objects built by its Makefile
    (``make objects``; or copied from ``objects_from``, an export folder of the same kernels, to
    save the rebuild); returns the CEmission."""
    import shutil

    from autoq.cost.deploy import emit_for_target
    from autoq.export import c_emit
    from autoq.kernel_flags import is_x86_64
    from autoq.resources import resource_dir

    out.mkdir(parents=True, exist_ok=True)
    c_emit.copy_kernels(resource_dir("kernels"), out)
    c_emit.write_makefile(out)
    if objects_from is not None:
        for obj in sorted((objects_from / "kernels" / "src").glob("*.o")):
            if (obj.with_suffix(".c")).read_bytes() != (out / "kernels" / "src" / f"{obj.stem}.c").read_bytes():
                raise UserError(f"{obj}: built from other kernel sources than {out}")
            shutil.copy(obj, out / "kernels" / "src" / obj.name)   # newer than the sources: make keeps it
    subprocess.run(["make", "-s", "objects"], cwd=out, check=True, capture_output=True)
    # as the exporter: the opt kernels' scratch for this machine's build, from the plan
    _, em = emit_for_target(graph, "x86_64" if is_x86_64() else "aarch64")
    for name, text in (("model.h", em.header), ("model.c", em.source), ("main.c", em.main)):
        (out / name).write_text(text)
    return em


def objects(out: Path) -> list[Path]:
    """The kernel objects of an export folder (``make objects``)."""
    from autoq.export import c_emit

    return [src.with_suffix(".o") for src in c_emit.kernel_sources(out / "kernels")]


def time_pieces(out: Path, plan: LayerPlan, source: str, x: np.ndarray, reps: int) -> tuple[list[Piece], float]:
    """Build the instrumented program in ``out`` (the export's flags) and time every plan item;
    returns the pieces and the timer cost (ns) subtracted from each."""
    from autoq.export import c_emit

    text, pieces = instrument(source, plan)
    (out / "model_prof.c").write_text(text)
    marks = _PROFILE_HEADER.format(n=len(pieces) + 2).split("long long aq_prof_t", 1)[1].split("\n", 1)[1]
    (out / "prof_main.c").write_text(_PROFILE_MAIN % {"n": len(pieces) + 2, "marks": marks})
    kdir = out / "kernels"
    exe = out / "model_prof"
    c_emit.run_tool(["gcc", *c_emit.HOST_CFLAGS, f"-I{kdir / 'include'}", f"-I{kdir / 'src'}", f"-I{out}", "-o",
                     str(exe), str(out / "model_prof.c"), str(out / "prof_main.c"), *map(str, objects(out)), "-lm"],
                    out, "profiling build")
    inp, raw = out / "inputs.f32", out / "marks.i64"
    np.ascontiguousarray(x, "<f4").tofile(inp)
    proc = subprocess.run([str(exe), str(inp), str(reps), str(raw)], capture_output=True, text=True, check=True)
    # median over every run of a sample: robust to the preemptions of a shared machine (a mean is not)
    values = np.median(np.fromfile(raw, "<i8").reshape(-1, len(pieces) + 1), axis=0) * float(proc.stdout)
    raw.unlink()
    timer = float(values[0])
    for piece, ns in zip(pieces, values[1:]):
        piece.ns = max(float(ns) - timer, 0.0)
    return pieces, timer


def samples_for(plan: LayerPlan, budget_macs: float = 1e8) -> int:
    """Inputs per repetition: about ``budget_macs`` MACs per pass (0.05-0.3 s here), 10..500."""
    return int(np.clip(budget_macs / max(plan.macs, 1), 10, 500))


@dataclasses.dataclass
class Program:
    """An exported, built program ready to be timed."""

    out: Path
    plan: LayerPlan
    source: str          # the emitted model.c
    x: np.ndarray        # the inputs it runs on


def prepare_model(model_name: str, shape, preset_name: str, work: Path, seed: int = 0,
                  objects_from: Path | None = None) -> Program:
    """Export one zoo model (untrained) as ``autoq export`` does; its plan from the emitted C."""
    from autoq.config import preset
    from autoq.export.graph import build_graph
    from autoq.export.planning import plan_from_emission
    from autoq.models.zoo import build_model

    model = build_model(model_name, shape, 10, preset(preset_name, model_name))
    graph = build_graph(model, fold_bn=False)
    out = work / f"{model_name}_{'x'.join(map(str, shape))}_{preset_name}"
    em = write_program(graph, out, objects_from)
    plan = plan_from_emission(graph, em)
    x = np.random.default_rng(seed).uniform(0, 1, (samples_for(plan), *shape)).astype(np.float32)
    return Program(out, plan, em.source, x)


def time_program(prog: Program, reps: int) -> list[Piece]:
    return time_pieces(prog.out, prog.plan, prog.source, prog.x, reps)[0]


def fastest(runs: Sequence[Sequence[Piece]]) -> list[Piece]:
    """Per piece the minimum over several timing runs of the same program (a busy moment of
    the machine only adds time)."""
    return [dataclasses.replace(group[0], ns=min(p.ns for p in group)) for group in zip(*runs)]


OpPoint = tuple  # (OpEntry, ns)


def op_points(plan: LayerPlan, pieces: Sequence[Piece]) -> list[OpPoint]:
    """One point per distinct (kind, in, out, window) of a plan: the median measured time."""
    keys = op_keys(plan)
    groups: dict[tuple, list[float]] = {}
    for p in pieces:
        if p.what == "op":
            o = plan.ops[p.index]
            groups.setdefault((keys[p.index], o.in_elements, o.out_elements, o.window), []).append(p.ns)
    return [(OpEntry("", k[0], k[1], k[2], k[3]), float(np.median(v))) for k, v in groups.items()]


def fit_op_kind(points: Sequence[OpPoint], names: Sequence[str]) -> tuple[dict[str, float], float, float | None]:
    """Coefficients, in-sample MAPE and leave-one-size-out MAPE of one op kind's points."""
    def solve(pts):
        x = np.array([[op_features(o)[n] for n in names] for o, _ in pts])
        y = np.array([max(ns, 1.0) for _, ns in pts])
        return relative_nnls(x, y)

    def ape(pts, c):
        return [abs(sum(ci * op_features(o)[n] for ci, n in zip(c, names)) - ns) / max(ns, 1.0) for o, ns in pts]

    coeffs = solve(points)
    loo = None
    if len(points) > len(names):
        loo = float(np.mean([ape([p], solve([q for q in points if q is not p]))[0] for p in points]))
    return dict(zip(names, (float(v) for v in coeffs))), float(np.mean(ape(points, coeffs))), loo


# A point whose time per unit of work is below this share of that of the points of similar size
# (within a factor NEIGHBOUR_SPAN of work) is not a measurement: timer marks around an op that
# runs in the shadow of the previous one (an in-place ReLU right after a BatchNorm pass) can read
# near 0, and on relative errors one such point drags the whole fit towards 0 (ReLU was priced
# 0.001 ns per value for a measured 0.1). Comparing with points of similar size keeps the rule
# blind to a fixed cost per op (small ops have a higher time per unit).
IMPLAUSIBLE_SHARE = 0.25
NEIGHBOUR_SPAN = 4.0


def plausible_points(points: Sequence[OpPoint], names: Sequence[str]) -> list[OpPoint]:
    """``points`` without those implausibly fast for their size (IMPLAUSIBLE_SHARE), the work of
    a point being its feature of the first fitted coefficient (elements, taps, inputs)."""
    work = np.array([max(op_features(o)[names[0]], 1.0) for o, _ in points])
    rates = np.array([ns for _, ns in points]) / work
    keep = []
    for p, w, r in zip(points, work, rates):
        near = rates[(work >= w / NEIGHBOUR_SPAN) & (work <= w * NEIGHBOUR_SPAN)]
        if r >= IMPLAUSIBLE_SHARE * float(np.median(near)):
            keep.append(p)
    return keep


def fit_ops(points: Sequence[OpPoint], source: str) -> dict[str, KernelCost]:
    """One KernelCost (profile ``ops`` entry) per op kind with points (implausibly fast ones dropped)."""
    result = {}
    for kind in sorted({o.op for o, _ in points}):
        measured = [p for p in points if p[0].op == kind]
        pts = plausible_points(measured, OP_FIT.get(kind, DEFAULT_FIT))
        names = [n for n in OP_FIT.get(kind, DEFAULT_FIT)][:max(1, len(pts) - 1)]
        coeffs, err, loo = fit_op_kind(pts, names)
        dropped = f" ({len(measured) - len(pts)} implausibly fast dropped)" if len(pts) < len(measured) else ""
        result[kind] = KernelCost(
            coefficients={k: float(f"{v:.6g}") for k, v in coeffs.items()}, provenance="measured-host",
            source=f"{source}; {len(pts)} distinct sizes{dropped}; weighted NNLS on {', '.join(names)}",
            points=len(pts), mape=round(err, 4), loo_mape=None if loo is None else round(loo, 4))
    return result


def calibrate_ops(quick: bool = False, work: str | Path | None = None, reps: int | None = None,
                  models: Sequence[tuple] | None = None) -> dict[str, KernelCost]:
    """``autoq calibrate --target host``: time the ops of the exported C of CALIBRATION_MODELS
    (QUICK_MODELS with ``quick``) and fit every op kind seen."""
    models = list(models or (QUICK_MODELS if quick else CALIBRATION_MODELS))
    reps = reps or (2 if quick else 3)
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="autoq-ops-") as tmp:
        programs: list[Program] = []
        for name, shape, preset_name in models:
            programs.append(prepare_model(name, shape, preset_name, Path(work or tmp),
                                          objects_from=programs[0].out if programs else None))
        runs = [[time_program(p, reps) for p in programs] for _ in range(rounds)]
    points = [pt for k, p in enumerate(programs) for pt in op_points(p.plan, fastest([r[k] for r in runs]))]
    return fit_ops(points, ops_source(models, reps, rounds))


def ops_source(models: Sequence[tuple], reps: int, rounds: int) -> str:
    label = ", ".join(f"{n} {'x'.join(map(str, s))} {p}" for n, s, p in models)
    return (f"autoq calibrate --target host: timer marks in the exported C (c_emit, flags of kernels/flags.mk) of "
            f"{label}; per op the median over {reps} repetitions x the inputs, min over {rounds} rounds")


__all__ = ["CALIBRATION_MODELS", "Piece", "Program", "calibrate_ops", "fastest", "fit_ops", "instrument", "op_points",
           "ops_source", "plausible_points", "prepare_model", "time_pieces", "time_program", "write_program"]
