"""Rule published_comparison: published values next to ours -> results/published_vs_reproduced.tsv + figure.

snakemake.input.summary      results/summary.tsv (own-test rows: the accuracies)
snakemake.input.published    the published table (report.published)
snakemake.input.diversity    every diversity JSON (diversity.probe's and each of diversity.probes')
snakemake.params.splits      train set -> the split its diversity tasks come from
snakemake.params.dpi
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

import matplotlib.pyplot as plt

from divcoeff.io import read_json
from divcoeff.logs import log_to
from divcoeff.report.plots import save_figure
from divcoeff.report.published import NOT_RUN, compare, comparison_figure, read_published, write_comparison
from divcoeff.report.summary import read_summary

with log_to(snakemake.log[0]) as log:
    published = read_published(snakemake.input.published)
    docs = {p: read_json(p) for p in snakemake.input.diversity}
    table = compare(published, read_summary(snakemake.input.summary), docs, dict(snakemake.params.splits))
    write_comparison(table, snakemake.output.tsv)
    for r in table.itertuples():
        if r.status == NOT_RUN:
            log.info("%s %s %s %s: published %.4g: not run here", r.what, r.train_set, r.probe_or_method,
                     r.checkpoint, r.published)
            continue
        verdict = "no published CI" if r.inside_published_ci is None else \
            "inside the published CI" if r.inside_published_ci else "outside the published CI"
        log.info("%s %s %s %s: ours %.4g, published %.4g +- %.3g: %s", r.what, r.train_set, r.probe_or_method,
                 r.checkpoint, r.ours, r.published, r.published_ci95, verdict)
    log.info("%d of %d published values matched a result here", len(published) - (table["status"] == NOT_RUN).sum(),
             len(published))
    out = snakemake.output
    fig = comparison_figure(table, dpi=snakemake.params.dpi)
    save_figure(fig, {"png": out.png, "pdf": out.pdf, "svg": out.svg}, dpi=snakemake.params.dpi)
    plt.close(fig)
