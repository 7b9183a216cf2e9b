"""MAML adaptation at evaluation time: a plain per-episode loop vs the project's batched inner loop.

    .venv/bin/python bench/maml.py                                   # config widths, 28x28 grey, CPU
    .venv/bin/python bench/maml.py --widths 64,160,320,640 --size 84 --channels 3 --device cuda \\
        --episodes 600 --loop-episodes 20

Straightforward (how learn2learn's ``MAML.clone().adapt()`` evaluates): for each episode, copy the
network, take ``--steps`` SGD steps on the support set with autograd (BatchNorm on the batch's
statistics), predict the queries. Project: divcoeff.fewshot.maml_logits, the functional inner loop
batched over episodes (vmapped on a GPU, looped on a CPU), on the same episodes. The network is a
seeded random ResNet-12 (timing does not depend on the weights); the images are random.

Prints seconds per episode of both (the loop on the first ``--loop-episodes`` episodes only), the
ratio, how far their query logits are apart on the episodes both adapted, and a ``FIGURE
maml-adaptation`` line (bench/figure.py). With the published inner lr 0.1 a random network
amplifies float rounding over the steps (tests/test_fewshot_maml.py uses a small lr to compare);
the argmax agreement is the telling number. Not a test: nothing here is asserted.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from divcoeff.maml.evaluate import maml_logits  # noqa: E402
from divcoeff.settings import MamlEvalSettings  # noqa: E402
from divcoeff.models.resnet12 import ResNet12, bn_mode  # noqa: E402
from figure import device_name, figure, pick_device, synchronize  # noqa: E402


def episodes(n_images: int, E: int, ways: int, shots: int, queries: int, seed: int = 1):
    """(support positions (E, ways, shots), query positions (E, ways * queries)) into n_images."""
    g = torch.Generator().manual_seed(seed)
    per = ways * (shots + queries)
    pos = torch.stack([torch.randperm(n_images, generator=g)[:per] for _ in range(E)]).view(E, ways, shots + queries)
    return pos[:, :, :shots].contiguous(), pos[:, :, shots:].reshape(E, -1)


def loop_logits(model, images, support_pos, query_pos, steps: int, lr: float, device) -> torch.Tensor:
    """One episode at a time: copy the network, SGD on the support set, predict the queries."""
    out = []
    E, W, K = support_pos.shape
    y = torch.arange(W, device=device).repeat_interleave(K)
    for e in range(E):
        net = copy.deepcopy(model)
        x = images[support_pos[e].reshape(-1)].to(device)
        with bn_mode(net, "batch"):
            params = list(net.parameters())
            for _ in range(steps):
                grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p -= lr * g
            with torch.no_grad():
                out.append(net(images[query_pos[e]].to(device)).cpu())
    return torch.stack(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="16,32,64,128",
                    help="ResNet-12 widths (the config's; published: 64,160,320,640)")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=40, help="episodes adapted by the project's inner loop")
    ap.add_argument("--loop-episodes", type=int, default=10, help="of which the plain loop adapts the first ...")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=5)
    ap.add_argument("--queries", type=int, default=15)
    ap.add_argument("--steps", type=int, default=10, help="inner steps (the config's evaluation.maml.inner_steps)")
    ap.add_argument("--inner-lr", type=float, default=0.1)
    ap.add_argument("--chunk", type=int, default=0, help="episodes per call (0: the library's default)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)

    torch.manual_seed(0)
    widths = [int(w) for w in args.widths.split(",")]
    model = ResNet12(widths, in_channels=args.channels, num_classes=args.ways).eval()
    n_images = max(args.ways * (args.shots + args.queries) * 4, 400)
    images = torch.rand(n_images, args.channels, args.size, args.size, generator=torch.Generator().manual_seed(2))
    support_pos, query_pos = episodes(n_images, args.episodes, args.ways, args.shots, args.queries)
    settings = MamlEvalSettings.from_config({"inner_steps": args.steps, "inner_lr": args.inner_lr})
    nb = min(args.loop_episodes, args.episodes)
    print(f"ResNet-12 widths {widths}, {args.size} px x {args.channels}, {args.episodes} episodes {args.ways}-way "
          f"{args.shots}-shot {args.queries}-query, {args.steps} steps at lr {args.inner_lr}, on {device_name(device)}",
          flush=True)

    # warm-up (kernel selection, lazy imports, the GPU's chunk measurement)
    maml_logits(copy.deepcopy(model), images, support_pos[:2], query_pos[:2], settings, chunk_size=args.chunk,
                device=device, progress=False)
    loop_logits(copy.deepcopy(model).to(device), images, support_pos[:1], query_pos[:1], 1, args.inner_lr, device)

    net = copy.deepcopy(model).to(device)
    synchronize(device)
    t0 = time.perf_counter()
    ref = loop_logits(net, images, support_pos[:nb], query_pos[:nb], args.steps, args.inner_lr, device)
    synchronize(device)
    loop_s = (time.perf_counter() - t0) / max(nb, 1)

    net = copy.deepcopy(model)
    synchronize(device)
    t0 = time.perf_counter()
    got = maml_logits(net, images, support_pos, query_pos, settings, chunk_size=args.chunk, device=device,
                      progress=False)
    synchronize(device)
    ours_s = (time.perf_counter() - t0) / args.episodes

    diff = float((got[:nb] - ref).abs().max()) if nb else float("nan")
    agree = float((got[:nb].argmax(-1) == ref.argmax(-1)).float().mean()) if nb else float("nan")
    print(f"plain loop {loop_s:.4f} s/episode ({nb} episodes), project {ours_s:.4f} s/episode "
          f"({args.episodes} episodes): {loop_s / ours_s:.2f}x; logits differ by up to {diff:.2e}, "
          f"argmax agreement {agree:.3f}")
    figure("maml-adaptation", device,
           f"ResNet-12 {widths} at {args.size} px, {args.steps} steps: plain loop {loop_s:.4f} s/episode, "
           f"ours {ours_s:.4f} s/episode ({args.episodes} episodes), speed-up {loop_s / ours_s:.2f}x, "
           f"argmax agreement {agree:.3f}")


if __name__ == "__main__":
    main()
