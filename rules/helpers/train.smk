# Train stage helpers (rules/train.smk): the checkpoints the workflow makes itself.


# Checkpoints the workflow makes itself: trained (source train) or untrained controls (init).
TRAINED_CHECKPOINTS = [n for n in CKPTS.index if CKPTS.loc[n, "source"] in MADE_HERE]
TRAINED_CHECKPOINTS_RE = _alternatives(TRAINED_CHECKPOINTS)


def train_view_files(wildcards):
    """The view of the checkpoint's training set (docs/formats.md section 2)."""
    view = CKPTS.loc[wildcards.name, "train_set"]
    return {"tsv": f"results/views/{view}.tsv", "meta": f"results/views/{view}.json"}


if TRAINED_CHECKPOINTS and TRAIN_VIEW_INPUTS == "normalised":
    # Training normalises the view's [0, 1] pixels itself (divcoeff.training.common); a view that hands
    # out dataset-normalised images would be normalised twice.
    raise ValueError(
        f"{CONFIG_SOURCE}: diversity.probe.normalisation: dataset makes the train set views hand out "
        f"normalised images, which training would normalise again; sheet rows made here "
        f"({', '.join(TRAINED_CHECKPOINTS[:3])}) need a config with normalisation: imagenet"
    )
