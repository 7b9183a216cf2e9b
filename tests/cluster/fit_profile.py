"""Fit the SLURM profile to the small single-node test cluster, changing nothing else.

usage: fit_profile.py PROFILE_YAML OUT_YAML --nodes-cpus N --node-mem-mb M [--gpus G]

A real cluster's GPU jobs ask for more CPUs and memory than a test machine has, and SLURM
would reject them; its partitions and accounts do not exist here. So, per job:
  cpus_per_gpu / cpus_per_task / set-threads  -> at most the CPUs of one GPU's share of the node
  mem_mb                                      -> at most one CPU's share of the node's memory
  slurm_partition, slurm_account, gpu_model   -> dropped (the test node has one partition, fake GPUs)
  without --gpus: gpu and cpus_per_gpu        -> dropped (the jobs then ask for CPUs only)
Every other key (executor, jobs, runtime, which rules get a GPU, ...) is the profile's own.
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

import yaml

SITE_KEYS = ("slurm_partition", "slurm_account", "gpu_model")
GPU_KEYS = ("gpu", "cpus_per_gpu")


def fit_resources(res: dict, max_cpus: int, max_mem_mb: int, gpus: int) -> dict:
    res = {k: v for k, v in res.items() if k not in SITE_KEYS}
    if not gpus:
        res = {k: v for k, v in res.items() if k not in GPU_KEYS}
    for key in ("cpus_per_gpu", "cpus_per_task"):
        if key in res:
            res[key] = min(int(res[key]), max_cpus)
    if "mem_mb" in res:
        res["mem_mb"] = min(int(res["mem_mb"]), max_mem_mb)
    return res


def fit_profile(profile: dict, cpus: int, mem_mb: int, gpus: int) -> dict:
    out = copy.deepcopy(profile)
    # One job per GPU at a time, and the node's CPUs shared among them.
    max_cpus = max(1, cpus // gpus) if gpus else cpus
    max_mem = mem_mb // max(1, cpus)
    if "default-resources" in out:
        out["default-resources"] = fit_resources(out["default-resources"], max_cpus, max_mem, gpus)
    for rule, res in (out.get("set-resources") or {}).items():
        out["set-resources"][rule] = fit_resources(res, max_cpus, max_mem, gpus)
    for rule, n in (out.get("set-threads") or {}).items():
        out["set-threads"][rule] = min(int(n), max_cpus)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--nodes-cpus", type=int, required=True)
    ap.add_argument("--node-mem-mb", type=int, required=True)
    ap.add_argument("--gpus", type=int, default=0)
    a = ap.parse_args()
    profile = yaml.safe_load(a.profile.read_text())
    if not isinstance(profile, dict) or profile.get("executor") != "slurm":
        raise SystemExit(f"{a.profile}: expected a Snakemake profile with 'executor: slurm'")
    fitted = fit_profile(profile, a.nodes_cpus, a.node_mem_mb, a.gpus)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# {a.profile} fitted to a test node of {a.nodes_cpus} CPUs, {a.node_mem_mb} MB, "
              f"{a.gpus} GPUs by {Path(__file__).name}\n")
    a.out.write_text(header + yaml.safe_dump(fitted, sort_keys=False))


if __name__ == "__main__":
    main()
