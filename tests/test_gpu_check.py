"""benchmarks/gpu_check.py: its --dry-run runs every stage on the CPU; its target arithmetic on a known case."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _jpeg_tree(root: Path, train: int = 24, test: int = 4) -> Path:
    """A CIFAR-shaped JPEG image-folder tree of 10 classes (the format of the shared CIFAR-10 archive)."""
    from torchvision.io import encode_jpeg, write_file

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("test", test)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                image = (torch.rand(3, 32, 32, generator=g) * 80 + c * 17).clamp(0, 255).to(torch.uint8)
                write_file(str(folder / f"{i:04d}.jpg"), encode_jpeg(image))
    return root


@pytest.mark.slow
def test_dry_run_goes_through_every_stage_and_writes_the_report(tmp_path):
    data, out = _jpeg_tree(tmp_path / "cifar"), tmp_path / "out"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--data", str(data), "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== throughput" in proc.stdout and "written:" in proc.stdout  # it says where it is
    result = json.loads((out / "gpu_check_cpu-dry-run.json").read_text())
    assert not result.get("crashes")
    assert result["tests"]["passed"] == 1 and result["tests"]["failed"] == 0  # the loader test, on the CPU
    rows = result["throughput"]
    assert len(rows) == 4 and not any("error" in r for r in rows)
    assert {r["compile"] for r in rows} == {False, True}
    assert all(r["images_per_s"] > 0 and r["floor_ratio"] > 0 and r["cifar10_epoch_s"] > 0 for r in rows)
    assert result["training"]["epochs"] == 1 and len(result["training"]["metrics"]) == 1
    evaluation = result["evaluation"]
    assert set(evaluation["fp32"]["accuracy"]) >= {"clean", "pgd20"} and evaluation["n"] == 30
    assert {"aa_fp32", "aa_bf16", "aa_bf16_vs_fp32"} <= set(evaluation)
    assert evaluation["aa_fp32"]["accuracy"] <= evaluation["fp32"]["accuracy"]["clean"]
    report = (out / "gpu_check_cpu-dry-run.md").read_text()
    for heading in ("## Targets", "## CUDA tests", "## Throughput", "## Short training", "## Evaluation"):
        assert heading in report
    assert (out / "gpu_tests.xml").is_file() and (out / "gpu_check_train_metrics.jsonl").is_file()


def test_dry_run_refuses_a_folder_without_the_data(tmp_path):
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--data", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no train/ folder" in proc.stderr


def test_targets_are_the_ratios_of_the_measured_rows():
    from gpu_check import targets

    def row(model, policy, defense, step_s, floor_ratio=1.1, epoch=15.0, compiled=False):
        return {"model": model, "batch_size": 128, "compile": compiled, "policy": policy, "defense": defense,
                "step_s": step_s, "floor_ratio": floor_ratio, "cifar10_epoch_s": epoch}

    prn = "cifar_preact_resnet18"
    rows = [row(prn, "Fixed", "PGDAT", 0.040, 1.10, 16.0), row(prn, "Fixed", "PGDAT", 0.030, 1.05, 12.0, True),
            row(prn, "LearnedLAS(k=1)", "PGDAT", 0.110), row(prn, "Fixed", "AWP(PGDAT)", 0.048),
            row(prn, "Fixed", "TRADES", 0.050), row(prn, "Fixed", "AWP(TRADES)", 0.055)]
    got = {what: (measured, met) for what, _, measured, met in targets({"throughput": rows})}
    assert got["PreActResNet-18 PGD-10 AT epoch (s), best of compile on/off"] == ("12.0", "yes")
    assert got["Fixed time / floor, PreActResNet-18"] == ("1.100", "yes")
    assert got["LAS k=1 / Fixed (step time), PreActResNet-18"] == ("2.75", "no")  # 0.110 / 0.040
    assert got["AWP(PGDAT) / PGDAT (step time), PreActResNet-18"] == ("1.200", "no")  # 0.048 / 0.040
    assert got["AWP(TRADES) / TRADES (step time), PreActResNet-18"] == ("1.100", "yes")  # 0.055 / 0.050
    assert got["WRN-34-10 PGD-10 AT epoch (s), best of compile on/off"] == ("not measured", "—")
