"""Rule summarize: join the sheet, the evaluation JSONs and the diversity JSONs into results/summary.tsv."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.summary import build_summary, write_summary

with log_to(snakemake.log[0]) as log:
    checkpoints = snakemake.params.checkpoints
    table = build_summary(
        checkpoints,
        eval_paths={c["name"]: c["eval"] for c in checkpoints},
        diversity_paths={c["train_set"]: c["diversity"] for c in checkpoints},
    )
    write_summary(table, snakemake.output.tsv)
    log.info("%d rows (%d checkpoints, methods %s) -> %s", len(table), table["checkpoint"].nunique(),
             ", ".join(table["method"].unique()), snakemake.output.tsv)
