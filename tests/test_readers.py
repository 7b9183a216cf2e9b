"""divcoeff.readers: each benchmark reader on a tiny file of the real format, written here."""
import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from divcoeff.data.indexed import IndexedDataset
from divcoeff.io import sha256_file
from divcoeff.readers import READERS, ReaderError, read_benchmark
from divcoeff.readers.safe_pickle import UnsafePickleError, load_data_pickle

RNG = np.random.default_rng(0)


def _png(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _tar(path, files: dict):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _zip(path, files: dict):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _index(tmp_path, name, spec, files, **kw):
    out = read_benchmark(name, spec, files, tmp_path / "data" / name, **kw)
    ds = IndexedDataset.load(out)
    leftovers = [p.name for p in (tmp_path / "data").iterdir() if p.name != name]
    assert leftovers == [], f"scratch folders left behind: {leftovers}"
    return ds


def _pixels(ds, class_name):
    cid = int(ds.classes.loc[ds.classes["name"] == class_name, "class_id"].iloc[0])
    return np.asarray(ds.images[ds.index["image_id"][ds.index["class_id"] == cid].to_numpy()])


def _splits(ds):
    return dict(zip(ds.classes["name"], ds.classes["split"]))


def _resized(raw: bytes, size, mode="RGB"):
    """Independent reference: decode, convert, Lanczos to a square."""
    img = Image.open(io.BytesIO(raw)).convert(mode).resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img)
    return arr[..., None] if arr.ndim == 2 else arr


# --- MiniImageNet pickles ------------------------------------------------------------------
def _mini_files(tmp_path, protocol=4):
    files, truth = {}, {}
    for split, n_cls in (("train", 3), ("validation", 2), ("test", 2)):
        images = RNG.integers(0, 256, (n_cls * 2, 84, 84, 3), dtype=np.uint8)
        # class_dict indices interleaved, as a list of (numpy) ints like the real files
        class_dict = {f"n{split[:2]}{c:03d}": [c, np.int64(c + n_cls)] for c in range(n_cls)}
        for name, idx in class_dict.items():
            truth[name] = images[[int(i) for i in idx]]
        path = tmp_path / f"mini-imagenet-cache-{split}.pkl"
        with open(path, "wb") as f:
            pickle.dump({"image_data": images, "class_dict": class_dict}, f, protocol=protocol)
        files[path.name] = path
    return files, truth


@pytest.mark.parametrize("protocol", [2, 5])
def test_mini_imagenet_pickles(tmp_path, protocol):
    files, truth = _mini_files(tmp_path, protocol)
    ds = _index(tmp_path, "mini", {"format": "mini-imagenet", "strict": False}, files)
    assert ds.manifest["image_size"] == [84, 84] and ds.manifest["channels"] == 3
    assert len(ds.classes) == 7 and len(ds.index) == 14
    assert _splits(ds)["ntr000"] == "train" and _splits(ds)["nva001"] == "val" and _splits(ds)["nte001"] == "test"
    for name, pixels in truth.items():
        np.testing.assert_array_equal(_pixels(ds, name), pixels)
    sources = {s["name"]: s for s in ds.manifest["sources"]}
    assert sources["mini-imagenet-cache-train.pkl"]["sha256"] == sha256_file(files["mini-imagenet-cache-train.pkl"])
    assert ds.manifest["build"]["split_counts"] == {"train": 3, "val": 2, "test": 2}


