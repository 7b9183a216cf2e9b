# Evaluate stage: every checkpoint of the sheet on the same held-out episodes (results/eval/<name>.json)
# and, with own_test enabled, on the test episodes of its own training set (results/eval/own-test/<name>.json,
# the published tables); few-shot accuracy and query loss per episode, mean and 95% CI (docs/formats.md
# section 6), under evaluation.protocol. A GPU is used when the job has one (resources come from the
# profile, e.g. profiles/slurm); CPU-only machines run as is.


include: "helpers/evaluate.smk"


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        json="results/eval/{target}.json",
        npz="results/eval/{target}.npz",
    log:
        "logs/eval/{target}.log",
    benchmark:
        "benchmarks/eval/{target}.tsv"
    wildcard_constraints:
        target=EVAL_TARGETS_RE,
    conda:
        "../envs/torch.yaml"
    # compute.evaluate: threads and resources (batch_size, ...), not a rerun trigger.
    threads: S.compute.evaluate.threads
    resources:
        **S.compute.evaluate.resources(),
    params:
        row=evaluate_sheet_row,
        evaluation=evaluate_params,
        label=lambda w: EVAL_TARGETS[w.target][0],
        master_seed=S.seed,
        code=CODE["evaluate"],
    script:
        "../workflow_scripts/evaluate.py"


# This stage's final targets (rule all).
EVALUATE_ALL = expand("results/eval/{target}.json", target=EVAL_TARGETS)
