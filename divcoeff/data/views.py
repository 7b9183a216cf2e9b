"""Views: labelled selections of images from indexed datasets (docs/formats.md section 2).

A training set (`train_sets:`) and the held-out evaluation set (`evaluation:`) are both views.
Building one resolves everything random about it once (which scripts a `domains: 2` draw
picks, which classes and images are kept), so training, diversity and evaluation all read
the same selection.

What a view records about its inputs (``meta``), for the stages that feed a network:

- ``normalisation``: per benchmark, the per-channel mean/std of the published code (the
  benchmark's manifest, or the view spec's override; None: none), REFERENCE section 7;
- ``rotations``: per benchmark whose episodes rotate its classes (the published Omniglot's
  RandomClassRotation): the degrees and whether one rotation serves the whole task;
- ``inputs``: what :meth:`View.images` returns when not told: ``pixels`` ([0, 1]) or
  ``normalised`` (each image by its benchmark's normalisation: a probe with
  ``normalisation: dataset`` receives exactly what the published protocol feeds a checkpoint).

Rotated rows: a row number r + k * len(table) (k = 1, 2, 3) stands for row r rotated by
k * 90 degrees counter-clockwise (torchvision's sense). Episode files name such rows for the
benchmarks with rotations (divcoeff.data.episodes), so evaluation and diversity read rotated
images through :meth:`View.images` without knowing about rotations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from divcoeff.data.indexed import IndexedDataset
from divcoeff.io import atomic_write_json, atomic_write_text, read_json, sha256_file
from divcoeff.seeding import numpy_rng
from divcoeff.settings import train_set_spec

if TYPE_CHECKING:  # torch is imported where pixels are served: the data env builds views without it
    import torch

VIEW_COLUMNS = ["row", "benchmark", "image_id", "label", "component", "class_name"]
INPUTS = ("pixels", "normalised")
ROTATION_STEP = 90  # degrees per rotated copy of a row (r + k * n_rows is row r turned k * 90 degrees)


class ViewError(ValueError):
    """A view that cannot be built from the data as configured."""


def _candidates(name: str, spec: dict, datasets: dict[str, IndexedDataset]) -> pd.DataFrame:
    """All images of the requested split, with their class, domain and component names."""
    frames = []
    for b in spec["benchmarks"]:
        if b not in datasets:
            raise ViewError(f"view {name!r}: benchmark {b!r} was not given (have {sorted(datasets)})")
        ds = datasets[b]
        idx = ds.index[ds.index["split"] == spec["split"]]
        cls = ds.classes.set_index("class_id")
        frame = pd.DataFrame({
            "benchmark": b,
            "image_id": idx["image_id"].to_numpy(),
            "class_id": idx["class_id"].to_numpy(),
            "class_name": cls.loc[idx["class_id"], "name"].to_numpy(),
            "domain": cls.loc[idx["class_id"], "domain"].to_numpy(),
        })
        frames.append(frame)
    images = pd.concat(frames, ignore_index=True)
    if images.empty:
        raise ViewError(f"view {name!r}: no images in split {spec['split']!r} of {spec['benchmarks']}")
    if spec["mixture_over"] == "domain":
        images["component"] = images["benchmark"] + "/" + images["domain"].astype(str)
    else:
        images["component"] = images["benchmark"]
    return images


def _pick_components(name: str, spec: dict, per_class: pd.DataFrame, seed: int, min_classes: int,
                     selection: dict | None = None) -> tuple[list[str], int]:
    """Choose the mixture components (scripts) and how many classes each contributes. With
    `select`, `selection` holds the domain matrix ({"matrix": (D, names)}) and receives the choice."""
    n_classes_total = spec.get("classes")
    comp_sizes = per_class.groupby("component").size()
    available = sorted(comp_sizes.index)
    if not available:
        raise ViewError(f"view {name!r}: no class of split {spec['split']!r} has {spec.get('images_per_class')} "
                        "images (images_per_class): lower it, or render more images per class")
    wanted = spec["domains"]
    if isinstance(wanted, list):
        by_domain = {c.split("/", 1)[-1]: c for c in available}
        missing = [d for d in wanted if d not in by_domain and d not in available]
        if missing:
            raise ViewError(f"view {name!r}: domains {missing} not in the data (available: "
                            f"{', '.join(sorted(by_domain))})")
        chosen = [by_domain.get(d, d) for d in wanted]
        return chosen, (math.ceil(n_classes_total / len(chosen)) if n_classes_total else 0)

    def eligible(k: int) -> list[str]:
        need = max(min_classes, math.ceil(n_classes_total / k)) if n_classes_total else min_classes
        return [c for c in available if comp_sizes[c] >= need]

    if spec.get("select"):
        return _selected_components(name, spec, eligible, selection, seed)
    if spec["nested"] and wanted != "all":
        return _nested_components(name, int(wanted), spec["draw"], comp_sizes, n_classes_total, min_classes, seed)
    rng = numpy_rng(seed, "view-domains", wanted, spec["draw"])
    if wanted == "all":
        # Every component that can contribute at least `min_classes` (a whole N-way task); with a
        # fixed class budget at most classes // min_classes components fit.
        k = int((comp_sizes >= min_classes).sum())
        if n_classes_total:
            k = min(k, n_classes_total // min_classes)
        while k > 0 and len(eligible(k)) < k:
            k -= 1
    else:
        k = int(wanted)
    pool = eligible(max(k, 1))
    if k < 1 or len(pool) < k:
        budget = math.ceil(n_classes_total / max(k, 1)) if n_classes_total else 0
        need = max(min_classes, budget)
        fix = (f"lower the largest `ways` ({min_classes}: evaluation.ways, diversity.ways, training.maml.ways), "
               "since every domain must hold a whole N-way task" if min_classes >= budget
               else "install more fonts, or lower `classes` / `domains` of this set in the config")
        raise ViewError(
            f"view {name!r}: needs {k or wanted} domain(s) with at least {need} usable classes each, but only "
            f"{len(pool)} qualify ({', '.join(f'{c}: {comp_sizes[c]}' for c in available)}); {fix}")
    chosen = sorted(rng.permutation(pool)[:k].tolist())
    return chosen, (math.ceil(n_classes_total / k) if n_classes_total else 0)


def _selected_components(name: str, spec: dict, eligible, selection: dict | None, seed: int) -> tuple[list[str], int]:
    """`select: max | min | random`: the `domains: k` eligible components (each able to give its
    share of the class budget) whose mixture has the highest / lowest predicted coefficient on the
    benchmark's domain matrix, or a seeded draw (`draw`); the choice goes into `selection`."""
    from divcoeff.selection import SelectionError, select_domains

    where = f"train set {name!r}"
    k, how = spec["domains"], spec["select"]
    if isinstance(k, bool) or not isinstance(k, int):
        raise ViewError(f"{where}: select: {how} needs domains: k (a number), got domains: {k!r}")
    if len(spec["benchmarks"]) != 1 or spec["mixture_over"] != "domain":
        raise ViewError(f"{where}: select: {how} needs one benchmark and mixture_over: domain, got "
                        f"benchmarks {list(spec['benchmarks'])}, mixture_over {spec['mixture_over']!r}")
    if not selection or "matrix" not in selection:
        raise ViewError(f"{where}: select: {how} needs the domain matrix of {spec['benchmarks'][0]!r} "
                        f"(results/diversity/{spec['benchmarks'][0]}-domains.tsv)")
    D, names = selection["matrix"]
    bench = spec["benchmarks"][0]
    pool = [c.split("/", 1)[-1] for c in eligible(k) if c.split("/", 1)[-1] in names]
    try:
        best = select_domains(D, names, k, how, pool=pool, exact_limit=selection.get("exact_limit", 20000),
                              seed=seed, draw=spec["draw"], where=f"{where} (select: {how})")[0]
    except SelectionError as e:
        raise ViewError(str(e)) from None
    selection.update({"select": how, "search": best.search, "domains": list(best.domains),
                      "predicted_coefficient": best.predicted, "pool": pool})
    chosen = [f"{bench}/{d}" for d in best.domains]
    n_classes_total = spec.get("classes")
    return chosen, (math.ceil(n_classes_total / k) if n_classes_total else 0)


