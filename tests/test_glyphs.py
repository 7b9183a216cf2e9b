"""The glyph benchmark: rendering, splits that never share a class or a font family, fonts that fail."""
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from divcoeff.data.indexed import IndexedDataset
from divcoeff.glyphs.build import GlyphBenchmarkError, render_benchmark
from divcoeff.glyphs.fonts import read_faces, scan_fonts
from divcoeff.glyphs.render import FaceRenderer
from divcoeff.io import sha256_file

DEJAVU = "/usr/share/fonts/truetype/dejavu"
SPEC = {"source": "glyphs", "image_size": 28, "font_dirs": [DEJAVU], "images_per_class": 4,
        "heldout_class_fraction": 0.35, "heldout_family_fraction": 0.34, "max_classes_per_script": 16,
        "jitter": {"rotate_deg": 8.0, "translate": 0.06, "scale": 0.08}, "seed": 11}


@pytest.fixture(scope="module")
def dejavu(tmp_path_factory):
    out = tmp_path_factory.mktemp("glyphs") / "glyphs"
    render_benchmark("glyphs", SPEC, out)
    return IndexedDataset.load(out)


def test_dejavu_alone_gives_five_scripts_of_real_images(dejavu):
    ds = dejavu
    assert len(ds.manifest["domains"]) >= 5
    assert {"Latin", "Greek", "Cyrillic", "Armenian", "Georgian"} <= set(ds.manifest["domains"])
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == (28, 28, 1)
    assert len(ds.images) == 4 * ds.manifest["n_classes"]
    ink = (np.asarray(ds.images) > 64).reshape(len(ds.images), -1).mean(1)
    assert ink.min() > 0.01, "blank images must have been dropped"


def test_splits_share_no_class_and_no_font_family(dejavu):
    idx, classes = dejavu.index, dejavu.classes
    assert set(classes["split"]) == {"train", "test"}
    per_class = idx.groupby("class_id")["split"].nunique()
    assert (per_class == 1).all()
    train_fams = set(idx.loc[idx["split"] == "train", "group_id"])
    test_fams = set(idx.loc[idx["split"] == "test", "group_id"])
    assert train_fams and test_fams and not train_fams & test_fams
    roles = dejavu.manifest["group_roles"]
    assert {roles[g] for g in train_fams} == {"train"} and {roles[g] for g in test_fams} == {"heldout"}
    # every script has held-out characters
    assert set(classes.loc[classes["split"] == "test", "domain"]) == set(dejavu.manifest["domains"])


def test_cross_script_lookalikes_are_dropped(dejavu):
    names = set(dejavu.classes["name"])
    dropped = {p["dropped"] for p in dejavu.manifest["lookalikes_dropped"]}
    assert "U+0391 GREEK CAPITAL LETTER ALPHA" in dropped
    assert "U+0410 CYRILLIC CAPITAL LETTER A" in dropped
    assert not names & dropped
    # genuinely different letters survive
    assert "U+0393 GREEK CAPITAL LETTER GAMMA" not in dropped


def test_manifest_records_font_files_and_hashes(dejavu):
    sources = dejavu.manifest["sources"]
    assert sources and all(Path(s["path"]).is_file() for s in sources)
    s = sources[0]
    assert s["sha256"] == sha256_file(s["path"])


def test_same_config_same_pixels(tmp_path):
    spec = {**SPEC, "scripts": ["Latin", "Greek"]}
    a = render_benchmark("g", spec, tmp_path / "a")
    b = render_benchmark("g", spec, tmp_path / "b")
    for f in ("images.npy", "index.tsv", "classes.tsv"):
        assert sha256_file(a / f) == sha256_file(b / f)
    c = render_benchmark("g", {**spec, "seed": 12}, tmp_path / "c")
    assert sha256_file(a / "images.npy") != sha256_file(c / "images.npy")


def test_tofu_and_blank_are_not_drawn():
    face = read_faces(f"{DEJAVU}/DejaVuSans.ttf")[0]
    r = FaceRenderer(face, 28)
    assert r.draws(ord("A"))
    assert not r.draws(0x0E01)   # Thai: not in DejaVu Sans, its tofu box
    assert not r.draws(0x0020)   # space: blank


def test_unreadable_font_is_skipped_with_its_name(tmp_path, caplog):
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    for name in ("DejaVuSans.ttf", "DejaVuSerif.ttf"):
        shutil.copy(f"{DEJAVU}/{name}", fonts / name)
    (fonts / "Broken.ttf").write_bytes(b"\x00\x01\x00\x00 not really a font")
    with caplog.at_level(logging.WARNING):
        faces = scan_fonts([str(fonts)])
    assert {f.family for f in faces} == {"DejaVu Sans", "DejaVu Serif"}
    assert any("Broken.ttf" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records)
    out = render_benchmark("g", {**SPEC, "font_dirs": [str(fonts)], "scripts": ["Latin", "Greek"]}, tmp_path / "g")
    assert "Broken.ttf" not in str(IndexedDataset.load(out).manifest["sources"])


def test_one_family_cannot_give_a_held_out_split(tmp_path):
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    shutil.copy(f"{DEJAVU}/DejaVuSans.ttf", fonts)
    with pytest.raises(GlyphBenchmarkError, match="only 1 font family"):
        render_benchmark("g", {**SPEC, "font_dirs": [str(fonts)]}, tmp_path / "g")


def _font_packages_installed(repo) -> bool:
    wanted = (repo / "config/glyph-fonts.txt").read_text().split()
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}\n", *wanted], capture_output=True, text=True)
    return out.stdout.count("install ok installed") == len(wanted)


def test_installed_font_packages_give_ten_scripts_and_500_classes(repo):
    """The embedded default's promise, checked where `make fonts` could install the packages."""
    if shutil.which("dpkg-query") is None or not _font_packages_installed(repo):
        pytest.skip("the Debian font packages of config/glyph-fonts.txt are not installed (not root or no apt)")
    from divcoeff.glyphs.build import _load_renderers, plan_benchmark
    import yaml

    spec = yaml.safe_load((repo / "config/config.yaml").read_text())["benchmarks"]["glyphs"]
    spec = {**SPEC, **spec}
    plan = plan_benchmark(_load_renderers(scan_fonts(spec["font_dirs"]), 28), spec, seed=0)
    n_classes = sum(len(v) for s in plan.scripts for v in plan.letters[s].values())
    assert len(plan.scripts) >= 10 and n_classes >= 500
