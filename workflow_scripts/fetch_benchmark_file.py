"""Rule fetch_benchmark_file: one file of a published benchmark, with its provenance JSON."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.fetch import fetch, provenance_path, redact
from divcoeff.logs import log_to

with log_to(snakemake.log[0]) as log:
    entry = snakemake.params.entry
    out = snakemake.output
    # fetch() writes <file>.provenance.json itself, after the file is verified and in place.
    assert Path(out.provenance) == provenance_path(out.file), (out.provenance, out.file)
    # A url entry may carry user:password@ or ?token=...: only the redacted form is ever shown.
    log.info("benchmark %s, file %s: %s %s", snakemake.wildcards.benchmark, entry["name"], snakemake.params.source,
             redact(entry["uri"]))
    # Settings come from the config, not params: retries and timeouts do not change the file, so
    # they stay out of the between-workflow cache key.
    fetch(snakemake.params.source, entry["uri"], out.file, entry.get("checksum") or None,
          settings=snakemake.config.get("fetch"))
