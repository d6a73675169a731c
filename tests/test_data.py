"""Data sets: deterministic stratified splits, file layouts, clear errors for missing files."""
import gzip
import pickle

import numpy as np
import pytest

from autoq.data import load_dataset, load_synthetic, stratified_split
from autoq.errors import UserError


def test_digits_split_is_deterministic_stratified_and_disjoint():
    a, b = load_dataset("digits"), load_dataset("digits")
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (1259, 179, 359)
    assert a.input_shape == (8, 8, 1) and a.num_classes == 10
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    # stratified: every class in every split, proportions close to the whole set's
    for y in (a.y_train, a.y_val, a.y_test):
        counts = np.bincount(y, minlength=10)
        assert counts.min() > 0 and counts.max() - counts.min() <= max(3, counts.max() // 8)
    rows = {r.tobytes() for r in a.x_test}
    assert not any(r.tobytes() in rows for r in a.x_val)


def test_stratified_split_proportions():
    y = np.repeat(np.arange(3), [10, 20, 30])
    keep, held = stratified_split(y, 0.1, seed=0)
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 60
    assert list(np.bincount(y[held])) == [1, 2, 3]


def test_synthetic_is_seeded():
    a, b, c = load_synthetic(1), load_synthetic(1), load_synthetic(2)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (256, 8, 8, 1) and a.num_classes == 4


def test_npz_uint8_nhw_becomes_nhwc_unit_range(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.integers(0, 256, (50, 6, 6), dtype=np.uint8),
             y_train=np.arange(50) % 5, x_test=rng.integers(0, 256, (10, 6, 6), dtype=np.uint8),
             y_test=np.arange(10) % 5)
    d = load_dataset("mine", data_path=path)
    assert d.input_shape == (6, 6, 1) and d.num_classes == 5 and d.name == "mine"
    assert d.x_train.dtype == np.float32 and d.x_train.max() <= 1.0
    assert len(d.y_train) + len(d.y_val) == 50 and len(d.y_val) == 5


def test_npz_missing_arrays_and_file(tmp_path):
    path = tmp_path / "half.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4)))
    with pytest.raises(UserError, match=r"half.npz: missing array\(s\) \['y_train'"):
        load_dataset("x", data_path=path)
    with pytest.raises(UserError, match="nothere.npz: data file not found"):
        load_dataset("x", data_path=tmp_path / "nothere.npz")


@pytest.mark.parametrize("name, expected", [
    ("mnist", "datasets/mnist.npz"),
    ("fashion_mnist", "datasets/fashion-mnist/train-images-idx3-ubyte.gz"),
    ("cifar10", "datasets/cifar-10-batches-py"),
])
def test_missing_keras_cache_file_says_where_to_put_it(tmp_path, monkeypatch, name, expected):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(UserError) as err:
        load_dataset(name)
    assert str(tmp_path / expected) in str(err.value)
    assert "never downloads" in str(err.value)


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_keras_cache_layout(tmp_path, monkeypatch):
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (40, 28, 28))
    _write_idx(folder / "train-images-idx3-ubyte.gz", xtr)
    _write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(40) % 10)
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    d = load_dataset("fashion_mnist")
    assert d.input_shape == (28, 28, 1) and len(d.y_test) == 10 and len(d.y_val) == 10
    # pixel values survive the IDX parse (train + val rows are a permutation of the file)
    assert np.isclose(np.sort(np.concatenate([d.x_train, d.x_val]).ravel())[-1],
                      xtr.max() / 255.0)


def test_cifar10_from_keras_cache_layout(tmp_path, monkeypatch):
    folder = tmp_path / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
                 b"labels": list(range(10))}
        with open(folder / fname, "wb") as f:
            pickle.dump(batch, f)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    d = load_dataset("cifar10")
    assert d.input_shape == (32, 32, 3) and d.num_classes == 10
    assert len(d.y_train) + len(d.y_val) == 50 and len(d.y_test) == 10


def test_unknown_dataset_lists_known():
    with pytest.raises(UserError, match="known:.*digits"):
        load_dataset("imagenet")


def test_a_data_set_read_from_a_file_is_labelled_by_the_file(tmp_path):
    from autoq.data import dataset_label
    from autoq.space import parse_space

    rng = np.random.default_rng(0)
    path = tmp_path / "my_scans.npz"
    np.savez(path, x_train=rng.random((20, 8, 8)), y_train=np.arange(20) % 2, x_test=rng.random((6, 8, 8)),
             y_test=np.arange(6) % 2)
    assert dataset_label("cifar10", path) == "my_scans" and dataset_label("digits") == "digits"
    assert load_dataset("cifar10", data_path=path).name == "my_scans"     # never the name it replaces
    assert load_dataset(str(path)).name == "my_scans"                       # dataset: FILE.npz
    layers = [{"select": "all", "weight": [None, "bc"]}]
    sp = parse_space({"model": "tiny", "dataset": str(path), "layers": layers})
    assert (sp.dataset, sp.data_path) == ("my_scans", str(path))            # one stem, the path once
    sp = parse_space({"model": "tiny", "dataset": "cifar10", "data_path": str(path), "layers": layers})
    assert dataset_label(sp.dataset, sp.data_path) == "my_scans"
    with pytest.raises(UserError, match="data_path"):
        parse_space({"model": "tiny", "dataset": str(path), "data_path": "other.npz", "layers": layers})
