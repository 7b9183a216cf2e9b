"""Rule fetch_benchmark_file: one file of a published benchmark, with its provenance JSON."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.fetch import fetch, provenance_path, redact
from divcoeff.logs import log_to
from divcoeff.settings import fetch_settings

with log_to(snakemake.log[0]) as log:
    w = snakemake.wildcards
    out = snakemake.output
    # fetch() writes <file>.provenance.json itself, after the file is verified and in place.
    assert Path(out.provenance) == provenance_path(out.file), (out.provenance, out.file)
    # The entry comes from the config, not from params (which Snakemake stores in plain text, so
    # they hold it redacted): a url entry may carry user:password@ or ?token=....
    entry = next(e for e in snakemake.config["benchmarks"][w.benchmark]["files"] if e["name"] == w.filename)
    log.info("benchmark %s, file %s: %s %s", w.benchmark, entry["name"], snakemake.params.source,
             redact(entry["uri"]))
    # Settings come from the config, not params: retries and timeouts do not change the file, so
    # they stay out of the between-workflow cache key.
    # Benchmark files can be far larger than checkpoints: a url file is capped at what one archive
    # may expand to (fetch.archive_max_bytes), or held to its entry's size.
    settings = fetch_settings(snakemake.config["fetch"])
    fetch(snakemake.params.source, entry["uri"], out.file, entry["checksum"] or None, settings=settings,
          size=entry.get("size"), max_bytes=settings.archive_max_bytes,
          label=f"benchmarks.{w.benchmark}.files {entry['name']!r}")
