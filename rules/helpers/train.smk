# Train stage helpers (rules/train.smk): the checkpoints the workflow makes itself.
from divcoeff.training.groups import replicate_groups

# Checkpoints the workflow makes itself: trained (source train) or untrained controls (init).
TRAINED_CHECKPOINTS = [n for n in CKPTS.index if CKPTS.loc[n, "source"] in MADE_HERE]
TRAINED_CHECKPOINTS_RE = _alternatives(TRAINED_CHECKPOINTS)
# One training job per group of training.replicate_group replicates of a row (divcoeff.training.groups).
TRAIN_GROUPS = replicate_groups(
    CKPTS.loc[TRAINED_CHECKPOINTS].to_dict("records"), S.training.replicate_group
)
TRAIN_GROUPS_RE = _alternatives(TRAIN_GROUPS)
GROUP_OF = {n: g for g, names in TRAIN_GROUPS.items() for n in names}


def train_group_row(group):
    """The sheet row (first member's) of a training group: family, train set, source."""
    return CKPTS.loc[TRAIN_GROUPS[group][0]]


def train_view_files(wildcards):
    """The view of the group's training set (docs/formats.md section 2)."""
    view = train_group_row(wildcards.group)["train_set"]
    return {"tsv": f"results/views/{view}.tsv", "meta": f"results/views/{view}.json"}


if TRAINED_CHECKPOINTS and TRAIN_VIEW_INPUTS == "normalised":
    # Training normalises the view's [0, 1] pixels itself (divcoeff.training.common); a view that hands
    # out dataset-normalised images would be normalised twice.
    raise ValueError(
        f"{CONFIG_SOURCE}: diversity.probe.normalisation: dataset makes the train set views hand out "
        f"normalised images, which training would normalise again; sheet rows made here "
        f"({', '.join(TRAINED_CHECKPOINTS[:3])}) need a config with normalisation: imagenet"
    )
