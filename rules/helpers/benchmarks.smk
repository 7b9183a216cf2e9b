# Benchmarks stage helpers (rules/benchmarks.smk): the fetched files of each published benchmark.


# Benchmarks read from files as distributed (everything but the rendered glyphs).
FETCHED_BENCHMARKS = [
    b for b, spec in S.benchmarks.items() if spec["source"] != "glyphs"
]


def benchmark_file_entries(benchmark):
    """The benchmark's `files:` entries by name; a name used twice is a config error."""
    entries = {}
    for entry in S.benchmarks[benchmark]["files"]:
        if entry["name"] in entries:
            raise ValueError(
                f"{CONFIG_SOURCE}: benchmarks.{benchmark}.files: the name {entry['name']!r} is used "
                "twice; every file needs its own name"
            )
        entries[entry["name"]] = entry
    return entries


def benchmark_file(benchmark, name):
    return f"resources/benchmarks/{benchmark}/{name}"


def benchmark_provenance(benchmark, name):
    return f"resources/benchmarks/{benchmark}/{name}.provenance.json"


def benchmark_inputs(wildcards):
    """The fetched files of a benchmark and their provenance JSONs, in config order."""
    names = list(benchmark_file_entries(wildcards.benchmark))
    return {
        "files": [benchmark_file(wildcards.benchmark, n) for n in names],
        "provenance": [benchmark_provenance(wildcards.benchmark, n) for n in names],
    }


FETCHED_BENCHMARKS_RE = _alternatives(FETCHED_BENCHMARKS)
BENCHMARK_FILE_NAMES_RE = _alternatives(
    sorted({n for b in FETCHED_BENCHMARKS for n in benchmark_file_entries(b)})
)
