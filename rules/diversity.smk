# Diversity stage: the Task2Vec diversity coefficient of each training set (per train set, not
# per checkpoint), from its persisted diversity episodes, on the probe the config names.


include: "helpers/diversity.smk"


# The probe the workflow pretrains itself (diversity.probe.weights: pool): one file, cached like
# any output, reused by every training set's coefficient. It and the domain matrix are the
# critical path of a run that selects sets by the matrix (render -> probe -> matrix -> the selected
# sets' views, training, evaluation): PRIORITY_CRITICAL starts them before other ready jobs.
rule train_probe:
    input:
        tsv=f"results/views/{PROBE_POOL}.tsv",
        meta=f"results/views/{PROBE_POOL}.json",
    output:
        probe=PROBE_FILE,
    log:
        "logs/diversity/train_probe.log",
    benchmark:
        "benchmarks/diversity/train_probe.tsv"
    priority: PRIORITY_CRITICAL
    conda:
        "../envs/torch.yaml"
    threads: S.compute.probe.threads
    resources:
        **S.compute.probe.resources(),
    params:
        probe=DIV.probe.as_dict(),
        master_seed=S.seed,
        seed=DIV.seed,
        code=CODE["train_probe"],
    script:
        "../workflow_scripts/train_probe.py"


# One job per train set and probe: results/diversity/<train_set>.json with diversity.probe (the summary's),
# results/diversity/probes/<probe>/<train_set>.json with each of diversity.probes (the 2022 table's four).
rule diversity:
    input:
        unpack(diversity_inputs),
    output:
        json="results/diversity/{target}.json",
        npy="results/diversity/{target}.npy",
    log:
        "logs/diversity/{target}.log",
    benchmark:
        "benchmarks/diversity/{target}.tsv"
    wildcard_constraints:
        target=_alternatives(DIVERSITY_TARGETS),
    conda:
        "../envs/torch.yaml"
    # compute.diversity: threads and resources (task_batch, engine, ...), not a rerun trigger.
    threads: S.compute.diversity.threads
    resources:
        **S.compute.diversity.resources(),
    params:
        train_set=lambda w: DIVERSITY_TARGETS[w.target][0],
        diversity=lambda w: DIV.job_params(DIVERSITY_TARGETS[w.target][1]),
        master_seed=S.seed,
        code=CODE["diversity"],
    script:
        "../workflow_scripts/diversity.py"


# results/diversity/<benchmark>-domains.tsv: the domain x domain matrix of mean Task2Vec distances
# between tasks drawn from the domains' classes of the probe pool's split (docs/formats.md 5b).
rule domain_distances:
    input:
        unpack(domain_probe_input),
        **dataset_files("{benchmark}"),
    output:
        tsv="results/diversity/{benchmark}-domains.tsv",
        npy="results/diversity/{benchmark}-domains.npy",
        json="results/diversity/{benchmark}-domains.json",
        view="results/diversity/{benchmark}-domains.view.tsv",
        view_meta="results/diversity/{benchmark}-domains.view.json",
    log:
        "logs/diversity/domain_distances_{benchmark}.log",
    benchmark:
        "benchmarks/diversity/domain_distances_{benchmark}.tsv"
    wildcard_constraints:
        benchmark=_alternatives(S.benchmarks),
    priority: PRIORITY_CRITICAL
    conda:
        "../envs/torch.yaml"
    threads: S.compute.diversity.threads
    resources:
        **S.compute.diversity.resources(),
    params:
        # What the embeddings depend on: not the coefficient's own task count, bootstrap or noise floor.
        diversity={
            k: v
            for k, v in DIV.job_params().items()
            if k not in ("tasks", "bootstrap", "noise_floor_tasks")
        },
        domains=DOMAINS.as_dict(),
        split=DIV.probe.pool.split,
        master_seed=S.seed,
        code=CODE["domain_distances"],
    script:
        "../workflow_scripts/domain_distances.py"


rule domain_heatmap:
    input:
        tsv="results/diversity/{benchmark}-domains.tsv",
    output:
        png=report(
            "results/figures/{benchmark}_domains.png",
            caption="captions/domains.rst",
            category="Data",
        ),
    log:
        "logs/diversity/domain_heatmap_{benchmark}.log",
    wildcard_constraints:
        benchmark=_alternatives(S.benchmarks),
    conda:
        "../envs/report.yaml"
    params:
        dpi=S.report.dpi,
        code=CODE["domain_heatmap"],
    script:
        "../workflow_scripts/domain_heatmap.py"


# This stage's final targets (rule all).
DIVERSITY_ALL = expand("results/diversity/{t}.json", t=DIVERSITY_TARGETS) + [
    f
    for b in DOMAIN_BENCHMARKS
    for f in (domain_matrix_file(b), f"results/figures/{b}_domains.png")
]
