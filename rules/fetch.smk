# Fetch stage: checkpoint sheet rows with a source other than `train` are downloaded (Zenodo, the
# Hub, a URL) or copied (a local file) to resources/checkpoints/<name>.pt, verified, with a
# provenance JSON next to it (docs/formats.md section 4). Local rules: on a cluster they run on
# the login node, which has the network. Eligible for `--cache`: the same row gives the same file.


include: "helpers/fetch.smk"


localrules:
    fetch_checkpoint,


rule fetch_checkpoint:
    input:
        unpack(fetched_checkpoint_input),
    output:
        checkpoint="resources/checkpoints/{name}.pt",
        provenance="resources/checkpoints/{name}.pt.provenance.json",
    log:
        "logs/fetch/fetch_checkpoint_{name}.log",
    wildcard_constraints:
        name=FETCHED_CHECKPOINTS_RE,
    cache: "omit-software"
    conda:
        "../envs/fetch.yaml"
    params:
        source=lambda w: CKPTS.loc[w.name, "source"],
        # Params are stored in .snakemake/metadata in plain text: the uri goes there redacted (a
        # new password or token fetches the same file), and the job reads it from the sheet.
        uri=lambda w: redact(CKPTS.loc[w.name, "uri"]),
        checksum=lambda w: CKPTS.loc[w.name, "checksum"],
    script:
        "../workflow_scripts/fetch_checkpoint.py"


# This stage's final targets (rule all).
FETCH_ALL = [f"resources/checkpoints/{n}.pt" for n in FETCHED_CHECKPOINTS]
