"""autoq export: a trained tiny model per kind mix -> ONNX, .qbin, C; each checked against Keras.

The two configurations cover every kernel kind: f32 + xnor + and + lut (TWN), and shift +
lut (DoReFa 4-bit weights, 2-bit inputs) + int8 (uniform 8/8, dynamic input range) + lut (LSQ weights).
Models are trained for one epoch on digits (accuracy does not matter, realistic BatchNorm
statistics and weights do). The study is written by hand with the contracts.md user_attrs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from autoq.errors import UserError
from autoq.export.exporter import keras_logits

CONFIGS = {
    "xnor_and": {"conv1": {"weight": None},
                 "conv2": {"weight": {"name": "bc"}, "activation": {"name": "sign"}},
                 "conv3": {"weight": {"name": "dorefa", "bits": 1}, "activation": {"name": "dorefa", "bits": 1}},
                 "fc": {"weight": {"name": "twn"}}},
    "shift_lut_int8": {"conv1": {"weight": {"name": "bc_scaled", "scale": 0.125}},
                       "conv2": {"weight": {"name": "dorefa", "bits": 4}, "activation": {"name": "dorefa", "bits": 2}},
                       "conv3": {"weight": {"name": "uniform", "bits": 8}, "activation": {"name": "uniform", "bits": 8}},
                       # lsq as an input quantizer cannot train yet (its gradient needs a static batch size)
                       "fc": {"weight": {"name": "lsq", "bits": 4}}},
}
EXPECTED_KINDS = {"xnor_and": {"f32", "xnor", "and", "lut"}, "shift_lut_int8": {"shift", "lut", "int8"}}


def _train_tiny(layers: dict, path: Path):
    from autoq.config import QuantConfig
    from autoq.data import load_digits
    from autoq.models.zoo import build_model
    from autoq.tf_env import import_tf

    import_tf()
    import keras

    keras.utils.set_random_seed(0)   # deterministic weights and shuffling

    data = load_digits(0)
    config = QuantConfig.from_dict({"model": "tiny", "first_last_float": False, "layers": layers})
    model = build_model("tiny", data.input_shape, data.num_classes, config)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(data.x_train[:640], data.y_train[:640], epochs=1, batch_size=64, verbose=0)
    model.save(path)
    return model, config


def _make_study(run: Path, trials: list[dict]) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="export-test", storage=f"sqlite:///{run / 'study.db'}",
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("targets", ["m4"])
    study.set_user_attr("objectives", ["accuracy", "latency", "flash"])
    study.set_user_attr("space", {"dataset": "digits", "model": "tiny"})
    for attrs in trials:
        c = attrs["costs"]["m4"]
        study.add_trial(optuna.trial.create_trial(values=[attrs["metrics"]["val_acc"], c["latency_ms"],
                                                          c["flash_bytes"]], user_attrs=attrs))
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from autoq.cost.model import estimate
    from autoq.cost.profile import load_profile
    from autoq.export.planning import plan_from_model

    root = tmp_path_factory.mktemp("export")
    trials = []
    for name, layers in CONFIGS.items():
        model, config = _train_tiny(layers, root / f"{name}.keras")
        plan = plan_from_model(model)
        try:
            c = estimate(plan, load_profile("m4"))
            cost = {"latency_ms": c.latency_ms, "flash_bytes": c.flash_bytes, "peak_ram_bytes": c.peak_ram_bytes,
                    "fits": c.fits}
        except UserError:  # profile lacks coefficients for a kind: stored test costs (a tiny model fits)
            cost = {"latency_ms": 1.0, "flash_bytes": 4_000, "peak_ram_bytes": 2_000, "fits": True}
        trials.append({"config": config.to_dict(), "plan": plan.to_dict(),
                       "metrics": {"val_acc": 0.5, "test_acc": 0.5, "train_seconds": 1.0},
                       "costs": {"m4": cost},
                       "weights_path": str(root / f"{name}.keras"), "status": "ok"})
    # trial 2: claims not to fit (the refusal needs no model)
    big = json.loads(json.dumps(trials[0]))
    big["costs"]["m4"].update(flash_bytes=400_000, peak_ram_bytes=40_000, fits=False)
    trials.append(big)
    return _make_study(root / "runs" / "tiny", trials)


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory):
    from autoq.export.exporter import export_trial

    out = {}
    for number, name in enumerate(CONFIGS):
        dest = tmp_path_factory.mktemp(f"dist_{name}")
        out[name] = (dest, export_trial(str(trained_run), number, "m4", dest))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_export_writes_every_file_with_manifest(exports, name):
    from autoq.export.exporter import sha256

    dest, result = exports[name]
    for f in ("model.onnx", "model.qbin", "model.h", "model.c", "main.c", "Makefile", "model.keras", "manifest.json",
              "kernels/include/autoq_kernels.h"):
        assert (dest / f).is_file(), f
    manifest = json.loads((dest / "manifest.json").read_text())
    for rel, info in manifest["files"].items():
        assert sha256(dest / rel) == info["sha256"] and (dest / rel).stat().st_size == info["bytes"]
    assert {"m4", "a53", "i5"} <= set(manifest["predicted"])       # every shipped profile (or its error)
    kinds = {layer["kind"] for layer in manifest["plan"]["layers"]}
    assert kinds == EXPECTED_KINDS[name]
    assert manifest["checks"]["c_host"]["argmax_mismatches"] == 0
    # what is costed is what runs: every layer on its plan kind's kernel (int8 included), no lut fallback
    c_kernels = {cl["layer"]: cl["kernel"] for cl in manifest["checks"]["c_layers"]}
    assert all(c_kernels[layer["name"]] == layer["kind"] for layer in manifest["plan"]["layers"]), c_kernels


@pytest.mark.parametrize("name", list(CONFIGS))
def test_onnx_equals_keras_on_the_test_split(exports, name):
    import keras
    import onnx

    import autoq.quant.layers  # noqa: F401
    from autoq.data import load_digits
    from autoq.export.onnx import run_onnx

    dest, _ = exports[name]
    model_proto = onnx.load(dest / "model.onnx")
    onnx.checker.check_model(model_proto, full_check=True)
    quantized = [i for i in model_proto.graph.initializer if i.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.INT8,
                                                                            onnx.TensorProto.INT16)]
    assert quantized, "quantized weights must be stored as integers"
    x = load_digits(0).x_test
    model = keras.saving.load_model(dest / "model.keras", compile=False)
    ref = keras_logits(model, x, per_sample=True)
    got = run_onnx((dest / "model.onnx").read_bytes(), x, per_sample=True)
    assert np.max(np.abs(got - ref)) <= 1e-4


def test_onnx_file_reflects_compression(exports):
    manifest = json.loads((exports["xnor_and"][0] / "manifest.json").read_text())
    assert manifest["checks"]["onnx"]["weights"]["conv2"] in ("int4", "int8")
    assert manifest["checks"]["onnx"]["weights"]["conv1"] == "float32"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_c_on_host_equals_keras(exports, name, tmp_path):
    """Rebuild the exported folder with its own Makefile and compare logits with the .keras model."""
    import keras

    import autoq.quant.layers  # noqa: F401
    from autoq.data import load_digits

    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler on this machine")
    dest, _ = exports[name]
    work = tmp_path / "c"
    shutil.copytree(dest, work)
    subprocess.run(["make", "host"], cwd=work, check=True, capture_output=True)
    x = load_digits(0).x_test
    x.astype("<f4").tofile(work / "x.f32")
    subprocess.run([str(work / "model_host"), "x.f32", "y.f32"], cwd=work, check=True, capture_output=True)
    got = np.fromfile(work / "y.f32", "<f4").reshape(len(x), -1)
    model = keras.saving.load_model(dest / "model.keras", compile=False)
    ref = keras_logits(model, x, per_sample=True)
    assert np.array_equal(np.argmax(got, 1), np.argmax(ref, 1))
    close = np.all(np.abs(got - ref) <= 1e-3 + 1e-4 * np.abs(ref), axis=1)
    # a sample may differ by one quantized-activation level (summation order; exporter._check_c)
    assert close.mean() >= 0.98, f"{int((~close).sum())} samples outside tolerance"


def test_m4_build_reported(exports):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    manifest = json.loads((exports["xnor_and"][0] / "manifest.json").read_text())
    m4 = manifest["checks"]["c_m4"]
    assert m4["fits"] and 0 < m4["flash_bytes"] <= 262_144 and 0 < m4["sram_with_stack_bytes"] <= 32_768
    assert m4["stack_bytes_estimate"] > 0


def test_qbin_of_export_matches_keras_kernels(exports):
    import keras

    import autoq.quant.layers  # noqa: F401
    from autoq.export import qbin

    dest, _ = exports["shift_lut_int8"]
    model = keras.saving.load_model(dest / "model.keras", compile=False)
    qf = qbin.read_qbin(dest / "model.qbin")
    for layer in qf.layers:
        assert np.array_equal(layer.keras_kernel(), model.get_layer(layer.name).quantized_kernel()), layer.name


def test_non_fitting_model_is_refused(trained_run, tmp_path):
    from autoq.export.exporter import export_trial

    with pytest.raises(UserError, match=r"does not fit m4: flash 400,000 B > 262,144 B \(over by 137,856 B\); "
                                        r"peak RAM 40,000 B > 32,768 B \(over by 7,232 B\).*--force"):
        export_trial(str(trained_run), 2, "m4", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_cli_refusal_and_unknown_trial(trained_run, tmp_path):
    cmd = [sys.executable, "-m", "autoq.cli", "export", str(trained_run), "--target", "m4", "--out", str(tmp_path / "o")]
    refused = subprocess.run([*cmd, "--trial", "2"], capture_output=True, text=True)
    assert refused.returncode == 2 and "over by" in refused.stderr and "Traceback" not in refused.stderr
    unknown = subprocess.run([*cmd, "--trial", "9"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "no trial 9" in unknown.stderr


def test_force_exports_a_non_fitting_model(trained_run, tmp_path):
    from autoq.export.exporter import export_trial

    result = export_trial(str(trained_run), 2, "m4", tmp_path / "forced", force=True, emit_c=False)
    assert result.manifest["predicted"]["m4"]["fits"] is False
    assert (tmp_path / "forced" / "model.onnx").is_file() and not (tmp_path / "forced" / "model.c").exists()


def test_non_empty_folder_is_refused_unless_force_and_manifest_lists_only_written_files(trained_run, tmp_path):
    from autoq.export.exporter import export_trial

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "notes.txt").write_text("not the exporter's")
    with pytest.raises(UserError, match=r"not an empty folder.*--force"):
        export_trial(str(trained_run), 0, "m4", dest, emit_c=False)
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    result = export_trial(str(trained_run), 0, "m4", dest, force=True, emit_c=False)
    assert set(result.manifest["files"]) == {"model.onnx", "model.qbin", "model.keras"}
    assert (dest / "notes.txt").read_text() == "not the exporter's"


def test_int4_weights_are_packed_in_raw_data(exports):
    import onnx

    model = onnx.load(exports["xnor_and"][0] / "model.onnx")
    int4 = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT4]
    assert int4, "binary / ternary weights must be stored as int4"
    for t in int4:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        assert not t.int32_data and len(t.raw_data) == (n + 1) // 2, t.name
        values = onnx.numpy_helper.to_array(t).astype(np.int64)
        assert values.min() >= -8 and values.max() <= 7
