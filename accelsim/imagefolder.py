"""ImageNet-style image folders (``imagenet:PATH``), decoded with Pillow on demand.

Layout: ``PATH/train/<class>/*.jpg|jpeg|png`` and ``PATH/val/<class>/...``; classes
are the sorted folder names of ``train`` (``val`` may hold fewer, never others). An
item is the image converted to RGB, resized (bilinear, Pillow's antialiasing) so its
shorter side is ``resize``, centre-cropped to ``crop`` x ``crop``, scaled to [0, 1]
and normalised with the ImageNet mean and std. Nothing is cached or downloaded.

:class:`ImageFolderDataset` offers what training, evaluation and capture use from
:class:`accelsim.datasets.ImageDataset`: ``len``, ``[i]``, ``batch(index)``,
``labels``, ``subset``, ``num_classes``, ``sample_shape``. Bad trees and unreadable
images raise :class:`~accelsim.errors.DataError` naming the folder or file.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from accelsim.datasets import SampleIndexing
from accelsim.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: The only Pillow decoders an image file is handed to, whatever its name says.
IMAGE_FORMATS = ("JPEG", "PNG")
#: Largest decoded image (pixels) and aspect ratio accepted; both bound memory before decoding.
MAX_PIXELS = 64 * 1024 * 1024
MAX_ASPECT = 16
#: Largest crop or resize side (pixels) a dataset spec may ask for.
MAX_SIDE = 4096
SPLITS = {True: "train", False: "val"}
DEFAULT_CROP = 224
DEFAULT_SEED = 0
_OPTIONS = ("crop", "resize", "seed")


def default_resize(crop: int) -> int:
    """The usual 256-for-224 ratio: shorter side before the centre crop."""
    return int(round(crop * 256 / 224))


def parse_spec(spec: str, arg: str) -> tuple[Path, dict[str, int]]:
    """``PATH[,crop=N][,resize=M][,seed=S]`` -> (PATH, options); trailing ``key=int`` parts only."""
    parts = arg.split(",")
    options: dict[str, int] = {}
    while len(parts) > 1 and "=" in parts[-1]:
        key, _, value = parts.pop().partition("=")
        key = key.strip()
        if key not in _OPTIONS:
            raise DataError(f"dataset spec {spec!r}: unknown option {key!r}; expected "
                            f"{', '.join(o + '=N' for o in _OPTIONS)}")
        value = value.strip()
        if not value.isdigit() or (key != "seed" and int(value) < 1):
            raise DataError(f"dataset spec {spec!r}: option {key} expects a "
                            f"{'non-negative' if key == 'seed' else 'positive'} integer, got {value!r}")
        if key in options:
            raise DataError(f"dataset spec {spec!r}: option {key} is given twice")
        options[key] = int(value)
    path = ",".join(parts).strip()
    if not path:
        raise DataError(f"dataset spec {spec!r}: expected 'imagenet:PATH' naming the folder with "
                        "train/ and val/")
    crop = options.setdefault("crop", DEFAULT_CROP)
    resize = options.setdefault("resize", default_resize(crop))
    for key in ("crop", "resize"):
        if options[key] > MAX_SIDE:
            raise DataError(f"dataset spec {spec!r}: {key}={options[key]} is larger than the "
                            f"{MAX_SIDE}-pixel limit")
    if resize < crop:
        raise DataError(f"dataset spec {spec!r}: resize={resize} is smaller than crop={crop} "
                        "(the shorter side must cover the crop)")
    options.setdefault("seed", DEFAULT_SEED)
    return Path(path).expanduser(), options


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def class_folders(root: Path, split: str, spec: str) -> list[str]:
    """Sorted names of the class folders of ``root/split`` (at least one)."""
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{folder}: missing split folder for {spec!r} (expected {root}/train and "
                        f"{root}/val, each with one sub-folder of images per class)")
    try:
        found = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise DataError(f"{folder}: cannot list the class folders ({exc.strerror or exc})") from None
    if not found:
        raise DataError(f"{folder}: no class sub-folders (expected one folder per class holding "
                        f"{'/'.join(IMAGE_SUFFIXES)} files)")
    return found


def scan_split(root: Path, split: str, spec: str,
               classes: Sequence[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(classes, files, labels) of ``root/split``; files sorted by class then name.

    ``classes`` (from the training split) fixes the label of each folder; a folder not
    among them is an error. Without it the split's own sorted folders are the classes.
    """
    folder = root / split
    found = class_folders(root, split, spec)
    if classes is None:
        classes = found
    index = {name: i for i, name in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in found:
        if name not in index:
            raise DataError(f"{folder / name}: class folder not in the training split "
                            f"({root / 'train'} has {len(classes)} classes)")
        try:
            images = sorted(e.name for e in os.scandir(folder / name) if e.is_file() and _is_image(e.name))
        except OSError as exc:
            raise DataError(f"{folder / name}: cannot list the images ({exc.strerror or exc})") from None
        if not images and split == SPLITS[True]:
            raise DataError(f"{folder / name}: no {'/'.join(IMAGE_SUFFIXES)} images in this class folder")
        files.extend(folder / name / image for image in images)
        labels.extend([index[name]] * len(images))
    if not files:
        raise DataError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} images in its class folders")
    return list(classes), files, labels


