# Diversity stage: the Task2Vec diversity coefficient of each training set (per train set, not
# per checkpoint), from its persisted diversity episodes, on the probe the config names.

# The probe the workflow pretrains itself (diversity.probe.weights: pool): one file, cached like
# any output, reused by every training set's coefficient.
rule train_probe:
    input:
        tsv=f"results/views/{PROBE_POOL}.tsv",
        meta=f"results/views/{PROBE_POOL}.json",
    output:
        probe=PROBE_FILE,
    params:
        probe=DIV.probe.as_dict(),
        master_seed=S.seed,
        seed=DIV.seed,
        code=CODE["train_probe"],
    threads: S.compute.probe.threads
    resources:
        **S.compute.probe.resources(),
    log:
        "logs/diversity/train_probe.log",
    benchmark:
        "benchmarks/diversity/train_probe.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/train_probe.py"


rule diversity:
    input:
        unpack(diversity_inputs),
    output:
        json="results/diversity/{train_set}.json",
        npy="results/diversity/{train_set}.npy",
    params:
        diversity=DIV.as_dict(),
        master_seed=S.seed,
        code=CODE["diversity"],
    wildcard_constraints:
        train_set=_alternatives(TRAIN_SETS),
    # compute.diversity: threads and resources (task_batch, engine, ...), not a rerun trigger.
    threads: S.compute.diversity.threads
    resources:
        **S.compute.diversity.resources(),
    log:
        "logs/diversity/{train_set}.log",
    benchmark:
        "benchmarks/diversity/{train_set}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/diversity.py"


ALL_TARGETS.extend(expand("results/diversity/{t}.json", t=TRAIN_SETS))
