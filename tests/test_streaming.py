"""The streaming data path (files decoded by DataLoader workers, timm's transforms), the batch plan both paths
share, generated-data mixing from memory-mapped npz files, and the automatic choice of path."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustzoo import Fixed, PGDAT, Recipe, Trainer
from robustzoo.checkpoint import load_checkpoint
from robustzoo.data import Aux, BatchPlan, Data, Split, Stream, StreamData, load_data, open_aux
from robustzoo.data.plan import aux_rows, shard
from robustzoo.errors import DatasetNotFoundError, InvalidValueError

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def write_tree(root: Path, per_class: int = 6, test_per_class: int = 2, classes: int = 3, sizes=(40, 96),
               index_colours: bool = False, ext: str = "jpg", seed: int = 0) -> Path:
    """An image-folder tree of variable-size images; with `index_colours` each image is one solid colour
    encoding its index in the training listing (red = i % 256, green = i // 256), saved as PNG."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        i = 0
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for _ in range(n):
                w, h = (int(v) for v in rng.integers(*sizes, size=2))
                if index_colours:
                    pixels = np.zeros((h, w, 3), np.uint8)
                    pixels[..., 0], pixels[..., 1] = i % 256, i // 256
                    Image.fromarray(pixels).save(folder / f"{i:05d}.png")
                else:
                    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i:05d}.{ext}")
                i += 1
    return root


# -- the batch plan -------------------------------------------------------------------------------
def test_rank_shards_of_a_plan_are_disjoint_and_make_the_global_batch():
    plan = BatchPlan(n=103, batch_size=10, seed=1)
    assert len(plan) == 10
    order = plan.order(2)
    seen = []
    for i in range(len(plan)):
        batch = plan.batch(2, i, order)
        parts = [batch[shard(len(batch), r, 3)].tolist() for r in range(3)]
        assert sum(parts, []) == batch.tolist()  # contiguous shards, in order
        seen += batch.tolist()
    assert len(set(seen)) == len(seen) == 100  # each image at most once; 3 dropped with the last partial batch
    assert not torch.equal(plan.order(2), plan.order(3))  # reshuffled every epoch, fixed by the seed
    assert torch.equal(plan.order(2), BatchPlan(n=103, batch_size=10, seed=1).order(2))


def test_the_plan_keeps_the_in_memory_loaders_permutation():
    from robustzoo.data import Loader

    split = Split(torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1), torch.arange(20))
    loader = Loader(split, 5, shuffle=True, drop_last=True, seed=4)
    loader.set_epoch(1)
    plan = BatchPlan(20, 5, seed=4)
    assert [y.tolist() for _, y in loader] == [plan.batch(1, i).tolist() for i in range(4)]


def test_auxiliary_rows_take_the_stated_fraction_of_every_batch_and_every_rank():
    assert aux_rows(10, 7).tolist() == [False, True, True, False, True, True, False, True, True, True]
    aux = Aux("unused.npz", fraction=0.7)
    k = aux.per_batch(512)
    assert k == 358  # DM-Improves-AT: unsup = int(512 * 0.7), sup = 512 - 358 = 154 (core/data/semisup.py:235-236)
    plan = BatchPlan(n=1000, batch_size=512, seed=0, aux_n=5000, aux_per_batch=k)
    assert len(plan) == 1  # an epoch: as many batches as the real images alone fill
    batch = plan.batch(0, 0)
    assert int((batch >= 1000).sum()) == k and len(batch) == 512
    for world in (2, 4):
        counts = [int((batch[shard(512, r, world)] >= 1000).sum()) for r in range(world)]
        assert max(counts) - min(counts) <= 1 and sum(counts) == k
    long = BatchPlan(n=100, batch_size=10, seed=0, aux_n=50, aux_per_batch=7, num_batches=25)
    real = torch.cat([long.batch(0, i)[long.batch(0, i) < 100] for i in range(25)])
    assert len(real) == 75 and len(set(real[:75].tolist())) == 75  # no repeat before the permutation wraps


