"""Image datasets for training and tracing, addressed by a short spec string.

``load_dataset(spec, train=False)`` returns a :class:`ImageDataset` whose items are
``(float tensor (C, H, W), int label)``. Specs:

``digits``
    scikit-learn's handwritten digits (1,797 real 8x8 images shipped with the
    package), bilinearly resized to 1x32x32, scaled to [0, 1] and normalised with
    the training split's mean and std. The split (1,437 train / 360 test) is fixed
    by a seeded permutation.
``mnist:PATH``
    MNIST IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``; ``.gz`` or not) in the
    folder PATH; 28x28 images are padded with zeros to 32x32.
``cifar10:PATH`` / ``cifar100:PATH``
    The CIFAR "python version" batches in PATH (or its ``cifar-10-batches-py`` /
    ``cifar-100-python`` sub-folder). Those files are pickles; they are read with
    :class:`SafeCifarUnpickler`, which executes no code from the file (see there).
``imagenet:PATH[,crop=N][,resize=M][,seed=S]``
    An ImageFolder-style tree: ``PATH/train`` and ``PATH/val``, each with one
    sub-folder per class holding ``.jpg``/``.jpeg``/``.png`` files (the ImageNet
    validation images must be sorted into class folders). Classes are the sorted
    folder names of ``train``. Images are decoded with Pillow when a batch is asked
    for (never all held in memory), converted to RGB, resized so the shorter side is
    ``resize`` (default ``round(crop * 256 / 224)``), centre-cropped to ``crop`` x
    ``crop`` (default 224) and normalised with the ImageNet mean and std. The item
    order is a permutation of the sorted file list seeded by ``seed`` (default 0), so
    any first N samples (trace capture) mix the classes. Nothing is downloaded.
``synthetic:C,H,W[,classes[,n]]``
    Seeded random but learnable data (smooth class prototypes plus noise) for tests;
    ``n`` samples per split (default 512), ``classes`` default 10.
``random:C,H,W[,n]``
    Seeded standard-normal inputs with label 0 (default n = 64), for tracing an
    arbitrary model when no data set fits it.

Missing or malformed data raise :class:`accelsim.errors.DataError` naming the path
and what was expected.
"""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from accelsim.errors import DataError

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class SampleIndexing:
    """``dataset[i]``: one ``(image, label)`` through the dataset's ``batch(slice)``."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index out of range for {len(self)} samples")
        x, y = self.batch(slice(i, i + 1))
        return x[0], int(y[0])


class ImageDataset(SampleIndexing, Dataset):
    """Images kept in one tensor, normalised on access.

    ``images`` is ``(N, C, H, W)``, ``uint8`` (scaled by ``scale``) or ``float32``;
    an item is ``((images[i] * scale, zero-padded by pad) - mean) / std`` and its label.
    :meth:`batch` gathers many items at once (the training loop uses it).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, spec: str,
                 num_classes: int, scale: float = 1.0, pad: int = 0,
                 mean: Sequence[float] = (0.0,), std: Sequence[float] = (1.0,)):
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"images (N,C,H,W) and labels (N,) expected, got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.long()
        self.spec = spec
        self.num_classes = int(num_classes)
        self.scale = float(scale)
        self.pad = int(pad)
        channels = images.shape[1]
        self.mean = torch.tensor(_per_channel(mean, channels), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(_per_channel(std, channels), dtype=torch.float32).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return (int(c), int(h) + 2 * self.pad, int(w) + 2 * self.pad)

    def batch(self, index: torch.Tensor | slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``(B, C, H, W)`` and labels ``(B,)`` at ``index``."""
        x = self.images[index].float()
        if self.scale != 1.0:
            x = x * self.scale
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
        return (x - self.mean) / self.std, self.labels[index]

    def subset(self, indices: np.ndarray | torch.Tensor, spec: str | None = None) -> "ImageDataset":
        """The items at ``indices`` (same scaling, padding and normalisation)."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageDataset(self.images[index].contiguous(), self.labels[index],
                            spec=spec or self.spec, num_classes=self.num_classes, scale=self.scale,
                            pad=self.pad, mean=self.mean.flatten().tolist(),
                            std=self.std.flatten().tolist())

    def __repr__(self) -> str:
        return f"ImageDataset({self.spec!r}, n={len(self)}, shape={self.sample_shape})"


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    values = list(values)
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise ValueError(f"{len(values)} normalisation values for {channels} channels")
    return values


def validation_indices(labels: np.ndarray | torch.Tensor, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded validation split of ``labels``.

    Every class gives ``round(fraction * its count)`` of its samples, chosen by one
    permutation from ``numpy.random.default_rng(seed)``; the same labels, fraction and
    seed give the same split on every machine.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction: expected a number in [0, 1), got {fraction!r}")
    order = np.random.default_rng(int(seed)).permutation(len(labels))
    chosen = []
    for label in np.unique(labels):
        members = order[labels[order] == label]
        chosen.append(members[:int(round(fraction * len(members)))])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def split_validation(dataset: ImageDataset, fraction: float,
                     seed: int) -> tuple[ImageDataset, ImageDataset | None]:
    """``(train, validation)`` carved from a training split (see :func:`validation_indices`).

    ``fraction == 0`` returns ``(dataset, None)``. Both parts keep the normalisation of
    the whole split. Raises :class:`DataError` when either part would be empty.
    """
    if fraction == 0:
        return dataset, None
    val = validation_indices(dataset.labels.numpy(), fraction, seed)
    keep = np.setdiff1d(np.arange(len(dataset)), val)
    if len(val) == 0 or len(keep) == 0:
        raise DataError(f"dataset {dataset.spec!r}: a validation fraction of {fraction:g} of its "
                        f"{len(dataset)} training samples leaves an empty "
                        f"{'validation' if len(val) == 0 else 'training'} set")
    return (dataset.subset(keep, f"{dataset.spec} (train minus validation)"),
            dataset.subset(val, f"{dataset.spec} (validation: {fraction:g}, seed {seed})"))


def load_dataset(spec: str, train: bool = False) -> ImageDataset:
    """Load the training (``train=True``) or test split named by ``spec`` (see module doc)."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec: expected e.g. 'digits', 'mnist:PATH', 'cifar10:PATH', "
                        f"'synthetic:1,32,32', got {spec!r}")
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "digits":
        if sep:
            raise DataError(f"dataset spec {spec!r}: 'digits' takes no argument")
        return _load_digits(train)
    if kind in ("mnist", "cifar10", "cifar100"):
        if not arg:
            raise DataError(f"dataset spec {spec!r}: expected '{kind}:PATH' naming the folder "
                            "with the data files")
        path = Path(arg).expanduser()
        if kind == "mnist":
            return _load_mnist(path, train, spec)
        return _load_cifar(path, train, spec, kind)
    if kind == "imagenet":
        from accelsim.imagefolder import load_image_folder

        return load_image_folder(spec, arg, train)
    if kind == "synthetic":
        return _synthetic(spec, arg, train)
    if kind == "random":
        return _random(spec, arg)
    raise DataError(f"dataset spec {spec!r}: unknown kind {kind!r}; expected one of digits, "
                    "mnist:PATH, cifar10:PATH, cifar100:PATH, imagenet:PATH[,crop=N], "
                    "synthetic:C,H,W[,classes[,n]], random:C,H,W[,n]")


# --------------------------------------------------------------------------- digits

def _load_digits(train: bool) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N,1,8,8)
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(labels))
    n_test = int(round(len(labels) * DIGITS_TEST_FRACTION))
    train_idx, test_idx = np.sort(order[n_test:]), np.sort(order[:n_test])
    train_images = images[torch.from_numpy(train_idx)]
    mean, std = float(train_images.mean()), float(train_images.std())
    idx = train_idx if train else test_idx
    return ImageDataset(images[torch.from_numpy(idx)].contiguous(), labels[torch.from_numpy(idx)],
                        spec="digits", num_classes=10, mean=(mean,), std=(std,))


# --------------------------------------------------------------------------- MNIST

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into an array, checking its header."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (expected magic bytes 00 00 <type> <ndim>, "
                        f"got {raw[:4].hex(' ') or 'an empty file'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header truncated (expected {ndim} dimension sizes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX payload is {len(raw) - header} bytes, expected {expected} "
                        f"for shape {shape} of {dtype}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find_file(folder: Path, stems: Sequence[str], spec: str) -> Path:
    for stem in stems:
        for suffix in ("", ".gz"):
            candidate = folder / (stem + suffix)
            if candidate.is_file():
                return candidate
    raise DataError(f"{folder}: missing {stems[0]}[.gz] for dataset {spec!r}")


def _load_mnist(folder: Path, train: bool, spec: str) -> ImageDataset:
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (expected MNIST IDX files for {spec!r})")
    prefix = "train" if train else "t10k"
    img_path = _find_file(folder, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"), spec)
    lbl_path = _find_file(folder, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"), spec)
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected uint8 images of shape (N, 28, 28), got "
                        f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{lbl_path}: expected {len(images)} labels, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{lbl_path}: labels must lie in 0..9")
    pad = max(0, (32 - images.shape[1]) // 2)
    return ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1),
                        torch.from_numpy(labels.astype(np.int64)), spec=spec, num_classes=10,
                        scale=1 / 255, pad=pad, mean=(MNIST_MEAN,), std=(MNIST_STD,))


# --------------------------------------------------------------------------- CIFAR

_SAFE_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"}


class _Unset:
    """Stands in for ``numpy.ndarray`` as the (ignored) first argument of ``_reconstruct``."""


class _DtypeStub:
    """Inert record of a pickled ``numpy.dtype``; only plain numeric types are accepted."""

    def __init__(self, kind, align=False, copy=True):
        self.kind = kind.decode("ascii", "replace") if isinstance(kind, bytes) else str(kind)
        self.byteorder = "|"

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) > 1:
            order = state[1]
            self.byteorder = order.decode("ascii", "replace") if isinstance(order, bytes) else str(order)

    def to_numpy(self) -> np.dtype:
        if self.kind not in _SAFE_DTYPES or self.byteorder not in ("|", "<", ">", "="):
            raise pickle.UnpicklingError(f"array dtype {self.kind!r} is not a plain numeric type")
        return np.dtype(self.kind).newbyteorder(self.byteorder if self.byteorder != "|" else "=")


class _ArrayStub:
    """Inert record of a pickled ``numpy.ndarray``; turned into an array after loading."""

    def __init__(self, *args):
        self.shape: tuple = (0,)
        self.dtype: _DtypeStub | None = None
        self.fortran = False
        self.raw: bytes = b""

    def __setstate__(self, state) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("unexpected ndarray state")
        shape, dtype, fortran, raw = state[-4:]
        if isinstance(raw, bytearray):
            raw = bytes(raw)
        if not isinstance(dtype, _DtypeStub) or not isinstance(raw, bytes):
            raise pickle.UnpicklingError("only plain numeric arrays are accepted")
        self.shape, self.dtype, self.fortran, self.raw = tuple(int(s) for s in shape), dtype, bool(fortran), raw

    def to_numpy(self) -> np.ndarray:
        if self.dtype is None:
            raise pickle.UnpicklingError("ndarray without a dtype")
        dtype = self.dtype.to_numpy()
        count = int(np.prod(self.shape))
        if len(self.raw) != count * dtype.itemsize:
            raise pickle.UnpicklingError(f"array of shape {self.shape} has {len(self.raw)} bytes, "
                                         f"expected {count * dtype.itemsize}")
        return np.frombuffer(self.raw, dtype=dtype).reshape(
            self.shape, order="F" if self.fortran else "C").copy()


def _frombuffer_stub(buf, dtype, shape, order) -> _ArrayStub:
    stub = _ArrayStub()
    stub.__setstate__((shape, dtype, order == "F", bytes(buf)))
    return stub


def _latin1_encode(text, encoding="utf-8"):
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("only latin1 text-to-bytes encoding is accepted")
    return text.encode("latin1")


class SafeCifarUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches that never runs code named by the file.

    ``find_class`` refuses every global except the handful a NumPy array needs
    (``_reconstruct``, ``ndarray``, ``dtype``, ``_frombuffer``, ``_codecs.encode``),
    and even those resolve to inert local stand-ins (:class:`_ArrayStub`,
    :class:`_DtypeStub`) that merely record shape, dtype and raw bytes; plain
    numeric dtypes only. Everything else (dict, list, bytes, str, int) is built by
    the pickle machine itself. Anything else raises ``pickle.UnpicklingError``.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _ArrayStub,
        ("numpy._core.multiarray", "_reconstruct"): _ArrayStub,
        ("numpy", "ndarray"): _Unset,
        ("numpy", "dtype"): _DtypeStub,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer_stub,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer_stub,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _materialise(obj):
    if isinstance(obj, _ArrayStub):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): _materialise(v)
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialise(v) for v in obj]
    return obj


def read_cifar_batch(path: Path) -> dict:
    """Read one CIFAR python batch safely (see :class:`SafeCifarUnpickler`); str keys."""
    try:
        with open(path, "rb") as fh:
            obj = SafeCifarUnpickler(fh, encoding="bytes").load()
        obj = _materialise(obj)
    except OSError as exc:
        raise DataError(f"{path}: cannot read CIFAR batch ({exc})") from None
    except Exception as exc:  # corrupt pickles raise many types
        raise DataError(f"{path}: not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict with 'data' and labels, got {type(obj).__name__}")
    return obj


def _load_cifar(folder: Path, train: bool, spec: str, kind: str) -> ImageDataset:
    sub = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
    if (folder / sub).is_dir():
        folder = folder / sub
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found (expected CIFAR python batches for {spec!r})")
    if kind == "cifar10":
        names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key, classes, mean, std = "labels", 10, CIFAR10_MEAN, CIFAR10_STD
    else:
        names = ["train"] if train else ["test"]
        label_key, classes, mean, std = "fine_labels", 100, CIFAR100_MEAN, CIFAR100_STD
    data, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"{path}: missing CIFAR batch file for {spec!r}")
        batch = read_cifar_batch(path)
        x, y = batch.get("data"), batch.get(label_key)
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
            raise DataError(f"{path}: field 'data' must be a uint8 array of shape (N, 3072)")
        if not isinstance(y, list) or len(y) != len(x) or not all(isinstance(v, int) for v in y):
            raise DataError(f"{path}: field {label_key!r} must be a list of {len(x)} integers")
        if y and (min(y) < 0 or max(y) >= classes):
            raise DataError(f"{path}: labels in {label_key!r} must lie in 0..{classes - 1}")
        data.append(x)
        labels.extend(y)
    images = torch.from_numpy(np.concatenate(data).reshape(-1, 3, 32, 32))
    return ImageDataset(images, torch.tensor(labels, dtype=torch.int64), spec=spec,
                        num_classes=classes, scale=1 / 255, mean=mean, std=std)


# --------------------------------------------------------------------------- synthetic

def _parse_ints(spec: str, arg: str, names: Sequence[str], required: int) -> list[int]:
    parts = [p.strip() for p in arg.split(",")] if arg else []
    if not required <= len(parts) <= len(names) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise DataError(f"dataset spec {spec!r}: expected {required}..{len(names)} positive integers "
                        f"({','.join(names)})")
    return [int(p) for p in parts]


def _synthetic(spec: str, arg: str, train: bool) -> ImageDataset:
    c, h, w, *rest = _parse_ints(spec, arg, ("C", "H", "W", "classes", "n"), 3)
    classes = rest[0] if rest else 10
    n = rest[1] if len(rest) > 1 else 512
    base = np.random.default_rng(1234)
    # smooth class prototypes (random at 1/4 resolution, upsampled): easy for conv nets
    coarse = base.standard_normal((classes, c, max(1, h // 4), max(1, w // 4))).astype(np.float32)
    prototypes = 2.0 * F.interpolate(torch.from_numpy(coarse), size=(h, w), mode="bilinear",
                                     align_corners=False).numpy()
    rng = np.random.default_rng(1 if train else 2)
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    noise = rng.standard_normal((n, c, h, w)).astype(np.float32)
    images = prototypes[labels] + noise
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)),
                        spec=spec, num_classes=classes)


def _random(spec: str, arg: str) -> ImageDataset:
    c, h, w, *rest = _parse_ints(spec, arg, ("C", "H", "W", "n"), 3)
    n = rest[0] if rest else 64
    images = np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)
    return ImageDataset(torch.from_numpy(images), torch.zeros(n, dtype=torch.int64),
                        spec=spec, num_classes=1)