def test_mini_imagenet_resized_and_strict_counts(tmp_path):
    files, truth = _mini_files(tmp_path)
    ds = _index(tmp_path, "mini32", {"format": "mini-imagenet", "strict": False, "image_size": 32}, files)
    expected = np.stack([_resized(_png(p), 32) for p in truth["ntr001"]])
    np.testing.assert_array_equal(_pixels(ds, "ntr001"), expected)
    with pytest.raises(ReaderError, match=r"found 3/2/2 classes .* published split has 64/16/20"):
        read_benchmark("mini", {"format": "mini-imagenet"}, files, tmp_path / "strict" / "mini")
    assert not (tmp_path / "strict" / "mini" / "manifest.json").exists()


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickles_that_would_run_code_are_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    path = tmp_path / "mini-imagenet-cache-train.pkl"
    path.write_bytes(pickle.dumps({"image_data": _Exploit(marker), "class_dict": {}}))
    with pytest.raises(UnsafePickleError, match=r"mini-imagenet-cache-train.pkl.*posix.mkdir|os.mkdir"):
        load_data_pickle(path)
    assert not os.path.exists(marker)
    objects = tmp_path / "objects.pkl"
    objects.write_bytes(pickle.dumps(np.array([{"a": 1}], dtype=object)))
    with pytest.raises(UnsafePickleError, match="object dtype"):
        load_data_pickle(objects)


class _NdarrayCall:
    """Pickles as a direct call numpy.ndarray(shape, dtype): what the object-dtype check did not see."""

    def __init__(self, dtype):
        self.dtype = dtype

    def __reduce__(self):
        return (np.ndarray, ((1,), self.dtype))


