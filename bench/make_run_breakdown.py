"""Where a finished `make run` spent its time, and what it would take on a CPU without AVX-512.

Sums the wall seconds of the run's Snakemake benchmark files by kind of job (one core each, two
jobs at a time by default) and scales each kind by the ratio measured between two 2-core AMD EPYC
machines on the same design (issue "room to train": a fresh clone on an AVX2 EPYC against the
developers' AVX-512 EPYC, seconds per job from the benchmark files). The kinds slow down
differently: the probe and Task2Vec (wide convolutions on small maps, bound by the vector
units) by ~2.3-2.5x, training the small ResNet-12s by ~1.4-1.7x. Jobs without a benchmark file
(views, episodes, the report) are counted from the run's Snakemake log when one is given, and
with the log the run's jobs are also replayed in their dependency order (inputs and outputs as
the log lists them, Snakemake priorities, two one-thread slots), once with the log's durations
(checks the replay against the run's own wall time) and once with each scaled by its kind: the
critical path render -> probe -> domain matrix slows down more than the rest. The AVX2 figure is
an estimate, not a measurement: run it on such a machine to know.

    .venv/bin/python bench/make_run_breakdown.py                       # after `make run`
    .venv/bin/python bench/make_run_breakdown.py --log .snakemake/log/<the run's log>
"""
from __future__ import annotations

import argparse
import datetime
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimate_full import benchmarked_jobs  # noqa: E402

# AVX2 / AVX-512 seconds per job, same design (the table: README run vs fresh clone).
AVX2_RATIO = {"train-pt": 20.6 / 12.4, "train-maml": 42.6 / 29.9, "train-control": 20.6 / 12.4,
              "eval-pt": 9.8 / 4.3, "eval-maml": 37.1 / 17.9, "eval-control": 9.8 / 4.3,
              "diversity": 51.9 / 22.3, "domains": 51.9 / 22.3, "probe": 206.9 / 81.7, "data": 48.6 / 19.7}
OTHER_RATIO = 2.3  # views, episodes, the report: start-up and pandas, as the small jobs above
# The same by rule, for the schedule (a rule's jobs of several kinds get their mean ratio).
RULE_RATIO = {"train_checkpoint": (20.6 / 12.4 + 42.6 / 29.9) / 2, "evaluate": (9.8 / 4.3 + 37.1 / 17.9) / 2,
              "diversity": 51.9 / 22.3, "domain_distances": 51.9 / 22.3, "train_probe": 206.9 / 81.7,
              "render_glyphs": 48.6 / 19.7}


def log_jobs(log: Path) -> list[dict]:
    """The jobs of a Snakemake log in start order: rule, wall seconds (start and 'Finished' stamps,
    1 s resolution), the files it read and wrote, its priority."""
    jobs, started, stamp, current = [], {}, None, None
    for line in log.read_text().splitlines():
        if m := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            current = {"rule": m.group(1), "start": stamp, "inputs": set(), "outputs": set(), "priority": 0}
        elif current is not None and (m := re.match(r"\s+(input|output): (.*)", line)):
            current[m.group(1) + "s"] = set(m.group(2).split(", "))
        elif current is not None and (m := re.match(r"\s+priority: (\d+)", line)):
            current["priority"] = int(m.group(1))
        elif current is not None and (m := re.match(r"\s+jobid: (\d+)", line)):
            started[m.group(1)] = current
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in started:
            job = started.pop(m.group(1))
            job["seconds"] = (stamp - job["start"]).total_seconds()
            jobs.append(job)
        if line.startswith("Shell command") or line.startswith("Select jobs"):
            current = None
    return sorted(jobs, key=lambda j: j["start"])


def simulate(jobs: list[dict], cores: int) -> float:
    """Wall seconds of `jobs` (with "seconds") on `cores` one-thread slots: a job starts when the jobs
    writing its inputs have finished and a slot is free, the highest priority first, then in the
    order the run started them (Snakemake's own order)."""
    writer = {f: i for i, j in enumerate(jobs) for f in j["outputs"]}
    needs = [{writer[f] for f in j["inputs"] if f in writer and writer[f] != i} for i, j in enumerate(jobs)]
    done_at: dict[int, float] = {}
    free = [0.0] * cores
    while len(done_at) < len(jobs):
        now = min(free)
        ready = [i for i in range(len(jobs)) if i not in done_at and all(d in done_at and done_at[d] <= now
                                                                          for d in needs[i])]
        if not ready:  # wait for the next job to finish
            later = [t for t in done_at.values() if t > now]
            free[free.index(now)] = min(later)
            continue
        i = min(ready, key=lambda k: (-jobs[k]["priority"], k))
        slot = free.index(now)
        done_at[i] = free[slot] = now + jobs[i]["seconds"]
    return max(done_at.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default=".", help="folder of the finished run (holds benchmarks/)")
    ap.add_argument("--log", help="the run's Snakemake log, for the jobs without a benchmark file")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    kinds: dict[str, list[float]] = defaultdict(list)
    for kind, seconds, _ in benchmarked_jobs(Path(args.run)):
        kinds[kind].append(seconds)
    if not kinds:
        sys.exit(f"no benchmark files under {Path(args.run) / 'benchmarks'}: run `make run` first")
    jobs = log_jobs(Path(args.log)) if args.log else []
    benchmarked = {"train_checkpoint", "evaluate", "diversity", "domain_distances", "train_probe",
                   "render_glyphs"}
    for job in jobs:
        if job["rule"] not in benchmarked and job["seconds"] > 0:
            kinds[f"other:{job['rule']}"].append(job["seconds"])
    here = avx2 = 0.0
    print(f"{'kind':28s} {'jobs':>5s} {'seconds':>8s} {'x AVX2':>7s} {'AVX2 est.':>9s}")
    for kind, secs in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        ratio = AVX2_RATIO.get(kind, OTHER_RATIO)
        here, avx2 = here + sum(secs), avx2 + sum(secs) * ratio
        print(f"{kind:28s} {len(secs):5d} {sum(secs):8.0f} {ratio:7.2f} {sum(secs) * ratio:9.0f}")
    print(f"all jobs: {here:.0f} s here, ~{avx2:.0f} s on the AVX2 machine; on {args.cores} cores at best "
          f"{here / args.cores / 60:.1f} and ~{avx2 / args.cores / 60:.1f} min")
    if jobs:
        span = (max(j["start"] + datetime.timedelta(seconds=j["seconds"]) for j in jobs)
                - min(j["start"] for j in jobs)).total_seconds()
        for job in jobs:  # the log's durations, each scaled by its kind's ratio
            job["seconds"] *= RULE_RATIO.get(job["rule"], OTHER_RATIO)
        print(f"the run's jobs in their dependency order on {args.cores} cores: {span / 60:.1f} min here "
              f"(simulated {simulate(log_jobs(Path(args.log)), args.cores) / 60:.1f}), "
              f"~{simulate(jobs, args.cores) / 60:.1f} min on the AVX2 machine")


if __name__ == "__main__":
    main()
