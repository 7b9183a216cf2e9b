"""Rule plot: one scatter plot of diversity vs a metric, from results/summary.tsv, as PNG, PDF and SVG.

snakemake.input.tsv           results/summary.tsv
snakemake.input.correlation   results/correlation.tsv (optional): the plot prints the same figures and
                              fails if they differ from those it recomputes (a stale file)
snakemake.params.master_seed, .report (the report: settings, divcoeff.settings.ReportSettings)
snakemake.params.evaluation   the evaluation plotted (the held-out one)
snakemake.wildcards.metric    accuracy | loss | loss_calibrated
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.design import read_correlation
from divcoeff.report.plots import close, family_stats_line, family_label, save_figure, scatter_plot, METRIC_AXES
from divcoeff.report.summary import of_evaluation, read_summary
from divcoeff.seeding import derive_seed
from divcoeff.settings import ReportSettings

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    report = ReportSettings.from_config(p.report)
    metric = snakemake.wildcards.metric
    corr_path = getattr(snakemake.input, "correlation", None)
    correlations = read_correlation(corr_path) if corr_path else None
    summary = of_evaluation(read_summary(snakemake.input.tsv), getattr(p, "evaluation", None))
    plot = scatter_plot(summary, metric, pt_method=report.pt_method, x_ci=report.x_ci,
                        n_boot=report.bootstrap, seed=derive_seed(p.master_seed, "report", report.seed),
                        correlations=correlations)
    for i, (family, res) in enumerate(plot.families.items()):
        log.info("%s", family_stats_line(family_label(family, res.method, i), res.fit, METRIC_AXES[metric].unit))
    out = snakemake.output
    save_figure(plot.figure, {"png": out.png, "pdf": out.pdf, "svg": out.svg}, dpi=report.dpi)
    close(plot)
