"""Registries (policies, defenses, datasets, models) and the timm-registered CIFAR architectures."""
import pytest
import timm
import torch

import robustzoo
from robustzoo.errors import InvalidValueError, UnknownNameError
from robustzoo.models import CIFAR_ARCHS, Normalize, build_model, create_model
from robustzoo.policies import AttackPolicy, Fixed, create_policy, list_policies, register_policy


def test_policy_registry_and_error_lists_known_names():
    assert "Fixed" in list_policies()
    assert isinstance(create_policy("Fixed", steps=3), Fixed)
    with pytest.raises(UnknownNameError, match=r"unknown policy 'Fixd'.*known: .*Fixed.*Did you mean 'Fixed'"):
        create_policy("Fixd")


def test_register_a_new_policy_is_one_decorator():
    @register_policy
    class Half(AttackPolicy):
        def strategy(self, model, x, y):
            return robustzoo.Strategy.uniform(len(x), 4 / 255, 1 / 255, 2)

    assert "Half" in list_policies()
    assert create_policy("Half").strategy(None, torch.zeros(3, 1), None).steps.tolist() == [2, 2, 2]


def test_defense_and_dataset_registries():
    assert "PGDAT" in robustzoo.list_defenses()
    with pytest.raises(UnknownNameError, match="unknown defense 'TRADE'"):
        robustzoo.create_defense("TRADE")
    with pytest.raises(UnknownNameError, match="unknown dataset 'cifar11'.*cifar10"):
        robustzoo.load_data("cifar11")


@pytest.mark.parametrize("kwargs", [{"eps": 0}, {"eps": -0.1}, {"eps": 1.5}, {"step_size": 0}, {"steps": -1},
                                    {"steps": 2.5}])
def test_fixed_rejects_bad_budgets(kwargs):
    with pytest.raises(InvalidValueError, match=next(iter(kwargs))):
        Fixed(**kwargs)


def test_fixed_default_is_pgd10():
    s = Fixed().strategy(None, torch.zeros(5, 3, 4, 4), None)
    assert torch.allclose(s.eps, torch.full((5,), 8 / 255))
    assert torch.allclose(s.step_size, torch.full((5,), 2 / 255))
    assert s.steps.tolist() == [10] * 5


@pytest.mark.parametrize("name", [n for n in CIFAR_ARCHS if n not in ("cifar_wrn_34_20", "cifar_wrn_70_16")])
def test_cifar_archs_build_through_timm(name):
    net = timm.create_model(name, num_classes=7)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    assert name in timm.list_models("cifar_*")


@pytest.mark.parametrize("name,params", [("cifar_wrn_34_10", 46.16e6), ("cifar_wrn_34_20", 184.5e6),
                                         ("cifar_wrn_70_16", 266.8e6), ("cifar_wrn_28_10", 36.48e6),
                                         ("cifar_preact_resnet18", 11.17e6)])
def test_architecture_sizes_match_the_papers(name, params):
    with torch.device("meta"):
        net = timm.create_model(name, num_classes=10)
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(params, rel=0.01)


def test_small_cnn_head_options_add_parameters_and_keep_the_default_layout():
    default = timm.create_model("cifar_small_cnn", width=16)
    wide = timm.create_model("cifar_small_cnn", width=16, pool=4, hidden=256)
    # default: 3 convs + BN, fc 64 -> 10; wide adds Linear(64*4*4, 256) and fc 256 -> 10
    head = 64 * 16 * 256 + 256 + 256 * 10 + 10
    assert sum(p.numel() for p in wide.parameters()) == sum(p.numel() for p in default.parameters()) - (64 * 10 + 10) + head
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    layout = {f"features.{i}.weight" for i in (0, 3, 6)} | {f"features.{i}.{k}" for i in (1, 4, 7) for k in bn}
    assert set(default.state_dict()) == layout | {"fc.weight", "fc.bias"}  # checkpoints of the default still load
    assert wide(torch.rand(2, 3, 32, 32)).shape == (2, 10) and wide.num_features == 256
    assert timm.create_model("cifar_small_cnn", width=4, pool=2, num_classes=0)(torch.rand(1, 3, 32, 32)).shape == (1, 64)
    with pytest.raises(InvalidValueError, match="pool must be >= 1.*pool=0"):
        timm.create_model("cifar_small_cnn", pool=0)


def test_any_timm_model_with_normalization_inside():
    for name, kwargs in [("resnet18", {}), ("vit_tiny_patch16_224", {"img_size": 32})]:
        model = create_model(name, num_classes=10, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), **kwargs)
        assert isinstance(model, Normalize)
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(UnknownNameError, match="unknown model 'resnet181'.*Did you mean 'resnet18'"):
        create_model("resnet181", num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_normalize_applies_mean_std_and_rebuilds_from_config():
    model = create_model("cifar_small_cnn", num_classes=3, mean=(0.5,), std=(0.25,), in_chans=1, width=4)
    x = torch.rand(2, 1, 8, 8)
    model.eval()
    torch.testing.assert_close(model(x), model.model((x - 0.5) / 0.25))
    again = build_model(model.config)
    again.load_state_dict(model.state_dict())
    torch.testing.assert_close(again.eval()(x), model(x))
