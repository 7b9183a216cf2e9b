# divcoeff: does the Task2Vec diversity of a model's training data predict its few-shot
# performance on a fixed held-out benchmark? Stages follow docs/formats.md:
# fetch -> data -> train -> diversity -> evaluate -> report.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"


rule all:
    input:
        ALL_TARGETS,
    default_target: True
