"""Rule domain_distances: the domain x domain matrix of mean Task2Vec distances of a benchmark
(docs/formats.md section 5b), with the diversity probe and method."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.domains import run_domain_distances
from divcoeff.logs import log_to
from divcoeff.settings import DiversityCompute, DiversitySettings, DomainSettings

with log_to(snakemake.log[0]):
    run_domain_distances(
        benchmark=snakemake.wildcards.benchmark,
        dataset_path=str(Path(snakemake.input.manifest).parent),
        split=snakemake.params.split,
        out_tsv=snakemake.output.tsv,
        out_npy=snakemake.output.npy,
        out_json=snakemake.output.json,
        out_view_tsv=snakemake.output.view,
        div=DiversitySettings.from_config(snakemake.params.diversity),
        compute=DiversityCompute.from_job(snakemake.resources, snakemake.threads),
        domains=DomainSettings.from_config(snakemake.params.domains),
        master_seed=snakemake.params.master_seed,
        checkpoint_path=snakemake.input.get("probe_checkpoint"),
        code_version=snakemake.params.code,
    )
