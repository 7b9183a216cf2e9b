"""The settings the Task2Vec code takes, built the one way the workflow builds them (from the
schema, the rest its defaults), for tests: ``embed_batch(..., *t2v("exact", exact={...}))``."""
from divcoeff.settings import DiversityCompute, DiversitySettings, compute_settings


def t2v(method: str, *, faithful: dict | None = None, exact: dict | None = None,
        **compute) -> tuple[DiversitySettings, DiversityCompute]:
    """(``diversity:`` settings, ``compute.diversity`` settings); `compute` keys: task_batch, engine,
    exact_chunk_size."""
    div = DiversitySettings.from_config({"method": method, "faithful": faithful or {}, "exact": exact or {}})
    return div, compute_settings({"diversity": compute}).diversity
