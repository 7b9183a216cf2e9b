"""What every bench prints last: one ``FIGURE <bench> [<device>]: ...`` line per measured figure.

bench/gpu.sh runs every bench and tests/test_bench_gpu.py checks these lines, so the format is
one line, this prefix, the bench's name and the device it ran on."""
from __future__ import annotations

import platform

import torch


def pick_device(setting: str) -> torch.device:
    """`auto`: CUDA when a GPU is visible, else CPU; `cuda` without a GPU fails clearly."""
    from divcoeff.device import pick_device as pick

    try:
        return pick(setting)
    except RuntimeError:
        raise SystemExit(f"--device {setting}: no CUDA device is visible to torch "
                         f"(torch {torch.__version__}, cuda build {torch.version.cuda}); use --device cpu") from None


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} thread(s)"


def figure(bench: str, device: torch.device | str, text: str) -> None:
    print(f"FIGURE {bench} [{device_name(device)}]: {text}", flush=True)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so that a timer read afterwards covers it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
