"""bench/gpu.sh: every bench runs, at tiny sizes on the CPU (--smoke), and prints its figure lines;
without a GPU the CUDA run stops at once with a clear message."""
import os
import re
import subprocess
import sys

import pytest
import torch

BENCH_FIGURES = {"task2vec-faithful-loop", "task2vec-faithful-batched", "task2vec-exact", "evaluate-pt",
                 "train-pt", "train-maml", "train-replicates-pt", "train-replicates-maml", "maml-adaptation"}
FIGURE = re.compile(r"^FIGURE (\S+) \[(.+?)\]: (.*\d.*)$")


def run(repo, *args, timeout=240):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def test_gpu_script_smoke_runs_every_bench_and_prints_its_figures(repo):
    r = run(repo, "bash", "bench/gpu.sh", "--smoke", timeout=420)  # the benches' smoke budgets sum to 330 s
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = r.stdout.split("== figures (smoke")[-1].splitlines()[1:]
    figures = [FIGURE.match(line) for line in summary]
    assert all(figures), summary
    assert {m.group(1) for m in figures} == BENCH_FIGURES
    assert all(m.group(2).startswith("CPU ") for m in figures)
    t2v = next(m.group(3) for m in figures if m.group(1) == "task2vec-faithful-loop")
    assert re.search(r"published [\d.]+ s/task, ours \(faithful-loop\) [\d.]+ s/task, speed-up [\d.]+x", t2v)
    assert re.search(r"conv [\d.e+-]+ per entry, .*bn [\d.e+-]+ per entry", t2v)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the CUDA run would start")
def test_gpu_script_without_a_gpu_stops_with_a_clear_message(repo):
    r = run(repo, "bash", "bench/gpu.sh", timeout=60)
    assert r.returncode == 1
    assert "sees no CUDA device" in r.stderr and "--smoke" in r.stderr
    assert "FIGURE" not in r.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
def test_bench_with_device_cuda_fails_clearly_without_a_gpu(repo):
    r = run(repo, sys.executable, "bench/maml.py", "--device", "cuda", timeout=60)
    assert r.returncode != 0
    assert "--device cuda: no CUDA device is visible" in r.stderr
