"""`LearnedLAS` (LAS-AT, Jia et al. 2022): a strategy network samples per-sample attack parameters and
learns by REINFORCE from the reward L0 = L1 + α·L2 + β·L3 (Eq. 7, 11-13 of the paper)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .. import distributed
from ..attacks.pgd import cross_entropy, pgd
from ..errors import InvalidValueError
from ..strategy import Strategy, check_eps
from .base import AttackPolicy, Feedback, register_policy

LAS_EPS = tuple(e / 255 for e in range(3, 16))      # paper, LAS-PGD-AT: 3..15
LAS_STEP = tuple(s / 255 for s in range(1, 7))      # 1..6
LAS_STEPS = tuple(range(3, 16))                     # 3..15


class StrategyNet(nn.Module):
    """A backbone (any robustzoo/timm model, normalization inside) and one categorical head per parameter."""

    def __init__(self, backbone: nn.Module, hidden: int, sizes: dict[str, int]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in sizes.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = F.relu(self.backbone(x))
        return {name: head(features) for name, head in self.heads.items()}


class _LookAhead(nn.Module):
    """The target model evaluated at other parameters ŵ through `torch.func.functional_call` (no copy)."""

    def __init__(self, model: nn.Module, params: dict[str, Tensor]):
        super().__init__()
        self.__dict__["target"] = model  # not registered: no second copy of the parameters
        self.params = params

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.target, self.params, (x,))


@register_policy
class LearnedLAS(AttackPolicy):
    """LAS-AT's learnable attack strategy: eps, step size and steps (and TRADES β) chosen per sample.

    Defaults are the paper's (LAS-PGD-AT ranges, α = 2, β = 4, strategy SGD lr 1e-3, k = 40, no
    baseline). The look-ahead ŵ = w − λ∇L1 uses the gradient the training step has just computed (the
    trainer calls `update` between backward and the optimizer step), so it costs no extra pass.
    """

    def __init__(self, eps_options: Sequence[float] = LAS_EPS, step_options: Sequence[float] = LAS_STEP,
                 steps_options: Sequence[int] = LAS_STEPS, beta_options: Sequence[float] | None = None, *,
                 backbone: str = "cifar_resnet18", backbone_kwargs: dict[str, Any] | None = None,
                 hidden: int = 128, alpha: float = 2.0, beta: float = 4.0, lr: float = 1e-3,
                 update_every: int = 40, baseline: bool = False, eval_eps: float = 8 / 255,
                 eval_step_size: float = 2 / 255, eval_steps: int = 10):
        if not eps_options or not step_options or not steps_options:
            raise InvalidValueError("eps_options, step_options and steps_options must each hold at least one value")
        self.eps_options = [check_eps(e, "eps_options value") for e in eps_options]
        self.step_options = [check_eps(s, "step_options value") for s in step_options]
        if any(int(k) != k or k < 0 for k in steps_options):
            raise InvalidValueError(f"steps_options={list(steps_options)}; expected non-negative integers")
        self.steps_options = [int(k) for k in steps_options]
        self.beta_options = None if beta_options is None else [float(b) for b in beta_options]
        if update_every < 1:
            raise InvalidValueError(f"update_every={update_every!r}; expected a positive number of steps")
        self.backbone, self.backbone_kwargs, self.hidden = backbone, dict(backbone_kwargs or {}), hidden
        self.alpha, self.beta, self.lr = float(alpha), float(beta), float(lr)
        self.update_every, self.baseline = int(update_every), bool(baseline)
        self.eval_eps, self.eval_step_size, self.eval_steps = check_eps(eval_eps), eval_step_size, eval_steps
        self.net: StrategyNet | None = None
        self.counter = 0
        self._log_prob: Tensor | None = None

    # -- the strategy network ---------------------------------------------------------------------
    def setup(self, model: nn.Module) -> None:
        """Build the strategy network for the target's input (channels, normalization) on its device."""
        from ..models import create_model

        config = getattr(model, "config", {})
        sizes = {"eps": len(self.eps_options), "step_size": len(self.step_options),
                 "steps": len(self.steps_options)}
        if self.beta_options:
            sizes["beta"] = len(self.beta_options)
        backbone = create_model(self.backbone, num_classes=self.hidden, mean=config.get("mean", (0.5,) * 3),
                                std=config.get("std", (0.5,) * 3), in_chans=config.get("in_chans", 3),
                                **self.backbone_kwargs)
        device = next(model.parameters()).device
        self.net = StrategyNet(backbone, self.hidden, sizes).to(device)
        distributed.broadcast_module(self.net)  # data parallel: one strategy network, identical on every rank
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)
        self.options = {"eps": torch.tensor(self.eps_options, device=device),
                        "step_size": torch.tensor(self.step_options, device=device),
                        "steps": torch.tensor(self.steps_options, device=device),
                        **({"beta": torch.tensor(self.beta_options, device=device)} if self.beta_options else {})}

    def distributions(self, x: Tensor) -> dict[str, torch.distributions.Categorical]:
        """p(a | x; θ): one categorical distribution per attack parameter."""
        # validate_args=False: torch.distributions' argument checks read a CUDA tensor on the host (a sync per
        # head and per log_prob); the logits come from our own heads and are finite by construction
        return {name: torch.distributions.Categorical(logits=logits.float(), validate_args=False)
                for name, logits in self.net(x).items()}

    def strategy(self, model: nn.Module, x: Tensor, y: Tensor) -> Strategy:
        if self.net is None:
            self.setup(model)
        learn = self.counter % self.update_every == 0  # keep the graph only on steps that update θ
        with torch.set_grad_enabled(learn):
            dists = self.distributions(x)
            actions = {name: d.sample() for name, d in dists.items()}
            self._log_prob = sum(d.log_prob(actions[n]) for n, d in dists.items()) if learn else None
        values = {name: self.options[name][a] for name, a in actions.items()}
        extras = {"beta": values["beta"]} if "beta" in values else {}
        return Strategy(values["eps"], values["step_size"], values["steps"], extras)

    # -- learning ---------------------------------------------------------------------------------
    def reward(self, feedback: Feedback) -> Tensor:
        """Per-sample L0 = L1 + α·L2 + β·L3 (Eq. 5-7), with ŵ = w − λ∇L1 from the step's own gradient."""
        model = feedback.model
        params = {name: (p - feedback.lr * p.grad if p.grad is not None else p).detach()
                  for name, p in model.named_parameters()}
        look_ahead = _LookAhead(model, {**params, **dict(model.named_buffers())})
        was_training = model.training
        model.eval()
        try:
            n = len(feedback.x)
            a_hat = Strategy.uniform(n, self.eval_eps, self.eval_step_size, self.eval_steps, feedback.x.device)
            x_eval = pgd(look_ahead, feedback.x, feedback.y, a_hat)  # â: PGD-10, 8/255, 2/255 on ŵ
            with torch.no_grad():
                l2 = -cross_entropy(look_ahead(x_eval), feedback.y)
                l3 = -cross_entropy(look_ahead(feedback.x), feedback.y)
        finally:
            model.train(was_training)
        return feedback.loss.float() + self.alpha * l2 + self.beta * l3

    def update(self, feedback: Feedback) -> None:
        """Every `update_every` target steps: one REINFORCE ascent step on J(θ) (Eq. 12-13)."""
        self.counter += 1
        if self._log_prob is None:
            return
        reward = self.reward(feedback).detach()
        if self.baseline:  # the mean reward of the global batch
            total = distributed.all_reduce_sum_(torch.stack([reward.sum(), torch.tensor(float(len(reward)),
                                                                                          device=reward.device)]))
            reward = reward - total[0] / total[1]
        self.optimizer.zero_grad(set_to_none=True)
        (-(reward * self._log_prob).mean()).backward()  # minimizing −J is ascent on J
        # data parallel: the gradient of every rank's rewards, and the same BatchNorm statistics everywhere
        distributed.all_reduce_mean_([p.grad for p in self.net.parameters() if p.grad is not None]
                                     + [b for b in self.net.buffers() if b.is_floating_point()])
        self.optimizer.step()
        self._log_prob = None

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            return {"counter": self.counter}
        return {"counter": self.counter, "net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter = int(state.get("counter", 0))
        if "net" in state:
            if self.net is None:
                raise InvalidValueError("LearnedLAS.load_state_dict: call setup(model) first")
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])

    def config(self) -> dict[str, Any]:
        return {"eps_options": self.eps_options, "step_options": self.step_options,
                "steps_options": self.steps_options, "beta_options": self.beta_options,
                "backbone": self.backbone, "backbone_kwargs": self.backbone_kwargs, "hidden": self.hidden,
                "alpha": self.alpha, "beta": self.beta, "lr": self.lr, "update_every": self.update_every,
                "baseline": self.baseline, "eval_eps": self.eval_eps, "eval_step_size": self.eval_step_size,
                "eval_steps": self.eval_steps}
