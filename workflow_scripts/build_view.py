"""Rule build_view: resolve a training set or the held-out set into a view table."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.data.indexed import IndexedDataset
from divcoeff.data.views import View, build_view, check_held_out, write_view
from divcoeff.domains import read_matrix
from divcoeff.logs import log_to

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    spec = dict(p.spec)
    datasets = {b: IndexedDataset.load(Path(snakemake.input[f"{b}_manifest"]).parent) for b in spec["benchmarks"]}
    shape = p.task_shape
    # A train set with `select` chooses its domains by its benchmark's domain matrix.
    matrix = read_matrix(snakemake.input[f"domains_{spec['benchmarks'][0]}"]) if spec.get("select") else None
    table, meta = build_view(snakemake.wildcards.view, spec, datasets, seed=p.seed,
                             min_classes_per_component=p.min_ways, task_shape=tuple(shape) if shape else None,
                             inputs=p.inputs, domain_matrix=matrix, exact_limit=p.exact_limit)
    if meta.get("selection"):
        log.info("view %s: select %s (%s search) chose %s, predicted coefficient %.4f", meta["name"],
                 meta["selection"]["select"], meta["selection"]["search"], meta["selection"]["domains"],
                 meta["selection"]["predicted_coefficient"])
    if p.allow_overlap is not None:  # the held-out view: checked against every training set in use
        train = {key[len("train_"):]: View.load(path).table
                 for key, path in snakemake.input.items() if key.startswith("train_")}
        meta["overlap"] = check_held_out(meta["name"], table, train, p.allow_overlap)
        if meta["overlap"]:
            log.warning("held-out view %s overlaps training sets (evaluation.allow_overlap: true): %s",
                        meta["name"], meta["overlap"])
    log.info("view %s: %d classes, %d images, components %s", meta["name"], meta["n_classes"],
             meta["n_images"], meta["resolved"]["classes_per_component"])
    write_view(snakemake.output.tsv, snakemake.output.meta, table, meta)
