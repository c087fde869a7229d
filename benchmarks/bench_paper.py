"""What a full-size run of the paper's experiments needs, from one measured training step.

    .venv/bin/python benchmarks/bench_paper.py [--batch 1] [--threads 2] [--gpu-tflops 40]

For each workload (Tables 2-3 / Fig. 5 training at 384x384, batch 8; NYUv2 fine-tuning at 240x320,
batch 8; VOC fine-tuning of resnet101_fusion at 321x321, batch 10) it builds the full-size network,
runs one SGD step (forward, loss, backward, update) on ``--batch`` images on this CPU and reports:

* ``cpu_s_step``: measured seconds of that step, scaled linearly to the workload's batch;
* ``gflop_step``: forward + backward FLOPs of one full-batch step (torch's FlopCounterMode on the
  measured step, scaled by batch; backward counted by the counter itself);
* ``act_gib``: bytes of the tensors autograd saves for backward (measured with saved-tensor hooks),
  scaled to the batch: the activation memory of training in fp32 (AMP roughly halves it);
* ``state_gib``: parameters + gradients + SGD momentum (fp32);
* ``gpu_h_run``: the run's hours at ``--gpu-tflops`` sustained TFLOP/s — an *assumption*, not a
  measurement (no GPU here); 40 is a typical AMP throughput of ResNet training on an A100-class
  card. Data loading and evaluation are not included.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch

WORKLOADS = (
    # name, arch, out_channels, (H, W), batch, iterations, runs, loss
    ("table2/3+fig5 resnet50_fusion", "resnet50_fusion", 1, (384, 384), 8, 40000, 1, "ranking"),
    ("table2 resnet50_direct_upsample", "resnet50_direct_upsample", 1, (384, 384), 8, 40000, 1, "ranking"),
    ("table2 resnet50_dilated", "resnet50_dilated", 1, (384, 384), 8, 40000, 1, "ranking"),
    ("table2 resnet50_upproj", "resnet50_upproj", 1, (384, 384), 8, 40000, 1, "ranking"),
    ("finetune depth (NYUv2)", "resnet50_fusion", 1, (240, 320), 8, 20000, 1, "tukey"),
    ("finetune segment (VOC)", "resnet101_fusion", 21, (321, 321), 10, 20000, 1, "ce"),
)


def _loss(kind: str, pred: torch.Tensor) -> torch.Tensor:
    from model.losses import improved_ranking_loss, tukey_biweight_loss

    b, c, h, w = pred.shape
    g = torch.Generator().manual_seed(0)
    if kind == "ranking":
        n = 3000
        flat = pred.reshape(b, -1)
        i = torch.randint(0, h * w, (b, n), generator=g)
        j = torch.randint(0, h * w, (b, n), generator=g)
        labels = torch.randint(-1, 2, (b * n,), generator=g)
        return improved_ranking_loss(flat.gather(1, i).reshape(-1), flat.gather(1, j).reshape(-1), labels)
    if kind == "tukey":
        return tukey_biweight_loss(pred, torch.rand(b, 1, h, w, generator=g) * 9 + 0.5, torch.ones(b, 1, h, w, dtype=torch.bool))
    return torch.nn.functional.cross_entropy(pred, torch.randint(0, c, (b, h, w), generator=g))


def measure(arch: str, out_channels: int, size: tuple[int, int], batch: int, loss: str) -> dict[str, float]:
    from torch.utils.flop_counter import FlopCounterMode

    from model.registry import build_model

    torch.manual_seed(0)
    model = build_model(arch, out_channels=out_channels).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, *size)
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    # warm-up step (allocator, kernels) with the counters on
    counter = FlopCounterMode(display=False)
    with counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        value = _loss(loss, model(x))
        value.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    value = _loss(loss, model(x))
    value.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    return {"s_step": seconds, "flops": float(counter.get_total_flops()), "saved_bytes": float(saved[0]),
            "params": float(n_params)}


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="images in the measured step (scaled to the workload)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--gpu-tflops", type=float, default=40.0, help="assumed sustained GPU TFLOP/s")
    parser.add_argument("--only", help="substring of the workload names to run")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name, arch, out_ch, size, batch, iters, runs, loss in WORKLOADS:
        if args.only and args.only not in name:
            continue
        m = measure(arch, out_ch, size, args.batch, loss)
        scale = batch / args.batch
        flops_step = m["flops"] * scale
        rows.append({
            "workload": name, "input": f"{size[0]}x{size[1]}", "batch": batch, "iterations": iters,
            "params_M": m["params"] / 1e6,
            "cpu_s_step": m["s_step"] * scale,
            "cpu_days_run": m["s_step"] * scale * iters / 86400,
            "gflop_step": flops_step / 1e9,
            "act_gib": m["saved_bytes"] * scale / 2**30,
            "state_gib": m["params"] * 4 * 3 / 2**30,
            "gpu_h_run": flops_step * iters / (args.gpu_tflops * 1e12) / 3600,
        })
        print(f"measured {name}: {m['s_step']:.2f} s for {args.batch} image(s)", flush=True)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".2f"))
    print(f"(CPU: {args.threads} thread(s), step measured at batch {args.batch} and scaled linearly; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; "
          f"gpu_h_run assumes {args.gpu_tflops:g} TFLOP/s sustained)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
