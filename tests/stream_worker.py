"""Run by tests/test_streaming.py, alone or under torchrun: which images each rank's streaming batches hold.

The tree's images are solid colours that encode their file's index (red = i % 256, green = i // 256), so
crops, flips and resizes keep the index readable. Writes `indices.rank{R}.json`: per epoch, the list of
indices of every batch this rank saw. Usage: stream_worker.py TREE OUT_DIR BATCH_SIZE EPOCHS
"""
import json
import sys
from pathlib import Path

import torch

from robustzoo import distributed
from robustzoo.data import Stream, load_data


def main(tree: Path, out: Path, batch_size: int, epochs: int) -> None:
    dist, device = distributed.setup(torch.device("cpu"))
    data = load_data("imagefolder", tree, val_size=0, stream=Stream(image_size=8, workers=1))
    loader = data.train_loader(batch_size, device=device, seed=3, rank=dist.rank, world_size=dist.world_size)
    seen = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        batches = []
        for x, _ in loader:
            pixels = (x[:, :, 4, 4] * 255).round().long()
            batches.append((pixels[:, 0] + 256 * pixels[:, 1]).tolist())
        seen.append(batches)
    (out / f"indices.rank{dist.rank}.json").write_text(json.dumps(seen))
    distributed.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
