"""Dataset specs: digits, MNIST IDX, CIFAR batches (safe unpickling), synthetic and random."""
from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from accelsim.datasets import load_dataset, read_cifar_batch, read_idx
from accelsim.errors import DataError


def test_digits_split_shape_and_normalisation():
    train, test = load_dataset("digits", train=True), load_dataset("digits")
    assert len(train) + len(test) == 1797 and len(test) == 359
    x, y = train[0]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    images, labels = train.batch(slice(None))
    assert abs(float(images.mean())) < 1e-4 and float(images.std()) == pytest.approx(1.0, abs=1e-3)
    assert set(labels.tolist()) == set(range(10)) and train.num_classes == 10
    again = load_dataset("digits")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    # train and test images are disjoint samples of the same set
    flat_train = {tuple(t.flatten().tolist()) for t in train.images[:200]}
    assert not any(tuple(t.flatten().tolist()) in flat_train for t in test.images[:50])


def test_synthetic_and_random_specs():
    a = load_dataset("synthetic:3,8,6,4,20", train=True)
    assert len(a) == 20 and a[0][0].shape == (3, 8, 6) and a.num_classes == 4
    assert torch.equal(a.images, load_dataset("synthetic:3,8,6,4,20", train=True).images)
    assert not torch.equal(a.images, load_dataset("synthetic:3,8,6,4,20", train=False).images)
    assert len(load_dataset("synthetic:1,32,32")) == 512
    r = load_dataset("random:2,5,5")
    assert len(r) == 64 and set(r.labels.tolist()) == {0} and r[-1][0].shape == (2, 5, 5)
    assert len(load_dataset("random:2,5,5,7")) == 7
    with pytest.raises(IndexError):
        r[64]


@pytest.mark.parametrize("spec,words", [
    ("svhn:/x", "unknown kind"), ("", "dataset spec"), ("synthetic:1,2", "3..5 positive integers"),
    ("random:1,0,3", "positive integers"), ("mnist", "mnist:PATH"), ("digits:foo", "takes no argument"),
])
def test_bad_specs(spec, words):
    with pytest.raises(DataError, match=words):
        load_dataset(spec)


def _write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n, compress in (("train", 12, True), ("t10k", 5, False)):
        suffix = ".gz" if compress else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}",
                   rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}",
                   rng.integers(0, 10, n, dtype=np.uint8), compress)
    return tmp_path


def test_mnist_idx_gz_and_plain(mnist_dir):
    train = load_dataset(f"mnist:{mnist_dir}", train=True)
    test = load_dataset(f"mnist:{mnist_dir}")
    assert len(train) == 12 and len(test) == 5
    x, _ = test[0]
    assert x.shape == (1, 32, 32)
    raw = read_idx(mnist_dir / "t10k-images-idx3-ubyte")
    background = (0 - 0.1307) / 0.3081
    assert torch.allclose(x[0, :2], torch.full((2, 32), background))  # zero padding to 32x32
    expected = (raw[0] / 255.0 - 0.1307) / 0.3081
    assert np.allclose(x[0, 2:30, 2:30].numpy(), expected, atol=1e-5)


def test_mnist_errors_name_the_path(mnist_dir, tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset(f"mnist:{tmp_path / 'nope'}")
    os.remove(mnist_dir / "t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset(f"mnist:{mnist_dir}")
    bad = mnist_dir / "t10k-labels-idx1-ubyte"
    bad.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match=f"{bad}: not an IDX file"):
        load_dataset(f"mnist:{mnist_dir}")
    _write_idx(bad, np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="expected 5 labels"):
        load_dataset(f"mnist:{mnist_dir}")
    truncated = mnist_dir / "t10k-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(DataError, match=f"{truncated}: IDX payload is 3910 bytes, expected 3920"):
        load_dataset(f"mnist:{mnist_dir}")


def _cifar_batch(n: int, label_key: str, classes: int, protocol: int) -> bytes:
    rng = np.random.default_rng(n)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, classes, n)]
    return pickle.dumps({"batch_label": "x", "data": data, label_key: labels}, protocol=protocol), data


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_cifar_batch(3, "labels", 10, protocol)[0])
    payload, data = _cifar_batch(4, "labels", 10, protocol)
    (folder / "test_batch").write_bytes(payload)
    test = load_dataset(f"cifar10:{tmp_path}")  # the parent folder is accepted too
    assert len(test) == 4 and len(load_dataset(f"cifar10:{folder}", train=True)) == 15
    x, _ = test[1]
    assert x.shape == (3, 32, 32)
    red = (data[1, :1024].reshape(32, 32) / 255.0 - 0.4914) / 0.2470
    assert np.allclose(x[0].numpy(), red, atol=1e-5)


def test_cifar100_batches(tmp_path):
    payload, _ = _cifar_batch(6, "fine_labels", 100, 2)
    (tmp_path / "test").write_bytes(payload)
    ds = load_dataset(f"cifar100:{tmp_path}")
    assert len(ds) == 6 and ds.num_classes == 100


def test_python2_style_bytes_keys(tmp_path):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [1, 2]}, protocol=2))
    batch = read_cifar_batch(path)
    assert np.array_equal(batch["data"], data) and batch["labels"] == [1, 2]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_unpickler_refuses_code(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({"data": _Evil(), "labels": []}))
    with pytest.raises(DataError, match="refusing to load global"):
        load_dataset(f"cifar10:{tmp_path}")
    path.write_bytes(pickle.dumps({"data": np.array([object()], dtype=object), "labels": []}, protocol=2))
    with pytest.raises(DataError, match="not a CIFAR python batch"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar_malformed(tmp_path):
    with pytest.raises(DataError, match="missing CIFAR batch file"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a CIFAR python batch"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]}))
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]}))
    with pytest.raises(DataError, match="must lie in 0..9"):
        load_dataset(f"cifar10:{tmp_path}")
