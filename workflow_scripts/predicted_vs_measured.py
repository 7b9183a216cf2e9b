"""Rule predicted_vs_measured: each training set's coefficient as its domains predict it (the domain
matrix) against the measured one; and the design check (spread inside a level vs gap between levels)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.prediction import write_prediction_files

with log_to(snakemake.log[0]):
    write_prediction_files(
        matrices=dict(zip(snakemake.params.benchmarks, snakemake.input.matrices)),
        views=list(snakemake.input.views),
        diversity=list(snakemake.input.diversity),
        levels=dict(snakemake.params.levels),
        out_tsv=snakemake.output.tsv,
        out_design=snakemake.output.design,
    )