def _nested_components(name: str, k: int, draw: int, comp_sizes: pd.Series, n_classes_total: int | None,
                       min_classes: int, seed: int) -> tuple[list[str], int]:
    """The first `k` components of draw `draw`'s chain: a seeded order of the components in which
    the i-th (from 0) can give ceil(classes / (i + 1)) classes, so the chain serves every level
    it is cut at. Levels of one draw are then nested (the 2-script set holds the 1-script set):
    going up a level adds scripts and nothing else changes by chance, so the levels differ by
    diversity more than by which scripts a draw happened to pick."""
    order = numpy_rng(seed, "view-domains-nested", draw).permutation(sorted(comp_sizes.index)).tolist()
    chain = []
    for i in range(k):
        need = max(min_classes, math.ceil(n_classes_total / (i + 1))) if n_classes_total else min_classes
        pick = next((c for c in order if c not in chain and comp_sizes[c] >= need), None)
        if pick is None:
            raise ViewError(
                f"view {name!r}: a nested chain of {k} domains needs a domain with at least {need} usable classes "
                f"at position {i + 1}, but none is left ({', '.join(f'{c}: {n}' for c, n in comp_sizes.items())}); "
                "lower `classes` or `domains`, or set nested: false")
        chain.append(pick)
    return chain, (math.ceil(n_classes_total / k) if n_classes_total else 0)


