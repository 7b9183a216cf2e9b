"""Where a finished `make run` spent its time, and what it would take on a CPU without AVX-512.

Sums the wall seconds of the run's Snakemake benchmark files by kind of job (one core each, two
jobs at a time by default) and scales each kind by the ratio measured between two 2-core AMD EPYC
machines on the same design (issue "room to train": a fresh clone on an AVX2 EPYC against the
developers' AVX-512 EPYC, seconds per job from the benchmark files). The kinds slow down
differently: the probe and Task2Vec (wide convolutions on small maps, bound by the vector
units) by ~2.3-2.5x, training the small ResNet-12s by ~1.4-1.7x. Jobs without a benchmark file
(views, episodes, the report) are counted from the run's Snakemake log when one is given. The
AVX2 figure is an estimate, not a measurement: run it on such a machine to know.

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


def log_jobs(log: Path) -> dict[str, list[float]]:
    """Wall seconds of each job by rule, from a Snakemake log (start and 'Finished' stamps, 1 s resolution)."""
    started, seconds, stamp, rule = {}, defaultdict(list), None, None
    for line in log.read_text().splitlines():
        if m := re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp = datetime.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif (m := re.match(r"\s+jobid: (\d+)", line)) and rule:
            started[m.group(1)], rule = (rule, stamp), None
        elif (m := re.match(r"Finished jobid: (\d+)", line)) and m.group(1) in started:
            name, t0 = started.pop(m.group(1))
            seconds[name].append((stamp - t0).total_seconds())
    return dict(seconds)


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
    if args.log:
        benchmarked = {"train_checkpoint", "evaluate", "diversity", "domain_distances", "train_probe",
                       "render_glyphs"}
        for rule, seconds in log_jobs(Path(args.log)).items():
            if rule not in benchmarked and sum(seconds) > 0:
                kinds[f"other:{rule}"] = seconds
    here = avx2 = 0.0
    print(f"{'kind':28s} {'jobs':>5s} {'seconds':>8s} {'x AVX2':>7s} {'AVX2 est.':>9s}")
    for kind, secs in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
        ratio = AVX2_RATIO.get(kind, OTHER_RATIO)
        here, avx2 = here + sum(secs), avx2 + sum(secs) * ratio
        print(f"{kind:28s} {len(secs):5d} {sum(secs):8.0f} {ratio:7.2f} {sum(secs) * ratio:9.0f}")
    print(f"all jobs: {here:.0f} s here, ~{avx2:.0f} s on the AVX2 machine; on {args.cores} cores at best "
          f"{here / args.cores / 60:.1f} and ~{avx2 / args.cores / 60:.1f} min (the critical path and the "
          "scheduler add to both)")


if __name__ == "__main__":
    main()
