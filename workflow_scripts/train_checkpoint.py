"""Rule train_checkpoint: train one PT or MAML checkpoint of the sheet on its training set's view,
or make an untrained control (source init) with that view's BatchNorm statistics."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.data.views import View
from divcoeff.device import pick_device, set_threads
from divcoeff.logs import log_to
from divcoeff.seeding import derive_seed
from divcoeff.settings import TrainCompute, TrainSettings
from divcoeff.training.run import config_digest, train_checkpoint, untrained_checkpoint, write_trained_checkpoint

with log_to(snakemake.log[0]) as log:
    p = snakemake.params
    compute = TrainCompute.from_job(snakemake.resources, snakemake.threads)
    set_threads(compute.threads)
    name = snakemake.wildcards.name
    settings = TrainSettings.from_config(p.training)
    seed = derive_seed(p.master_seed, settings.seed, name)
    view = View.load(snakemake.input.tsv)
    common = {"seed": seed, "device": pick_device(compute.device), "name": name, "train_set": p.train_set,
              "config_sha256": config_digest(dict(p.training), dict(p.train_set_spec), p.master_seed),
              "code_version": p.code}
    if p.source == "init":
        made = untrained_checkpoint(view, settings, **common)
    else:
        made = train_checkpoint(view, p.family, settings, **common)
    write_trained_checkpoint(snakemake.output.checkpoint, made)
    log.info("wrote %s", snakemake.output.checkpoint)
