# Diversity stage: the Task2Vec diversity coefficient of each training set (per train set, not
# per checkpoint), from its persisted diversity episodes, on the probe the config names.

# Bumped whenever the library's embeddings change for the same config; as a param it makes
# Snakemake rerun the diversity jobs of an existing results/ (2: one head init for all tasks).
EMBEDDING_REVISION = 2


rule diversity:
    input:
        unpack(diversity_inputs),
    output:
        json="results/diversity/{train_set}.json",
        npy="results/diversity/{train_set}.npy",
    params:
        div=DIV,
        revision=EMBEDDING_REVISION,
        master_seed=config["seed"],
        device=config["device"],
    wildcard_constraints:
        train_set=_alternatives(TRAIN_SETS),
    # One thread: on a small machine two train sets run side by side, which beats one job
    # with two threads (the work is many small kernels). Profiles may raise it (set-threads).
    threads: 1
    log:
        "logs/diversity/{train_set}.log",
    benchmark:
        "benchmarks/diversity/{train_set}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/diversity.py"


ALL_TARGETS.extend(expand("results/diversity/{t}.json", t=TRAIN_SETS))