# -- generated data: memory-mapped npz ------------------------------------------------------------
def write_npz(path: Path, n: int, value: int = 255, size: int = 8, compressed: bool = False,
              classes: int = 10) -> Path:
    images = np.full((n, size, size, 3), value, np.uint8)
    labels = np.arange(n) % classes
    (np.savez_compressed if compressed else np.savez)(path, image=images, label=labels)
    return path


def test_an_uncompressed_npz_is_memory_mapped_where_it_lies(tmp_path):
    path = tmp_path / "aux.npz"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 6, 5, 3), dtype=np.uint8)
    np.savez(path, image=images, label=np.arange(50) % 10)
    aux = open_aux(path, num_classes=10)
    assert isinstance(aux.images, np.memmap) and Path(aux.images.filename) == path.resolve()
    x, y = aux.rows(torch.tensor([7, 3, 7, 49]))
    assert torch.equal(x, torch.from_numpy(images[[7, 3, 7, 49]]).permute(0, 3, 1, 2))
    assert y.tolist() == [7, 3, 7, 9]
    folder = tmp_path / "unpacked"
    folder.mkdir()
    np.save(folder / "image.npy", images)
    np.save(folder / "label.npy", np.arange(50) % 10)
    assert torch.equal(open_aux(folder).rows(torch.tensor([1]))[0], x[:0].new_tensor(images[[1]]).permute(0, 3, 1, 2))


def test_reading_batches_from_a_large_npz_does_not_load_it(tmp_path):
    path = write_npz(tmp_path / "big.npz", 40_000, size=32)  # 123 MB of images
    size_mb = path.stat().st_size / 2 ** 20
    code = ("import resource, sys, torch\n"
            "from robustzoo.data import open_aux\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "aux = open_aux(sys.argv[1], 10)\n"
            "g = torch.Generator().manual_seed(0)\n"
            "for _ in range(20):\n"
            "    x, y = aux.rows(torch.randint(0, len(aux), (256,), generator=g))\n"
            "assert int(x.min()) == 255\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb = float(done.stdout.split()[-1])
    assert grown_mb < size_mb / 4, (grown_mb, size_mb)


@pytest.mark.parametrize("problem", ["compressed", "labels", "keys", "shape"])
def test_unusable_auxiliary_files_are_refused_in_one_line(tmp_path, problem):
    path = tmp_path / "aux.npz"
    if problem == "compressed":
        write_npz(path, 10, compressed=True)
        match = "compressed"
    elif problem == "labels":
        np.savez(path, image=np.zeros((4, 8, 8, 3), np.uint8), label=np.array([0, 1, 2, 12]))
        match = "labels span 0..12"
    elif problem == "keys":
        np.savez(path, pictures=np.zeros((4, 8, 8, 3), np.uint8), label=np.zeros(4))
        match = "expected 'image' and 'label'"
    else:
        np.savez(path, image=np.zeros((4, 8, 8), np.float32), label=np.zeros(4))
        match = "expected uint8"
    with pytest.raises(InvalidValueError, match=match) as e:
        open_aux(path, num_classes=10)
    assert "\n" not in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="not found"):
        open_aux(tmp_path / "missing.npz")


def test_the_in_memory_loader_mixes_the_fraction_into_every_batch(tmp_path):
    from robustzoo.data import Augment, Loader

    aux = open_aux(write_npz(tmp_path / "white.npz", 300, value=255), num_classes=10)
    split = Split(torch.zeros(200, 3, 8, 8, dtype=torch.uint8), torch.zeros(200, dtype=torch.long))
    per_batch = Aux(str(tmp_path / "white.npz"), fraction=0.7).per_batch(40)
    assert per_batch == 28
    for rank, world in ((0, 1), (0, 2), (1, 2)):
        loader = Loader(split, 40, shuffle=True, augment=Augment(2, True), drop_last=True, seed=0, rank=rank,
                        world_size=world, aux=aux, aux_per_batch=per_batch)
        batches = list(loader)
        assert len(batches) == 5
        for x, y in batches:
            white = x.flatten(1).mean(1) > 0.5  # crops and flips keep a solid image solid
            assert int(white.sum()) == per_batch // world
            assert (y[~white] == 0).all() and set(y[white].tolist()) <= set(range(10))
    with pytest.raises(InvalidValueError, match=r"auxiliary images are \(3, 8, 8\)"):
        Loader(Split(torch.zeros(10, 3, 16, 16, dtype=torch.uint8), torch.zeros(10, dtype=torch.long)), 4,
               aux=aux, aux_per_batch=2)


