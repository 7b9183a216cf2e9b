"""Rule statistics: the design's statistics from results/summary.tsv and the per-episode arrays.

snakemake.input.tsv          results/summary.tsv
snakemake.input.npz          every checkpoint's results/eval/<checkpoint>.npz (matched to the
                             summary by file name; controls' files may be listed, they are not used)
snakemake.params.master_seed, .report (the report: settings, divcoeff.settings.ReportSettings)
snakemake.params.evaluation  the evaluation the statistics are about (the held-out one; own-test rows are left out)
snakemake.params.selections  {train set: {select, domains}}: which sets were chosen by diversity (select: max | min | random)
snakemake.output.correlation results/correlation.tsv       (divcoeff.report.design.CORRELATION_COLUMNS
                             + divcoeff.report.within.WITHIN_COLUMNS: the slope within count level)
snakemake.output.paired      results/paired_comparison.tsv (divcoeff.report.paired.PAIRED_COLUMNS; also
                             max vs min and max vs random at the same k, divcoeff.report.within)
"""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.design import correlation_table, write_tsv
from divcoeff.report.paired import load_episode_arrays, npz_paths_by_checkpoint, paired_comparison_table
from divcoeff.report.summary import of_evaluation, read_summary
from divcoeff.report.within import add_within_columns, selection_rows
from divcoeff.seeding import derive_seed
from divcoeff.settings import ReportSettings

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    report = ReportSettings.from_config(p.report)
    seed = derive_seed(p.master_seed, "report", report.seed)
    summary = of_evaluation(read_summary(snakemake.input.tsv), getattr(p, "evaluation", None))

    metrics = tuple(p.metrics)
    corr = correlation_table(summary, metrics=metrics, pt_method=report.pt_method, n_boot=report.bootstrap, seed=seed)
    corr = add_within_columns(corr, summary, pt_method=report.pt_method, n_boot=report.bootstrap, seed=seed)
    write_tsv(corr, snakemake.output.correlation)
    for row in corr.itertuples():
        log.info("%s x %s: %s checkpoints, %s training sets: r %.3f [%.3f, %.3f], slope %.4g [%.4g, %.4g]%s",
                 row.family, row.metric, row.n_checkpoints, row.n_train_sets, row.r, row.r_lo, row.r_hi, row.slope,
                 row.slope_lo, row.slope_hi, f" ({row.note})" if row.note else "")
        log.info("%s x %s within count level (%s levels inform it): slope %.4g [%.4g, %.4g]%s", row.family,
                 row.metric, row.n_levels_within, row.slope_within, row.slope_within_lo, row.slope_within_hi,
                 f" ({row.within_note})" if row.within_note else "")

    paths = npz_paths_by_checkpoint(list(snakemake.input.npz))
    needed = set(summary.loc[summary["role"] == "trained", "checkpoint"])
    missing = sorted(needed - set(paths))
    if missing:
        raise FileNotFoundError(f"no per-episode file in the rule's input for checkpoint(s) {', '.join(missing)} "
                                "(expected results/eval/<checkpoint>.npz)")
    arrays = load_episode_arrays({name: paths[name] for name in sorted(needed)})
    paired = paired_comparison_table(summary, arrays, metrics=metrics, pt_method=report.pt_method,
                                     n_boot=report.bootstrap, seed=seed)
    extra = selection_rows(summary, arrays, dict(getattr(p, "selections", {}) or {}), metrics=metrics,
                           pt_method=report.pt_method, n_boot=report.bootstrap, seed=seed)
    if extra:
        paired = pd.concat([paired, pd.DataFrame(extra, columns=paired.columns)], ignore_index=True)
        for c in ("n_checkpoints_low", "n_checkpoints_high", "n_episodes"):
            paired[c] = paired[c].astype("Int64")
    write_tsv(paired, snakemake.output.paired)
    for row in paired.itertuples():
        log.info("%s x %s, level %s -> %s (%s vs %s checkpoints, %s episodes): diff %.4g [%.4g, %.4g], p %.3g; %s%s",
                 row.family, row.metric, row.level_low, row.level_high, row.n_checkpoints_low, row.n_checkpoints_high,
                 row.n_episodes, row.diff, row.diff_lo, row.diff_hi, row.p_value, row.ci_method.split(":")[0],
                 f" ({row.note})" if row.note else "")
