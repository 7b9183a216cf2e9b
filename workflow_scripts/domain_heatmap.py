"""Rule domain_heatmap: the domain matrix as a picture."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.logs import log_to
from divcoeff.report.domain_plots import save_domain_heatmap

with log_to(snakemake.log[0]):
    save_domain_heatmap(snakemake.input.tsv, snakemake.output.png, dpi=snakemake.params.dpi)
