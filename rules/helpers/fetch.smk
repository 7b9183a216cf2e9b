# Fetch stage helpers (rules/fetch.smk): which sheet rows are downloaded or copied.


# Checkpoints the workflow downloads or copies rather than makes.
FETCHED_CHECKPOINTS = [
    n for n in CKPTS.index if CKPTS.loc[n, "source"] not in MADE_HERE
]
FETCHED_CHECKPOINTS_RE = _alternatives(FETCHED_CHECKPOINTS)


def fetched_checkpoint_input(wildcards):
    """A `file` row's local path is an input: editing that file makes the copy out of date."""
    if CKPTS.loc[wildcards.name, "source"] == "file":
        return {"local": CKPTS.loc[wildcards.name, "uri"]}
    return {}