@pytest.mark.parametrize("dtype", ["O", [("a", "u1"), ("b", "O")]], ids=["object", "struct-with-object"])
def test_object_arrays_built_by_calling_ndarray_are_refused(tmp_path, dtype):
    path = tmp_path / "mini-imagenet-cache-test.pkl"
    path.write_bytes(pickle.dumps({"image_data": _NdarrayCall(dtype), "class_dict": {}}, protocol=2))
    with pytest.raises(UnsafePickleError) as info:
        load_data_pickle(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "object dtype" in msg and "arbitrary Python objects" in msg, msg


def _dtype_with_forged_flags_pickle() -> bytes:
    """A bytes dtype whose pickled state claims it holds Python objects (flags=1), then an array of it.

    numpy applies the state as given, so an array of this dtype would read its raw bytes as object
    pointers. The bytes here are zeros (NULL pointers, harmless) so that an unguarded loader fails the
    test instead of crashing it."""
    p = pickle
    s = lambda text: p.BINUNICODE + len(text).to_bytes(4, "little") + text.encode()  # noqa: E731
    dtype = (p.GLOBAL + b"numpy\ndtype\n" + s("S8") + p.NEWFALSE + p.NEWTRUE + p.TUPLE3 + p.REDUCE
             + p.MARK + p.BININT1 + b"\x03" + s("|") + p.NONE + p.NONE + p.NONE
             + p.BININT + (8).to_bytes(4, "little") + p.BININT + (1).to_bytes(4, "little")
             + p.BININT1 + b"\x01" + p.TUPLE + p.BUILD)
    array = (p.GLOBAL + b"numpy._core.multiarray\n_reconstruct\n" + p.GLOBAL + b"numpy\nndarray\n"
             + p.BININT1 + b"\x00" + p.TUPLE1 + p.SHORT_BINBYTES + b"\x01b" + p.TUPLE3 + p.REDUCE
             + p.MARK + p.BININT1 + b"\x01" + p.BININT1 + b"\x01" + p.TUPLE1 + dtype + p.NEWFALSE
             + p.SHORT_BINBYTES + b"\x08" + bytes(8) + p.TUPLE + p.BUILD)
    return p.PROTO + b"\x03" + array + p.STOP


def test_dtype_state_that_claims_objects_is_refused(tmp_path):
    raw = _dtype_with_forged_flags_pickle()
    assert pickle.loads(raw).dtype.hasobject  # what numpy's own unpickler makes of it
    path = tmp_path / "forged.pkl"
    path.write_bytes(raw)
    with pytest.raises(UnsafePickleError) as info:
        load_data_pickle(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ") and "dtype state" in msg and "Python objects" in msg, msg


def test_unpickler_sets_no_attributes_on_what_it_resolves(tmp_path):
    """BUILD on a resolved global (here what `numpy.dtype` resolves to) would change it for the whole process."""
    from divcoeff.readers import safe_pickle

    before = {k: getattr(v, "__qualname__", None) for k, v in safe_pickle._ALLOWED.items()}
    path = tmp_path / "build.pkl"
    path.write_bytes(pickle.PROTO + b"\x02" + pickle.GLOBAL + b"numpy\ndtype\n" + pickle.NONE + pickle.EMPTY_DICT
                     + pickle.SHORT_BINUNICODE + b"\x0c__qualname__" + pickle.SHORT_BINUNICODE + b"\x06hacked"
                     + pickle.SETITEM + pickle.TUPLE2 + pickle.BUILD + pickle.STOP)
    with pytest.raises(UnsafePickleError, match=r"build\.pkl: the pickle sets state on "):
        load_data_pickle(path)
    assert {k: getattr(v, "__qualname__", None) for k, v in safe_pickle._ALLOWED.items()} == before


# --- CIFAR-FS and FC100 zips ----------------------------------------------------------------
def test_cifar_fs_zip(tmp_path):
    members, truth = {}, {}
    splits = {"train": ["apple", "bee"], "val": ["cloud"], "test": ["dolphin", "maple_tree"]}
    for split, names in splits.items():
        members[f"cifar100/splits/bertinetto/{split}.txt"] = ("\n".join(names) + "\n").encode()
        for name in names:
            imgs = RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
            truth[name] = imgs
            for i, img in enumerate(imgs):
                members[f"cifar100/data/{name}/{name}_s_{i:06d}.png"] = _png(img)
    members["cifar100/data/unused_class/x.png"] = _png(imgs[0])  # not in any split: left out
    z = _zip(tmp_path / "cifar100.zip", members)
    ds = _index(tmp_path, "cifar-fs", {"format": "cifar-fs", "strict": False}, {"cifar100.zip": z})
    assert _splits(ds) == {n: s for s, ns in splits.items() for n in ns}
    for name, imgs in truth.items():
        np.testing.assert_array_equal(_pixels(ds, name), imgs)
    assert ds.manifest["image_size"] == [32, 32]


def test_fc100_zip_of_pickles(tmp_path):
    members, truth = {}, {}
    for split, labels in (("train", [3, 7]), ("val", [11]), ("test", [42])):
        data = RNG.integers(0, 256, (2 * len(labels), 32, 32, 3), dtype=np.uint8)
        lab = [labels[i % len(labels)] for i in range(len(data))]
        for label in labels:
            truth[f"label-{label}"] = (split, data[[i for i, v in enumerate(lab) if v == label]])
        members[f"FC100_{split}.pickle"] = pickle.dumps({"data": data, "labels": lab}, protocol=2)
    z = _zip(tmp_path / "fc100.zip", members)
    ds = _index(tmp_path, "fc100", {"format": "fc100", "strict": False}, {"fc100.zip": z})
    for name, (split, imgs) in truth.items():
        assert _splits(ds)[name] == split
        np.testing.assert_array_equal(_pixels(ds, name), imgs)


# --- tiered-ImageNet -------------------------------------------------------------------------
def test_tiered_imagenet_tar(tmp_path):
    members, truth = {}, {}
    for split, n_cls in (("train", 2), ("val", 1), ("test", 1)):
        imgs = RNG.integers(0, 256, (2 * n_cls, 84, 84, 3), dtype=np.uint8)
        specific = np.array([i % n_cls for i in range(len(imgs))])
        encoded = [np.frombuffer(_png(im), dtype=np.uint8) for im in imgs]
        names = [f"{split}_n{c:04d}" for c in range(n_cls)]
        labels = {"label_specific": specific, "label_general": np.zeros(len(imgs), np.int64),
                  "label_specific_str": names, "label_general_str": [f"category-{split}"]}
        members[f"tiered-imagenet/{split}_images_png.pkl"] = pickle.dumps(encoded, protocol=2)
        members[f"tiered-imagenet/{split}_labels.pkl"] = pickle.dumps(labels, protocol=2)
        for c, name in enumerate(names):
            truth[name] = (split, imgs[specific == c])
    tar = _tar(tmp_path / "tiered-imagenet.tar", members)
    ds = _index(tmp_path, "tiered", {"format": "tiered-imagenet", "strict": False}, {"tiered-imagenet.tar": tar},
                workers=2)
    for name, (split, imgs) in truth.items():
        assert _splits(ds)[name] == split
        np.testing.assert_array_equal(_pixels(ds, name), imgs)
    assert set(ds.classes["domain"]) == {"category-train", "category-val", "category-test"}
    # Zenodo 7978538 holds the same pickles one by one as tiered-imagenet-<name>
    loose = {}
    for member, data in members.items():
        name = "tiered-imagenet-" + member.split("/", 1)[1]
        (tmp_path / name).write_bytes(data)
        loose[name] = tmp_path / name
    zen = _index(tmp_path / "zenodo", "tiered", {"format": "tiered-imagenet", "strict": False}, loose)
    assert _splits(zen) == _splits(ds)
    np.testing.assert_array_equal(np.asarray(zen.images), np.asarray(ds.images))


# --- Omniglot ---------------------------------------------------------------------------------
def _omniglot_zips(tmp_path):
    files, raw = {}, {}
    for part, alphabets in (("images_background", ["Latin", "Greek"]), ("images_evaluation", ["Tengwar"])):
        members = {}
        for a in alphabets:
            for c in range(1, 5):
                for drawer in (1, 2):
                    img = Image.fromarray((RNG.random((105, 105)) > 0.2).astype(np.uint8) * 255).convert("1")
                    buf = io.BytesIO()
                    img.save(buf, format="PNG")
                    name = f"{part}/{a}/character{c:02d}/{c:04d}_{drawer:02d}.png"
                    members[name] = raw[name] = buf.getvalue()
        files[f"{part}.zip"] = _zip(tmp_path / f"{part}.zip", members)
    return files, raw


def test_omniglot_zips(tmp_path):
    files, raw = _omniglot_zips(tmp_path)
    ds = _index(tmp_path, "omni", {"format": "omniglot", "seed": 3, "strict": False}, files)
    assert ds.manifest["image_size"] == [28, 28] and ds.manifest["channels"] == 1
    assert len(ds.classes) == 12 and len(ds.index) == 24
    assert ds.manifest["domains"] == ["Greek", "Latin", "Tengwar"]  # alphabets, sorted within each zip
    assert set(ds.manifest["groups"]) == {"drawer01", "drawer02"}
    # 12 classes in the published proportions 1100/100/423 of 1623
    counts = ds.classes["split"].value_counts().to_dict()
    assert counts == {"train": 8, "val": 1, "test": 3}
    got = _pixels(ds, "Greek/character03")
    want = np.stack([_resized(raw[f"images_background/Greek/character03/0003_{d:02d}.png"], 28, "L")
                     for d in (1, 2)])
    np.testing.assert_array_equal(got, want)
    # the split is seeded: the same seed gives the same split, another seed another one
    again = _index(tmp_path / "again", "omni", {"format": "omniglot", "seed": 3, "strict": False}, files)
    other = _index(tmp_path / "other", "omni", {"format": "omniglot", "seed": 4, "strict": False}, files)
    assert _splits(again) == _splits(ds)
    assert _splits(other) != _splits(ds)


def test_omniglot_as_the_published_loaders_read_it(tmp_path):
    """ultimate-utils omniglot_l2l.py (hdb1/hdb4): classes[:1100]/[1100:1200]/[1200:] unshuffled (since
    26070c8), ToRGB, Resize(84) bilinear, ToTensor, 1 - x; RandomClassRotation recorded for the episodes."""
    files, raw = _omniglot_zips(tmp_path)
    spec = {"format": "omniglot", "strict": False, "shuffle_classes": False, "channels": 3, "image_size": 84,
            "resample": "bilinear", "pixels": "inverted", "task_rotations": [0, 90, 180, 270]}
    ds = _index(tmp_path, "omni", spec, files)
    # FullOmniglot order (background then evaluation, sorted), cut 8/1/3 in order: no shuffle
    order = list(ds.classes.sort_values("class_id")["name"])
    assert order[:4] == [f"Greek/character0{c}" for c in range(1, 5)] and order[-1] == "Tengwar/character04"
    assert list(ds.classes.sort_values("class_id")["split"]) == ["train"] * 8 + ["val"] + ["test"] * 3
    img = Image.open(io.BytesIO(raw["images_background/Greek/character03/0003_01.png"])).convert("L").convert("RGB")
    want = 255 - np.asarray(img.resize((84, 84), Image.Resampling.BILINEAR))  # torchvision Resize, then 1 - x
    np.testing.assert_array_equal(_pixels(ds, "Greek/character03")[0], want)
    assert ds.manifest["normalisation"] is None
    assert ds.manifest["task_rotations"] == {"degrees": [0, 90, 180, 270], "scope": "task"}
    assert ds.manifest["build"]["pixels"] == "inverted" and "bilinear" in ds.manifest["build"]["resize"]


def test_normalisation_and_byte_wrapped_pixels_are_recorded(tmp_path):
    files, truth = _mini_files(tmp_path)
    norm = {"mean": [0.47, 0.45, 0.41], "std": [0.28, 0.27, 0.28]}
    ds = _index(tmp_path, "mini", {"format": "mini-imagenet", "strict": False, "normalisation": norm,
                                   "pixels": "byte_wrapped"}, files)
    assert ds.manifest["normalisation"] == norm and ds.manifest["task_rotations"]["degrees"] == []
    # torchvision's ToPILImage on learn2learn's float 0-255 tensors: x * 255 cast to uint8 wraps to (256 - p) % 256
    import torch
    pixels = truth["ntr001"]
    wrapped = torch.from_numpy(pixels.astype(np.float32)).mul(255).byte().numpy()
    np.testing.assert_array_equal(_pixels(ds, "ntr001"), wrapped)


# --- image-folder benchmarks -------------------------------------------------------------------
def _photo(h=60, w=50):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_aircraft_tar_with_variant_files_and_boxes(tmp_path):
    root = "fgvc-aircraft-2013b/data"
    variants = {"train": ["A318", "F-16A/B"], "val": ["A310"], "test": ["Spitfire"]}
    members, raw, lines = {}, {}, {"train": [], "val": [], "test": []}
    boxes = []
    n = 1000000
    for split, names in variants.items():
        for v in names:
            for _ in range(2):
                n += 1
                raw[(v, n)] = _jpg(_photo())
                members[f"{root}/images/{n}.jpg"] = raw[(v, n)]
                lines[split].append(f"{n} {v}")
                boxes.append(f"{n} 5 6 40 50")
    for split, ls in lines.items():
        members[f"{root}/images_variant_{split}.txt"] = ("\n".join(ls) + "\n").encode()
    members[f"{root}/images_box.txt"] = ("\n".join(boxes) + "\n").encode()
    tar = _tar(tmp_path / "fgvc-aircraft-2013b.tar.gz", members)
    spec = {"format": "aircraft", "strict": False, "image_size": 16}
    ds = _index(tmp_path, "aircraft", spec, {"fgvc-aircraft-2013b.tar.gz": tar})
    assert _splits(ds) == {"A318": "train", "F-16A/B": "train", "A310": "val", "Spitfire": "test"}
    want = np.stack([_resized(b, 16) for (v, _), b in sorted(raw.items()) if v == "A310"])
    np.testing.assert_array_equal(_pixels(ds, "A310"), want)
    cropped = _index(tmp_path / "crop", "aircraft", {**spec, "crop_boxes": True},
                     {"fgvc-aircraft-2013b.tar.gz": tar})
    ref = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB").crop((5, 6, 41, 51))
                      .resize((16, 16), Image.Resampling.LANCZOS)) for (v, _), b in sorted(raw.items()) if v == "A310"]
    np.testing.assert_array_equal(_pixels(cropped, "A310"), np.stack(ref))
    with pytest.raises(ReaderError, match="variant 'A340-300' has no images"):
        read_benchmark("aircraft", {"format": "aircraft"}, {"a.tar.gz": tar}, tmp_path / "strict" / "aircraft")


