"""The glyph benchmark: characters of every script the installed fonts cover, as an indexed dataset.

Steps, each deterministic given the fonts and the config:
1. faces: every outline face under `font_dirs` that renders (bitmap-only and broken fonts are
   skipped with a warning);
2. scripts: a family "covers" a script when its faces really draw (no tofu, not blank) at
   least half of the script's letters; a script needs two covering families, one of them
   for held-out rendering;
3. family roles: each family is either a training or a held-out family, for all scripts
   (a held-out family never renders training data of any script); scripts with the fewest
   families are served first so each keeps at least one of each;
4. look-alikes: letters of different scripts that render alike (ink IoU >= 0.95 in most faces
   covering both) are dropped from the later script of SCRIPTS' order;
5. classes: per script (capped at `max_classes_per_script`), a `heldout_class_fraction` of
   the letters is the test split, rendered only in held-out families; the rest is the train
   split, rendered only in training families, `images_per_class` images each, cycling over
   the faces with a random affine jitter.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from divcoeff.data.indexed import write_indexed_dataset
from divcoeff.glyphs.fonts import FontFace, scan_fonts
from divcoeff.glyphs.render import FaceRenderer, FontRenderError
from divcoeff.glyphs.scripts import SCRIPTS, char_name, script_letters
from divcoeff.io import sha256_file
from divcoeff.seeding import numpy_rng
from divcoeff.settings import benchmark_spec

log = logging.getLogger(__name__)
LOOKALIKE_IOU = 0.95  # real look-alikes share one outline in a face: IoU ~1
MIN_COVERAGE = 0.5


class GlyphBenchmarkError(RuntimeError):
    pass


@dataclass
class GlyphPlan:
    """What will be rendered: per script, the train/test letters and the faces for each."""
    scripts: list[str]
    letters: dict[str, dict[str, list[int]]]        # script -> split -> code points
    family_role: dict[str, str]                      # family -> train | heldout
    faces: dict[int, dict[str, list[int]]]           # code point -> role -> indices into renderers
    lookalikes: list[dict]
    skipped_scripts: dict[str, str]


def _load_renderers(faces: list[FontFace], size: int) -> list[FaceRenderer]:
    out = []
    for f in faces:
        try:
            out.append(FaceRenderer(f, size))
        except FontRenderError as e:
            log.warning("skipping %s", e)
    return out


def _drawn(renderers: list[FaceRenderer], scripts: list[str]) -> dict[int, set[int]]:
    """Face index -> the letters (of the wanted scripts) it really draws."""
    letters = {cp for s in scripts for cp in script_letters(s)}
    out = {}
    for i, r in enumerate(tqdm(renderers, desc="checking faces", mininterval=2)):
        claimed = letters & r.face.codepoints
        out[i] = {cp for cp in claimed if r.draws(cp)}
    return out


def _assign_roles(cover: dict[str, list[str]], heldout_fraction: float, rng: np.random.Generator
                  ) -> tuple[dict[str, str], dict[str, str]]:
    """Family -> role, and script -> reason for the scripts that cannot have both roles."""
    role: dict[str, str] = {}
    skipped = {}
    for script in sorted(cover, key=lambda s: (len(cover[s]), s)):
        fams = cover[script]
        if len(fams) < 2:
            skipped[script] = f"only {len(fams)} font family draws it (need one for training, one held out)"
            continue
        want_held = max(1, int(round(heldout_fraction * len(fams))))
        want_held = min(want_held, len(fams) - 1)
        free = [fams[i] for i in rng.permutation(len(fams)) if fams[i] not in role]
        held = sum(role.get(f) == "heldout" for f in fams)
        for f in free:
            role[f] = "heldout" if held < want_held else "train"
            held += role[f] == "heldout"
        roles = {role[f] for f in fams}
        if roles != {"train", "heldout"}:
            skipped[script] = f"its {len(fams)} families were all given the role {roles.pop()} by other scripts"
    return role, skipped


def _lookalikes(renderers: list[FaceRenderer], drawn: dict[int, set[int]], script_of: dict[int, str],
                order: list[str]) -> list[dict]:
    """Cross-script letter pairs that render alike in most faces that draw both."""
    votes: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    seen_families = set()
    for i, r in enumerate(renderers):
        cps = sorted(drawn[i])
        if r.face.family in seen_families or len({script_of[c] for c in cps}) < 2:
            continue  # one face per family; single-script faces cannot hold cross-script pairs
        seen_families.add(r.face.family)
        ink = np.stack([r.render_plain(c).reshape(-1) > 96 for c in cps]).astype(np.float32)
        inter = ink @ ink.T
        area = ink.sum(1)
        iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1)
        scripts = np.array([order.index(script_of[c]) for c in cps])
        for a, b in zip(*np.nonzero(np.triu(scripts[:, None] != scripts[None, :], 1))):
            v = votes[(cps[a], cps[b])]
            v[0] += iou[a, b] >= LOOKALIKE_IOU
            v[1] += 1
    pairs = []
    for (a, b), (alike, total) in sorted(votes.items()):
        if alike * 2 > total:
            keep, drop = sorted((a, b), key=lambda c: order.index(script_of[c]))
            pairs.append({"dropped": char_name(drop), "dropped_script": script_of[drop],
                          "kept": char_name(keep), "kept_script": script_of[keep], "faces": total})
    return pairs


def plan_benchmark(renderers: list[FaceRenderer], spec: dict, seed: int) -> GlyphPlan:
    spec = benchmark_spec(spec)
    wanted = spec["scripts"]
    order = list(SCRIPTS) if wanted == "all" else [s for s in SCRIPTS if s in wanted]
    if wanted != "all":
        unknown = sorted(set(wanted) - set(SCRIPTS))
        if unknown:
            raise GlyphBenchmarkError(f"benchmarks.glyphs.scripts: unknown script(s) {unknown}; "
                                      f"known: {', '.join(SCRIPTS)}")
    drawn = _drawn(renderers, order)
    script_of = {cp: s for s in order for cp in script_letters(s)}

    by_family: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(renderers):
        by_family[r.face.family].append(i)
    family_draws = {fam: set().union(*(drawn[i] for i in idx)) for fam, idx in sorted(by_family.items())}
    cover: dict[str, list[str]] = {}
    for s in order:
        letters = set(script_letters(s))
        fams = [fam for fam, cps in family_draws.items() if len(letters & cps) >= MIN_COVERAGE * len(letters)]
        if fams:
            cover[s] = fams
    role, skipped = _assign_roles(cover, spec["heldout_family_fraction"], numpy_rng(seed, "glyph-families"))
    for s in order:
        if s not in cover:
            skipped[s] = "no installed font family draws at least half of its letters"

    lookalikes = _lookalikes(renderers, drawn, script_of, order)
    dropped = {int(p["dropped"].split()[0][2:], 16) for p in lookalikes}

    letters: dict[str, dict[str, list[int]]] = {}
    faces: dict[int, dict[str, list[int]]] = {}
    cap = spec["max_classes_per_script"]
    min_classes = spec["min_classes_per_split"]
    for s in order:
        if s in skipped:
            continue
        cand = []
        for cp in script_letters(s):
            if cp in dropped:
                continue
            per_role = {r: [i for fam in cover[s] if role.get(fam) == r for i in by_family[fam] if cp in drawn[i]]
                        for r in ("train", "heldout")}
            if per_role["train"] and per_role["heldout"]:
                cand.append(cp)
                faces[cp] = per_role
        rng = numpy_rng(seed, "glyph-classes", s)
        if cap and len(cand) > cap:
            cand = sorted(rng.choice(cand, cap, replace=False).tolist())
        n_held = int(round(spec["heldout_class_fraction"] * len(cand)))
        held = set(rng.choice(cand, n_held, replace=False).tolist()) if n_held else set()
        split = {"train": [c for c in cand if c not in held], "test": [c for c in cand if c in held]}
        if min(len(v) for v in split.values()) < min_classes:
            skipped[s] = (f"only {len(split['train'])} train / {len(split['test'])} held-out letters drawn by both "
                          f"kinds of family (need {min_classes} each)")
            continue
        letters[s] = split
    if not letters:
        raise GlyphBenchmarkError(
            f"no script has enough letters drawn by at least two font families under {spec['font_dirs']}; "
            f"skipped: {skipped}. Install fonts (make fonts, or the packages in config/glyph-fonts.txt)")
    return GlyphPlan([s for s in order if s in letters], letters, role, faces, lookalikes, skipped)


def render_benchmark(name: str, spec: dict, out_dir: str | Path, master_seed: int = 0) -> Path:
    """Render the benchmark described by a `benchmarks.<name>` config entry into `out_dir`."""
    spec = benchmark_spec(spec, f"benchmark {name!r}")
    size = int(spec["image_size"])
    seed = int(spec["seed"])
    faces = scan_fonts(spec["font_dirs"])
    if not faces:
        raise GlyphBenchmarkError(f"no readable outline font under {spec['font_dirs']}")
    renderers = _load_renderers(faces, size)
    log.info("%d font faces in %d families", len(renderers), len({r.face.family for r in renderers}))
    plan = plan_benchmark(renderers, spec, numpy_rng(master_seed, "glyphs", seed).integers(2**62))
    for s, why in sorted(plan.skipped_scripts.items()):
        log.info("script %s left out: %s", s, why)
    for p in plan.lookalikes:
        log.info("look-alike: dropped %s (%s), like %s (%s)", p["dropped"], p["dropped_script"], p["kept"],
                 p["kept_script"])

    families = sorted({r.face.family for r in renderers})
    group_id = {f: i for i, f in enumerate(families)}
    images, index, classes = [], [], []
    n = int(spec["images_per_class"])
    total = sum(len(v) for s in plan.scripts for v in plan.letters[s].values())
    bar = tqdm(total=total, desc=f"rendering {name}", mininterval=2)
    for domain_id, script in enumerate(plan.scripts):
        for split, role in (("train", "train"), ("test", "heldout")):
            for cp in plan.letters[script][split]:
                class_id = len(classes)
                classes.append((class_id, char_name(cp), domain_id, script, split))
                rng = numpy_rng(master_seed, "glyph-images", seed, cp)
                pool = plan.faces[cp][role]
                order = rng.permutation(len(pool))
                for k in range(n):
                    r = renderers[pool[order[k % len(pool)]]]
                    index.append((len(images), class_id, domain_id, group_id[r.face.family], split))
                    images.append(r.render(cp, rng, spec["jitter"]))
                bar.update()
    bar.close()

    used = sorted({renderers[i].face.path for cp in plan.faces for r in plan.faces[cp].values() for i in r})
    role_of_path = {}
    for r in renderers:
        role_of_path.setdefault(r.face.path, set()).add(plan.family_role.get(r.face.family, "unused"))
    manifest = {
        "benchmark": name,
        "domains": plan.scripts,
        "groups": families,
        "group_roles": [plan.family_role.get(f, "unused") for f in families],
        "sources": [{"path": p, "sha256": sha256_file(p), "roles": sorted(role_of_path[p])} for p in used],
        "lookalikes_dropped": plan.lookalikes,
        "scripts_left_out": plan.skipped_scripts,
        "build": {k: v for k, v in spec.items()},
    }
    return write_indexed_dataset(
        out_dir, np.stack(images)[..., None],
        pd.DataFrame(index, columns=["image_id", "class_id", "domain_id", "group_id", "split"]),
        pd.DataFrame(classes, columns=["class_id", "name", "domain_id", "domain", "split"]),
        manifest)
