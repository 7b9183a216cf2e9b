# Report stage: the summary table (one row per checkpoint x evaluation method) and the scatter
# plots of training-data diversity against few-shot performance, all captioned for
# `snakemake --report` (report/*.rst). Light work: no benchmark files.

REPORT = S.report


# Light: on a cluster these run on the login node, not as jobs.
localrules:
    summarize,
    statistics,
    plot,


rule summarize:
    input:
        evals=report_eval_files,
        diversity=report_diversity_files,
    output:
        tsv=report("results/summary.tsv", caption="../report/summary.rst", category="Results", subcategory="Summary table", labels={"table": "summary.tsv"}),
    params:
        checkpoints=report_checkpoints(),
        code=CODE["summarize"],
    log:
        "logs/report/summarize.log",
    conda:
        "../envs/report.yaml"
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
        correlation=report("results/correlation.tsv", caption="../report/correlation.rst", category="Results", subcategory="Statistics", labels={"table": "correlation.tsv"}),
        paired=report("results/paired_comparison.tsv", caption="../report/paired_comparison.rst", category="Results", subcategory="Statistics", labels={"table": "paired_comparison.tsv"}),
    params:
        master_seed=S.seed,
        report=REPORT.as_dict(),
        metrics=[m for m in report_metrics() if m != "loss"],
        code=CODE["statistics"],
    log:
        "logs/report/statistics.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/statistics.py"


rule plot:
    input:
        tsv="results/summary.tsv",
        correlation="results/correlation.tsv",
    output:
        png=report("results/figures/diversity_vs_{metric}.png", caption="../report/scatter.rst", category="Results", subcategory="Diversity vs {metric}", labels={"figure": "diversity vs {metric}", "format": "PNG"}),
        pdf=report("results/figures/diversity_vs_{metric}.pdf", caption="../report/scatter.rst", category="Results", subcategory="Diversity vs {metric}", labels={"figure": "diversity vs {metric}", "format": "PDF"}),
        svg=report("results/figures/diversity_vs_{metric}.svg", caption="../report/scatter.rst", category="Results", subcategory="Diversity vs {metric}", labels={"figure": "diversity vs {metric}", "format": "SVG"}),
    params:
        master_seed=S.seed,
        report=REPORT.as_dict(),
        code=CODE["plot"],
    wildcard_constraints:
        metric=_alternatives(report_metrics()),
    log:
        "logs/report/plot_{metric}.log",
    conda:
        "../envs/report.yaml"
    script:
        "../workflow_scripts/plot.py"


ALL_TARGETS.extend(["results/summary.tsv", "results/correlation.tsv", "results/paired_comparison.tsv"])
ALL_TARGETS.extend(report_figures())
