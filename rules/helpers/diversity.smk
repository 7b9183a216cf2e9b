# Diversity stage helpers (rules/diversity.smk): one coefficient per train set and probe.
from divcoeff.selection import check_select_specs

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


# Snakemake priority (default 0) of the probe and the domain matrix: the critical path.
PRIORITY_CRITICAL = 10


# --- domain distances: T tasks of every domain of a benchmark, embedded like the coefficient's ---
DOMAINS = S.domains
# Benchmarks some train set selects its domains from (train_sets.*.select): their matrix is a
# final target, and those sets' views depend on it.
check_select_specs(S.train_sets, CONFIG_SOURCE)
DOMAIN_BENCHMARKS = sorted(
    {b for t in S.train_sets.values() if t["select"] for b in t["benchmarks"]}
)


def domain_matrix_file(benchmark):
    return f"results/diversity/{benchmark}-domains.tsv"


def domain_probe_input(wildcards):
    """The probe's file, as for the coefficient (diversity_inputs)."""
    probe = DIV.probe
    if probe.kind == "checkpoint":
        return {"probe_checkpoint": checkpoint_file(probe.checkpoint)}
    if probe.pretrained_here:
        return {"probe_checkpoint": PROBE_FILE}
    return {}
