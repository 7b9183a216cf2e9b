"""Rule train_checkpoint: train one group of replicates of a sheet row (PT or MAML) on its training
set's view, one after another, each with its own seed, or make untrained controls (source init)
with that view's BatchNorm statistics; writes <group dir>/<name>.pt per replicate."""
import shutil
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
    settings = TrainSettings.from_config(p.training)
    view = View.load(snakemake.input.tsv)
    out = Path(snakemake.output.group)
    part = out.with_name(out.name + ".part")  # the directory appears whole or not at all
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    digest = config_digest(dict(p.training), dict(p.train_set_spec), p.master_seed)
    for name in p.names:
        common = {"seed": derive_seed(p.master_seed, settings.seed, name), "device": pick_device(compute.device),
                  "name": name, "train_set": p.train_set, "config_sha256": digest, "code_version": p.code}
        if p.source == "init":
            made = untrained_checkpoint(view, settings, **common)
        else:
            made = train_checkpoint(view, p.family, settings, **common)
        write_trained_checkpoint(part / f"{name}.pt", made)
        log.info("trained %s (%d of %d in group %s)", name, p.names.index(name) + 1, len(p.names), out.name)
    shutil.rmtree(out, ignore_errors=True)
    part.rename(out)
    log.info("wrote %s: %s", out, ", ".join(p.names))
