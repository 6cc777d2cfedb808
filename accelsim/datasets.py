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
    ``cifar-100-python`` sub-folder). Those files are pickles; they are read by
    :func:`parse_cifar_pickle`, a reader of just the pickle opcodes the batches use
    that imports and calls nothing and bounds memory by the file's size (see there).
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

#: Largest CIFAR batch file read. The CIFAR-100 training file is 163 MB; a Python 3
#: protocol-2 pickle of it, whose bytes travel as latin-1 text, can be twice that.
MAX_CIFAR_FILE_BYTES = 448 << 20
#: Largest array one batch may hold (CIFAR-100's 50,000 x 3,072 bytes are 153.6 MB).
MAX_CIFAR_ARRAY_BYTES = 200_000_000
_MAX_NESTING = 16            # containers inside containers (a batch has 2 levels)
_SAFE_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"}
_SHORT = 4096                # byte strings up to this size are copied at once, longer ones later
# The globals a NumPy array needs, each mapped to the inert operation the reader does.
_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("_codecs", "encode"): "encode",
}


class CifarPickleError(ValueError):
    """A CIFAR batch holds something :func:`parse_cifar_pickle` does not accept."""


class _Global:
    def __init__(self, op: str):
        self.op = op


class _Dtype:
    def __init__(self, kind):
        self.kind = _text(kind, "dtype")
        self.byteorder = "|"

    def numpy(self) -> np.dtype:
        if self.kind not in _SAFE_DTYPES or self.byteorder not in ("|", "<", ">", "="):
            raise CifarPickleError(f"array dtype {self.kind[:20]!r} is not a plain numeric type")
        return np.dtype(self.kind).newbyteorder(self.byteorder if self.byteorder != "|" else "=")


class _Array:
    """``numpy.ndarray`` being rebuilt: ``_reconstruct`` makes it, ``BUILD`` fills it."""

    def __init__(self):
        self.array: np.ndarray | None = None


def _text(value, what: str) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    raise CifarPickleError(f"{what}: expected text, got {type(value).__name__}")


