"""bench/make_run_breakdown.py: the seconds of a finished run by kind of job, from its benchmark
files and Snakemake log, and the AVX2 estimate from the per-kind ratios."""
import subprocess
import sys

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"

LOG = """\
[Mon Dec  7 16:33:42 2026]
localrule build_view:
    output: results/views/a.tsv
    jobid: 6
Select jobs to execute...
[Mon Dec  7 16:33:45 2026]
localrule build_view:
    jobid: 7
[Mon Dec  7 16:33:46 2026]
Finished jobid: 6 (Rule: build_view)
[Mon Dec  7 16:33:49 2026]
Finished jobid: 7 (Rule: build_view)
[Mon Dec  7 16:33:50 2026]
localrule train_checkpoint:
    jobid: 8
[Mon Dec  7 16:34:50 2026]
Finished jobid: 8 (Rule: train_checkpoint)
"""


def bench_file(path, seconds):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:10\t1\t1\t1\t1\t0\t0\t50\t{seconds}\n")


def test_breakdown_sums_kinds_and_scales_them(repo, tmp_path):
    bench_file(tmp_path / "benchmarks/train/pt-a-g0.tsv", 30.0)       # a group job: two checkpoints
    (tmp_path / "results/checkpoints/groups/pt-a-g0").mkdir(parents=True)
    for r in (0, 1):
        (tmp_path / f"results/checkpoints/groups/pt-a-g0/pt-a-r{r}.pt").write_bytes(b"x")
    bench_file(tmp_path / "benchmarks/diversity/a.tsv", 20.0)
    bench_file(tmp_path / "benchmarks/diversity/domain_distances_glyphs.tsv", 100.0)
    bench_file(tmp_path / "benchmarks/diversity/train_probe.tsv", 40.0)
    (tmp_path / "run.log").write_text(LOG)
    r = subprocess.run([sys.executable, str(repo / "bench/make_run_breakdown.py"), "--run", str(tmp_path),
                        "--log", str(tmp_path / "run.log")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines()[1:-1]}
    assert rows["train-pt"][:2] == ["1", "30"]            # one job, its whole wall time
    assert rows["domains"][:2] == ["1", "100"] and rows["diversity"][:2] == ["1", "20"]
    assert rows["other:build_view"][:2] == ["2", "8"]     # 4 s + 4 s from the log
    assert "other:train_checkpoint" not in rows           # benchmarked: not counted twice
    here = 30 + 20 + 100 + 40 + 8
    avx2 = 30 * 20.6 / 12.4 + (20 + 100) * 51.9 / 22.3 + 40 * 206.9 / 81.7 + 8 * 2.3
    assert f"all jobs: {here} s here, ~{avx2:.0f} s on the AVX2 machine" in r.stdout


def test_breakdown_without_a_run_says_what_to_do(repo, tmp_path):
    r = subprocess.run([sys.executable, str(repo / "bench/make_run_breakdown.py"), "--run", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "run `make run` first" in r.stderr


def test_the_schedule_replay_follows_dependencies_priorities_and_cores(repo):
    sys.path.insert(0, str(repo / "bench"))
    from make_run_breakdown import simulate

    def job(seconds, inputs=(), outputs=(), priority=0):
        return {"seconds": seconds, "inputs": set(inputs), "outputs": set(outputs), "priority": priority}

    render = job(10, outputs=["data"])
    probe = job(20, ["data"], ["probe"], priority=10)
    train = job(30, ["data"], ["ckpt"])
    matrix = job(40, ["probe"], ["matrix"], priority=10)
    late = job(5, ["matrix", "ckpt"])
    # 2 cores: render 0-10; probe (priority) and train 10-30 / 10-40; matrix 30-70; late 70-75
    assert simulate([render, train, probe, matrix, late], 2) == 75
    # without the priorities the matrix waits for the training: 0-10, train 10-40 and probe 10-30 on
    # two cores is the same, but with the training listed first on one core everything is serial
    assert simulate([render, train, probe, matrix, late], 1) == 105
    # priorities decide who gets the one free core: the long matrix chain first ends sooner
    first = simulate([job(10, outputs=["a"]), job(30, ["a"]), job(20, ["a"], ["p"], 10), job(40, ["p"], [], 10)], 2)
    last = simulate([job(10, outputs=["a"]), job(30, ["a"], [], 10), job(30, ["a"], [], 10),
                     job(20, ["a"], ["p"]), job(40, ["p"])], 2)
    assert (first, last) == (70, 100)
    # a job whose input nobody writes (a file already there) is ready at once
    assert simulate([job(7, ["results/views/x.tsv"])], 2) == 7
