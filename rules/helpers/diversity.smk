# Diversity stage helpers (rules/diversity.smk): one coefficient per train set and probe.


PROBES_DIR = (
    "probes"  # results/diversity/probes/<probe>/<train_set>.json: diversity.probes
)


def diversity_targets():
    """target -> (train set, probe name or None): <train_set> for diversity.probe, probes/<probe>/<train_set>
    for each of diversity.probes."""
    out = {t: (t, None) for t in TRAIN_SETS}
    out.update(
        {f"{PROBES_DIR}/{p}/{t}": (t, p) for p in DIV.probes for t in TRAIN_SETS}
    )
    return out


DIVERSITY_TARGETS = diversity_targets()


def diversity_inputs(wildcards):
    """A train set's view and diversity episodes, and the probe's checkpoint when the probe is one."""
    train_set, probe_name = DIVERSITY_TARGETS[wildcards.target]
    files = {
        "tsv": f"results/views/{train_set}.tsv",
        "meta": f"results/views/{train_set}.json",
        "episodes": diversity_episodes_file(train_set),
    }
    probe = DIV.for_probe(probe_name).probe
    if probe.kind == "checkpoint":
        name = probe.checkpoint
        if name not in CKPTS.index:
            raise ValueError(
                f"{CONFIG_SOURCE}: diversity.probe.checkpoint: {name!r} is not a checkpoint of "
                f"{S.checkpoint_sheet} (replicates of a row are <row>-r0, <row>-r1, ...)"
            )
        files["probe_checkpoint"] = checkpoint_file(name)
    elif probe.pretrained_here:
        files["probe_checkpoint"] = PROBE_FILE
    return files
