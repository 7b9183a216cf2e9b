"""Rule diversity: the Task2Vec diversity coefficient of one training set with one probe (docs/formats.md section 5).

snakemake.params.train_set; .diversity: the diversity settings with the job's probe (DiversitySettings.job_params);
a probe with image_size null takes the train set view's size (the tensors the checkpoints receive).
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.task2vec.coefficient import run_diversity
from divcoeff.logs import log_to
from divcoeff.settings import DiversityCompute, DiversitySettings

with log_to(snakemake.log[0]):
    settings = dict(snakemake.params.diversity)
    if settings["probe"]["image_size"] is None:
        view_size = json.loads(Path(snakemake.input.meta).read_text())["image_size"]
        settings["probe"] = {**settings["probe"], "image_size": int(view_size)}
    run_diversity(
        train_set=snakemake.params.train_set,
        view_tsv=snakemake.input.tsv,
        episodes_path=snakemake.input.episodes,
        out_json=snakemake.output.json,
        out_npy=snakemake.output.npy,
        div=DiversitySettings.from_config(settings),
        compute=DiversityCompute.from_job(snakemake.resources, snakemake.threads),
        master_seed=snakemake.params.master_seed,
        checkpoint_path=snakemake.input.get("probe_checkpoint"),
        code_version=snakemake.params.code,
    )
