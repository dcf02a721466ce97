"""Datasets in their real on-disk formats, the held-out split, and the device-side loader."""
import pickle

import numpy as np
import pytest
import torch

from robustzoo.data import Augment, Loader, Split, load_data, random_crop
from robustzoo.errors import DatasetNotFoundError


def test_digits_ships_with_the_package():
    d = load_data("digits", val_size=100)
    assert (len(d.train), len(d.val), len(d.test)) == (1297, 100, 400)
    assert d.train.x.dtype == torch.uint8 and d.train.x.shape[1:] == (1, 8, 8)
    assert d.num_classes == 10 and d.train.x.max() == 255
    assert set(d.train.y.tolist()) == set(range(10))
    again = load_data("digits", val_size=100)
    assert torch.equal(d.val.x, again.val.x)  # deterministic held-out split
    other = load_data("digits", val_size=100, seed=1)
    assert not torch.equal(d.val.y, other.val.y)


def _write_cifar10(root, n_train=20, n_test=10):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    def batch(n):
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(n_train // 5), f)
    test = batch(n_test)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(test, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return test


def test_cifar10_in_torchvision_format(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    test = _write_cifar10(tmp_path)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # not the real files' md5s
    d = load_data("cifar10", tmp_path, val_size=4)
    assert (len(d.train), len(d.val), len(d.test)) == (16, 4, 10)
    assert d.test.x.shape == (10, 3, 32, 32) and d.test.x.dtype == torch.uint8
    expected = torch.from_numpy(test["data"][3].reshape(3, 32, 32))
    assert torch.equal(d.test.x[3], expected) and d.test.y[3] == test["labels"][3]
    assert d.classes[0] == "airplane" and d.augment == Augment(4, True)


def test_svhn_mat_files(tmp_path, monkeypatch):
    scipy_io = pytest.importorskip("scipy.io")
    import torchvision.datasets.svhn as tv_svhn

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # SVHN stores digit 0 as label 10
        scipy_io.savemat(tmp_path / f"{split}_32x32.mat", {"X": x, "y": y})
    monkeypatch.setattr(tv_svhn, "check_integrity", lambda *a, **k: True)
    d = load_data("svhn", tmp_path, val_size=2)
    assert len(d.train) == 10 and d.test.x.shape == (6, 3, 32, 32)
    assert d.test.y.max() <= 9 and d.augment.flip is False


def test_tiny_imagenet_folder_layout(tmp_path):
    from torchvision.io import encode_jpeg

    base = tmp_path / "tiny-imagenet-200"
    wnids = ["n01443537", "n01629819"]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids))
    lines = []
    for c, w in enumerate(wnids):
        (base / "train" / w / "images").mkdir(parents=True)
        for i in range(3):
            img = torch.full((3, 64, 64), 40 * c + i, dtype=torch.uint8)
            (base / "train" / w / "images" / f"{w}_{i}.JPEG").write_bytes(encode_jpeg(img).numpy().tobytes())
        (base / "val" / "images" / f"val_{c}.JPEG").write_bytes(
            encode_jpeg(torch.full((3, 64, 64), 100, dtype=torch.uint8)).numpy().tobytes())
        lines.append(f"val_{c}.JPEG\t{w}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines))
    d = load_data("tiny_imagenet", tmp_path, val_size=2)
    assert (len(d.train), len(d.val), len(d.test)) == (4, 2, 2)
    assert d.test.x.shape == (2, 3, 64, 64) and d.test.y.tolist() == [0, 1]
    assert d.classes == wnids


@pytest.mark.parametrize("name,what", [("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"), ("svhn", "SVHN"),
                                       ("tiny_imagenet", "Tiny-ImageNet")])
def test_missing_dataset_says_where_to_put_it(tmp_path, name, what):
    with pytest.raises(DatasetNotFoundError, match=f"{what} not found in {tmp_path}: put .* there"):
        load_data(name, tmp_path)


def test_random_crop_is_a_shifted_window_of_the_reflect_padded_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).view(2, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        windows = [padded[i, :, dy:dy + 5, dx:dx + 5] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_loader_order_depends_only_on_seed_and_epoch():
    split = Split(torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8), torch.arange(50))
    loader = Loader(split, 16, shuffle=True, augment=Augment(2, True), drop_last=True, seed=3)
    assert len(loader) == 3
    epoch0 = [y for _, y in loader]
    loader.set_epoch(1)
    epoch1 = [y for _, y in loader]
    loader.set_epoch(0)
    again = [(x, y) for x, y in loader]
    assert all(torch.equal(a, b) for a, (_, b) in zip(epoch0, again))
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, epoch1))
    x, _ = again[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    plain = Loader(split, 64)
    x, y = next(iter(plain))
    assert torch.equal(y, torch.arange(50)) and torch.equal(x, split.x.float() / 255)


def _write_tree(root, sizes=None, classes=("cat", "ant", "bee")):
    from torchvision.io import encode_png

    for split, n in (("train", 4), ("test", 2)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = torch.full((3, 6, 6), 10 * c + i, dtype=torch.uint8)
                img[0, 0, 0] = 255
                (folder / f"{i:03d}.png").write_bytes(encode_png(img).numpy().tobytes())


def test_image_folder_tree(tmp_path):
    _write_tree(tmp_path)
    d = load_data("imagefolder", tmp_path, val_size=3)
    assert d.classes == ["ant", "bee", "cat"]  # sorted folder names
    assert (len(d.train), len(d.val), len(d.test)) == (9, 3, 6)
    assert d.test.x.shape == (6, 3, 6, 6) and d.test.x.dtype == torch.uint8
    assert d.test.y.tolist() == [0, 0, 1, 1, 2, 2]
    # "ant" is folder index 1 in the writer: pixel value 10 * 1 + i; PNG is lossless
    assert d.test.x[0, 1, 0, 0] == 10 and d.test.x[1, 1, 0, 0] == 11 and d.test.x[0, 0, 0, 0] == 255
    assert d.test.x.max() == 255 and d.test.x.min() == 0
    whole = torch.cat([d.train.y, d.val.y])
    assert whole.bincount().tolist() == [4, 4, 4]


def test_image_folder_errors_name_the_path(tmp_path):
    from robustzoo.errors import InvalidValueError

    _write_tree(tmp_path / "a")
    (tmp_path / "a" / "test").rename(tmp_path / "a" / "val")
    with pytest.raises(DatasetNotFoundError, match=r"missing split folder .*a/test"):
        load_data("imagefolder", tmp_path / "a")
    _write_tree(tmp_path / "b")
    for f in (tmp_path / "b" / "train" / "bee").iterdir():
        f.unlink()
    with pytest.raises(DatasetNotFoundError, match=r"class folder .*b/train/bee is empty"):
        load_data("imagefolder", tmp_path / "b")
    _write_tree(tmp_path / "c")
    (tmp_path / "c" / "test" / "ant" / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidValueError, match=r"c/test/ant/notes.txt is not an image"):
        load_data("imagefolder", tmp_path / "c")


def test_train_subset_is_a_fixed_random_subset():
    d = load_data("digits", val_size=100, train_subset=200)
    again = load_data("digits", val_size=100, train_subset=200)
    assert len(d.train) == 200 and torch.equal(d.train.x, again.train.x)
    assert len(set(d.train.y.tolist())) == 10  # random, not the first 200 of a sorted list
    from robustzoo.errors import InvalidValueError
    with pytest.raises(InvalidValueError, match="train_subset=5000"):
        load_data("digits", train_subset=5000)


def test_real_cifar10_jpeg_tree(cifar10_tree):
    d = load_data("cifar10", cifar10_tree, val_size=1000)
    assert (len(d.train) + len(d.val), len(d.test)) == (50000, 10000)
    assert torch.cat([d.train.y, d.val.y, d.test.y]).bincount().tolist() == [6000] * 10
    assert d.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert d.train.x.shape[1:] == (3, 32, 32) and d.train.x.dtype == torch.uint8
    mean = d.test.x.double().mean((0, 2, 3)) / 255
    torch.testing.assert_close(mean, torch.tensor([0.4941, 0.4851, 0.4504], dtype=torch.float64), atol=2e-3, rtol=0)