def check_not_degenerate(name: str, table: pd.DataFrame, ways: int, images_per_task_class: int) -> None:
    """Refuse a view in which some component (script) offers a single distinct task of `ways`
    classes x `images_per_task_class` images: all its tasks would be the same images, and a
    coefficient over such tasks measures how many components there are, not how diverse they are."""
    for comp, rows in table.groupby("component", sort=True):
        per_class = rows.groupby("label").size()
        if len(per_class) <= ways and int(per_class.max()) <= images_per_task_class:
            raise ViewError(
                f"view {name!r} is degenerate: component {comp!r} holds {len(per_class)} classes of at most "
                f"{int(per_class.max())} images, and a diversity task takes {ways} classes x {images_per_task_class} "
                f"images, so every task drawn from it is the same task. Give each component more classes "
                f"(raise `classes` or lower `domains` of this train set) or more images per class than a task "
                f"takes (diversity.shots + diversity.queries < images_per_class)")


def input_records(name: str, spec: dict, datasets: dict[str, IndexedDataset], channels: int) -> tuple[dict, dict]:
    """(normalisation, rotations) per benchmark of the view: from the datasets' manifests, the
    normalisation overridden by the view spec's `normalisation` entries."""
    overrides = spec.get("normalisation") or {}
    normalisation, rotations = {}, {}
    for b in spec["benchmarks"]:
        manifest = datasets[b].manifest
        norm = overrides[b] if b in overrides else manifest.get("normalisation")
        if norm is not None:
            mean, std = [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]]
            if len(mean) != channels or len(std) != channels:
                raise ViewError(f"view {name!r}: normalisation of {b!r} has {len(mean)}/{len(std)} values (mean/std) "
                                f"but the view's images have {channels} channel(s)")
            norm = {"mean": mean, "std": std}
        normalisation[b] = norm
        rot = manifest.get("task_rotations") or {}
        if rot.get("degrees"):
            rotations[b] = {"degrees": [int(d) for d in rot["degrees"]], "scope": rot.get("scope", "task")}
    return normalisation, rotations


