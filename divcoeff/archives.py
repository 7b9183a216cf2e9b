"""Safe, atomic extraction of the tar and zip archives benchmarks are distributed as.

An archive is data from the internet, so a member may try to write outside the folder it is
extracted to (an absolute name, a `..` component, a link pointing out, a hard link to a
file elsewhere) or create device files. Every member is checked before anything is written,
and then written by this code (regular files, folders and links that stay inside), never by
`extractall`. Extraction goes to a temporary folder next to the target that is renamed onto
it only when every member is in place, so an interrupted job leaves no half-extracted tree
a rerun would trust.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the target, or is not a plain file, folder or link."""


@dataclass(frozen=True)
class _Member:
    name: str            # normalised relative POSIX path
    kind: str            # file | dir | symlink | hardlink
    link: str = ""       # symlink target as stored / hard-link target (normalised)


def is_archive(path: str | os.PathLike) -> bool:
    """True when the file name says tar or zip (content is checked again when extracting)."""
    name = Path(path).name.lower()
    return any(name.endswith(s) for s in ARCHIVE_SUFFIXES)


def _normalise(archive: Path, raw: str) -> str:
    """A member name as a relative POSIX path; refuse absolute names and `..` components."""
    name = raw.replace("\\", "/")
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: member {raw!r} has a NUL byte in its name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: member {raw!r} has an absolute path; refusing to extract")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {raw!r} contains '..'; refusing to extract outside the target")
    return "/".join(parts)


def _inside(rel: str) -> bool:
    """Whether a relative POSIX path (already joined, may contain ..) stays under the root."""
    norm = posixpath.normpath(rel)
    return not (norm == ".." or norm.startswith("../") or norm.startswith("/"))


def _check_link(archive: Path, member: str, target: str) -> None:
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise UnsafeArchiveError(f"{archive}: link {member!r} points to the absolute path {target!r}; refusing")
    joined = posixpath.join(posixpath.dirname(member), target.replace("\\", "/"))
    if not _inside(joined):
        raise UnsafeArchiveError(f"{archive}: link {member!r} -> {target!r} leaves the extraction folder; refusing")


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[tuple[_Member, tarfile.TarInfo]]:
    out = []
    for info in tf.getmembers():
        name = _normalise(archive, info.name)
        if not name:
            continue  # the archive's own "./" entry
        if info.isreg():
            out.append((_Member(name, "file"), info))
        elif info.isdir():
            out.append((_Member(name, "dir"), info))
        elif info.issym():
            _check_link(archive, name, info.linkname)
            out.append((_Member(name, "symlink", info.linkname), info))
        elif info.islnk():
            # A hard link names another member of the archive, relative to the archive root.
            target = _normalise(archive, info.linkname)
            out.append((_Member(name, "hardlink", target), info))
        else:
            kind = "device file" if (info.ischr() or info.isblk()) else "FIFO" if info.isfifo() else "special file"
            raise UnsafeArchiveError(f"{archive}: member {info.name!r} is a {kind}; refusing to extract")
    return out


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[tuple[_Member, zipfile.ZipInfo]]:
    out = []
    for info in zf.infolist():
        name = _normalise(archive, info.filename)
        if not name:
            continue
        mode = info.external_attr >> 16  # Unix mode bits; the type bits are 0 when no Unix tool set them
        if info.is_dir() or stat.S_ISDIR(mode):
            out.append((_Member(name, "dir"), info))
        elif stat.S_ISLNK(mode):
            target = zf.read(info).decode("utf-8", "replace")
            _check_link(archive, name, target)
            out.append((_Member(name, "symlink", target), info))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a regular file (mode {oct(mode)}); "
                                     "refusing to extract")
        else:
            out.append((_Member(name, "file"), info))
    return out


def _ensure_inside(root: Path, path: Path, what: str) -> None:
    """The real location of `path`'s folder must be inside `root` (links created earlier included)."""
    real = Path(os.path.realpath(path.parent))
    if real != root and root not in real.parents:
        raise UnsafeArchiveError(f"{what}: would be written through a link to {real}, outside the extraction folder")


def _write_stream(src, dest: Path) -> None:
    with open(dest, "wb") as f:
        shutil.copyfileobj(src, f, _CHUNK)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Extract a tar (any compression) or zip archive into `dest`, atomically; returns `dest`.

    Refuses (UnsafeArchiveError, nothing written) absolute member names, `..` components,
    symbolic or hard links that point outside `dest`, and device files, FIFOs or other
    special members. With `overwrite`, an existing `dest` is replaced; otherwise it is an error.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest}: already exists; not extracting {archive} over it")
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extracting", dir=dest.parent))
    try:
        root = Path(os.path.realpath(tmp))
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = _zip_members(archive, zf)  # every member checked before anything is written
                _extract(archive, root, members, lambda info: zf.open(info))
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _tar_members(archive, tf)
                _extract(archive, root, members, lambda info: tf.extractfile(info))
        else:
            raise UnsafeArchiveError(f"{archive}: neither a zip nor a tar archive")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract(archive: Path, root: Path, members: list, open_member) -> None:
    files: dict[str, Path] = {}
    for m, info in members:
        path = root / m.name
        where = f"{archive}: member {m.name!r}"
        _ensure_inside(root, path, where)  # before mkdir: never create folders through a link
        path.parent.mkdir(parents=True, exist_ok=True)
        if m.kind == "dir":
            if path.is_symlink():
                raise UnsafeArchiveError(f"{where}: a folder with the name of an earlier link; refusing")
            path.mkdir(exist_ok=True)
        elif m.kind == "file":
            if path.is_symlink():
                path.unlink()  # never write through a link; a later member replaces it
            with open_member(info) as src:
                _write_stream(src, path)
            files[m.name] = path
        elif m.kind == "symlink":
            if path.exists() or path.is_symlink():
                raise UnsafeArchiveError(f"{where}: link over an existing member; refusing")
            os.symlink(m.link, path)
            real = Path(os.path.realpath(path))
            if real != root and root not in real.parents:
                path.unlink()
                raise UnsafeArchiveError(f"{where}: link -> {m.link!r} resolves to {real}, outside the extraction folder")
        elif m.kind == "hardlink":
            if m.link not in files:
                raise UnsafeArchiveError(f"{where}: hard link to {m.link!r}, which is not a file extracted before it")
            shutil.copyfile(files[m.link], path)  # a copy: the extracted tree never shares inodes
            files[m.name] = path
