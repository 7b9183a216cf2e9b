"""Rule index_benchmark: read a benchmark's fetched files into the indexed dataset form."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.archives import set_default_limits
from divcoeff.io import read_json
from divcoeff.logs import log_to
from divcoeff.readers import read_benchmark
from divcoeff.settings import fetch_settings

with log_to(snakemake.log[0]) as log:
    # The config's caps on what an archive may expand to (fetch.archive_max_*): they decide only
    # whether a file is refused, so they are read here rather than passed as a rerun trigger.
    set_default_limits(fetch_settings(snakemake.config["fetch"]))
    names = list(snakemake.params.names)
    files = dict(zip(names, snakemake.input.files))
    provenance = dict(zip(names, (read_json(p) for p in snakemake.input.provenance)))
    out = read_benchmark(snakemake.wildcards.benchmark, dict(snakemake.params.spec), files,
                         Path(snakemake.output.manifest).parent, workers=snakemake.threads, provenance=provenance)
    log.info("wrote %s", out)
