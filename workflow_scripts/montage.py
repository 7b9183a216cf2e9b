"""Rule montage: a PNG of a few classes per script, so a person can see the data."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.glyphs.montage import save_montage
from divcoeff.logs import log_to

with log_to(snakemake.log[0]):
    save_montage(Path(snakemake.input.manifest).parent, snakemake.output.png)
