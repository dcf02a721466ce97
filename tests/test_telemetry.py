"""Strategy telemetry (histograms, shares, means per epoch) and `robustzoo plot`."""
import json

import torch
from click.testing import CliRunner

from robustzoo.cli import main
from robustzoo.policies import Fixed
from robustzoo.strategy import Strategy


def test_histograms_shares_and_means_then_reset():
    policy = Fixed()
    policy.record(Strategy(torch.tensor([8, 8, 12]) / 255, torch.tensor([2, 2, 3]) / 255, torch.tensor([10, 10, 3]),
                           {"adjusted": torch.tensor([True, False, False])}))
    policy.record(Strategy(torch.tensor([4.0]) / 255, torch.tensor([1.0]) / 255, torch.tensor([0]),
                           {"adjusted": torch.tensor([True])}))
    stats = policy.epoch_stats()
    assert stats["n"] == 4
    assert stats["hist"]["eps"] == {"4": 1, "8": 2, "12": 1}
    assert stats["hist"]["steps"] == {"0": 1, "3": 1, "10": 2}
    assert stats["hist"]["step_size"] == {"1": 1, "2": 2, "3": 1}
    assert abs(stats["mean"]["eps"] - 32 / 255 / 4) < 1e-6 and stats["mean"]["adjusted"] == 0.5
    assert stats["mean"]["steps"] == 23 / 4
    assert policy.epoch_stats()["n"] == 0  # reset for the next epoch


def test_plot_command_draws_the_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lines = []
    for epoch, hist in ((1, {"8": 6, "12": 2}), (2, {"8": 2, "12": 6})):
        lines.append(json.dumps({"epoch": epoch, "train_loss": 2.0 / epoch, "train_robust_acc": 0.3 * epoch,
                                 "val_clean_acc": 0.5, "val_robust_acc": 0.2 * epoch,
                                 "strategy": {"n": 8, "hist": {"eps": hist, "steps": {"10": 8}}, "mean": {}}}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["plot", str(run)])
    assert result.exit_code == 0, result.output
    for name in ("curves.png", "strategy.png"):
        data = (run / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    result = CliRunner().invoke(main, ["plot", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "metrics.jsonl not found" in result.output
