"""Rule sample_episodes: draw and persist the fixed episodes of a view."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))

from divcoeff.data.episodes import sample_episodes, write_episodes
from divcoeff.data.views import View
from divcoeff.logs import log_to
from divcoeff.seeding import derive_seed

with log_to(snakemake.log[0]) as log:
    w = snakemake.wildcards
    view = View.load(snakemake.input.tsv)
    # The file name carries the stage seed; the master seed is mixed in so a new master seed
    # gives new episodes too.
    seed = derive_seed(snakemake.params.master_seed, int(w.seed))
    eps = sample_episodes(view, int(w.ways), int(w.shots), int(w.queries), int(w.n), seed)
    eps.meta["seed"] = int(w.seed)
    eps.meta["master_seed"] = snakemake.params.master_seed
    write_episodes(snakemake.output.episodes, eps)
    log.info("%d episodes of %s: %d-way %d-shot %d-query", eps.n_episodes, view.name, eps.ways, eps.shots, eps.queries)
