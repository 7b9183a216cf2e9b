"""Rule build_view: resolve a training set or the held-out set into a view table."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.data.indexed import IndexedDataset
from divcoeff.data.views import build_view, write_view
from divcoeff.logs import log_to

with log_to(snakemake.log[0]) as log:
    spec = dict(snakemake.params.spec)
    datasets = {b: IndexedDataset.load(Path(snakemake.input[f"{b}_manifest"]).parent) for b in spec["benchmarks"]}
    shape = snakemake.params.task_shape
    table, meta = build_view(snakemake.wildcards.view, spec, datasets, seed=snakemake.params.seed,
                             min_classes_per_component=snakemake.params.min_ways,
                             task_shape=tuple(shape) if shape else None, inputs=snakemake.params.inputs)
    log.info("view %s: %d classes, %d images, components %s", meta["name"], meta["n_classes"],
             meta["n_images"], meta["resolved"]["classes_per_component"])
    write_view(snakemake.output.tsv, snakemake.output.meta, table, meta)
