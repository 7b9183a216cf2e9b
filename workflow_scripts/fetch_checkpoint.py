"""Rule fetch_checkpoint: one checkpoint sheet row (zenodo, hf, url or file) -> resources/checkpoints/<name>.pt."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.fetch import fetch, provenance_path, redact
from divcoeff.logs import log_to

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    out = snakemake.output
    # fetch() writes <checkpoint>.provenance.json itself, after the checkpoint is in place.
    assert Path(out.provenance) == provenance_path(out.checkpoint), (out.provenance, out.checkpoint)
    # A url row may carry user:password@ or ?token=...: only the redacted form is ever shown.
    log.info("checkpoint %s: %s %s", snakemake.wildcards.name, p.source, redact(p.uri))
    # The fetch settings come from the config, not from params: retries and timeouts do not
    # change the file, so they stay out of the between-workflow cache key.
    fetch(p.source, p.uri, out.checkpoint, p.checksum or None, settings=snakemake.config.get("fetch"))
