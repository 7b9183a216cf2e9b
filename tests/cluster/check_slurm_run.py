"""Check a finished `snakemake --profile profiles/slurm` run against the SLURM that ran it.

usage: check_slurm_run.py --workdir DIR --run-log LOG --configfile CFG --profile PROFILE_YAML [--gpu] [TARGETS...]

1. Every output the targets need exists and is up to date (`snakemake --summary`).
2. Every job Snakemake submitted is in SLURM's accounting (sacct): COMPLETED, named after this
   run's ID, its comment naming the rule it ran.
3. The rules the profile gives a GPU got exactly one GPU from SLURM; the others none.
4. A GPU job sees the GPU SLURM gave it (CUDA_VISIBLE_DEVICES) and divcoeff.device.pick_device
   falls back to CPU when torch has no CUDA; torch uses as many threads as the job's CPUs.
Run with SLURM_CONF pointing at the cluster's slurm.conf. Exits non-zero with the reasons.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

RULE_LINE = re.compile(r"^(local)?rule (\w+):$")
JOBID_LINE = re.compile(r"^\s+jobid: (\d+)$")
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
RUN_ID = re.compile(r"SLURM run ID: (\S+)")


def parse_run_log(text: str):
    """(run id, {slurm job id: rule}, Counter of local rules) from Snakemake's log."""
    job_rule, local = {}, Counter()
    rule = is_local = None
    for line in text.splitlines():
        m = RULE_LINE.match(line)
        if m:
            is_local, rule = bool(m.group(1)), m.group(2)
            if is_local:
                local[rule] += 1
            continue
        m = JOBID_LINE.match(line)
        if m and rule and not is_local:
            job_rule[m.group(1)] = rule
            rule = None
    submitted = {slurm: job_rule.get(sm, "?") for sm, slurm in SUBMITTED.findall(text)}
    run_id = RUN_ID.search(text)
    return (run_id.group(1) if run_id else None), submitted, local


def sacct(job_ids, fields=("JobIDRaw", "JobName%80", "Comment%200", "State", "AllocTRES%120", "Elapsed")):
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)],
                         capture_output=True, text=True, check=True).stdout
    names = [f.split("%")[0] for f in fields]
    return {row[0]: dict(zip(names, row)) for row in (line.split("|") for line in out.splitlines()) if row[0]}


def check_outputs(workdir: Path, configfile: str, targets: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "snakemake", "--configfile", configfile, "--summary", *targets]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if res.returncode:
        return [f"`{' '.join(cmd[1:])}` failed:\n{res.stderr[-3000:]}"]
    lines = [line for line in res.stdout.splitlines() if "\t" in line]
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    col = {name: i for i, name in enumerate(header)}
    problems = []
    for row in rows:
        path, status, plan = row[col["output_file"]], row[col["status"]], row[col["plan"]]
        if not (workdir / path).exists():
            problems.append(f"expected output {path} (rule {row[col['rule']]}) is missing")
        elif plan != "no update":
            problems.append(f"output {path} is not up to date: status {status!r}, plan {plan!r}")
    print(f"outputs: {len(rows)} expected, {len(rows) - len(problems)} present and up to date")
    if not rows:
        problems.append("snakemake --summary listed no outputs at all")
    return problems


