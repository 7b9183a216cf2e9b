# Train stage: the sheet rows with source `train` - a PT or MAML ResNet-12 on the view of their
# training set, with the architecture, optimiser, steps and images per step of `training:`
# held fixed, so that across training sets only the data differs (divcoeff.training) - and the
# controls (source `init`): the same network untrained, its BatchNorm statistics taken from the
# train set's images. One job per replicate (<row>-r<k>), each with its own seed.
# GPU: profiles give this rule `resources: gpu=1`; without a GPU it runs on the CPU.


include: "helpers/train.smk"


rule train_checkpoint:
    input:
        unpack(train_view_files),
    output:
        checkpoint="results/checkpoints/{name}.pt",
    log:
        "logs/train/{name}.log",
    benchmark:
        "benchmarks/train/{name}.tsv"
    wildcard_constraints:
        name=TRAINED_CHECKPOINTS_RE,
    conda:
        "../envs/torch.yaml"
    # compute.train: one thread by default (two checkpoints side by side beat one job with two
    # threads on small convolutions); profiles may raise it (set-threads). Not a rerun trigger.
    threads: S.compute.train.threads
    resources:
        **S.compute.train.resources(),
    params:
        family=lambda w: CKPTS.loc[w.name, "family"],
        train_set=lambda w: CKPTS.loc[w.name, "train_set"],
        source=lambda w: CKPTS.loc[w.name, "source"],
        train_set_spec=lambda w: view_spec(CKPTS.loc[w.name, "train_set"]),
        training=lambda w: (
            S.training.checkpoint_params()
            if CKPTS.loc[w.name, "source"] == "train"
            else S.training.architecture_params()
        ),
        master_seed=S.seed,
        code=CODE["train_checkpoint"],
    script:
        "../workflow_scripts/train_checkpoint.py"


# The evaluate stage consumes these; listed here too so that the train stage alone builds them
# (harmless once evaluation depends on them).
TRAIN_ALL = [f"results/checkpoints/{n}.pt" for n in TRAINED_CHECKPOINTS]