class _CifarPickle:
    """A pickle machine for the opcodes CIFAR batches use, building only data.

    Python 2's ``cPickle`` (the files as published) and Python 3's ``pickle`` at
    protocols 2 to 5 write a batch with: PROTO, FRAME, STOP; MARK, EMPTY_DICT/LIST/TUPLE,
    DICT, LIST, TUPLE, TUPLE1-3, APPEND(S), SETITEM(S); NONE, NEWTRUE/NEWFALSE, BININT,
    BININT1, BININT2, LONG1; (SHORT_)BINSTRING, (SHORT_)BINBYTES, BINBYTES8, BYTEARRAY8,
    (SHORT_)BINUNICODE, BINUNICODE8; BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET;
    GLOBAL/STACK_GLOBAL (only :data:`_GLOBALS`), REDUCE and BUILD (only on the arrays
    and dtypes those globals make). Nothing else is accepted and nothing is imported
    or called: the result holds dicts, lists, tuples, bytes, str, ints, bools, None
    and plain numeric arrays.

    Memory is bounded by the file: every opcode reads at least one byte, lengths are
    checked against the bytes left before anything is sliced, an array must hold exactly
    the raw bytes given (at most :data:`MAX_CIFAR_ARRAY_BYTES`), and every byte string,
    text, encoded copy and array built counts against a budget of three times the file
    size (so a memo reference repeated many times cannot multiply a large object).
    """

    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.pos = 0
        self.budget = 3 * len(data) + (1 << 20)
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}

    # -- reading --------------------------------------------------------------------

    def take(self, n: int) -> memoryview:
        if n < 0 or n > len(self.data) - self.pos:
            raise CifarPickleError(f"truncated: {n:,} bytes declared at offset {self.pos:,}, "
                                   f"{len(self.data) - self.pos:,} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def spend(self, n: int, what: str) -> None:
        self.budget -= n
        if self.budget < 0:
            raise CifarPickleError(f"{what} takes more memory than 3x the file's size (a batch "
                                   "repeats or inflates its data)")

    def line(self) -> str:
        end = bytes(self.data[self.pos:self.pos + 256]).find(b"\n")
        if end < 0:
            raise CifarPickleError(f"GLOBAL at offset {self.pos:,}: no end of line")
        text = bytes(self.take(end + 1)[:-1])
        return text.decode("ascii", "replace")

    # -- the stack -------------------------------------------------------------------

    def pop(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise CifarPickleError(f"stack underflow at offset {self.pos:,}")
        return self.stack.pop()

    def top(self):
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise CifarPickleError(f"stack underflow at offset {self.pos:,}")
        return self.stack[-1]

    def pop_mark(self) -> list:
        if not self.marks:
            raise CifarPickleError(f"no MARK before offset {self.pos:,}")
        start = self.marks.pop()
        items = self.stack[start:]
        del self.stack[start:]
        return items

    def push_bytes(self, n: int) -> None:
        view = self.take(n)
        if n <= _SHORT:
            self.spend(n, "a byte string")
            self.stack.append(bytes(view))
        else:
            self.stack.append(view)  # copied (and counted) when the result is built

    def push_text(self, n: int) -> None:
        view = self.take(n)
        self.spend(n, "a text string")
        self.stack.append(str(view, "utf-8", "surrogatepass"))

    def put(self, index: int) -> None:
        self.memo[index] = self.top()

    def get(self, index: int) -> None:
        if index not in self.memo:
            raise CifarPickleError(f"memo entry {index} read before it is written")
        self.stack.append(self.memo[index])

    # -- objects ---------------------------------------------------------------------

    def global_(self, module: str, name: str) -> None:
        op = _GLOBALS.get((module, name))
        if op is None:
            raise CifarPickleError(f"refusing to load global {module[:60]}.{name[:60]}")
        self.stack.append(_Global(op))

    def reduce(self) -> None:
        args = self.pop()
        func = self.pop()
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            raise CifarPickleError(f"REDUCE of {type(func).__name__} at offset {self.pos:,}: only "
                                   "NumPy arrays are rebuilt")
        if func.op == "reconstruct" and args and isinstance(args[0], _Global) \
                and args[0].op == "ndarray":
            self.stack.append(_Array())
        elif func.op == "dtype" and 1 <= len(args) <= 3:
            self.stack.append(_Dtype(args[0]))
        elif func.op == "encode" and len(args) == 2 and isinstance(args[0], str) \
                and _text(args[1], "encoding") in ("latin1", "latin-1"):
            self.spend(len(args[0]), "an encoded byte string")
            self.stack.append(args[0].encode("latin1"))
        elif func.op == "frombuffer" and len(args) == 4:
            buf, dtype, shape, order = args
            self.stack.append(self.array(buf, dtype, shape, _text(order, "order") == "F"))
        else:
            raise CifarPickleError(f"unexpected call of {func.op} at offset {self.pos:,}")

    def build(self) -> None:
        state = self.pop()
        obj = self.top()
        if isinstance(obj, _Dtype) and isinstance(state, tuple) and len(state) >= 2:
            obj.byteorder = _text(state[1], "dtype byte order")
        elif isinstance(obj, _Array) and isinstance(state, tuple) and len(state) in (4, 5):
            shape, dtype, fortran, raw = state[-4:]
            obj.array = self.array(raw, dtype, shape, bool(fortran))
        else:
            raise CifarPickleError(f"BUILD of {type(obj).__name__} at offset {self.pos:,}: only "
                                   "NumPy arrays are rebuilt")

    def array(self, raw, dtype, shape, fortran: bool) -> np.ndarray:
        if not isinstance(dtype, _Dtype):
            raise CifarPickleError("an array without a plain numeric dtype")
        np_dtype = dtype.numpy()
        if (not isinstance(shape, tuple) or len(shape) > 32
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise CifarPickleError("an array shape must be a tuple of at most 32 non-negative integers")
        if not isinstance(raw, (bytes, memoryview)):
            raise CifarPickleError(f"array data must be bytes, got {type(raw).__name__}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * np_dtype.itemsize
        if nbytes > MAX_CIFAR_ARRAY_BYTES:
            raise CifarPickleError(f"an array of {nbytes:,} bytes is larger than the "
                                   f"{MAX_CIFAR_ARRAY_BYTES:,}-byte limit of one batch")
        if nbytes != len(raw):
            raise CifarPickleError(f"array of shape {shape} has {len(raw):,} bytes, expected {nbytes:,}")
        self.spend(nbytes, "an array")
        if count == 0:
            return np.empty(shape, np_dtype)
        return np.frombuffer(raw, dtype=np_dtype, count=count).reshape(
            shape, order="F" if fortran else "C").copy()

    # -- the machine -----------------------------------------------------------------

    def run(self):
        s = self
        ops = {
            0x80: lambda: s.take(1),                                     # PROTO
            0x95: lambda: s.take(8),                                     # FRAME (transparent)
            ord("("): lambda: s.marks.append(len(s.stack)),              # MARK
            ord("}"): lambda: s.stack.append({}),                        # EMPTY_DICT
            ord("]"): lambda: s.stack.append([]),                        # EMPTY_LIST
            ord(")"): lambda: s.stack.append(()),                        # EMPTY_TUPLE
            ord("d"): lambda: s.stack.append(s.pairs({}, s.pop_mark())),  # DICT
            ord("l"): lambda: s.stack.append(s.pop_mark()),              # LIST
            ord("t"): lambda: s.stack.append(tuple(s.pop_mark())),       # TUPLE
            0x85: lambda: s.stack.append((s.pop(),)),                    # TUPLE1
            0x86: lambda: s.stack.append(s.tuple_of(2)),                 # TUPLE2
            0x87: lambda: s.stack.append(s.tuple_of(3)),                 # TUPLE3
            ord("a"): lambda: s.extend([s.pop()]),                       # APPEND
            ord("e"): lambda: s.extend(s.pop_mark()),                    # APPENDS
            ord("s"): lambda: s.setitems(s.tuple_of(2)),                 # SETITEM
            ord("u"): lambda: s.setitems(s.pop_mark()),                  # SETITEMS
            ord("N"): lambda: s.stack.append(None),                      # NONE
            0x88: lambda: s.stack.append(True),                          # NEWTRUE
            0x89: lambda: s.stack.append(False),                         # NEWFALSE
            ord("K"): lambda: s.stack.append(s.uint(1)),                 # BININT1
            ord("M"): lambda: s.stack.append(s.uint(2)),                 # BININT2
            ord("J"): lambda: s.stack.append(int.from_bytes(s.take(4), "little", signed=True)),
            0x8a: lambda: s.stack.append(int.from_bytes(s.take(s.uint(1)), "little", signed=True)),
            ord("U"): lambda: s.push_bytes(s.uint(1)),                   # SHORT_BINSTRING
            ord("T"): lambda: s.push_bytes(int.from_bytes(s.take(4), "little", signed=True)),
            ord("C"): lambda: s.push_bytes(s.uint(1)),                   # SHORT_BINBYTES
            ord("B"): lambda: s.push_bytes(s.uint(4)),                   # BINBYTES
            0x8e: lambda: s.push_bytes(s.uint(8)),                       # BINBYTES8
            0x96: lambda: s.push_bytes(s.uint(8)),                       # BYTEARRAY8
            0x8c: lambda: s.push_text(s.uint(1)),                        # SHORT_BINUNICODE
            ord("X"): lambda: s.push_text(s.uint(4)),                    # BINUNICODE
            0x8d: lambda: s.push_text(s.uint(8)),                        # BINUNICODE8
            ord("q"): lambda: s.put(s.uint(1)),                          # BINPUT
            ord("r"): lambda: s.put(s.uint(4)),                          # LONG_BINPUT
            0x94: lambda: s.put(len(s.memo)),                            # MEMOIZE
            ord("h"): lambda: s.get(s.uint(1)),                          # BINGET
            ord("j"): lambda: s.get(s.uint(4)),                          # LONG_BINGET
            ord("c"): lambda: s.global_(s.line(), s.line()),             # GLOBAL
            0x93: s.stack_global,                                        # STACK_GLOBAL
            ord("R"): s.reduce,                                          # REDUCE
            ord("b"): s.build,                                           # BUILD
        }
        while True:
            at = s.pos
            op = s.take(1)[0]
            if op == ord("."):                                           # STOP
                result = s.pop()
                return s.finish(result, 0, {})
            handler = ops.get(op)
            if handler is None:
                raise CifarPickleError(f"unsupported pickle opcode 0x{op:02x} at offset {at:,}")
            handler()

    def tuple_of(self, n: int) -> tuple:
        items = [self.pop() for _ in range(n)]
        return tuple(reversed(items))

    def stack_global(self) -> None:
        name = self.pop()
        module = self.pop()
        self.global_(_text(module, "module"), _text(name, "name"))

    def extend(self, items: list) -> None:
        target = self.top()
        if not isinstance(target, list):
            raise CifarPickleError(f"APPEND to {type(target).__name__} at offset {self.pos:,}")
        target.extend(items)

    def pairs(self, target: dict, items: list) -> dict:
        if len(items) % 2:
            raise CifarPickleError(f"odd number of dict items at offset {self.pos:,}")
        for key, value in zip(items[::2], items[1::2]):
            if isinstance(key, memoryview):
                self.spend(len(key), "a dict key")
                key = bytes(key)
            if not isinstance(key, (str, bytes, int, type(None))):
                raise CifarPickleError(f"dict key of type {type(key).__name__} at offset {self.pos:,}")
            target[key] = value
        return target

    def setitems(self, items) -> None:
        target = self.top()
        if not isinstance(target, dict):
            raise CifarPickleError(f"SETITEM on {type(target).__name__} at offset {self.pos:,}")
        self.pairs(target, list(items))

    def finish(self, obj, depth: int, done: dict):
        """The result with arrays in place, byte strings copied out of the file and dict
        keys as text; each container converted once (shared or cyclic references kept)."""
        if depth > _MAX_NESTING:
            raise CifarPickleError(f"containers nested deeper than {_MAX_NESTING} levels")
        if isinstance(obj, _Array):
            if obj.array is None:
                raise CifarPickleError("an ndarray without its data")
            return obj.array
        if isinstance(obj, memoryview):
            self.spend(len(obj), "a byte string")
            return bytes(obj)
        if isinstance(obj, (_Dtype, _Global)):
            raise CifarPickleError("a dtype or a global where data was expected")
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in done:
                return done[id(obj)]
            if isinstance(obj, dict):
                out: dict = {}
                done[id(obj)] = out
                for k, v in obj.items():
                    out[k.decode("latin1") if isinstance(k, bytes) else k] = self.finish(v, depth + 1, done)
                return out
            if isinstance(obj, list):
                out_list: list = []
                done[id(obj)] = out_list
                out_list.extend(self.finish(v, depth + 1, done) for v in obj)
                return out_list
            out_tuple = tuple(self.finish(v, depth + 1, done) for v in obj)
            done[id(obj)] = out_tuple  # a tuple cannot contain itself: filled, then shared
            return out_tuple
        return obj


def parse_cifar_pickle(data: bytes):
    """The object a CIFAR batch pickle holds, read without running code and in memory
    bounded by ``len(data)`` (see :class:`_CifarPickle`); :class:`CifarPickleError` otherwise."""
    return _CifarPickle(data).run()


def read_cifar_batch(path: Path) -> dict:
    """Read one CIFAR python batch (a regular file of at most :data:`MAX_CIFAR_FILE_BYTES`)
    with :func:`parse_cifar_pickle`; str keys."""
    from accelsim.errors import AccelsimError
    from accelsim.inputs import read_limited

    try:
        data = read_limited(path, MAX_CIFAR_FILE_BYTES, "CIFAR batch")
    except AccelsimError as exc:
        raise DataError(str(exc)) from None
    try:
        obj = parse_cifar_pickle(data)
    except (CifarPickleError, ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not a CIFAR python batch ({type(exc).__name__}: "
                        f"{str(exc)[:300]})") from None
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
