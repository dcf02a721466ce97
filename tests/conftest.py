import os
from pathlib import Path

# cuBLAS is deterministic only with a fixed workspace, set before CUDA starts (tests/test_cuda.py's resume test)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import pytest
import torch
from torch import nn

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class TinyNet(nn.Module):
    """A float64 conv net without BatchNorm: samples are independent, so batch results are exact."""

    def __init__(self, in_chans: int = 3, num_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 8 * 8, num_classes)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return TinyNet().double().eval()


@pytest.fixture
def digits_small():
    """The digits data cut to 256 training / 64 val / 64 test images (fast trainer tests)."""
    from robustzoo.data import Split, load_data

    d = load_data("digits", val_size=64)
    d.train = Split(d.train.x[:256], d.train.y[:256])
    d.test = Split(d.test.x[:64], d.test.y[:64])
    return d


@pytest.fixture(scope="session")
def cifar10_tree(tmp_path_factory):
    """The shared real CIFAR-10 (JPEG image-folder tree), unpacked once per session."""
    import tarfile

    archive = SHARED_DATA / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 not available: {archive} is absent")
    root = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root


@pytest.fixture(scope="session")
def digits_linear():
    """A linear classifier on the digits (trained here in a second): accurate, and not robust at all."""
    from robustzoo.data import load_data

    torch.manual_seed(0)
    data = load_data("digits", val_size=0)
    x, y = data.train.x.float() / 255, data.train.y
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), data