def test_vgg_flower_tgz_and_mat(tmp_path):
    import scipy.io

    labels = [90, 10, 5, 90, 10, 5, 38]  # train, val, test ids of the published split
    members = {f"jpg/image_{i + 1:05d}.jpg": _jpg(_photo()) for i in range(len(labels))}
    tgz = _tar(tmp_path / "102flowers.tgz", members)
    mat = tmp_path / "imagelabels.mat"
    scipy.io.savemat(mat, {"labels": np.array([labels], dtype=np.uint8)})
    ds = _index(tmp_path, "flower", {"format": "vgg-flower", "strict": False, "image_size": 16},
                {"102flowers.tgz": tgz, "imagelabels.mat": mat})
    assert _splits(ds) == {"090": "train", "038": "train", "010": "val", "005": "test"}
    want = np.stack([_resized(members[f"jpg/image_{i:05d}.jpg"], 16) for i in (1, 4)])
    np.testing.assert_array_equal(_pixels(ds, "090"), want)


def test_dtd_tar(tmp_path):
    members = {}
    for cat in ("chequered", "banded", "gauzy"):
        for i in range(2):
            members[f"dtd/images/{cat}/{cat}_{i:04d}.jpg"] = _jpg(_photo())
        members[f"dtd/images/{cat}/.directory"] = b"[Dolphin]\n"  # KDE leftovers in the real archive
    tar = _tar(tmp_path / "dtd-r1.0.1.tar.gz", members)
    ds = _index(tmp_path, "dtd", {"format": "dtd", "strict": False, "image_size": 16}, {"dtd-r1.0.1.tar.gz": tar})
    assert _splits(ds) == {"chequered": "train", "gauzy": "val", "banded": "test"}
    assert len(ds.index) == 6


