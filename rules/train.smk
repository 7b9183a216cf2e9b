# Train stage: the sheet rows with source `train` - a PT or MAML ResNet-12 on the view of their
# training set, with the architecture, optimiser, stopping rule and images per step of `training:`
# held fixed, so that across training sets only the data differs (divcoeff.training) - and the
# controls (source `init`): the same network untrained, its BatchNorm statistics taken from the
# train set's images. Each replicate (<row>-r<k>) has its own seed; one job trains a group of
# training.replicate_group of them one after another (<row>-g<j>: replicates jG..jG+G-1), into
# results/checkpoints/groups/<row>-g<j>/, and each checkpoint is then copied to its own path.
# The group job's benchmark file counts the whole group: CPU seconds per checkpoint are its
# cpu_time over the group's size (each checkpoint's own training time is its meta `seconds`).
# GPU: profiles give this rule `resources: gpu=1`; without a GPU it runs on the CPU.


include: "helpers/train.smk"


localrules:
    checkpoint_from_group,


rule train_checkpoint:
    input:
        unpack(train_view_files),
    output:
        group=directory("results/checkpoints/groups/{group}"),
    log:
        "logs/train/{group}.log",
    benchmark:
        "benchmarks/train/{group}.tsv"
    wildcard_constraints:
        group=TRAIN_GROUPS_RE,
    conda:
        "../envs/torch.yaml"
    # compute.train: one thread by default (two checkpoints side by side beat one job with two
    # threads on small convolutions); profiles may raise it (set-threads). Not a rerun trigger.
    threads: S.compute.train.threads
    resources:
        **S.compute.train.resources(),
    params:
        names=lambda w: TRAIN_GROUPS[w.group],
        family=lambda w: train_group_row(w.group)["family"],
        train_set=lambda w: train_group_row(w.group)["train_set"],
        source=lambda w: train_group_row(w.group)["source"],
        train_set_spec=lambda w: view_spec(train_group_row(w.group)["train_set"]),
        training=lambda w: (
            S.training.checkpoint_params()
            if train_group_row(w.group)["source"] == "train"
            else S.training.architecture_params()
        ),
        master_seed=S.seed,
        code=CODE["train_checkpoint"],
    script:
        "../workflow_scripts/train_checkpoint.py"


# A copy, not a link: the checkpoint must be newer than its group's directory for Snakemake.
rule checkpoint_from_group:
    input:
        group=lambda w: f"results/checkpoints/groups/{GROUP_OF[w.name]}",
    output:
        checkpoint="results/checkpoints/{name}.pt",
    log:
        "logs/train/{name}.log",
    wildcard_constraints:
        name=TRAINED_CHECKPOINTS_RE,
    conda:
        "../envs/torch.yaml"
    shell:
        "(cp {input.group}/{wildcards.name}.pt {output.checkpoint}.part"
        " && mv {output.checkpoint}.part {output.checkpoint}) 2> {log}"


# The evaluate stage consumes these; listed here too so that the train stage alone builds them
# (harmless once evaluation depends on them).
TRAIN_ALL = [f"results/checkpoints/{n}.pt" for n in TRAINED_CHECKPOINTS]
