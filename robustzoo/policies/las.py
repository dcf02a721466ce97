"""`LearnedLAS` (LAS-AT, Jia et al. 2022): a strategy network samples per-sample attack parameters and
learns by REINFORCE from a reward built on the attack's loss and a look-ahead model's robust and clean scores.

Read against `jiaxiaojunQAQ/LAS-AT` at ee756b7 (the code behind the paper's tables): `LAS_PGD_AT/
LAS_AT_train_cifar10.py` (PGD), `LAS_Trades/LAS_Trades_train_cifar10.py` (TR), `LAS_AWP/LAS_AWP_train_
{cifar10,cifar100,TinyImageNet}.py` (A10, A100, ATI), `*/StrategyNet.py`. The defaults are the code's LAS-PGD
settings; the recipes set each script's own.

| | paper (Eq. 5-13) | code | here |
|---|---|---|---|
| reward | per sample L1 + α·L2 + β·L3, L2/L3 = −CE of ŵ | one scalar per batch: clamp(CE(x_adv), 0, 10) + 4·robust acc(ŵ) + 2·clean acc(ŵ) (PGD:365-411; A10 1/1, A100 4/2, ATI 8/2, TR 8/4 with the TRADES loss clamped to 20: TR:391-432) | `reward="code"` (default) or `"paper"`; weights `alpha` (robust), `beta` (clean), `r1_clip` |
| baseline | none | none (PGD:616 commented out) | `baseline=False` |
| θ update | every k = 40 steps (paper text) | k = 20 (PGD:52), 1 (TR:55, A10), 10 (A100:173, ATI:176); at steps k, 2k, ... (PGD:595-596) | `update_every=20`, same steps |
| θ optimizer | SGD 1e-3 | SGD lr 1e-4, no momentum (PGD:57, A10, ATI) or momentum 0.9 + wd 5e-4 (TR:60, A100); grad-norm clip 1.0 (PGD:632); LR follows the target's schedule in TR/A10/A100/ATI (A10:700-707) | `lr=1e-4`, `momentum=0`, `weight_decay=0`, `grad_clip=1.0`, `follow_target_lr=False` |
| strategy net | ResNet-18 + heads | ResNet-18, pooled 512-d features straight into one linear head per parameter, raw [0,1] input (SN:73-160) | `hidden=None`, `normalize_input=False` (ATI's heads see 2×2×512 features; here globally pooled) |
| options | eps 3-15, step 1-6, iters 3-15 | README: eps 3-15, iters 3-14, step 1-5 (LAS-PGD) | those |
| look-ahead ŵ | one SGD step on L1 | a deep copy stepped once by SGD on label-smoothed CE of the same x_adv (PGD:379-389) | ŵ = w − lr·(∇L1 + wd·w) from the step's own gradient: no copy, no extra pass (L1 is the training loss: smoothing as the recipe's PGDAT) |
| L2 attack | PGD-10 | PGD-10, 2 restarts, copy in train mode (PGD:240-266) | PGD-10 on ŵ in eval mode; `eval_restarts` (1: keeps LAS k=1 within 2.5× of Fixed; 2: the code's) |

Left different (said here so a reproduction knows): the code samples the training strategy a second time,
with the strategy net in eval mode, after each update (PGD:641-650, A10:803-813); here the sampled strategy
trains the target and teaches θ (one attack per step). The code's R1 is a separate eval-mode forward of plain
CE (`r1="eval-ce"`, default; `"step-loss"` reuses the training loss, as TR's TRADES R1 does). LAS-AWP clips the
training perturbation to 8/255 (A10:815): `Recipe.final_clip`; R1 then reads the attack's own x_adv (before
the clip), as the code's, while ŵ steps from the gradient at the clipped one. The code's R2 attack runs the
copy in train mode with 2 restarts, and ATI's heads read 2×2×512 features: both noted, not copied.
"""
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

LAS_EPS = tuple(e / 255 for e in range(3, 16))      # LAS-PGD (code README): 3..15
LAS_STEP = tuple(s / 255 for s in range(1, 6))      # 1..5
LAS_STEPS = tuple(range(3, 15))                     # 3..14
REWARDS = ("code", "paper")
R1_FORMS = ("eval-ce", "step-loss")


