"""Every policy works with every defense, with no special case in the trainer: 3 training steps each."""
import json

import pytest
import torch

from robustzoo import AWP, PGDAT, TRADES, Recipe, Trainer
from robustzoo.data import Split
from robustzoo.policies import create_policy, list_policies

# CPU-sized settings per policy (digits, eps 32/255)
POLICY_KWARGS = {
    "Fixed": dict(eps=32 / 255, step_size=8 / 255, steps=2),
    "LearnedLAS": dict(eps_options=(16 / 255, 32 / 255), step_options=(8 / 255,), steps_options=(1, 2),
                       beta_options=(3.0, 6.0), backbone="cifar_small_cnn", backbone_kwargs={"width": 4},
                       hidden=8, update_every=2),
    "CyclicEntropyECAS": dict(eps_space=(16 / 255, 24 / 255, 32 / 255, 40 / 255), steps=2),
    "LossConstrainedSAAT": dict(rho=1.0, eps_max=32 / 255, tau=16 / 255, step_size=8 / 255, steps_per_budget=1),
}
DEFENSES = {"PGDAT": PGDAT, "TRADES": TRADES, "AWP(PGDAT)": lambda: AWP(PGDAT()),
            "AWP(TRADES)": lambda: AWP(TRADES(), gamma=0.005)}


def test_every_registered_policy_is_covered():
    assert set(POLICY_KWARGS) <= set(list_policies())


PRECISIONS = {"fp32": dict(amp="none"), "bf16+channels_last": dict(amp="bf16", channels_last=True)}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("defense", DEFENSES, ids=list(DEFENSES))
@pytest.mark.parametrize("policy", POLICY_KWARGS, ids=list(POLICY_KWARGS))
def test_policy_times_defense_trains_three_steps(tmp_path, digits_small, policy, defense, precision):
    data = digits_small
    data.train = Split(data.train.x[:96], data.train.y[:96])
    recipe = Recipe(name="p", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="digits", val_size=64,
                    policy=create_policy(policy, **POLICY_KWARGS[policy]), defense=DEFENSES[defense](),
                    eps=32 / 255, epochs=1, batch_size=32, lr=0.05, val_steps=1)
    trainer = Trainer(recipe, tmp_path, data=data, progress=False, device="cpu", **PRECISIONS[precision])
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.fit()
    assert trainer.step == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert record["strategy"]["n"] == 96 and record["strategy"]["hist"]["eps"]
    assert torch.isfinite(torch.tensor(record["train_loss"]))
