# Evaluate stage helpers (rules/evaluate.smk): every checkpoint on its evaluations' episodes.


# Every checkpoint on the one held-out episode file (results/eval/<name>.json) and, with own_test
# enabled, on its own train set's test episodes (results/eval/own-test/<name>.json).
def eval_targets():
    """target -> (evaluation label, checkpoint)."""
    out = {name: (EVAL.name, name) for name in CKPTS.index}
    if OWN.enabled:
        out.update({f"{OWN_TEST}/{name}": (OWN_TEST, name) for name in CKPTS.index})
    return out


EVAL_TARGETS = eval_targets()
EVAL_TARGETS_RE = _alternatives(EVAL_TARGETS)


def target_evaluation(target):
    """(label, checkpoint name, evaluation settings) of an evaluate target."""
    label, name = EVAL_TARGETS[target]
    settings = (
        EVAL if label == EVAL.name else own_test_settings(CKPTS.loc[name, "train_set"])
    )
    return label, name, settings


def evaluate_inputs(wildcards):
    """The checkpoint, the evaluation's view and its episodes (docs/formats.md sections 2-4)."""
    _, name, settings = target_evaluation(wildcards.target)
    return {
        "checkpoint": checkpoint_file(name),
        "episodes": eval_episodes_file(settings),
        "view_tsv": f"results/views/{settings.name}.tsv",
        "view_json": f"results/views/{settings.name}.json",
    }


def evaluate_params(wildcards):
    """The settings one evaluation of one checkpoint depends on (its family's only)."""
    _, name, settings = target_evaluation(wildcards.target)
    return settings.for_family(CKPTS.loc[name, "family"])


def evaluate_sheet_row(wildcards):
    """What the evaluation needs from the checkpoint's sheet row."""
    _, name, _ = target_evaluation(wildcards.target)
    row = CKPTS.loc[name]
    return {
        "name": name,
        "family": row["family"],
        "train_set": row["train_set"],
        "role": row["role"],
        "allow_pickle": bool(row["allow_pickle"]),
    }