class StrategyNet(nn.Module):
    """A backbone (any robustzoo/timm model) and one categorical head per attack parameter.

    `hidden=None`: the heads read the backbone's pooled features (the code); an int puts a ReLU layer of that
    width between them (this library's first form)."""

    def __init__(self, backbone: nn.Module, features: int, sizes: dict[str, int], hidden: bool):
        super().__init__()
        self.backbone, self.hidden = backbone, hidden
        self.heads = nn.ModuleDict({name: nn.Linear(features, n) for name, n in sizes.items()})

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        features = self.backbone(x)
        if self.hidden:
            features = F.relu(features)
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

    Defaults are the authors' LAS-PGD code (module docstring: paper vs code vs here); `reward="paper"`,
    `alpha=2, beta=4`, `update_every=40`, `lr=1e-3, momentum=0.9, weight_decay=5e-4, grad_clip=None`,
    `hidden=128, normalize_input=True` give the paper's form (this library's first one). The look-ahead uses
    the gradient the training step has just computed (the trainer calls `update` between backward and the
    optimizer step), so it costs no extra pass.
    """

    def __init__(self, eps_options: Sequence[float] = LAS_EPS, step_options: Sequence[float] = LAS_STEP,
                 steps_options: Sequence[int] = LAS_STEPS, beta_options: Sequence[float] | None = None, *,
                 backbone: str = "cifar_resnet18", backbone_kwargs: dict[str, Any] | None = None,
                 hidden: int | None = None, normalize_input: bool = False, reward: str = "code",
                 alpha: float = 4.0, beta: float = 2.0, r1: str = "eval-ce", r1_clip: float = 10.0,
                 lr: float = 1e-4, momentum: float = 0.0, weight_decay: float = 0.0, grad_clip: float | None = 1.0,
                 follow_target_lr: bool = False, update_every: int = 20, baseline: bool = False,
                 eval_eps: float = 8 / 255, eval_step_size: float = 2 / 255, eval_steps: int = 10,
                 eval_restarts: int = 1):
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
        if reward not in REWARDS:
            raise InvalidValueError(f"reward={reward!r}; expected one of {', '.join(REWARDS)}")
        if r1 not in R1_FORMS:
            raise InvalidValueError(f"r1={r1!r}; expected one of {', '.join(R1_FORMS)}")
        if grad_clip is not None and not grad_clip > 0:
            raise InvalidValueError(f"grad_clip={grad_clip!r}; expected a positive gradient norm or None")
        if int(eval_restarts) != eval_restarts or eval_restarts < 1:
            raise InvalidValueError(f"eval_restarts={eval_restarts!r}; expected a positive integer")
        self.backbone, self.backbone_kwargs, self.hidden = backbone, dict(backbone_kwargs or {}), hidden
        self.normalize_input, self.reward_form, self.r1, self.r1_clip = bool(normalize_input), reward, r1, float(r1_clip)
        self.alpha, self.beta, self.lr = float(alpha), float(beta), float(lr)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.grad_clip = None if grad_clip is None else float(grad_clip)
        self.follow_target_lr = bool(follow_target_lr)
        self.update_every, self.baseline = int(update_every), bool(baseline)
        self.eval_eps, self.eval_step_size, self.eval_steps = check_eps(eval_eps), eval_step_size, eval_steps
        self.eval_restarts = int(eval_restarts)
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
        channels = config.get("in_chans", 3)
        mean, std = (config.get("mean", (0.5,) * 3), config.get("std", (0.5,) * 3)) if self.normalize_input \
            else ((0.0,) * channels, (1.0,) * channels)  # the code feeds raw [0,1] pixels
        backbone = create_model(self.backbone, num_classes=self.hidden or 0, mean=mean, std=std, in_chans=channels,
                                **self.backbone_kwargs)
        features = self.hidden or backbone.model.num_features
        device = next(model.parameters()).device
        self.net = StrategyNet(backbone, features, sizes, hidden=self.hidden is not None).to(device)
        distributed.broadcast_module(self.net)  # data parallel: one strategy network, identical on every rank
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=self.lr, momentum=self.momentum,
                                         weight_decay=self.weight_decay)
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
        learn = (self.counter + 1) % self.update_every == 0  # steps k, 2k, ... as the code; the graph only then
        with torch.set_grad_enabled(learn):
            dists = self.distributions(x)
            actions = {name: d.sample() for name, d in dists.items()}
            self._log_prob = sum(d.log_prob(actions[n]) for n, d in dists.items()) if learn else None
        values = {name: self.options[name][a] for name, a in actions.items()}
        extras = {"beta": values["beta"]} if "beta" in values else {}
        return Strategy(values["eps"], values["step_size"], values["steps"], extras)

    # -- learning ---------------------------------------------------------------------------------
    def reward(self, feedback: Feedback) -> Tensor:
        """The reward of each sample of the batch (`reward="code"`: one batch scalar, repeated).

        ŵ = w − lr·(∇L1 + wd·w) is the look-ahead from the step's own gradient (a functional call, no copy);
        its robust score comes from PGD-`eval_steps` at `eval_eps` (the worst of `eval_restarts` starts).
        """
        model, x, y = feedback.model, feedback.x, feedback.y
        wd = feedback.weight_decay
        params = {name: (p - feedback.lr * (p.grad + wd * p) if p.grad is not None else p).detach()
                  for name, p in model.named_parameters()}
        look_ahead = _LookAhead(model, {**params, **dict(model.named_buffers())})
        was_training = model.training
        model.eval()
        try:
            logits_adv = self._worst_logits(look_ahead, x, y)
            with torch.no_grad():
                logits_clean = look_ahead(x)
                if self.reward_form == "paper":  # Eq. 5-7: per sample, −CE of ŵ
                    return (feedback.loss.float() - self.alpha * cross_entropy(logits_adv, y)
                            - self.beta * cross_entropy(logits_clean, y))
                r1 = (cross_entropy(model(feedback.x_adv), y) if self.r1 == "eval-ce" else feedback.loss.float())
                r1 = r1.mean().clamp(0.0, self.r1_clip)
                robust = (logits_adv.argmax(1) == y).float().mean()
                clean = (logits_clean.argmax(1) == y).float().mean()
        finally:
            model.train(was_training)
        return (r1 + self.alpha * robust + self.beta * clean).expand(len(y))

    def _worst_logits(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Logits at the PGD point of highest loss over `eval_restarts` random starts, per sample."""
        strategy = Strategy.uniform(len(x), self.eval_eps, self.eval_step_size, self.eval_steps, x.device)
        best_logits, best_loss = None, None
        for _ in range(self.eval_restarts):
            x_eval = pgd(model, x, y, strategy)  # â: PGD-10, 8/255, 2/255 on ŵ
            with torch.no_grad():
                logits = model(x_eval)
                loss = cross_entropy(logits, y)
            if best_logits is None:
                best_logits, best_loss = logits, loss
            else:
                better = loss > best_loss
                best_logits = torch.where(better[:, None], logits, best_logits)
                best_loss = torch.maximum(loss, best_loss)
        return best_logits

    def update(self, feedback: Feedback) -> None:
        """At steps k, 2k, ...: one REINFORCE ascent step on J(θ) = E[reward] (Eq. 12-13), gradient clipped."""
        self.counter += 1
        if self._log_prob is None:
            return
        reward = self.reward(feedback).detach()
        if self.baseline:  # the mean reward of the global batch
            total = distributed.all_reduce_sum_(torch.stack([reward.sum(), torch.tensor(float(len(reward)),
                                                                                          device=reward.device)]))
            reward = reward - total[0] / total[1]
        if self.follow_target_lr and feedback.base_lr:  # the target's schedule, as LAS-TR and LAS-AWP do
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr * feedback.lr / feedback.base_lr
        self.optimizer.zero_grad(set_to_none=True)
        (-(reward * self._log_prob).mean()).backward()  # minimizing −J is ascent on J
        # data parallel: the gradient of every rank's rewards, and the same BatchNorm statistics everywhere
        distributed.all_reduce_mean_([p.grad for p in self.net.parameters() if p.grad is not None]
                                     + [b for b in self.net.buffers() if b.is_floating_point()])
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)  # no host read
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
                "normalize_input": self.normalize_input, "reward": self.reward_form, "alpha": self.alpha,
                "beta": self.beta, "r1": self.r1, "r1_clip": self.r1_clip, "lr": self.lr, "momentum": self.momentum,
                "weight_decay": self.weight_decay, "grad_clip": self.grad_clip,
                "follow_target_lr": self.follow_target_lr, "update_every": self.update_every,
                "baseline": self.baseline, "eval_eps": self.eval_eps, "eval_step_size": self.eval_step_size,
                "eval_steps": self.eval_steps, "eval_restarts": self.eval_restarts}
