# Data stage: raw benchmarks -> indexed datasets -> views (training sets, the held-out set)
# -> persisted episode files. Every later stage reads episodes from these files.


include: "helpers/data.smk"


# A picture, not compute: on a cluster it runs on the login node.
localrules:
    montage,


GLYPH_BENCHMARKS = [b for b, spec in S.benchmarks.items() if spec["source"] == "glyphs"]
# A view's mixture components must each hold a whole N-way task.
MIN_WAYS = max(DIV.ways, S.training.maml.ways, EVAL.ways)


rule render_glyphs:
    output:
        **dataset_files("{benchmark}"),
    log:
        "logs/data/render_glyphs_{benchmark}.log",
    benchmark:
        "benchmarks/data/render_glyphs_{benchmark}.tsv"
    wildcard_constraints:
        benchmark=_alternatives(GLYPH_BENCHMARKS),
    conda:
        "../envs/data.yaml"
    params:
        spec=lambda w: dict(S.benchmarks[w.benchmark]),
        name=lambda w: w.benchmark,
        seed=S.seed,
        code=CODE["render_glyphs"],
    script:
        "../workflow_scripts/render_glyphs.py"


rule montage:
    input:
        **dataset_files("{benchmark}"),
    output:
        png=report(
            "results/figures/{benchmark}_montage.png",
            caption="captions/montage.rst",
            category="Data",
        ),
    log:
        "logs/data/montage_{benchmark}.log",
    conda:
        "../envs/data.yaml"
    params:
        code=CODE["montage"],
    script:
        "../workflow_scripts/montage.py"


rule build_view:
    input:
        unpack(view_inputs),
    output:
        tsv="results/views/{view}.tsv",
        meta="results/views/{view}.json",
    log:
        "logs/data/build_view_{view}.log",
    wildcard_constraints:
        view=_alternatives(VIEWS),
    conda:
        "../envs/data.yaml"
    params:
        spec=lambda w: view_spec(w.view),
        seed=S.seed,
        min_ways=MIN_WAYS,
        # Training sets: every component must offer more than one distinct diversity task.
        task_shape=lambda w: (
            [DIV.ways, DIV.shots + DIV.queries] if w.view in TRAIN_SETS else None
        ),
        allow_overlap=lambda w: EVAL.allow_overlap if w.view == EVAL.name else None,
        inputs=lambda w: view_default_inputs(w.view),
        # select: max | min searches every set of k domains up to this many (domains.exact_limit).
        exact_limit=lambda w: (
            DOMAINS.exact_limit if view_spec(w.view).get("select") else None
        ),
        code=CODE["build_view"],
    script:
        "../workflow_scripts/build_view.py"


rule sample_episodes:
    input:
        tsv="results/views/{view}.tsv",
        meta="results/views/{view}.json",
    output:
        episodes="results/episodes/{view}/{ways}way-{shots}shot-{queries}query-{n}x-seed{seed}.json",
    log:
        "logs/data/episodes_{view}_{ways}way-{shots}shot-{queries}query-{n}x-seed{seed}.log",
    wildcard_constraints:
        ways=r"\d+",
        shots=r"\d+",
        queries=r"\d+",
        n=r"\d+",
        seed=r"\d+",
    conda:
        "../envs/data.yaml"
    params:
        master_seed=S.seed,
        code=CODE["sample_episodes"],
    script:
        "../workflow_scripts/sample_episodes.py"


# This stage's final targets (rule all).
DATA_ALL = (
    expand("results/figures/{b}_montage.png", b=GLYPH_BENCHMARKS)
    + [eval_episodes_file()]
    + [eval_episodes_file(own_test_settings(t)) for t in OWN_TEST_VIEWS.values()]
    + [diversity_episodes_file(t) for t in TRAIN_SETS]
)
