"""Rule diversity: the Task2Vec diversity coefficient of one training set (docs/formats.md section 5)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.diversity import run_diversity
from divcoeff.logs import log_to
from divcoeff.settings import DiversityCompute, DiversitySettings

with log_to(snakemake.log[0]):
    run_diversity(
        train_set=snakemake.wildcards.train_set,
        view_tsv=snakemake.input.tsv,
        episodes_path=snakemake.input.episodes,
        out_json=snakemake.output.json,
        out_npy=snakemake.output.npy,
        div=DiversitySettings.from_config(snakemake.params.diversity),
        compute=DiversityCompute.from_job(snakemake.resources, snakemake.threads),
        master_seed=snakemake.params.master_seed,
        checkpoint_path=snakemake.input.get("probe_checkpoint"),
        code_version=snakemake.params.code,
    )
