# Report stage: the summary table (one row per checkpoint x evaluation method) and the scatter
# plots of training-data diversity against few-shot performance, all captioned for
# `snakemake --report` (rules/captions/*.rst). Light work: no benchmark files.


include: "helpers/report.smk"


REPORT = S.report
# What the plots and the statistics depend on (the published table feeds only published_comparison).
REPORT_PARAMS = {k: v for k, v in REPORT.as_dict().items() if k != "published"}


# Light: on a cluster these run on the login node, not as jobs.
localrules:
    summarize,
    statistics,
    plot,
    published_comparison,


rule summarize:
    input:
        evals=report_eval_files,
        diversity=report_diversity_files,
    output:
        tsv=report(
            "results/summary.tsv",
            caption="captions/summary.rst",
            category="Results",
            subcategory="Summary table",
            labels={"table": "summary.tsv"},
        ),
    log:
        "logs/report/summarize.log",
    conda:
        "../envs/report.yaml"
    params:
        checkpoints=report_checkpoints(),
        code=CODE["summarize"],
    script:
        "../workflow_scripts/summarize.py"


# The statistics that follow the design: a correlation and slope per family and metric with a
# bootstrap over training sets and, inside them, seeds; and the most vs least diverse level on
# the shared episodes, paired.
rule statistics:
    input:
        tsv="results/summary.tsv",
        npz=report_npz_files,
    output:
        correlation=report(
            "results/correlation.tsv",
            caption="captions/correlation.rst",
            category="Results",
            subcategory="Statistics",
            labels={"table": "correlation.tsv"},
        ),
        paired=report(
            "results/paired_comparison.tsv",
            caption="captions/paired_comparison.rst",
            category="Results",
            subcategory="Statistics",
            labels={"table": "paired_comparison.tsv"},
        ),
    log:
        "logs/report/statistics.log",
    conda:
        "../envs/report.yaml"
    params:
        master_seed=S.seed,
        report=REPORT_PARAMS,
        evaluation=EVAL.name,
        metrics=[m for m in report_metrics() if m != "loss"],
        # Sets chosen by diversity (select: max | min | random): compared at the same k.
        selections={
            t: {"select": spec["select"], "domains": spec["domains"]}
            for t, spec in S.train_sets.items()
            if spec["select"]
        },
        code=CODE["statistics"],
    script:
        "../workflow_scripts/statistics.py"


rule plot:
    input:
        tsv="results/summary.tsv",
        correlation="results/correlation.tsv",
    output:
        png=report(
            "results/figures/diversity_vs_{metric}.png",
            caption="captions/scatter.rst",
            category="Results",
            subcategory="Diversity vs {metric}",
            labels={"figure": "diversity vs {metric}", "format": "PNG"},
        ),
        pdf=report(
            "results/figures/diversity_vs_{metric}.pdf",
            caption="captions/scatter.rst",
            category="Results",
            subcategory="Diversity vs {metric}",
            labels={"figure": "diversity vs {metric}", "format": "PDF"},
        ),
        svg=report(
            "results/figures/diversity_vs_{metric}.svg",
            caption="captions/scatter.rst",
            category="Results",
            subcategory="Diversity vs {metric}",
            labels={"figure": "diversity vs {metric}", "format": "SVG"},
        ),
    log:
        "logs/report/plot_{metric}.log",
    wildcard_constraints:
        metric=_alternatives(report_metrics()),
    conda:
        "../envs/report.yaml"
    params:
        master_seed=S.seed,
        report=REPORT_PARAMS,
        evaluation=EVAL.name,
        code=CODE["plot"],
    script:
        "../workflow_scripts/plot.py"


# The coefficient each training set's domains predict (the matrix of its benchmark) against the one
# measured on its tasks; and the design check: the coefficients' spread inside each level against
# the gap between the levels' means.
rule predicted_vs_measured:
    input:
        matrices=[domain_matrix_file(b) for b in DOMAIN_BENCHMARKS],
        views=expand("results/views/{t}.json", t=TRAIN_SETS),
        diversity=expand("results/diversity/{t}.json", t=TRAIN_SETS),
    output:
        tsv="results/diversity/predicted_vs_measured.tsv",
        design="results/design_check.tsv",
    log:
        "logs/diversity/predicted_vs_measured.log",
    conda:
        "../envs/report.yaml"
    params:
        benchmarks=DOMAIN_BENCHMARKS,
        levels={t: train_set_level(t) for t in TRAIN_SETS},
        code=CODE["predicted_vs_measured"],
    script:
        "../workflow_scripts/predicted_vs_measured.py"


# This stage's final targets (rule all); the published comparison's is added below when configured.
REPORT_ALL = [
    "results/summary.tsv",
    "results/correlation.tsv",
    "results/paired_comparison.tsv",
] + report_figures()
if DOMAIN_BENCHMARKS:
    REPORT_ALL += [
        "results/diversity/predicted_vs_measured.tsv",
        "results/design_check.tsv",
    ]


# The published tables next to ours (report.published: config/paper/published.tsv): every published
# value our results match (own-test accuracies, coefficients with the same probe and split).
rule published_comparison:
    input:
        summary="results/summary.tsv",
        published=PUBLISHED_TABLE or [],
        diversity=expand("results/diversity/{t}.json", t=DIVERSITY_TARGETS),
    output:
        tsv=report(
            "results/published_vs_reproduced.tsv",
            caption="captions/published.rst",
            category="Results",
            subcategory="Published vs reproduced",
            labels={"table": "published_vs_reproduced.tsv"},
        ),
        png=report(
            "results/figures/published_vs_reproduced.png",
            caption="captions/published.rst",
            category="Results",
            subcategory="Published vs reproduced",
            labels={"figure": "published vs reproduced", "format": "PNG"},
        ),
        pdf="results/figures/published_vs_reproduced.pdf",
        svg="results/figures/published_vs_reproduced.svg",
    log:
        "logs/report/published_comparison.log",
    conda:
        "../envs/report.yaml"
    params:
        splits={t: spec["split"] for t, spec in S.train_sets.items()},
        dpi=REPORT.dpi,
        code=CODE["published_comparison"],
    script:
        "../workflow_scripts/published_comparison.py"


if PUBLISHED_TABLE:
    REPORT_ALL.append("results/published_vs_reproduced.tsv")
