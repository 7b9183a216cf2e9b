"""config/paper at miniature size: benchmark files and checkpoints in the published formats, and the
derived config that points the paper's DAG at them on the local fake Zenodo (tests/fake_servers.py).

Files, as their hosts distribute them (REFERENCE section 7, "Files"), with a handful of classes each:

* Zenodo 7978538: ``mini-imagenet-cache-{train,validation,test}.pkl`` (84 x 84 uint8 ``image_data`` and a
  ``class_dict``), ``cifar100.zip`` (``cifar100/data/<class>/*.png`` and the Bertinetto split files),
  ``fc100.zip`` (``FC100_<split>.pickle``, Python 2 style dicts), the six ``tiered-imagenet-*.pkl`` files;
* Zenodo 7756788: ``delauny_l2l_bm_splits.zip`` (``delauny_<split>_split_dir/<artist>/*``);
* Omniglot's two zips (url sources, served as plain files with their md5);
* Zenodo 8247898: one checkpoint per published layout: RFS ``{'model': sd}``, the seeds'
  ``model_state_dict`` with ``model_hps`` and an argparse Namespace, learn2learn's MAML state dict
  (``module.features...`` / ``module.classifier``), ultimate-utils' MAML file with ``agent_type``
  (a class of a throw-away ``uutils`` package that is gone when the workflow reads the file).

The derived config is config/paper/config.yaml with the benchmarks that have no miniature here (Aircraft,
VGG-Flower, DTD, CUB) and the train sets using them left out, 32 px instead of 84, 3-way 2-shot 2-query
episodes, a few episodes and tasks, a randomly initialised probe and a short Task2Vec schedule; everything
else (the published protocol, own_test, normalisations, Omniglot's inputs, the report) as configured.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import io
import pathlib
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from fake_servers import md5

REPO = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(13)
SERVED = ("mini-imagenet", "cifar-fs", "fc100", "tiered-imagenet", "omniglot", "delaunay")
WAYS, SHOTS, QUERIES = 3, 2, 2
NARROW = (4, 6, 8, 10)
SPLIT_CLASSES = {"train": 4, "val": 3, "test": 4}
PER_CLASS = 6
# The checkpoints, one per layout: name -> (layout, family, train set)
CHECKPOINTS = {"usl-mini-imagenet": ("rfs", "pt", "mini-imagenet"),
               "usl-cifar-fs": ("seeds", "pt", "cifar-fs"),
               "maml-hdb1-2022": ("learn2learn", "maml", "hdb1"),
               "maml-hdb4": ("ultimate-utils", "maml", "hdb4")}
AGENT = "uutils.torch_uu.meta_learners.maml_meta_learner.MAMLMetaLearner"


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _images(n: int, size: int, seed: int) -> np.ndarray:
    """Class-specific pictures (a colour blob pattern plus noise), so the classes differ."""
    g = np.random.default_rng(seed)
    base = g.integers(0, 256, (1, size, size, 3))
    return np.clip(base + g.normal(0, 25, (n, size, size, 3)), 0, 255).astype(np.uint8)


def mini_imagenet() -> dict[str, bytes]:
    out = {}
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        n = SPLIT_CLASSES[split]
        images = np.concatenate([_images(PER_CLASS, 84, 100 + 10 * n + c + len(split)) for c in range(n)])
        class_dict = {f"n{split}{c:05d}": list(range(c * PER_CLASS, (c + 1) * PER_CLASS)) for c in range(n)}
        out[f"mini-imagenet-cache-{name}.pkl"] = pickle.dumps({"image_data": images, "class_dict": class_dict},
                                                              protocol=4)
    return out


def cifar100_zip() -> dict[str, bytes]:
    members = {}
    for split, n in SPLIT_CLASSES.items():
        names = [f"{split}_class{c}" for c in range(n)]
        members[f"cifar100/splits/bertinetto/{split}.txt"] = ("\n".join(names) + "\n").encode()
        for c, name in enumerate(names):
            for i, img in enumerate(_images(PER_CLASS, 32, 200 + 10 * n + c)):
                members[f"cifar100/data/{name}/{name}_s_{i:06d}.png"] = _png(img)
    return {"cifar100.zip": _zip(members)}


def fc100_zip() -> dict[str, bytes]:
    members, label = {}, 0
    for split, n in SPLIT_CLASSES.items():
        data, labels = [], []
        for c in range(n):
            data.append(_images(PER_CLASS, 32, 300 + label))
            labels += [label] * PER_CLASS
            label += 1
        members[f"FC100_{split}.pickle"] = pickle.dumps({"data": np.concatenate(data), "labels": labels}, protocol=2)
    return {"fc100.zip": _zip(members)}


def tiered_imagenet() -> dict[str, bytes]:
    out = {}
    for split, n in SPLIT_CLASSES.items():
        imgs = np.concatenate([_images(PER_CLASS, 84, 400 + 10 * n + c) for c in range(n)])
        specific = np.repeat(np.arange(n), PER_CLASS)
        encoded = [np.frombuffer(_png(im), dtype=np.uint8) for im in imgs]
        labels = {"label_specific": specific, "label_general": np.zeros(len(imgs), np.int64),
                  "label_specific_str": [f"{split}_n{c:04d}" for c in range(n)],
                  "label_general_str": [f"category-{split}"]}
        out[f"tiered-imagenet-{split}_images_png.pkl"] = pickle.dumps(encoded, protocol=2)
        out[f"tiered-imagenet-{split}_labels.pkl"] = pickle.dumps(labels, protocol=2)
    return out


def omniglot() -> dict[str, bytes]:
    """16 characters (background: 2 alphabets x 5, evaluation: 1 x 6), 4 drawers: unshuffled 11/1/4."""
    out = {}
    for part, alphabets, chars in (("images_background", ["Latin", "Greek"], 5), ("images_evaluation", ["Tengwar"], 6)):
        members = {}
        for a in alphabets:
            for c in range(1, chars + 1):
                stroke = RNG.random((105, 105)) > 0.9
                for drawer in range(1, 5):
                    img = Image.fromarray((~(stroke ^ (RNG.random((105, 105)) > 0.97))).astype(np.uint8) * 255)
                    buf = io.BytesIO()
                    img.convert("1").save(buf, format="PNG")
                    members[f"{part}/{a}/character{c:02d}/{c:04d}_{drawer:02d}.png"] = buf.getvalue()
        out[f"{part}.zip"] = _zip(members)
    return out


def delaunay_zip() -> dict[str, bytes]:
    members = {}
    for split, d in (("train", "delauny_train_split_dir"), ("val", "delauny_validation_split_dir"),
                     ("test", "delauny_test_split_dir")):
        for c in range(SPLIT_CLASSES[split]):
            for i, img in enumerate(_images(PER_CLASS, 40, 500 + 10 * SPLIT_CLASSES[split] + c + len(split))):
                members[f"delauny_l2l_bm_splits/{d}/{split} artist {c}/{i}.png"] = _png(img)
    return {"delauny_l2l_bm_splits.zip": _zip(members)}


BENCHMARK_FILES = {"mini-imagenet": mini_imagenet, "cifar-fs": cifar100_zip, "fc100": fc100_zip,
                   "tiered-imagenet": tiered_imagenet, "omniglot": omniglot, "delaunay": delaunay_zip}


# ----------------------------------------------------------------------------------------- checkpoints

def _model_state(num_classes: int, seed: int) -> dict:
    from divcoeff.models.resnet12 import ResNet12

    torch.manual_seed(seed)
    model = ResNet12(NARROW, in_channels=3, num_classes=num_classes).train()
    with torch.no_grad():
        model(torch.randn(16, 3, 32, 32))  # BatchNorm statistics that are not the init's
    return {k: v.clone() for k, v in model.state_dict().items()}


def _uutils_class(root: Path):
    """The class an ultimate-utils file names as its agent_type, from a throw-away package."""
    pkg = root / "uutils" / "torch_uu" / "meta_learners"
    pkg.mkdir(parents=True, exist_ok=True)
    for d in (root / "uutils", root / "uutils" / "torch_uu", pkg):
        (d / "__init__.py").write_text("")
    (pkg / "maml_meta_learner.py").write_text("class MAMLMetaLearner:\n    pass\n")
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module("uutils.torch_uu.meta_learners.maml_meta_learner").MAMLMetaLearner
    finally:
        sys.path.remove(str(root))


def _forget_uutils() -> None:
    for name in [m for m in sys.modules if m == "uutils" or m.startswith("uutils.")]:
        del sys.modules[name]


def checkpoint_files(tmp: Path) -> dict[str, bytes]:
    """name -> bytes of torch.save, each in its published layout."""
    out = {}
    for i, (name, (layout, family, _)) in enumerate(CHECKPOINTS.items()):
        n_out = WAYS if family == "maml" else 8
        state = _model_state(n_out, seed=i)
        args = argparse.Namespace(lr=1e-3, n_cls=n_out, k_shots=5, k_eval=15, data_option=name,
                                  path_to_save=pathlib.PosixPath(f"/home/brando/data/logs/{name}"))
        if layout == "rfs":            # WangYueFt/rfs: {'opt': ..., 'model': state_dict}
            payload = {"model": state, "epoch": 90}
        elif layout == "seeds":        # the seeds' save code: model_state_dict + model_option/model_hps + args
            payload = {"model_state_dict": state, "model_option": "resnet12_rfs",
                       "model_hps": {"avg_pool": True, "drop_rate": 0.1, "dropblock_size": 2, "num_classes": n_out},
                       "args": args, "args_dict": argparse.Namespace(**vars(args)), "it": 1000, "epoch_num": -1,
                       "training_mode": "iterations"}
        elif layout == "learn2learn":  # l2l.algorithms.MAML(l2l ResNet12).state_dict(): module.features / classifier
            payload = {}
            for k, v in state.items():
                k = f"features.{k}" if k.startswith("layer") else k.replace("cls.", "classifier.")
                payload[f"module.{k}"] = v
        else:                          # ultimate-utils save_for_meta_learning: agent_type is a uutils class
            agent = _uutils_class(tmp / "site")
            payload = {"model_state_dict": state, "model_option": "resnet12_rfs", "agent_type": agent,
                       "model_hps": {"avg_pool": True, "drop_rate": 0.1, "dropblock_size": 5, "num_classes": n_out},
                       "args": args, "it": 500, "epoch_num": -1, "training_mode": "iterations",
                       "opt_state_dict": {"state": {}, "param_groups": []}}
        buf = io.BytesIO()
        torch.save(payload, buf)
        out[name] = buf.getvalue()
        _forget_uutils()
    return out


# -------------------------------------------------------------------------------------- derived config

def _small(size):
    return 32 if size == 84 else size


def derived_config(server_url: str, plain_urls: dict[str, str], plain_md5: dict[str, str], sheet: Path) -> dict:
    """config/paper/config.yaml at miniature size, pointed at the fake server (see the module docstring)."""
    config = yaml.safe_load((REPO / "config/paper/config.yaml").read_text())
    c = copy.deepcopy(config)
    c["checkpoint_sheet"] = str(sheet)
    c["fetch"] = {"zenodo_url": server_url, "retries": 1, "backoff_s": 0.01, "timeout_s": 20,
                  "zenodo_pace": [{"requests": 10000, "window_s": 1}], "zenodo_pace_file": None}
    c["benchmarks"] = {b: spec for b, spec in config["benchmarks"].items() if b in SERVED}
    for b, spec in c["benchmarks"].items():
        spec["strict"] = False
        spec["image_size"] = _small(spec.get("image_size") or (84 if b in ("mini-imagenet", "tiered-imagenet",
                                                                           "delaunay") else None))
        if spec["source"] == "url":
            for f in spec["files"]:
                f["uri"], f["checksum"] = plain_urls[f["name"]], f"md5:{plain_md5[f['name']]}"
    c["train_sets"] = {t: spec for t, spec in config["train_sets"].items() if set(spec["benchmarks"]) <= set(SERVED)}
    for spec in c["train_sets"].values():
        if "image_size" in spec:
            spec["image_size"] = _small(spec["image_size"])
    ev = c["evaluation"]
    ev.update(benchmarks=[b for b in ev["benchmarks"] if b in SERVED], image_size=_small(ev["image_size"]),
              ways=WAYS, shots=SHOTS, queries=QUERIES, episodes=4)
    ev["maml"]["calibration_episodes"] = 2
    own = c["own_test"]
    own["episodes"] = 3
    own["episodes_per_train_set"] = {t: 4 for t in own["episodes_per_train_set"] if t in c["train_sets"]}
    div = c["diversity"]
    div.update(tasks=3, ways=WAYS, shots=1, queries=1, bootstrap=20, noise_floor_tasks=0)
    div["probe"]["weights"] = "random"  # no ImageNet weights offline
    div["faithful"] = {"head_epochs": 1, "epoch_images": 32, "batch_size": 16, "lr": 4.0e-4, "weight_decay": 1.0e-4,
                       "fisher_epochs": 1}
    # MAML checkpoints of the sheet are 3-way; views must offer that many classes per component, not training's 5
    c["training"]["maml"]["ways"] = WAYS
    c["training"]["images_per_step"] = c["training"]["maml"]["meta_batch"] * WAYS * (
        c["training"]["maml"]["shots"] + c["training"]["maml"]["queries"])
    c["compute"] = {"evaluate": {"batch_size": 64}}
    c["report"] = {**c["report"], "bootstrap": 20, "dpi": 50, "published": str(REPO / c["report"]["published"])}
    return c


def sheet_text(record: str = "8247898") -> str:
    lines = ["name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle"]
    for name, (_, family, train_set) in CHECKPOINTS.items():
        lines.append(f"{name}\t{family}\tresnet12_rfs\tzenodo\t{record}/runs/{name}/ckpt.pt\t\t{train_set}\tfalse")
    return "\n".join(lines) + "\n"


def serve(server, tmp: Path) -> dict:
    """Put every miniature file on the fake server; returns the derived config."""
    files = {b: make() for b, make in BENCHMARK_FILES.items()}
    zenodo = {**files["mini-imagenet"], **files["cifar-fs"], **files["fc100"], **files["tiered-imagenet"]}
    server.add_record("7978538", zenodo, title="learn2learn datasets (miniature)")
    server.add_record("7756788", files["delaunay"], title="Delaunay splits (miniature)")
    ckpts = checkpoint_files(tmp)
    server.add_record("8247898", {f"runs/{n}/ckpt.pt": data for n, data in ckpts.items()}, title="checkpoints")
    urls = {name: server.add_plain(name, data) for name, data in files["omniglot"].items()}
    sheet = tmp / "checkpoints.tsv"
    sheet.write_text(sheet_text())
    return derived_config(server.url, urls, {n: md5(d) for n, d in files["omniglot"].items()}, sheet)
