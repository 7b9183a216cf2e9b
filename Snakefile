# divcoeff: does the Task2Vec diversity of a model's training data predict its few-shot
# performance on a fixed held-out benchmark? Stages follow docs/formats.md:
# fetch -> data -> train -> diversity -> evaluate -> report.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless configs are given with --configfile: Snakemake would otherwise merge
# them into it (the glyph benchmarks and train sets would join config/paper/config.yaml's).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Each stage's file includes its own helpers (rules/helpers/<stage>.smk) and names its final
# targets (<STAGE>_ALL); common.smk holds what every stage needs (config, sheet, paths).
include: "rules/common.smk"
include: "rules/fetch.smk"
include: "rules/benchmarks.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/diversity.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        FETCH_ALL,
        DATA_ALL,
        TRAIN_ALL,
        DIVERSITY_ALL,
        EVALUATE_ALL,
        REPORT_ALL,