def test_a_recipe_with_generated_data_trains_and_records_it(tmp_path, digits_small):
    data = Data(digits_small.name, digits_small.train, digits_small.val, digits_small.test, digits_small.classes,
                digits_small.mean, digits_small.std, digits_small.augment)
    npz = tmp_path / "gen.npz"
    np.savez(npz, image=np.full((100, 8, 8, 1), 200, np.uint8), label=np.arange(100) % 10)
    recipe = Recipe(name="mix", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", epochs=1,
                    batch_size=64, policy=Fixed(eps=32 / 255, step_size=16 / 255, steps=1), eps=32 / 255,
                    val_steps=1, aux=Aux(str(npz), fraction=0.5, num_batches=3))
    trainer = Trainer(recipe, tmp_path / "run", device="cpu", data=data, progress=False)
    assert len(trainer.loader) == 3
    record = trainer.fit()
    assert record["step"] == 3
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["aux"] == {"path": str(npz), "fraction": 0.5, "num_batches": 3}
    with pytest.raises(InvalidValueError, match="fraction=1.0"):
        Aux(str(npz), fraction=1.0)


# -- the streaming path ---------------------------------------------------------------------------
def test_variable_size_jpegs_train_a_timm_model_at_64px_through_the_streaming_path(tmp_path):
    tree = write_tree(tmp_path / "tree", per_class=8, test_per_class=2)
    data = load_data("imagefolder", tree, val_size=4, seed=0)
    assert isinstance(data, StreamData)  # mixed sizes: chosen automatically
    data = load_data("imagefolder", tree, val_size=4, seed=0, stream=Stream(image_size=64, workers=2))
    assert len(data.train) == 20 and len(data.val_files) == 4 and data.input_size == (3, 64, 64)
    assert data.val.x.shape == (4, 3, 64, 64) and data.test.x.shape == (6, 3, 64, 64)
    recipe = Recipe(name="stream", model="test_vit", model_kwargs={"img_size": 64}, dataset="imagefolder",
                    data_dir=str(tree), val_size=4, stream=Stream(image_size=64, workers=2), epochs=2,
                    batch_size=8, policy=Fixed(eps=8 / 255, step_size=4 / 255, steps=1), val_steps=1)
    trainer = Trainer(recipe, tmp_path / "run", device="cpu", progress=False)
    assert trainer.loader.workers == 2 and len(trainer.loader) == 2
    x, y = next(iter(trainer.loader))
    assert x.shape == (8, 3, 64, 64) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    record = trainer.fit()
    assert record["epoch"] == 2 and record["step"] == 4
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"]["stream"]["image_size"] == 64 and config["dataset"]["input_size"] == [3, 64, 64]
    assert config["recipe"]["stream"]["crop_pct"] == 0.875
    done = subprocess.run([sys.executable, "-m", "robustzoo", "evaluate", str(tmp_path / "run"), "--attack", "clean,pgd10",
                           "--device", "cpu", "--out", str(tmp_path / "eval.json")], capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["n"] == 6  # the test folder, decoded with the run's eval transform at 64 px


def test_cifar_and_same_size_folders_stay_in_memory(tmp_path):
    same = write_tree(tmp_path / "same", sizes=(32, 33))
    assert type(load_data("imagefolder", same, val_size=2)) is Data
    assert isinstance(load_data("imagefolder", same, val_size=2, stream=Stream(image_size=32)), StreamData)
    mixed = write_tree(tmp_path / "mixed")
    with pytest.raises(InvalidValueError, match="all images must have one size"):
        load_data("imagefolder", mixed, val_size=2, stream=False)
    with pytest.raises(InvalidValueError, match="stream=False for 'imagenet'"):
        load_data("imagenet", tmp_path, stream=False)


def test_cifar10_jpeg_tree_loads_in_memory(cifar10_tree):
    data = load_data("cifar10", cifar10_tree, val_size=1000)
    assert type(data) is Data and data.train.x.shape == (49_000, 3, 32, 32)


def _indices(out: Path, world: int) -> list[list[list[int]]]:
    ranks = [json.loads((out / f"indices.rank{r}.json").read_text()) for r in range(world)]
    return ranks


def test_one_and_two_gloo_processes_see_disjoint_shares_that_cover_each_epoch(tmp_path):
    tree = write_tree(tmp_path / "tree", per_class=10, test_per_class=1, index_colours=True)  # 30 images
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    worker = [str(HERE / "stream_worker.py"), str(tree)]
    done = subprocess.run([sys.executable, *worker, str(one), "8", "2"], capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           *worker, str(two), "8", "2"], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    single, = _indices(one, 1)
    rank0, rank1 = _indices(two, 2)
    for epoch in range(2):
        assert len(single[epoch]) == len(rank0[epoch]) == len(rank1[epoch]) == 3  # 30 // 8 batches
        seen = []
        for b, batch in enumerate(single[epoch]):
            assert rank0[epoch][b] + rank1[epoch][b] == batch  # the ranks' shares make the global batch
            assert not set(rank0[epoch][b]) & set(rank1[epoch][b])
            seen += batch
        assert len(set(seen)) == 24 and set(seen) <= set(range(30))  # each once; 6 left with the partial batch
    assert single[0] != single[1]  # reshuffled per epoch


STREAM_RECIPE = '''
import os, signal
from robustzoo import Fixed, PGDAT, Piecewise, Recipe
from robustzoo.data import Stream


class Scripted(Fixed):
    calls = 0

    def strategy(self, model, x, y):
        Scripted.calls += 1
        if str(Scripted.calls) == os.environ.get("AT"):
            os.kill(os.getpid(), signal.SIGTERM)
        return super().strategy(model, x, y)


def recipe():
    return Recipe(name="s", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="imagefolder",
                  data_dir=os.environ["TREE"], val_size=4, stream=Stream(image_size=24, workers=2),
                  policy=Scripted(eps=16 / 255, step_size=8 / 255, steps=1), defense=PGDAT(), eps=16 / 255,
                  epochs=2, batch_size=6, lr=0.05, schedule=Piecewise((0.5,)), val_steps=1)
'''


def test_kill_and_resume_mid_epoch_ends_with_the_uninterrupted_weights(tmp_path):
    tree = write_tree(tmp_path / "tree", per_class=8, test_per_class=1)  # 20 training images: 3 batches
    recipe = tmp_path / "recipe.py"
    recipe.write_text(STREAM_RECIPE)
    env = {**ENV, "TREE": str(tree)}

    def train(out, *extra, **more):
        command = [sys.executable, "-m", "robustzoo", "train", str(recipe), "--out", str(tmp_path / out),
                   "--device", "cpu", "--quiet", *extra]
        return subprocess.run(command, capture_output=True, text=True, timeout=600, env={**env, **more})

    full = train("full")
    assert full.returncode == 0, full.stderr[-3000:]
    stopped = train("run", AT="5")  # epoch 2, batch 2
    assert stopped.returncode != 0 and "stopped at epoch 2, batch 2 of 3" in stopped.stderr
    meta = load_checkpoint(tmp_path / "run" / "last.safetensors")[1]
    assert (meta["epoch"], meta["position"]) == (1, 2)
    resumed = train("run", "--resume", "--workers", "0")  # decoded in the main process this time: same batches
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_checkpoint(tmp_path / "full" / "last.safetensors")[0], load_checkpoint(tmp_path / "run" / "last.safetensors")[0]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_augmentation_does_not_depend_on_the_worker_count(tmp_path):
    tree = write_tree(tmp_path / "tree", per_class=4, test_per_class=1)
    batches = []
    for workers in (0, 2):
        data = load_data("imagefolder", tree, val_size=0, stream=Stream(image_size=16, workers=workers))
        loader = data.train_loader(4, seed=1)
        loader.set_epoch(1)
        batches.append([x for x, _ in loader])
        loader.set_epoch(1, position=2)
        assert torch.equal(next(iter(loader))[0], batches[-1][2])  # a resume at batch 2 yields batch 2
    for a, b in zip(*batches):
        assert torch.equal(a, b)


# -- ImageNet ---------------------------------------------------------------------------------------
def write_imagenet(root: Path, wnids=("n01440764", "n01443537", "n09999999"), per_class: int = 3) -> list[str]:
    ids = []
    for split in ("train", "val"):
        for w in wnids:
            (root / split / w).mkdir(parents=True)
            for i in range(per_class):
                name = f"ILSVRC2012_{split}_{w[-2:]}{i:03d}.JPEG"
                Image.fromarray(np.full((50 + 7 * i, 60, 3), 40 * i, np.uint8)).save(root / split / w / name)
                if split == "val":
                    ids.append(f"{w}/{name}")
    return ids


def test_imagenet_streams_and_its_test_split_is_the_robustbench_id_list_in_order(tmp_path, monkeypatch):
    ids = write_imagenet(tmp_path)
    chosen = [ids[5], ids[0], ids[7]]
    (tmp_path / "imagenet_test_image_ids.txt").write_text("\n".join(chosen) + "\n")
    data = load_data("imagenet", tmp_path, val_size=1, stream=Stream(image_size=32))
    assert isinstance(data, StreamData) and data.mean == (0.485, 0.456, 0.406)
    assert len(data.train) == 8 and data.classes == ["n01440764", "n01443537", "n09999999"]
    assert [Path(p).name for p, _ in data.test_files] == [Path(c).name for c in chosen]
    assert data.test.y.tolist() == [1, 0, 2] and data.test.x.shape == (3, 3, 32, 32)
    (tmp_path / "imagenet_test_image_ids.txt").write_text("n01440764/missing.JPEG\n")
    with pytest.raises(DatasetNotFoundError, match="1 of RobustBench's 1 ImageNet test images are missing"):
        load_data("imagenet", tmp_path, stream=Stream(image_size=32))
    (tmp_path / "imagenet_test_image_ids.txt").unlink()
    from robustzoo.data import folders

    monkeypatch.setattr(folders, "imagenet_ids_file", lambda base: None)  # no list beside it, no robustbench
    data = load_data("imagenet", tmp_path, val_size=1, stream=Stream(image_size=32))
    assert len(data.train) == 8  # training needs no test split
    with pytest.raises(DatasetNotFoundError, match="imagenet_test_image_ids.txt"):
        data.test
    with pytest.raises(DatasetNotFoundError, match="ImageNet not found"):
        load_data("imagenet", tmp_path / "nowhere")


def test_robustbench_id_list_from_the_package_names_5000_val_images():
    from robustzoo.data.folders import imagenet_ids_file

    path = imagenet_ids_file(Path("/nonexistent"))
    if path is None:
        pytest.skip("the robustbench package (extra) is not installed")
    lines = path.read_text().split()
    assert len(lines) == 5000 and len(set(lines)) == 5000 and lines[0].startswith("n") and "/ILSVRC2012_val_" in lines[0]


def test_robustbench_eval_transform_is_resize_256_center_crop_224(tmp_path):
    import torchvision.transforms as T

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    ours = torch.from_numpy(np.asarray(Stream().eval_transform()(image)))
    theirs = (T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()]))(image)  # RobustBench Res256Crop224
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert torch.equal(ours, theirs)


def test_channel_statistics_are_summed_batch_by_batch():
    from robustzoo.data.stream import running_stats

    x = torch.tensor([0, 255, 51, 102], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 2, 1, 1)
    mean, std = running_stats(iter([x[:3], x[3:]]))
    values = torch.tensor([0.0, 1.0, 0.2, 0.4], dtype=torch.float64)
    assert mean == pytest.approx([0.4, 0.4]) and std == pytest.approx([float(values.std())] * 2)