def check_jobs(run_log: str, gpu_rules: set[str], gpu: bool) -> list[str]:
    run_id, submitted, local = parse_run_log(run_log)
    if not submitted:
        return ["the run log shows no job submitted to SLURM"]
    rows = {}
    for _ in range(40):  # slurmctld hands finished jobs to slurmdbd asynchronously
        rows = sacct(list(submitted))
        if len(rows) == len(submitted) and all(r["State"] == "COMPLETED" for r in rows.values()):
            break
        time.sleep(0.5)
    problems = []
    for job_id, rule in sorted(submitted.items(), key=lambda kv: int(kv[0])):
        row = rows.get(job_id)
        if row is None:
            problems.append(f"SLURM job {job_id} (rule {rule}) is not in sacct")
            continue
        where = f"SLURM job {job_id} (rule {rule})"
        if row["State"] != "COMPLETED":
            problems.append(f"{where}: state {row['State']}, expected COMPLETED")
        if row["JobName"] != run_id:
            problems.append(f"{where}: job name {row['JobName']!r}, expected the run ID {run_id!r}")
        if not re.match(rf"rule_{rule}(_wildcards_|$)", row["Comment"]):
            problems.append(f"{where}: comment {row['Comment']!r} does not name rule {rule}")
        gpus = re.search(r"gres/gpu=(\d+)", row["AllocTRES"])
        want = 1 if (gpu and rule in gpu_rules) else 0
        if (int(gpus.group(1)) if gpus else 0) != want:
            problems.append(f"{where}: AllocTRES {row['AllocTRES']!r}, expected {want} GPU")
    per_rule = Counter(submitted.values())
    print(f"SLURM run {run_id}: {len(submitted)} jobs through sacct "
          + ", ".join(f"{r} x{n}" for r, n in sorted(per_rule.items())))
    print("local jobs (localrules): " + (", ".join(f"{r} x{n}" for r, n in sorted(local.items())) or "none"))
    print("GPU rules in the profile: " + (", ".join(sorted(gpu_rules)) or "none")
          + f"; GPU jobs run: {sum(n for r, n in per_rule.items() if r in gpu_rules)}")
    for job_id, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
        print(f"  {job_id:>5} {row['State']:<10} {row['Elapsed']} {row['Comment'][:60]:<60} {row['AllocTRES']}")
    return problems


DEVICE_PROBE = (
    "import os, torch; from divcoeff.device import pick_device, set_threads; "
    "set_threads(int(os.environ['SLURM_CPUS_ON_NODE'])); "
    "print(os.environ.get('CUDA_VISIBLE_DEVICES'), pick_device('auto'), torch.get_num_threads(), "
    "os.environ['SLURM_CPUS_ON_NODE'])"
)


def check_gpu_job_device(workdir: Path) -> list[str]:
    """A one-GPU, one-CPU job: SLURM sets CUDA_VISIBLE_DEVICES; CPU torch falls back to CPU."""
    cmd = ["srun", "--gpus=1", "--cpus-per-gpu=1", "--mem=500", "-t", "2", sys.executable, "-c", DEVICE_PROBE]
    res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=120)
    if res.returncode:
        return [f"`{' '.join(cmd[:6])} ...` failed: {res.stderr[-2000:]}"]
    visible, device, threads, cpus = res.stdout.split()
    print(f"GPU job: CUDA_VISIBLE_DEVICES={visible}, pick_device('auto')={device}, torch threads={threads} "
          f"(job CPUs {cpus})")
    import torch  # what a CUDA build would do with the visible device
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    problems = []
    if visible in ("None", ""):
        problems.append("a --gpus=1 job got no CUDA_VISIBLE_DEVICES")
    if device != expected:
        problems.append(f"pick_device('auto') chose {device} in a GPU job, expected {expected}")
    if threads != cpus:
        problems.append(f"torch uses {threads} threads, the job has {cpus} CPUs")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--run-log", type=Path, required=True)
    ap.add_argument("--configfile", required=True)
    ap.add_argument("--profile", type=Path, required=True)
    ap.add_argument("--gpu", action="store_true", help="the cluster has (fake) GPUs")
    ap.add_argument("targets", nargs="*")
    a = ap.parse_args()
    profile = yaml.safe_load(a.profile.read_text())
    gpu_rules = {r for r, res in (profile.get("set-resources") or {}).items() if res.get("gpu")}
    problems = check_outputs(a.workdir, a.configfile, a.targets)
    problems += check_jobs(a.run_log.read_text(), gpu_rules, a.gpu)
    if a.gpu:
        problems += check_gpu_job_device(a.workdir)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
