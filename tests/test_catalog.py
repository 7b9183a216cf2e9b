"""What the Snakemake workflow catalog checks and shows: `snakefmt --check` on the Snakefile and
rules/, the rule graph of the test config (and docs/rulegraph.svg drawn from it), and the two
files of its "standardized usage" (.snakemake-workflow-catalog.yml, config/README.md) staying true."""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

TINY = "config/tiny/config.yaml"
PAPER = "config/paper/config.yaml"
# Rules the tiny study does not run: downloads and the comparison with published values
# (config/paper/published.tsv); the published study runs them.
PAPER_ONLY = {"fetch_checkpoint", "fetch_benchmark_file", "index_benchmark", "published_comparison"}
RULEGRAPH_SVG = "docs/rulegraph.svg"
RENDER = f"snakemake --rulegraph --configfile {TINY} | dot -Tsvg -o {RULEGRAPH_SVG}"


def smk_files(repo):
    return [repo / "Snakefile", *sorted((repo / "rules").glob("*.smk"))]


def rule_names(repo):
    names = set()
    for path in smk_files(repo):
        names |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", path.read_text(), re.M))
    return names


def test_snakefmt_check_is_clean(repo):
    """As the catalog runs it; fix with `snakefmt Snakefile rules` (the version pinned in pyproject)."""
    pytest.importorskip("snakefmt", reason="snakefmt not installed (pip install -e '.[test]')")
    files = [str(p.relative_to(repo)) for p in smk_files(repo)]
    res = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", *files], cwd=repo,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"snakefmt --check failed; run `snakefmt Snakefile rules`:\n{res.stdout}{res.stderr}"


def rulegraph(repo, configfile):
    """(labels, edges as (from, to) label pairs) of `snakemake --rulegraph` on a config."""
    res = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--configfile", configfile],
                         cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.lstrip().startswith("digraph"), res.stdout[:500]
    nodes = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', res.stdout, re.M))
    edges = {(nodes[a], nodes[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", res.stdout, re.M)}
    return set(nodes.values()), edges


def test_rulegraph_of_the_tiny_config_names_every_rule_it_runs(repo):
    labels, edges = rulegraph(repo, TINY)
    rules = rule_names(repo)
    assert PAPER_ONLY <= rules, f"PAPER_ONLY names rules that do not exist: {PAPER_ONLY - rules}"
    assert labels == rules - PAPER_ONLY, (f"missing: {sorted(rules - PAPER_ONLY - labels)}, "
                                          f"unexpected: {sorted(labels - (rules - PAPER_ONLY))}")
    assert all(("all" == b) or (b in labels) for _, b in edges) and any(b == "all" for _, b in edges)


def test_every_rule_is_in_the_rule_graph_of_the_tiny_or_the_paper_config(repo):
    tiny, _ = rulegraph(repo, TINY)
    paper, _ = rulegraph(repo, PAPER)
    assert PAPER_ONLY <= paper
    assert tiny | paper == rule_names(repo), sorted(rule_names(repo) - tiny - paper)


def test_docs_rulegraph_svg_is_the_tiny_configs_rule_graph(repo):
    """docs/rulegraph.svg shows the current rules and edges; redraw it with RENDER when this fails."""
    labels, edges = rulegraph(repo, TINY)
    svg = ET.parse(repo / RULEGRAPH_SVG).getroot()
    ns = {"s": "http://www.w3.org/2000/svg"}
    ids = {}
    for g in svg.iterfind(".//s:g[@class='node']", ns):
        ids[g.find("s:title", ns).text] = g.find("s:text", ns).text
    drawn_edges = set()
    for g in svg.iterfind(".//s:g[@class='edge']", ns):
        a, b = g.find("s:title", ns).text.split("->")
        drawn_edges.add((ids[a], ids[b]))
    assert set(ids.values()) == labels and drawn_edges == edges, f"{RULEGRAPH_SVG} is stale; redraw it: {RENDER}"


# --- the catalog's standardized usage: its two files say what is true here ---

def rule_bodies(repo):
    for path in smk_files(repo):
        for m in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t]+.*\n|\n)+)", path.read_text(), re.M):
            yield m.group(1), m.group(2)


def test_catalog_settings_claim_what_the_workflow_supports(repo):
    settings = yaml.safe_load((repo / ".snakemake-workflow-catalog.yml").read_text())
    usage = settings["usage"]
    deploy = usage["software-stack-deployment"]
    assert set(deploy) <= {"conda", "apptainer", "apptainer+conda", "singularity", "singularity+conda"}, deploy
    assert all(isinstance(v, bool) for v in deploy.values()), deploy
    flags = usage["mandatory-flags"]
    assert isinstance(flags["desc"], str) and isinstance(flags["flags"], (str, list))
    bodies = dict(rule_bodies(repo))
    assert bodies.keys() == rule_names(repo)
    # conda: every rule that runs something names an env file that exists.
    runs = {r for r, body in bodies.items() if re.search(r"^\s+(script|shell|run|wrapper|notebook):", body, re.M)}
    assert runs and bodies.keys() - runs == {"all"}, sorted(bodies.keys() - runs)
    without_env = [r for r in sorted(runs)
                   if not (m := re.search(r'^\s+conda:\s*\n\s+"\.\./(envs/[\w.-]+\.yaml)"', bodies[r], re.M))
                   or not (repo / m.group(1)).is_file()]
    assert deploy["conda"] == (not without_env), f"conda claimed {deploy['conda']}; rules without an env: {without_env}"
    # apptainer: needs a container image (container:/containerized: in the Snakefile or a rule).
    text = "\n".join(p.read_text() for p in smk_files(repo))
    has_image = bool(re.search(r"^\s*(container|containerized):", text, re.M))
    for key in ("apptainer", "apptainer+conda", "singularity", "singularity+conda"):
        assert deploy.get(key, False) == has_image, f"{key}: claimed {deploy.get(key)}, container image {has_image}"
    # report: rules mark outputs for `snakemake --report`, with captions that exist.
    captions = re.findall(r'caption="(captions/[\w.-]+)"', text)  # relative to rules/
    assert usage["report"] == bool(captions)
    assert all((repo / "rules" / c).is_file() for c in captions), captions


def test_config_readme_documents_every_sheet_column_and_config_key(repo):
    from divcoeff.config import SHEET_COLUMNS

    text = (repo / "config/README.md").read_text()
    sheet = yaml.safe_load((repo / "config/schemas/checkpoints.schema.yaml").read_text())["properties"]
    assert list(sheet) == SHEET_COLUMNS
    for column in SHEET_COLUMNS:
        assert f"| `{column}` |" in text, f"config/README.md: no row for sheet column {column}"
    for column in ("family", "arch", "source"):
        for value in sheet[column]["enum"]:
            assert f"`{value}`" in text, f"config/README.md: {column} value {value} not described"
    keys = yaml.safe_load((repo / "config/schemas/config.schema.yaml").read_text())["properties"]
    for key in keys:
        assert f"| `{key}` |" in text, f"config/README.md: no row for config key {key}"
    for path in ("config/config.yaml", "config/checkpoints.tsv", "config/tiny/", "config/paper/"):
        assert f"`{path}" in text and (repo / path).exists(), path
