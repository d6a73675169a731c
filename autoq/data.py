"""Data sets: one place for loading, normalisation, shapes and deterministic splits.

Nothing is downloaded. ``digits`` (scikit-learn's 8x8 digits, shipped inside scikit-learn) is
the embedded default; ``mnist``, ``fashion_mnist`` and ``cifar10`` are read from files the user
already has in Keras' cache layout (``$KERAS_HOME`` or ``~/.keras``, folder ``datasets/``), or
from any ``.npz`` given with ``data_path`` holding ``x_train, y_train, x_test, y_test``;
``synthetic`` is a seeded, learnable toy set for tests.

Every data set comes back as float32 NHWC images scaled to [0, 1] and int64 labels. The
validation split is a deterministic stratified slice of the training data (10 %; digits:
70 / 10 / 20 % train / val / test), so accuracy for search decisions never touches the test set.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autoq.errors import UserError
from autoq.limits import MAX_CLASSES

DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "synthetic")
VAL_FRACTION = 0.1
MAX_DATA_BYTES = int(os.environ.get("AUTOQ_MAX_DATA_BYTES", 16 << 30))  # uncompressed .npz arrays
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, int, int]
    num_classes: int
    name: str

    def fingerprint(self) -> str:
        """Short content hash (labels + a strided sample of pixels) for cache keys."""
        h = hashlib.sha256()
        for arr in (self.x_train, self.y_train, self.x_val, self.y_val):
            flat = np.ascontiguousarray(arr).reshape(-1)
            step = max(1, flat.size // 2_000_000)  # hash at most ~2M values per array
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(flat[::step]).tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        return {"name": self.name, "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "train": len(self.y_train),
                "val": len(self.y_val), "test": len(self.y_test)}


def keras_datasets_dir() -> Path:
    """Keras' download cache folder (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``fraction`` of each class held out, deterministically."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        # at least one per class (when the class has two), so tiny sets keep every class
        n_held = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) >= 2:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _to_nhwc01(x: np.ndarray, source: str) -> np.ndarray:
    """NHW or NHWC, integer (0..255) or float, to float32 NHWC in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise UserError(f"{source}: images must have shape (N, H, W) or (N, H, W, C), got "
                        f"{x.shape}")
    if min(x.shape) < 1:
        raise UserError(f"{source}: images of shape {x.shape}; allowed: at least one image of at "
                        "least 1x1x1")
    if x.dtype == np.bool_ or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise UserError(f"{source}: images of dtype {x.dtype}; allowed: integers 0..255 or floats")
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise UserError(f"{source}: integer pixels in {int(x.min())}..{int(x.max())}; allowed: 0..255")
        return (x.astype(np.float32) / 255.0)
    if not np.all(np.isfinite(x)) or np.abs(x).max() > 3e38:
        raise UserError(f"{source}: images hold NaN or infinite values; allowed: finite pixels")
    x = x.astype(np.float32)
    if x.size and float(x.max()) > 1.5:  # float copies of 0..255 pixels
        x = x / 255.0
    return x


def _labels(y: np.ndarray, source: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim > 1 and any(s != 1 for s in y.shape[1:]):
        raise UserError(f"{source}: labels of shape {y.shape}; allowed: one integer class per image, "
                        "shape (N,) or (N, 1)")
    y = y.reshape(-1)
    allowed = f"integer class ids 0..{MAX_CLASSES - 1}"
    if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise UserError(f"{source}: labels of dtype {y.dtype}; allowed: {allowed}")
    if not y.size:
        raise UserError(f"{source}: no labels; allowed: {allowed}, one per image")
    if np.issubdtype(y.dtype, np.floating) and not (np.all(np.isfinite(y)) and np.all(np.mod(y, 1) == 0)):
        raise UserError(f"{source}: labels of dtype {y.dtype} with non-integer values; allowed: {allowed}")
    low, high = y.min(), y.max()
    if low < 0 or high >= MAX_CLASSES:
        raise UserError(f"{source}: labels in {low.item()}..{high.item()}; allowed: {allowed}")
    return y.astype(np.int64)


def _assemble(name, x_train, y_train, x_test, y_test, seed, source) -> Dataset:
    x_train, x_test = _to_nhwc01(x_train, source), _to_nhwc01(x_test, source)
    y_train, y_test = _labels(y_train, source), _labels(y_test, source)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise UserError(f"{source}: x and y lengths differ (train {len(x_train)} vs "
                        f"{len(y_train)}, test {len(x_test)} vs {len(y_test)})")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UserError(f"{source}: train images {x_train.shape[1:]} and test images "
                        f"{x_test.shape[1:]} differ in shape")
    if len(x_train) < 2:
        raise UserError(f"{source}: {len(x_train)} training image(s); allowed: at least 2")
    keep, val = stratified_split(y_train, VAL_FRACTION, seed)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(x_train[keep], y_train[keep], x_train[val], y_train[val], x_test, y_test,
                   tuple(int(s) for s in x_train.shape[1:]), num_classes, name)


def load_digits(seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, 0..16 scaled to [0,1]); 70/10/20 split."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., None]
    y = bunch.target.astype(np.int64)
    rest, test = stratified_split(y, 0.2, seed)
    keep, val = stratified_split(y[rest], 0.125, seed + 1)  # 0.125 * 0.8 = 10 % of all
    tr, va = rest[keep], rest[val]
    return Dataset(x[tr], y[tr], x[va], y[va], x[test], y[test], (8, 8, 1), 10, "digits")


def load_synthetic(seed: int = 0, input_shape=(8, 8, 1), num_classes: int = 4,
                   n_train: int = 256, n_val: int = 64, n_test: int = 64,
                   noise: float = 0.15) -> Dataset:
    """Seeded learnable toy set: one random template per class plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0.0, 1.0, size=(num_classes, *input_shape)).astype(np.float32)

    def draw(n):
        y = np.arange(n) % num_classes
        rng.shuffle(y)
        x = templates[y] + noise * rng.standard_normal((n, *input_shape)).astype(np.float32)
        return np.clip(x, 0.0, 1.0).astype(np.float32), y.astype(np.int64)

    xtr, ytr = draw(n_train)
    xva, yva = draw(n_val)
    xte, yte = draw(n_test)
    return Dataset(xtr, ytr, xva, yva, xte, yte, tuple(input_shape), num_classes, "synthetic")


