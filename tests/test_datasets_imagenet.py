"""``imagenet:PATH``: ImageFolder trees decoded with Pillow, checked against NumPy slicing."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from accelsim.datasets import IMAGENET_MEAN, IMAGENET_STD, load_dataset, split_validation
from accelsim.errors import DataError
from accelsim.imagefolder import default_resize, load_image

CLASSES = ("ant", "bee", "cat")


def _normalised(rgb: np.ndarray) -> np.ndarray:
    """Reference: HWC uint8 -> CHW float, /255, ImageNet mean and std (plain NumPy)."""
    x = rgb.astype(np.float64).transpose(2, 0, 1) / 255.0
    return (x - np.array(IMAGENET_MEAN).reshape(3, 1, 1)) / np.array(IMAGENET_STD).reshape(3, 1, 1)


def _write(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def tree(tmp_path):
    """3 classes x 4 train PNGs (8x8 RGB; one 12 wide, one grey) and 2 val PNGs, plus a JPEG."""
    rng = np.random.default_rng(0)
    root = tmp_path / "imagenet"
    pixels = {}
    for c, name in enumerate(CLASSES):
        for split, count in (("train", 4), ("val", 2)):
            for i in range(count):
                shape = (8, 12, 3) if (c, i) == (1, 0) else (8, 8, 3)
                array = rng.integers(0, 256, shape, dtype=np.uint8)
                if (c, i) == (2, 1):
                    array = np.repeat(array[:, :, :1], 3, axis=2)  # stored as a grey PNG
                    _write(root / split / name / f"img{i}.png", array[:, :, 0])
                else:
                    _write(root / split / name / f"img{i}.png", array)
                pixels[(split, name, f"img{i}.png")] = array
    jpeg = root / "train" / "ant" / "photo.JPEG"
    Image.fromarray(rng.integers(0, 256, (10, 8, 3), dtype=np.uint8)).save(jpeg, format="JPEG")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return root, pixels


def test_items_are_the_centre_crop_normalised(tree):
    root, pixels = tree
    ds = load_dataset(f"imagenet:{root},crop=4,resize=8", train=False)
    assert len(ds) == 6 and ds.num_classes == 3 and ds.sample_shape == (3, 4, 4)
    for i in range(len(ds)):
        x, y = ds[i]
        path = ds.files[i]
        assert CLASSES[y] == path.parent.name
        raw = pixels[("val", path.parent.name, path.name)]
        h, w = raw.shape[:2]
        top, left = (h - 4) // 2, (w - 4) // 2   # shorter side is 8 already: no resize
        assert np.allclose(x.numpy(), _normalised(raw[top:top + 4, left:left + 4]), atol=1e-5)
    x, y = ds.batch(torch.tensor([3, 0, 3]))
    assert x.shape == (3, 3, 4, 4) and torch.equal(x[0], x[2]) and torch.equal(x[1], ds[0][0])
    assert y.tolist() == [ds[3][1], ds[0][1], ds[3][1]]


def test_wide_image_centre_crop_and_grey_to_rgb(tree):
    root, pixels = tree
    ds = load_dataset(f"imagenet:{root},crop=4,resize=8", train=True)
    assert len(ds) == 13  # 12 PNGs and one JPEG; notes.txt is not an image
    i = next(k for k, p in enumerate(ds.files) if p.parent.name == "bee" and p.name == "img0.png")
    raw = pixels[("train", "bee", "img0.png")]  # 8 high, 12 wide: columns 4..7 are the centre
    assert np.allclose(ds[i][0].numpy(), _normalised(raw[2:6, 4:8]), atol=1e-5)
    j = next(k for k, p in enumerate(ds.files) if p.parent.name == "cat" and p.name == "img1.png")
    x = ds[j][0].numpy()
    grey = pixels[("train", "cat", "img1.png")][2:6, 2:6, 0] / 255.0
    for channel in range(3):  # a grey image becomes three equal channels before normalising
        assert np.allclose(x[channel] * IMAGENET_STD[channel] + IMAGENET_MEAN[channel], grey, atol=1e-5)


def test_resize_keeps_the_aspect_ratio_and_constant_colours(tmp_path):
    flat = tmp_path / "flat.png"
    _write(flat, np.full((16, 16, 3), (200, 10, 90), dtype=np.uint8))
    out = load_image(flat, resize=6, crop=4)
    assert out.shape == (3, 4, 4) and out.dtype == np.uint8
    assert (out[0] == 200).all() and (out[1] == 10).all() and (out[2] == 90).all()
    ramp = tmp_path / "ramp.png"  # 32 wide, 8 high: shorter side 8 -> 4, width 32 -> 16
    columns = np.arange(32, dtype=np.uint8) * 8
    _write(ramp, np.repeat(np.repeat(columns[None, :, None], 8, axis=0), 3, axis=2))
    out = load_image(ramp, resize=4, crop=4)
    row = out[0, 0].astype(int)
    assert (np.diff(row) > 0).all()             # still a left-to-right ramp
    assert 100 < row.mean() < 150               # the middle of 0..248, not an edge


def test_seeded_order_mixes_classes(tree):
    root, _ = tree
    a = load_dataset(f"imagenet:{root},crop=4", train=True)
    b = load_dataset(f"imagenet:{root},crop=4", train=True)
    c = load_dataset(f"imagenet:{root},crop=4,seed=7", train=True)
    assert a.files == b.files and torch.equal(a.labels, b.labels)
    assert a.files != c.files and sorted(a.files) == sorted(c.files)
    for ds in (a, c):  # labels follow the files through the permutation
        assert [CLASSES[int(y)] for y in ds.labels] == [p.parent.name for p in ds.files]
    assert a.resize == default_resize(4) == 5
    assert len(set(a.labels[:6].tolist())) > 1  # a prefix is not all one class


def test_validation_split_and_val_classes_from_train(tree):
    root, _ = tree
    full = load_dataset(f"imagenet:{root},crop=4", train=True)
    train, val = split_validation(full, 0.25, seed=0)
    assert len(train) + len(val) == len(full) and set(train.files).isdisjoint(val.files)
    assert sorted(val.labels.tolist()) == [0, 1, 2]  # stratified: one of each class
    x, y = val.batch(slice(None))
    assert x.shape == (3, 3, 4, 4) and y.tolist() == val.labels.tolist()
    import shutil

    shutil.rmtree(root / "val" / "bee")  # val may lack a class: labels still come from train
    ds = load_dataset(f"imagenet:{root},crop=4")
    assert ds.num_classes == 3 and set(ds.labels.tolist()) == {0, 2}


def test_data_loader_reads_items(tree):
    root, _ = tree
    ds = load_dataset(f"imagenet:{root},crop=4")
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False))
    x, y = batches[0]
    assert x.shape == (4, 3, 4, 4) and torch.equal(x, ds.batch(slice(0, 4))[0])


@pytest.mark.parametrize("option,words", [
    (",crop=0", "positive integer"), (",size=3", "unknown option 'size'"),
    (",crop=8,resize=4", "smaller than crop"), (",seed=x", "non-negative integer"),
    (",crop=4,crop=5", "given twice"),
])
def test_bad_options(tree, option, words):
    root, _ = tree
    with pytest.raises(DataError, match=words):
        load_dataset(f"imagenet:{root}{option}")


def test_bad_trees_name_the_folder(tree, tmp_path):
    root, _ = tree
    with pytest.raises(DataError, match="imagenet:PATH"):
        load_dataset("imagenet:")
    with pytest.raises(DataError, match="dataset folder not found"):
        load_dataset(f"imagenet:{tmp_path / 'nope'}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty / 'train'}: missing split folder"):
        load_dataset(f"imagenet:{empty}", train=True)
    (empty / "train").mkdir()
    with pytest.raises(DataError, match=f"{empty / 'train'}: no class sub-folders"):
        load_dataset(f"imagenet:{empty}", train=True)
    (empty / "train" / "dog").mkdir()
    with pytest.raises(DataError, match=f"{empty / 'train' / 'dog'}: no .jpg/.jpeg/.png images"):
        load_dataset(f"imagenet:{empty}", train=True)
    _write(empty / "train" / "dog" / "a.png", np.zeros((8, 8, 3), dtype=np.uint8))
    assert len(load_dataset(f"imagenet:{empty}", train=True)) == 1
    with pytest.raises(DataError, match=f"{empty / 'val'}: missing split folder"):
        load_dataset(f"imagenet:{empty}")
    (root / "val" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra: class folder not in the training split"):
        load_dataset(f"imagenet:{root}")


def test_unreadable_image_names_the_file(tree):
    root, _ = tree
    bad = root / "val" / "ant" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a jpeg")
    ds = load_dataset(f"imagenet:{root},crop=4")  # listing reads no pixels
    with pytest.raises(DataError, match=f"{bad}: cannot read image"):
        ds.batch(slice(None))
    with pytest.raises(DataError, match=f"{bad}: cannot read image"):
        ds[ds.files.index(bad)]
