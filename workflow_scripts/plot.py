"""Rule plot: one scatter plot of diversity vs a metric, from results/summary.tsv, as PNG, PDF and SVG."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.plots import close, save_figure, scatter_plot
from divcoeff.report.stats import format_correlation
from divcoeff.report.summary import read_summary
from divcoeff.seeding import derive_seed
from divcoeff.settings import ReportSettings

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    report = ReportSettings.from_config(p.report)
    metric = snakemake.wildcards.metric
    plot = scatter_plot(read_summary(snakemake.input.tsv), metric, preferred_methods={"pt": report.pt_method},
                        x_ci=report.x_ci, n_boot=report.bootstrap, seed=derive_seed(p.master_seed, "report", report.seed))
    for family, res in plot.families.items():
        log.info("%s (%s), n = %d: %s; %s; fit %s", family, res.method, res.n,
                 format_correlation(res.pearson, "r", 3), format_correlation(res.spearman, "rho", 3),
                 "none" if res.fit is None else f"slope {res.fit.slope:.4g}, intercept {res.fit.intercept:.4g}")
    out = snakemake.output
    save_figure(plot.figure, {"png": out.png, "pdf": out.pdf, "svg": out.svg}, dpi=report.dpi)
    close(plot)
