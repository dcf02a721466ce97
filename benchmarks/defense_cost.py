"""Defense-cost benchmark: one training step of PGDAT, TRADES, AWP(PGDAT), AWP(TRADES), against AWP's floor.

Same model, batch and `Fixed` PGD-10 policy for all. AWP adds one forward/backward of the wrapped defense's
loss to the step (the gradient Δ its perturbation follows). Its floor is measured in the same run as one
callable: the wrapped defense's whole step followed by that loss pass (the weight gradient of its loss on the
step's x_adv), so both see the same caches and allocator. Each round times the wrapped step, then AWP and
its floor back to back (which runs first alternates); AWP(D) / floor is the median of the per-round ratios.
The work of each step is also counted (FLOPs, aten calls, elements written: `_work.py`), which does not
depend on the machine's load. Anchor: the AWP authors' logs show AT-AWP at ~1.09x AT. Target: AWP(D)
within 3% of its floor.
Run: `python benchmarks/defense_cost.py --model cifar_preact_resnet18 --batch-sizes 32,64 --rounds 9`
(or `--quick` for a smoke run).
"""
from __future__ import annotations

import argparse
import statistics

import torch

from robustzoo import AWP, PGDAT, TRADES, Fixed, create_model
from robustzoo.defenses.awp import perturbed_weights
from robustzoo.trainer import adversarial_step

from _timing import bench_rounds, header, paired
from _work import compare, work


def steps_for(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    policy = Fixed()  # PGD-10, 8/255, 2/255
    defenses = {"PGDAT": PGDAT(), "TRADES": TRADES(), "AWP(PGDAT)": AWP(PGDAT(), gamma=0.01),
                "AWP(TRADES)": AWP(TRADES(), gamma=0.005)}

    def step(defense):
        return lambda: adversarial_step(model, x, y, policy, defense, optimizer)

    def floor(defense):  # the defense's step, then AWP's one extra pass: its loss's weight gradient on that x_adv
        def run():
            strategy, x_adv, _, _ = adversarial_step(model, x, y, policy, defense, optimizer)
            loss, _ = defense.loss(model, x, x_adv, y, strategy)
            torch.autograd.grad(loss.mean(), perturbed_weights(model))
        return run

    fns = {name: step(d) for name, d in defenses.items()}
    fns.update({"PGDAT floor": floor(defenses["PGDAT"]), "TRADES floor": floor(defenses["TRADES"])})
    return fns


def bookkeeping(model: torch.nn.Module):
    """AWP's own work beyond its extra pass, alone: BatchNorm statistics saved and put back, v from Δ (norms,
    scaling), w + v applied and w restored. What AWP(D) may cost above its floor, without the steps' noise."""
    awp = AWP(PGDAT(), gamma=0.01)
    weights = perturbed_weights(model)
    grads = [torch.randn_like(w) for w in weights]

    def run():
        saved = [b.clone() for b in model.buffers()]
        with torch.no_grad():
            for b, s in zip(model.buffers(), saved):
                b.copy_(s)
        with awp.applied(weights, awp.scale_(weights, grads)):
            pass
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cifar_preact_resnet18")
    parser.add_argument("--batch-sizes", default="32,64", help="comma list")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of (step, AWP, floor) per defense")
    parser.add_argument("--defenses", default="PGDAT,TRADES", help="the wrapped defenses to time (comma list)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: cifar_small_cnn, batch 32, 2 rounds")
    args = parser.parse_args()
    if not set(args.defenses.split(",")) <= {"PGDAT", "TRADES"}:
        parser.error(f"--defenses {args.defenses!r}; expected a comma list of PGDAT, TRADES")
    if args.quick:
        args.model, args.batch_sizes, args.rounds = "cifar_small_cnn", "32", 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        torch.manual_seed(0)
        model = create_model(args.model, num_classes=10, mean=(0.5,) * 3, std=(0.5,) * 3).to(device).train()
        x = torch.rand(batch_size, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch_size,), device=device)
        print(header("defense_cost", device, model=args.model, batch=batch_size, policy="Fixed PGD-10",
                     rounds=f"{args.rounds} per defense: step, then AWP and floor back to back (medians)"), flush=True)
        bases = args.defenses.split(",")  # the wrapped defenses; fns: their steps, AWP's and the floors
        fns = {name: fn for name, fn in steps_for(model, x, y).items() if any(b in name for b in bases)}
        counted = {name: work(fn) for name, fn in fns.items()}
        times: dict[str, list[float]] = {}
        for base in bases:
            names = [base, f"AWP({base})", f"{base} floor"]
            times.update(bench_rounds({n: fns[n] for n in names}, args.rounds, device,
                                      order=lambda r, n=names: [n[0]] + (n[1:] if r % 2 == 0 else n[:0:-1])))
        t = {name: statistics.median(ts) for name, ts in times.items()}
        first = bases[0]
        for name in fns:
            print(f"{name:12s} {t[name]:7.3f} s/step  {t[name] / t[first]:.3f}x {first}  "
                  f"{counted[name]['flops'] / 1e9:8.1f} GFLOP  {counted[name]['calls']:6.0f} aten calls", flush=True)
        extra = statistics.median(bench_rounds({"b": bookkeeping(model)}, 21, device)["b"])
        print(f"AWP bookkeeping alone (BN statistics, norms, scaling, apply and restore): {extra * 1e3:.1f} ms "
              f"= {extra / t[f'AWP({first})']:.2%} of an AWP({first}) step")
        for base in bases:
            awp, floor = f"AWP({base})", f"{base} floor"
            print(f"{awp} / {base}: {t[awp] / t[base]:.3f}; floor ({base} step + one {base} loss pass) / {base}: "
                  f"{t[floor] / t[base]:.3f}; {awp} / floor: {paired(times[awp], times[floor])}; target <= 1.03")
            print(f"  work {awp} / floor: {compare(counted[awp], counted[floor])}")


if __name__ == "__main__":
    main()
