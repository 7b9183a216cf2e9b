"""Rule index_benchmark: read a benchmark's fetched files into the indexed dataset form."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.io import read_json
from divcoeff.logs import log_to
from divcoeff.readers import read_benchmark

with log_to(snakemake.log[0]) as log:
    names = list(snakemake.params.names)
    files = dict(zip(names, snakemake.input.files))
    provenance = dict(zip(names, (read_json(p) for p in snakemake.input.provenance)))
    out = read_benchmark(snakemake.wildcards.benchmark, dict(snakemake.params.spec), files,
                         Path(snakemake.output.manifest).parent, workers=snakemake.threads, provenance=provenance)
    log.info("wrote %s", out)