def load_image(path: Path, resize: int, crop: int) -> np.ndarray:
    """uint8 (3, crop, crop): RGB, shorter side resized to ``resize``, centre crop."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow warns above this and refuses above twice it
    try:
        # only the decoders named here: a file named .jpg holding EPS, PDF, ... is never
        # handed to a plugin that runs a program (Pillow's EPS decoder calls Ghostscript)
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            w, h = image.size
            if w < 1 or h < 1:
                raise ValueError("empty image")
            if w * h > MAX_PIXELS:
                raise DataError(f"{path}: image refused: {w} x {h} pixels, more than the "
                                f"{MAX_PIXELS:,} accepted")
            if max(w, h) > MAX_ASPECT * min(w, h):
                raise DataError(f"{path}: image refused: {w} x {h} pixels, an aspect ratio above "
                                f"{MAX_ASPECT}:1 (resizing its shorter side would blow up the other)")
            image = image.convert("RGB")
            scale = resize / min(w, h)
            size = (max(resize, int(round(w * scale))), max(resize, int(round(h * scale))))
            if size != (w, h):
                image = image.resize(size, Image.BILINEAR)
            left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
            array = np.asarray(image.crop((left, top, left + crop, top + crop)), dtype=np.uint8)
    except DataError:
        raise
    except Exception as exc:  # Pillow raises UnidentifiedImageError, OSError, SyntaxError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot read image ({first})") from None
    return array.transpose(2, 0, 1)


class ImageFolderDataset(SampleIndexing):
    """Image files decoded, resized, centre-cropped and normalised when a batch is asked for."""

    def __init__(self, files: Sequence[Path], labels: Sequence[int] | torch.Tensor, *, spec: str,
                 classes: Sequence[str], crop: int, resize: int,
                 mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), workers: int | None = None):
        self.files = list(files)
        self.labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} files but {len(self.labels)} labels")
        self.spec = spec
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.crop, self.resize = int(crop), int(resize)
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1)
        self.workers = workers if workers is not None else max(1, min(8, os.cpu_count() or 1))

    def __len__(self) -> int:
        return len(self.files)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (3, self.crop, self.crop)

    def _positions(self, index) -> list[int]:
        if isinstance(index, slice):
            return list(range(len(self))[index])
        return [int(i) for i in torch.as_tensor(index).reshape(-1).tolist()]

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images ``(B, 3, crop, crop)`` and labels ``(B,)`` at ``index``."""
        positions = self._positions(index)
        paths = [self.files[i] for i in positions]
        if self.workers > 1 and len(paths) > 1:  # Pillow decodes and resizes without the GIL
            with ThreadPoolExecutor(max_workers=min(self.workers, len(paths))) as pool:
                arrays = list(pool.map(lambda p: load_image(p, self.resize, self.crop), paths))
        else:
            arrays = [load_image(p, self.resize, self.crop) for p in paths]
        if arrays:
            x = torch.from_numpy(np.stack(arrays)).float() / 255.0
        else:
            x = torch.zeros((0, *self.sample_shape))
        return (x - self.mean) / self.std, self.labels[torch.as_tensor(positions, dtype=torch.int64)]

    def subset(self, indices, spec: str | None = None) -> "ImageFolderDataset":
        """The items at ``indices`` (same size, crop and normalisation)."""
        positions = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        return ImageFolderDataset([self.files[i] for i in positions], self.labels[positions],
                                  spec=spec or self.spec, classes=self.classes, crop=self.crop,
                                  resize=self.resize, mean=self.mean.flatten().tolist(),
                                  std=self.std.flatten().tolist(), workers=self.workers)

    def __repr__(self) -> str:
        return f"ImageFolderDataset({self.spec!r}, n={len(self)}, shape={self.sample_shape})"


def load_image_folder(spec: str, arg: str, train: bool) -> ImageFolderDataset:
    """The ``train`` (``train=True``) or ``val`` split of an ``imagenet:PATH[,...]`` spec."""
    from accelsim.datasets import IMAGENET_MEAN, IMAGENET_STD

    root, options = parse_spec(spec, arg)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found (expected train/ and val/ folders of "
                        f"class sub-folders for {spec!r})")
    classes = None if train else class_folders(root, SPLITS[True], spec)  # labels of the train split
    classes, files, labels = scan_split(root, SPLITS[train], spec, classes)
    order = np.random.default_rng(options["seed"]).permutation(len(files))
    return ImageFolderDataset([files[i] for i in order], [labels[i] for i in order], spec=spec,
                              classes=classes, crop=options["crop"], resize=options["resize"],
                              mean=IMAGENET_MEAN, std=IMAGENET_STD)