def test_cub_tgz_leaves_out_imagenet_duplicates(tmp_path):
    members = {}
    for cls, files in (("073.Blue_Jay", ["Blue_Jay_0053_62744.jpg", "Blue_Jay_0001_1.jpg"]),
                       ("044.Frigatebird", ["Frigatebird_0001_1.jpg"]), ("008.Rhinoceros_Auklet", ["R_0001.jpg"])):
        for f in files:
            members[f"CUB_200_2011/images/{cls}/{f}"] = _jpg(_photo())
    tgz = _tar(tmp_path / "CUB_200_2011.tgz", members)
    spec = {"format": "cub", "strict": False, "image_size": 16}
    ds = _index(tmp_path, "cub", spec, {"CUB_200_2011.tgz": tgz})
    assert _splits(ds) == {"073.Blue_Jay": "train", "044.Frigatebird": "val", "008.Rhinoceros_Auklet": "test"}
    assert len(_pixels(ds, "073.Blue_Jay")) == 1  # the ILSVRC duplicate is left out
    ds = _index(tmp_path / "all", "cub", {**spec, "exclude_imagenet_duplicates": False}, {"CUB_200_2011.tgz": tgz})
    assert len(_pixels(ds, "073.Blue_Jay")) == 2


def test_delaunay_split_folders_and_original_layout(tmp_path):
    members = {}
    for split_dir, artists in (("delauny_train_split_dir", ["Ad Reinhardt", "Jean Arp"]),
                               ("delauny_validation_split_dir", ["Mark Rothko"]),
                               ("delauny_test_split_dir", ["Yves Klein"])):
        for a in artists:
            members[f"delauny_l2l_bm_splits/{split_dir}/{a}/1.jpg"] = _jpg(_photo(90, 70))
    z = _zip(tmp_path / "splits.zip", members)
    ds = _index(tmp_path, "delaunay", {"format": "delaunay", "strict": False, "image_size": 16}, {"s.zip": z})
    assert _splits(ds) == {"Ad Reinhardt": "train", "Jean Arp": "train", "Mark Rothko": "val", "Yves Klein": "test"}
    # the original folder of artists is split in sorted order, in the published proportions 34/8/11
    artists = [f"artist{i:02d}" for i in range(12)]
    z = _zip(tmp_path / "orig.zip", {f"DELAUNAY/{a}/x.png": _png(_photo(20, 20)) for a in artists})
    ds = _index(tmp_path / "orig", "delaunay", {"format": "delaunay", "strict": False, "image_size": 16},
                {"orig.zip": z})
    splits = _splits(ds)
    assert [splits[a] for a in artists] == ["train"] * 8 + ["val"] * 2 + ["test"] * 2


