"""Issue 25, point 4: a `file` row copies only from the project directory or the config's fetch.local_roots."""
import os
import subprocess
import sys

import pytest
import yaml

from divcoeff.config import ConfigError, load_sheet

HEAD = "name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle"


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config/config.yaml").read_text())


@pytest.fixture
def layout(tmp_path):
    """project/ (the working directory) with a checkpoint in it, and elsewhere/ next to it with another."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "ckpt").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "ckpt/in.pt").write_bytes(b"in")
    (elsewhere / "out.pt").write_bytes(b"out")
    (project / "ckpt/link.pt").symlink_to(elsewhere / "out.pt")
    return project, elsewhere


def load(repo, config, project, uri):
    sheet = project / "sheet.tsv"
    sheet.write_text(f"{HEAD}\nf\tpt\tresnet12\tfile\t{uri}\t\tglyphs-4s-d0\tfalse\n")
    return load_sheet(sheet, repo / "config/schemas/checkpoints.schema.yaml", config, project_dir=project)


@pytest.mark.parametrize("uri", ["/etc/passwd", "../elsewhere/out.pt", "{elsewhere}/out.pt", "ckpt/link.pt"])
def test_a_file_row_outside_the_project_is_refused_naming_the_row(repo, config, layout, uri):
    project, elsewhere = layout
    uri = uri.format(elsewhere=elsewhere)
    with pytest.raises(ConfigError) as e:
        load(repo, config, project, uri)
    msg = str(e.value)
    assert f"sheet.tsv, line 2 (row 'f'): field 'uri': {uri!r} is " in msg
    assert f"outside the project directory ({project.resolve()})" in msg and "fetch.local_roots" in msg


@pytest.mark.parametrize("uri", ["ckpt/in.pt", "{project}/ckpt/in.pt", "./ckpt/../ckpt/in.pt"])
def test_a_file_row_inside_the_project_is_accepted(repo, config, layout, uri):
    project, _ = layout
    table = load(repo, config, project, uri.format(project=project))
    assert list(table["source"]) == ["file"]


@pytest.mark.parametrize("root", ["{elsewhere}", "../elsewhere"])
def test_fetch_local_roots_opt_a_folder_in(repo, config, layout, root):
    project, elsewhere = layout
    config["fetch"] = {"local_roots": [root.format(elsewhere=elsewhere)]}
    assert list(load(repo, config, project, f"{elsewhere}/out.pt")["uri"]) == [f"{elsewhere}/out.pt"]
    assert list(load(repo, config, project, "ckpt/link.pt")["uri"]) == ["ckpt/link.pt"]
    with pytest.raises(ConfigError, match=r"row 'f'\): field 'uri': '/etc/passwd' is /etc/passwd, outside the "
                                          r"project directory .* and fetch.local_roots"):
        load(repo, config, project, "/etc/passwd")


@pytest.mark.workflow
def test_the_workflow_refuses_such_a_row_before_any_job(repo, config, layout):
    project, _ = layout
    sheet = project / "sheet.tsv"
    sheet.write_text(f"{HEAD}\npasswd\tpt\tresnet12\tfile\t/etc/passwd\t\tglyphs-4s-d0\tfalse\n")
    config["checkpoint_sheet"] = str(sheet)
    (project / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", "resources/checkpoints/passwd.pt", "-s", str(repo / "Snakefile"),
           "-d", str(project), "--configfile", str(project / "config.yaml"), "--cores", "1"]
    out = subprocess.run(cmd, cwd=project, env=os.environ, capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "line 2 (row 'passwd'): field 'uri': '/etc/passwd' is /etc/passwd, outside the project" in out.stderr
    assert not (project / "resources").exists() and not (project / "logs").exists()
