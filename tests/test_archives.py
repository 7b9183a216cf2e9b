"""divcoeff.archives: safe, atomic extraction of tar and zip archives."""
import io
import os
import tarfile
import zipfile

import pytest

from divcoeff.archives import UnsafeArchiveError, is_archive, safe_extract


def _tar(path, members, mode="w:gz"):
    """members: (name, kind, payload): kind file (payload bytes), dir, symlink/hardlink (payload target), chr."""
    with tarfile.open(path, mode) as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            tf.addfile(info)
    return path


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return path


def _zip_symlink(path, name, target):
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o120777 << 16)  # S_IFLNK
        zf.writestr(info, target)
    return path


def test_good_tar_and_zip_extract_all_files(tmp_path):
    tar = _tar(tmp_path / "a.tar.gz", [("top/", "dir", None), ("top/x.txt", "file", b"hello"),
                                       ("top/sub/y.bin", "file", b"\x00\x01"), ("top/link", "symlink", "x.txt"),
                                       ("top/hard", "hardlink", "top/x.txt")])
    out = safe_extract(tar, tmp_path / "t")
    assert (out / "top/x.txt").read_bytes() == b"hello"
    assert (out / "top/sub/y.bin").read_bytes() == b"\x00\x01"
    assert (out / "top/link").is_symlink() and (out / "top/link").read_bytes() == b"hello"
    assert (out / "top/hard").read_bytes() == b"hello" and not (out / "top/hard").is_symlink()
    z = _zip(tmp_path / "b.zip", [("cifar100/data/cls/1.png", b"png"), ("cifar100/splits/", b"")])
    out = safe_extract(z, tmp_path / "z")
    assert (out / "cifar100/data/cls/1.png").read_bytes() == b"png"
    assert (out / "cifar100/splits").is_dir()
    # nothing but the two targets and the archives is left in the folder (no temporary folders)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "b.zip", "t", "z"]


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt"])
def test_tar_with_escaping_member_is_refused_and_nothing_written(tmp_path, name):
    tar = _tar(tmp_path / "bad.tar", [("ok.txt", "file", b"ok"), (name, "file", b"x")], mode="w")
    with pytest.raises(UnsafeArchiveError, match="bad.tar"):
        safe_extract(tar, tmp_path / "out" / "t")
    assert not (tmp_path / "out" / "t").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # the temporary folder is gone too


@pytest.mark.parametrize("name", ["../evil.txt", "d/../../evil.txt", "/abs/evil.txt", "..\\evil.txt"])
def test_zip_with_escaping_member_is_refused(tmp_path, name):
    z = _zip(tmp_path / "bad.zip", [("ok.txt", b"ok"), (name, b"x")])
    with pytest.raises(UnsafeArchiveError, match="bad.zip"):
        safe_extract(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.txt").exists()


def test_symlinks_leaving_the_target_are_refused(tmp_path):
    for target in ("../../etc/passwd", "/etc/passwd", "a/../../x"):
        tar = _tar(tmp_path / "s.tar", [("link", "symlink", target)], mode="w")
        with pytest.raises(UnsafeArchiveError, match="link"):
            safe_extract(tar, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    z = _zip_symlink(tmp_path / "s.zip", "link", "../outside")
    with pytest.raises(UnsafeArchiveError, match="leaves"):
        safe_extract(z, tmp_path / "out")


def test_writing_through_an_inner_link_chain_cannot_escape(tmp_path):
    # A link to a folder inside is fine; a file written through it stays inside.
    tar = _tar(tmp_path / "c.tar", [("d/", "dir", None), ("l", "symlink", "d"), ("l/f.txt", "file", b"in")], mode="w")
    out = safe_extract(tar, tmp_path / "out")
    assert (out / "d/f.txt").read_bytes() == b"in"


def test_hard_link_to_outside_and_device_files_are_refused(tmp_path):
    tar = _tar(tmp_path / "h.tar", [("h", "hardlink", "../../etc/passwd")], mode="w")
    with pytest.raises(UnsafeArchiveError, match=r"\.\."):
        safe_extract(tar, tmp_path / "out")
    tar = _tar(tmp_path / "d.tar", [("dev", "chr", None)], mode="w")
    with pytest.raises(UnsafeArchiveError, match="device"):
        safe_extract(tar, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_target_is_kept_unless_overwrite(tmp_path):
    z = _zip(tmp_path / "a.zip", [("f.txt", b"new")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError):
        safe_extract(z, tmp_path / "out")
    safe_extract(z, tmp_path / "out", overwrite=True)
    assert sorted(os.listdir(tmp_path / "out")) == ["f.txt"]


def test_not_an_archive_is_refused(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"not an archive at all" * 40)
    with pytest.raises(UnsafeArchiveError, match="neither"):
        safe_extract(p, tmp_path / "out")
    assert is_archive("a.tar.gz") and is_archive("B.ZIP") and not is_archive("mini-imagenet-cache-train.pkl")
