"""Rule summarize: join the checkpoint list, the evaluation JSONs and the diversity JSONs into results/summary.tsv.

snakemake.params.checkpoints: one dict per evaluated checkpoint (name, family, arch, train_set,
level, replicate, role, eval, diversity); controls have no train_set and no diversity file.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.summary import build_summary, result_paths, write_summary

with log_to(snakemake.log[0]) as log:
    checkpoints = snakemake.params.checkpoints
    eval_paths, diversity_paths = result_paths(checkpoints)
    table = build_summary(checkpoints, eval_paths=eval_paths, diversity_paths=diversity_paths)
    write_summary(table, snakemake.output.tsv)
    per_role = table.drop_duplicates("checkpoint")["role"].value_counts().to_dict()
    log.info("%d rows (%d checkpoints: %s; methods %s) -> %s", len(table), table["checkpoint"].nunique(),
             ", ".join(f"{n} {r}" for r, n in per_role.items()), ", ".join(table["method"].unique()),
             snakemake.output.tsv)
