# Evaluate stage: every checkpoint of the sheet on the same held-out episodes; few-shot accuracy
# and query loss per episode, mean and 95% CI (docs/formats.md section 6). A GPU is used when the
# job has one (resources come from the profile, e.g. profiles/slurm); CPU-only machines run as is.


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        json="results/eval/{name}.json",
        npz="results/eval/{name}.npz",
    params:
        row=evaluate_sheet_row,
        evaluation=lambda w: EVAL.for_family(CKPTS.loc[w.name, "family"]),
        code=CODE["evaluate"],
    wildcard_constraints:
        name=EVALUATED_CHECKPOINTS_RE,
    # compute.evaluate: threads and resources (batch_size, ...), not a rerun trigger.
    threads: S.compute.evaluate.threads
    resources:
        **S.compute.evaluate.resources(),
    log:
        "logs/eval/{name}.log",
    benchmark:
        "benchmarks/eval/{name}.tsv"
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate.py"


ALL_TARGETS.extend(expand("results/eval/{name}.json", name=CKPTS.index))
