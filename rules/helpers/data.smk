# Data stage helpers (rules/data.smk): which views exist, what each is built from.


VIEWS = (
    TRAIN_SETS
    + [EVAL.name]
    + ([PROBE_POOL] if PROBE_POOL else [])
    + list(OWN_TEST_VIEWS)
)
# A probe with normalisation: dataset reads the train set views' images normalised per benchmark
# (what View.images hands out by default for them), exactly as the published protocol feeds checkpoints.
TRAIN_VIEW_INPUTS = "normalised" if DIV.probe.normalisation == "dataset" else "pixels"


def view_spec(view):
    """The config entry a view is built from: a train set, the evaluation set, or a train set's own
    test view. A train set's `level` is a label for the statistics, not part of the data.
    """
    if view == EVAL.name:
        return EVAL.view_spec()
    if view in OWN_TEST_VIEWS:
        return own_test_settings(OWN_TEST_VIEWS[view]).view_spec()
    if view == PROBE_POOL:
        pool = DIV.probe.pool
        benchmarks = list(pool.benchmarks) or list(
            dict.fromkeys(b for t in S.train_sets.values() for b in t["benchmarks"])
        )
        return {
            "kind": "probe",
            "benchmarks": benchmarks,
            "split": pool.split,
            "domains": "all",
        }
    return {
        "kind": "train",
        **{k: v for k, v in S.train_sets[view].items() if k != "level"},
    }


def view_default_inputs(view):
    """What the view's images are by default (View.images): normalised for the train sets a
    dataset-normalised probe reads, else pixels in [0, 1]."""
    return TRAIN_VIEW_INPUTS if view in TRAIN_SETS else "pixels"


def view_inputs(wildcards):
    """The indexed-dataset files of every benchmark a view draws from, named <benchmark>_<file>;
    for the held-out view also the training sets' views it must not overlap (train_<set>, train-meta_<set>).
    """
    files = {}
    for b in view_spec(wildcards.view)["benchmarks"]:
        for kind, path in dataset_files(b).items():
            files[f"{b}_{kind}"] = path
    # A train set that selects its domains by diversity reads its benchmark's domain matrix.
    if wildcards.view in S.train_sets and S.train_sets[wildcards.view]["select"]:
        for b in S.train_sets[wildcards.view]["benchmarks"]:
            files[f"domains_{b}"] = f"results/diversity/{b}-domains.tsv"
    if wildcards.view == EVAL.name:
        for ts in USED_TRAIN_SETS:
            files[f"train_{ts}"] = f"results/views/{ts}.tsv"
            # Its JSON too: View.load checks the table against the hash stored there.
            files[f"train-meta_{ts}"] = f"results/views/{ts}.json"
    return files
