# Diversity stage: the Task2Vec diversity coefficient of each training set (per train set, not
# per checkpoint), from its persisted diversity episodes, on the probe the config names.


include: "helpers/diversity.smk"


# The probe the workflow pretrains itself (diversity.probe.weights: pool): one file, cached like
# any output, reused by every training set's coefficient.
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


# This stage's final targets (rule all).
DIVERSITY_ALL = expand("results/diversity/{t}.json", t=DIVERSITY_TARGETS)
