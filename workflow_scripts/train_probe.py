"""Rule train_probe: pretrain the Task2Vec probe on the probe pool (diversity.probe.weights: pool)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.data.views import View
from divcoeff.device import pick_device, set_threads
from divcoeff.logs import log_to
from divcoeff.seeding import derive_seed
from divcoeff.settings import ProbeSettings, TrainCompute
from divcoeff.training.probe import train_probe, write_probe

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    compute = TrainCompute.from_job(snakemake.resources, snakemake.threads)
    set_threads(compute.threads)
    payload = train_probe(View.load(snakemake.input.tsv), ProbeSettings.from_config(p.probe),
                          seed=derive_seed(p.master_seed, p.seed, "diversity-probe"),
                          device=pick_device(compute.device))
    payload["meta"]["code_version"] = p.code
    write_probe(snakemake.output.probe, payload)
    log.info("wrote %s", snakemake.output.probe)