def build_view(name: str, spec: dict, datasets: dict[str, IndexedDataset], seed: int,
               min_classes_per_component: int = 5,
               task_shape: tuple[int, int] | None = None, inputs: str = "pixels",
               domain_matrix: tuple[np.ndarray, list[str]] | None = None,
               exact_limit: int = 20000) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Resolve a view spec against the datasets; returns the table and its metadata.

    `spec` is a train set entry (benchmarks, split, domains, draw, classes, images_per_class,
    mixture_over, image_size; the schema's defaults fill the rest) or the evaluation's, with
    `kind: eval`. With `classes` set, the class budget is split as evenly as possible over the
    chosen components so that views of different diversity are matched in size. `task_shape`
    (ways, images per class of a task): refuse a view whose tasks could not differ
    (:func:`check_not_degenerate`). `inputs`: what :meth:`View.images` returns by default.
    `domain_matrix` (D, domain names): the benchmark's domain distances, which a spec with
    `select` chooses its domains by (divcoeff.selection; `exact_limit`: its exact search's size);
    the choice and its predicted coefficient go into the metadata's ``selection``.
    """
    if inputs not in INPUTS:
        raise ViewError(f"view {name!r}: inputs must be one of {INPUTS}, got {inputs!r}")
    spec = dict(spec)
    kind = spec.pop("kind", "train")
    spec = train_set_spec(spec, f"view {name!r}")
    images = _candidates(name, spec, datasets)
    ipc = spec.get("images_per_class")
    key = ["benchmark", "class_id"]
    per_class = images.groupby(key).agg(component=("component", "first"), n=("image_id", "size")).reset_index()
    if ipc:
        per_class = per_class[per_class["n"] >= ipc]
    selection = {"matrix": domain_matrix, "exact_limit": exact_limit} if domain_matrix is not None else {}
    components, _ = _pick_components(name, spec, per_class, seed, min_classes_per_component, selection)
    selection.pop("matrix", None)

    rng = numpy_rng(seed, "view-classes", name)
    n_total = spec.get("classes")
    nested = spec["nested"]
    keep = []
    for i, comp in enumerate(components):
        cands = per_class[per_class["component"] == comp].sort_values(key)
        if n_total:
            quota = n_total // len(components) + (1 if i < n_total % len(components) else 0)
            if nested:  # a component's classes in an order of its own: a level's are a prefix of the one below's
                order = numpy_rng(seed, "view-classes-nested", comp, spec["draw"]).permutation(len(cands))
                cands = cands.iloc[np.sort(order[:quota])]
            else:
                cands = cands.iloc[np.sort(rng.choice(len(cands), quota, replace=False))]
        keep.append(cands[key])
    keep = pd.concat(keep, ignore_index=True)
    if n_total and len(keep) != n_total:
        raise ViewError(f"view {name!r}: could only select {len(keep)} of {n_total} classes")

    chosen = images.merge(keep, on=key).sort_values(["benchmark", "class_id", "image_id"])
    if ipc:
        parts = []
        for (bench, cid), grp in chosen.groupby(key, sort=True):
            pick = (numpy_rng(seed, "view-images-nested", bench, cid).permutation(len(grp))[:ipc] if nested
                    else rng.choice(len(grp), ipc, replace=False))
            parts.append(grp.iloc[np.sort(pick)])
        chosen = pd.concat(parts)
    chosen = chosen.reset_index(drop=True)
    labels = {k: i for i, k in enumerate(sorted(set(zip(chosen["benchmark"], chosen["class_id"]))))}
    table = pd.DataFrame({
        "row": np.arange(len(chosen)),
        "benchmark": chosen["benchmark"],
        "image_id": chosen["image_id"].astype(np.int64),
        "label": [labels[k] for k in zip(chosen["benchmark"], chosen["class_id"])],
        "component": chosen["component"],
        "class_name": chosen["class_name"],
    })

    if task_shape is not None:
        check_not_degenerate(name, table, *task_shape)
    first = datasets[spec["benchmarks"][0]].manifest
    size = spec.get("image_size") or int(first["image_size"][0])
    normalisation, rotations = input_records(name, spec, datasets, int(first["channels"]))
    meta = {
        "name": name,
        "kind": kind,
        "benchmarks": list(spec["benchmarks"]),
        "datasets": {b: str(Path(datasets[b].path)) for b in spec["benchmarks"]},
        "components": components,
        "n_classes": len(labels),
        "n_images": len(table),
        "image_size": size,
        "channels": int(first["channels"]),
        "spec": spec,
        "resolved": {"components": components,
                     "classes_per_component": table.groupby("component")["label"].nunique().to_dict()},
        "seed": seed,
        "normalisation": normalisation,
        "rotations": rotations,
        "inputs": inputs,
    }
    if spec.get("select"):
        meta["selection"] = selection
    return table, meta


def overlap(held_out: pd.DataFrame, train: pd.DataFrame) -> dict[str, int]:
    """Images and classes two view tables share (images by benchmark and image id, classes by
    benchmark and class name)."""
    def keys(t, cols):
        return set(zip(*(t[c] for c in cols)))
    return {"images": len(keys(held_out, ["benchmark", "image_id"]) & keys(train, ["benchmark", "image_id"])),
            "classes": len(keys(held_out, ["benchmark", "class_name"]) & keys(train, ["benchmark", "class_name"]))}


def check_held_out(name: str, table: pd.DataFrame, train_views: dict[str, pd.DataFrame],
                   allow_overlap: bool) -> dict[str, dict[str, int]]:
    """The held-out view may share no image and no class with a training set that a checkpoint was
    trained on: else its accuracy measures memory, not few-shot learning. Returns the overlaps
    found (empty when there are none); an overlap is an error unless `allow_overlap`."""
    found = {ts: o for ts, t in sorted(train_views.items()) if any((o := overlap(table, t)).values())}
    if found and not allow_overlap:
        listed = "; ".join(f"{ts}: {o['images']} images, {o['classes']} classes" for ts, o in found.items())
        raise ViewError(
            f"held-out view {name!r} shares data with training sets of checkpoints in the sheet ({listed}): "
            "evaluate on a split no training set uses (evaluation.split, evaluation.benchmarks), or set "
            "evaluation.allow_overlap: true to evaluate anyway (summary.tsv and the plots then say so)")
    return found


def write_view(tsv_path: str | Path, json_path: str | Path, table: pd.DataFrame, meta: dict) -> None:
    """Write the table, then the metadata with the table's hash (the JSON is the completion mark)."""
    atomic_write_text(tsv_path, table[VIEW_COLUMNS].to_csv(sep="\t", index=False, lineterminator="\n"))
    atomic_write_json(json_path, {**meta, "sha256": sha256_file(tsv_path)})


@dataclass
class View:
    """A loaded view; `images(rows)` pulls pixels from the indexed datasets it refers to."""

    path: Path
    table: pd.DataFrame
    meta: dict

    @classmethod
    def load(cls, tsv_path: str | Path) -> "View":
        tsv_path = Path(tsv_path)
        json_path = tsv_path.with_suffix(".json")
        meta = read_json(json_path)
        digest = sha256_file(tsv_path)
        if digest != meta.get("sha256"):
            raise ViewError(f"{tsv_path}: content does not match the hash in {json_path}; rebuild the view")
        table = pd.read_csv(tsv_path, sep="\t", dtype={"benchmark": str, "component": str, "class_name": str},
                            keep_default_na=False)
        missing = [c for c in VIEW_COLUMNS if c not in table.columns]
        if missing:
            raise ViewError(f"{tsv_path}: missing column(s) {missing}")
        return cls(tsv_path, table, meta)

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @property
    def n_classes(self) -> int:
        return int(self.meta["n_classes"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def channels(self) -> int:
        return int(self.meta["channels"])

    @property
    def normalisation(self) -> dict[str, dict | None]:
        """Benchmark -> {mean, std} or None (views from before it was recorded: None for all)."""
        return dict(self.meta.get("normalisation") or {})

    @property
    def rotations(self) -> dict[str, dict]:
        """Benchmark -> {degrees, scope} for the benchmarks whose episodes rotate classes."""
        return dict(self.meta.get("rotations") or {})

    @property
    def normalises_by_default(self) -> bool:
        return self.meta.get("inputs", "pixels") == "normalised"

    @property
    def max_row(self) -> int:
        """One past the largest row number an episode may name (rotated copies included)."""
        return len(self.table) * (4 if self.rotations else 1)

    def rotated_row(self, row: np.ndarray | int, degrees: np.ndarray | int) -> np.ndarray:
        """The row number that stands for `row` turned by `degrees` (a multiple of 90) counter-clockwise."""
        k = np.asarray(degrees) // ROTATION_STEP
        return np.asarray(row) + (k % 4) * len(self.table)

    def images(self, rows: np.ndarray | list[int] | None = None, size: int | None = None,
               channels: int | None = None, normalise: bool | None = None, wrap: frozenset | tuple = ()) -> torch.Tensor:
        """float32 (n, C, H, W) for the given view rows (all rows when None; rotated rows turned).

        In [0, 1] unless `normalise` (None: the view's ``inputs``), then each image normalised by its
        benchmark's recorded normalisation (unchanged where it has none). The stored pixels of the
        benchmarks in `wrap` become (256 - p) mod 256 first (divcoeff.fewshot.pixels)."""
        import torch

        from divcoeff.images import convert_images

        rows = np.arange(len(self.table)) if rows is None else np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= self.max_row):
            raise ViewError(f"{self.path}: row {int(rows.max())} is beyond the view's {self.max_row} rows")
        normalise = self.normalises_by_default if normalise is None else bool(normalise)
        base, turns = rows % len(self.table), rows // len(self.table)
        size = size or self.image_size
        channels = channels or self.channels
        out = torch.empty((len(rows), channels, size, size), dtype=torch.float32)
        sub = self.table.iloc[base]
        for bench, positions in sub.groupby("benchmark").indices.items():
            ds = self._dataset(bench)
            ids = sub["image_id"].to_numpy()[positions]
            order = np.argsort(ids, kind="stable")  # memmaps read fastest in order
            pixels = np.asarray(ds.images[ids[order]])
            if bench in wrap:
                pixels = np.negative(pixels)  # uint8: (256 - p) mod 256, as ToPILImage on 0-255 floats
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0)
            x = convert_images(x, size, channels)
            for k in range(1, 4):
                turned = turns[positions[order]] == k
                if turned.any():
                    idx = torch.from_numpy(np.flatnonzero(turned))
                    x[idx] = torch.rot90(x[idx], k, dims=(2, 3))  # counter-clockwise, as torchvision's rotate
            if normalise:
                x = normalise_images(x, self.normalisation.get(bench))
            out[torch.from_numpy(positions[order])] = x
        return out

    def labels(self, rows: np.ndarray | list[int] | None = None) -> torch.Tensor:
        import torch

        labels = self.table["label"].to_numpy()
        if rows is None:
            return torch.from_numpy(np.array(labels)).long()
        return torch.from_numpy(np.array(labels[np.asarray(rows) % len(self.table)])).long()

    def dataset_build(self, bench: str) -> dict:
        """How a benchmark's stored images were made (its manifest's ``build``: reader, pixels, ...)."""
        return dict(self._dataset(bench).manifest.get("build") or {})

    def _dataset(self, bench: str) -> IndexedDataset:
        cache = self.__dict__.setdefault("_datasets", {})
        if bench not in cache:
            cache[bench] = IndexedDataset.load(self.meta["datasets"][bench])
        return cache[bench]


def normalise_images(x: torch.Tensor, norm: dict | None) -> torch.Tensor:
    """(x - mean) / std per channel; unchanged when `norm` is None (a benchmark without normalisation)."""
    import torch

    if norm is None:
        return x
    mean = torch.tensor(norm["mean"], dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(norm["std"], dtype=x.dtype).view(1, -1, 1, 1)
    if mean.shape[1] != x.shape[1]:
        raise ViewError(f"normalisation with {mean.shape[1]} channel(s) for images with {x.shape[1]}")
    return (x - mean) / std
