"""Rule fetch_checkpoint: one checkpoint sheet row (zenodo, hf, url or file) -> resources/checkpoints/<name>.pt."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.config import expand_sheet, load_sheet, sheet_path
from divcoeff.fetch import fetch, provenance_path, redact
from divcoeff.logs import log_to
from divcoeff.settings import SHEET_SCHEMA_PATH, fetch_settings

WORKFLOW = Path(snakemake.scriptdir).parent

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    out = snakemake.output
    name = snakemake.wildcards.name
    # fetch() writes <checkpoint>.provenance.json itself, after the checkpoint is in place.
    assert Path(out.provenance) == provenance_path(out.checkpoint), (out.provenance, out.checkpoint)
    # The uri comes from the sheet, not from params (which Snakemake stores in plain text): a url
    # row may carry user:password@ or ?token=..., and only the redacted form is ever shown.
    config = snakemake.config
    sheet = load_sheet(sheet_path(config["checkpoint_sheet"], WORKFLOW), SHEET_SCHEMA_PATH, config)
    row = expand_sheet(sheet, config["training"]["replicates"]).loc[name]
    uri = row["uri"]
    if redact(uri) != p.uri:
        raise RuntimeError(f"checkpoint {name}: the sheet's uri changed while the workflow ran; run it again")
    log.info("checkpoint %s: %s %s", name, p.source, redact(uri))
    # The fetch settings come from the config, not from params: retries and timeouts do not
    # change the file, so they stay out of the between-workflow cache key.
    # A url row is capped at fetch.max_bytes, or held to its own size; errors name the row.
    fetch(p.source, uri, out.checkpoint, p.checksum or None, settings=fetch_settings(config["fetch"]), size=row["size"],
          label=f"checkpoint sheet {config['checkpoint_sheet']}, row {row['row']!r}")
