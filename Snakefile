# divcoeff: does the Task2Vec diversity of a model's training data predict its few-shot
# performance on a fixed held-out benchmark? Stages follow docs/formats.md:
# fetch -> data -> train -> diversity -> evaluate -> report.
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless configs are given with --configfile: Snakemake would otherwise merge
# them into it (the glyph benchmarks and train sets would join config/paper/config.yaml's).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/fetch.smk"
include: "rules/data.smk"
include: "rules/diversity.smk"
include: "rules/report.smk"
include: "rules/benchmarks.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
