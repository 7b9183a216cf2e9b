"""Rule render_glyphs: render the glyph benchmark from the installed fonts into an indexed dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.glyphs.build import render_benchmark
from divcoeff.logs import log_to

with log_to(snakemake.log[0]) as log:
    out = render_benchmark(snakemake.params.name, dict(snakemake.params.spec),
                           Path(snakemake.output.manifest).parent, master_seed=snakemake.params.seed)
    log.info("wrote %s", out)
