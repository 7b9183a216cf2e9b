# Benchmarks stage: the published benchmarks' files as distributed (Zenodo, the Hub, URLs, local
# paths) are fetched into resources/benchmarks/<benchmark>/ and read by divcoeff.readers into the
# indexed form (results/data/<benchmark>/, docs/formats.md section 1) that the data stage's views use.
# Glyph benchmarks are rendered by rules/data.smk instead; the wildcard constraints keep the two apart.


include: "helpers/benchmarks.smk"


localrules:
    fetch_benchmark_file,


# One file of one benchmark, with a provenance JSON (source, URI, checksums) next to it.
rule fetch_benchmark_file:
    output:
        file="resources/benchmarks/{benchmark}/{filename}",
        provenance="resources/benchmarks/{benchmark}/{filename}.provenance.json",
    log:
        "logs/benchmarks/fetch_{benchmark}_{filename}.log",
    wildcard_constraints:
        benchmark=FETCHED_BENCHMARKS_RE,
        filename=BENCHMARK_FILE_NAMES_RE,
    cache: "omit-software"
    conda:
        "../envs/fetch.yaml"
    params:
        source=lambda w: S.benchmarks[w.benchmark]["source"],
        # Redacted (params are stored in plain text); the job reads the entry from the config.
        entry=lambda w: redact_obj(benchmark_file_entries(w.benchmark)[w.filename]),
    script:
        "../workflow_scripts/fetch_benchmark_file.py"


rule index_benchmark:
    input:
        unpack(benchmark_inputs),
    output:
        **dataset_files("{benchmark}"),
    log:
        "logs/benchmarks/index_{benchmark}.log",
    benchmark:
        "benchmarks/benchmarks/index_{benchmark}.tsv"
    wildcard_constraints:
        benchmark=FETCHED_BENCHMARKS_RE,
    conda:
        "../envs/data.yaml"
    threads: 4
    params:
        spec=lambda w: {
            k: v for k, v in S.benchmarks[w.benchmark].items() if k != "files"
        },
        code=CODE["index_benchmark"],
        names=lambda w: list(benchmark_file_entries(w.benchmark)),
    script:
        "../workflow_scripts/index_benchmark.py"