def _missing(name: str, expected: str) -> UserError:
    return UserError(
        f"dataset {name!r}: file not found: {expected}. autoq never downloads data: put the "
        f"file there (Keras' cache layout, e.g. copied from a machine where "
        f"keras.datasets.{name}.load_data() ran) or pass --data FILE.npz with arrays "
        f"x_train, y_train, x_test, y_test")


def load_npz(path: str | Path, name: str | None = None, seed: int = 0) -> Dataset:
    """A user .npz with ``x_train, y_train, x_test, y_test`` (NHW or NHWC, uint8 or float)."""
    path = Path(path)
    needed = "an .npz with arrays x_train, y_train, x_test, y_test"
    if path.is_dir():
        raise UserError(f"{path}: is a folder; expected {needed}")
    if not path.is_file():
        raise UserError(f"{path}: data file not found (expected {needed})")
    _check_npz_archive(path, needed)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise UserError(f"{path}: missing array(s) {missing}; found {f.files}; needed "
                                f"x_train, y_train, x_test, y_test")
            arrays = [f[k] for k in NPZ_KEYS]
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, MemoryError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())}); expected {needed}") from None
    return _assemble(name or path.stem, *arrays, seed=seed, source=str(path))


def _check_npz_archive(path: Path, needed: str) -> None:
    """A readable zip whose members are .npy files of at most MAX_DATA_BYTES in total (checked
    before NumPy allocates anything: a truncated archive or a zip bomb is a clear error)."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz (zip) file: {exc}; expected {needed}") from None
    total = sum(m.file_size for m in members)
    if total > MAX_DATA_BYTES:
        raise UserError(f"{path}: arrays of {total:,} bytes uncompressed; allowed: at most "
                        f"{MAX_DATA_BYTES:,} (AUTOQ_MAX_DATA_BYTES)")


def _read_idx_gz(path: Path) -> np.ndarray:
    """An IDX file (MNIST format), gzip-compressed: magic 0x0000 0x08 ndim, dims (big-endian),
    uint8 data."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read(MAX_DATA_BYTES + 1)
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable gzip file: {exc}") from None
    ndim = data[3] if len(data) >= 4 else 0
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or not 1 <= ndim <= 4 or len(data) < 4 + 4 * ndim:
        raise UserError(f"{path}: not an IDX file of uint8 (magic 00 00 08 <ndim 1..4>)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if int(np.prod(dims, dtype=object)) != len(data) - 4 - 4 * ndim:
        raise UserError(f"{path}: IDX header says shape {dims} but the file holds "
                        f"{len(data) - 4 - 4 * ndim:,} bytes of data")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(seed: int = 0) -> Dataset:
    folder = keras_datasets_dir() / "fashion-mnist"
    files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    for fname in files:
        if not (folder / fname).is_file():
            raise _missing("fashion_mnist", str(folder / fname))
    xtr, ytr, xte, yte = (_read_idx_gz(folder / f) for f in files)
    return _assemble("fashion_mnist", xtr, ytr, xte, yte, seed, str(folder))


CIFAR_CLASSES = 10
CIFAR_PIXELS = 3 * 32 * 32


def _cifar_folder(suffix: str = "py") -> Path | None:
    base = keras_datasets_dir()
    name = f"cifar-10-batches-{suffix}"
    for cand in (base / name, base / f"{name}_extracted" / name, base / f"{name}-target" / name):
        if (cand / ("test_batch" if suffix == "py" else "test_batch.bin")).is_file():
            return cand
    return None


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles the official CIFAR-10 python batches and nothing else: the only globals it
    resolves are NumPy's array reconstruction (ndarray subtype only) and dtype, and the
    latin-1 codec Python 3 uses for bytes. Any other global (os.system, builtins.eval, ...)
    is refused before it is called, so a crafted batch file cannot run code. The values that
    can be built are dicts, lists, tuples, bytes, str, ints, floats and NumPy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct_array
        if (module, name) in (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")):
            return _array_frombuffer
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _make_dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"refused global {module}.{name} (only NumPy arrays, dicts, lists, "
                                     "bytes, strings and numbers are allowed)")


def _reconstruct_array(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array subtype {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, _make_dtype(dtype))


def _array_frombuffer(buf, dtype, shape, order="C"):
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
        raise pickle.UnpicklingError("refused array buffer")
    return np.frombuffer(buf, dtype=_make_dtype(dtype)).reshape(shape, order=order).copy()


def _make_dtype(spec, align=False, copy=False):
    dt = np.dtype(spec, align=bool(align), copy=bool(copy)) if not isinstance(spec, np.dtype) else spec
    if dt.hasobject:
        raise pickle.UnpicklingError("refused object arrays")
    return dt


def _latin1_encode(text, encoding="latin1", errors="strict"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused codec call encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


def _cifar_pickle_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch: {b"data": uint8 (N, 3072), b"labels": N ints 0..9}."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, MemoryError) as exc:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]})") from None
    data = d.get(b"data", d.get("data")) if isinstance(d, dict) else None
    labels = d.get(b"labels", d.get("labels")) if isinstance(d, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_PIXELS:
        raise UserError(f"{path}: key data: expected a uint8 array of shape (N, {CIFAR_PIXELS}), got "
                        f"{type(data).__name__} {getattr(data, 'shape', '')}")
    y = np.asarray(labels) if isinstance(labels, (list, np.ndarray)) else None
    if y is None or y.shape != (len(data),) or not np.issubdtype(y.dtype, np.integer) \
            or (y.size and (y.min() < 0 or y.max() >= CIFAR_CLASSES)):
        raise UserError(f"{path}: key labels: expected {len(data)} integers 0..{CIFAR_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), y.astype(np.int64)


def _cifar_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One binary-version batch: records of 1 label byte + 3072 pixel bytes (CHW)."""
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % (CIFAR_PIXELS + 1):
        raise UserError(f"{path}: {raw.size} bytes; expected records of {CIFAR_PIXELS + 1} bytes")
    rec = raw.reshape(-1, CIFAR_PIXELS + 1)
    if rec[:, 0].max() >= CIFAR_CLASSES:
        raise UserError(f"{path}: label byte {int(rec[:, 0].max())}; allowed: 0..{CIFAR_CLASSES - 1}")
    return rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rec[:, 0].astype(np.int64)


def load_cifar10(seed: int = 0) -> Dataset:
    """CIFAR-10 from Keras' cache: the binary version (cifar-10-batches-bin) if present, else
    the python version read with a restricted unpickler (no code in the files can run)."""
    folder, binary = _cifar_folder("bin"), True
    if folder is None:
        folder, binary = _cifar_folder("py"), False
    if folder is None:
        raise _missing("cifar10", str(keras_datasets_dir() / "cifar-10-batches-py" /
                                      "{data_batch_1..5,test_batch}"))

    def batch(fname):
        path = folder / (fname + ".bin" if binary else fname)
        if not path.is_file():
            raise _missing("cifar10", str(path))
        return _cifar_binary_batch(path) if binary else _cifar_pickle_batch(path)

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    xte, yte = batch("test_batch")
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    return _assemble("cifar10", xtr, ytr, xte, yte, seed, str(folder))


def dataset_label(name: str, data_path: str | Path | None = None) -> str:
    """The one label of a data set (headers, result.json, cache folders, .qbin metadata): the
    file's stem when the data come from a .npz (``--data FILE.npz``, ``data_path``, or
    ``dataset: FILE.npz``), else the data set's name."""
    if data_path is not None:
        return Path(data_path).stem
    return Path(name).stem if str(name).endswith(".npz") else name


def load_dataset(name: str, data_path: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load data set ``name`` (see DATASETS); ``data_path`` (.npz) overrides the source.

    ``name`` may itself be a .npz path. A data set read from a file is labelled by the file
    (:func:`dataset_label`), never by the name it replaces.
    ``seed`` only chooses the deterministic validation split (and the synthetic data).
    """
    if data_path is None and str(name).endswith(".npz"):
        data_path = name
    if data_path is not None:
        return load_npz(data_path, name=dataset_label(name, data_path), seed=seed)
    if name == "digits":
        return load_digits(seed)
    if name == "synthetic":
        return load_synthetic(seed)
    if name == "mnist":
        path = keras_datasets_dir() / "mnist.npz"
        if not path.is_file():
            raise _missing("mnist", str(path))
        return load_npz(path, name="mnist", seed=seed)
    if name == "fashion_mnist":
        return load_fashion_mnist(seed)
    if name == "cifar10":
        return load_cifar10(seed)
    raise UserError(f"dataset: unknown data set {name!r}; known: {list(DATASETS)} "
                    f"(or any name with --data FILE.npz)")