def test_every_format_has_a_reader_with_published_counts():
    assert set(READERS) == {"mini-imagenet", "cifar-fs", "fc100", "tiered-imagenet", "omniglot", "aircraft",
                            "vgg-flower", "dtd", "cub", "delaunay"}
    expected = {"mini-imagenet": (64, 16, 20), "cifar-fs": (64, 16, 20), "fc100": (60, 20, 20),
                "tiered-imagenet": (351, 97, 160), "omniglot": (1100, 100, 423), "aircraft": (70, 15, 15),
                "vgg-flower": (71, 15, 16), "dtd": (33, 7, 7), "cub": (140, 30, 30), "delaunay": (34, 8, 11)}
    for fmt, counts in expected.items():
        c = READERS[fmt].PUBLISHED_SPLIT_COUNTS
        assert (c["train"], c["val"], c["test"]) == counts, fmt


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ReaderError, match="mini-imagenet-cache-validation.pkl"):
        files, _ = _mini_files(tmp_path)
        del files["mini-imagenet-cache-validation.pkl"]
        read_benchmark("mini", {"format": "mini-imagenet", "strict": False}, files, tmp_path / "d" / "mini")


@pytest.mark.workflow
def test_workflow_fetches_and_indexes_a_local_benchmark(tmp_path):
    """rules/benchmarks.smk end to end: fetch_benchmark_file (source file) then index_benchmark."""
    import subprocess
    import sys

    import yaml

    repo = __import__("pathlib").Path(__file__).resolve().parents[1]
    members, splits = {}, {"train": ["a", "b", "c", "d", "e"], "val": ["f"], "test": ["g", "h", "i", "j", "k"]}
    for split, names in splits.items():
        members[f"cifar100/splits/bertinetto/{split}.txt"] = ("\n".join(names) + "\n").encode()
        for n in names:
            for i in range(2):
                members[f"cifar100/data/{n}/{i}.png"] = _png(RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    z = _zip(tmp_path / "cifar100.zip", members)
    config = {
        "checkpoint_sheet": str(tmp_path / "sheet.tsv"),
        "benchmarks": {"tinyfs": {"source": "file", "format": "cifar-fs", "strict": False,
                                  "files": [{"name": "cifar100.zip", "uri": str(z)}]}},
        "train_sets": {"t": {"benchmarks": ["tinyfs"]}},
        "evaluation": {"name": "e", "benchmarks": ["tinyfs"]},
        "diversity": {},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "sheet.tsv").write_text("name\tfamily\tarch\tsource\turi\tchecksum\ttrain_set\tallow_pickle\n"
                                        "pt-t\tpt\tresnet12\ttrain\t\t\tt\tfalse\n")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-d", str(tmp_path / "run"),
           "results/data/tinyfs/manifest.json", "--cores", "1", "--configfile", str(tmp_path / "config.yaml")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    run = tmp_path / "run"
    ds = IndexedDataset.load(run / "results/data/tinyfs")
    assert len(ds.classes) == 11 and len(ds.index) == 22
    src = ds.manifest["sources"][0]
    assert src["sha256"] == sha256_file(z) and src["source"] == "file"
    assert (run / "resources/benchmarks/tinyfs/cifar100.zip.provenance.json").is_file()
    assert (run / "logs/benchmarks/index_tinyfs.log").is_file()


def test_reader_options_of_a_fetched_benchmark_complete_whatever_its_source():
    """The index rule passes a benchmark's entry without its files; a zenodo or url entry must complete too."""
    from divcoeff.settings import reader_spec

    for source in ("zenodo", "url", "hf", "file"):
        spec = reader_spec({"source": source, "format": "omniglot", "pixels": "inverted"})
        assert spec["pixels"] == "inverted" and spec["resample"] == "lanczos" and spec["normalisation"] is None
