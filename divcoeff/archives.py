"""Safe, atomic extraction of the tar and zip archives benchmarks are distributed as.

An archive is data from the internet, so a member may try to write outside the folder it is
extracted to (an absolute name, a `..` component, a link pointing out, a hard link to a
file elsewhere) or create device files. Every member is checked before anything is written,
and then written by this code (regular files, folders and links that stay inside), never by
`extractall`. Extraction goes to a temporary folder next to the target that is renamed onto
it only when every member is in place, so an interrupted job leaves no half-extracted tree
a rerun would trust.

An archive can also be a bomb: a 2 MB zip or tar.gz that expands to gigabytes (deflate reaches
about 1000:1, bzip2 and xz far more; hard links in a tar copy one member many times). The total
extracted size is capped at `min(max_bytes, max_ratio * max(archive size, 1 MiB))`
(`ExtractionLimits`; the config's `fetch.archive_max_bytes` and `fetch.archive_max_ratio`). The
members' declared sizes are added up before anything is written, and the bytes actually written
are counted again while extracting; the member that crosses the cap is named in the error and
nothing extracted is kept.

Default caps, from the published benchmarks' archives (config/paper/config.yaml): they hold
images that are already compressed (PNG, JPEG) or are plain tars of such images, so they expand
by little more than 1x (cifar100.zip and fc100.zip of PNGs; CUB_200_2011.tgz, about 1.1 GB;
fgvc-aircraft-2013b.tar.gz, under 3 GB; tiered-imagenet.tar, pickled PNG bytes in an uncompressed
tar, the largest at some 10-15 GB). Those sizes are the hosts' approximate figures; they could not
be measured from here. Text files (split lists) compress 5-20x but are small. A ratio cap of 100
leaves the image archives two orders of magnitude of margin (and the 1 MiB floor lets a small
archive of text expand to 100 MiB), while a deflate bomb (about 1000:1) is stopped at a tenth of
its size; 64 GiB is several times the largest published benchmark and still fits a work disk.
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

from divcoeff.settings import fetch_settings

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_CHUNK = 1 << 20
_MAX_LINK_TARGET = 4096  # PATH_MAX: a zip "symlink" member larger than this is not a link

RATIO_FLOOR_BYTES = 2**20        # the ratio is taken against at least 1 MiB of archive


class UnsafeArchiveError(ValueError):
    """An archive member that would land outside the target, or is not a plain file, folder or link."""


class ArchiveTooLargeError(UnsafeArchiveError):
    """An archive that expands past the extraction cap (a decompression bomb, or a cap set too low)."""


@dataclass(frozen=True)
class ExtractionLimits:
    """Caps on what one archive may expand to: bytes in all, and bytes per byte of archive
    (defaults: the schema's fetch.archive_max_bytes / archive_max_ratio)."""

    max_bytes: int
    max_ratio: float

    def __post_init__(self):
        if not self.max_bytes > 0 or not self.max_ratio > 0:
            raise ValueError(f"extraction limits must be positive, got max_bytes={self.max_bytes}, "
                             f"max_ratio={self.max_ratio}")

    @classmethod
    def from_settings(cls, settings: dict | None) -> "ExtractionLimits":
        """From the config's `fetch:` section (archive_max_bytes, archive_max_ratio); the schema's
        defaults where absent."""
        s = fetch_settings(settings)
        return cls(max_bytes=int(s.archive_max_bytes), max_ratio=float(s.archive_max_ratio))

    def cap(self, archive_size: int) -> tuple[int, str]:
        """(bytes allowed for an archive of this size, which setting sets it)."""
        by_ratio = int(self.max_ratio * max(archive_size, RATIO_FLOOR_BYTES))
        if by_ratio < self.max_bytes:
            return by_ratio, (f"archive_max_ratio {self.max_ratio:g} x {max(archive_size, RATIO_FLOOR_BYTES):,} "
                              "bytes of archive")
        return self.max_bytes, f"archive_max_bytes {self.max_bytes:,}"


_default_limits = ExtractionLimits.from_settings(None)


def set_default_limits(limits: "ExtractionLimits | dict | None") -> ExtractionLimits:
    """Set the limits `safe_extract` uses when called without `limits` (e.g. by the benchmark
    readers); accepts ExtractionLimits or the config's `fetch:` section. Returns the previous ones."""
    global _default_limits
    previous = _default_limits
    _default_limits = limits if isinstance(limits, ExtractionLimits) else ExtractionLimits.from_settings(limits)
    return previous


def default_limits() -> ExtractionLimits:
    return _default_limits


class _Budget:
    """Bytes extracted so far against the cap; raises ArchiveTooLargeError naming the member that crosses it."""

    def __init__(self, archive: Path, limits: ExtractionLimits):
        self.archive = archive
        self.size = archive.stat().st_size
        self.cap, self.why = limits.cap(self.size)
        self.used = 0

    def charge(self, member: str, n: int, declared: bool = False) -> None:
        self.used += n
        if self.used > self.cap:
            what = "declares" if declared else "writes"
            raise ArchiveTooLargeError(
                f"{self.archive}: member {member!r} {what} more than the extraction cap allows: "
                f"{self.used:,} bytes so far, cap {self.cap:,} ({self.why}; the archive is {self.size:,} bytes); "
                "nothing extracted was kept. Raise fetch.archive_max_bytes / fetch.archive_max_ratio if the "
                "archive is trusted")


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


def _tar_members(archive: Path, tf: tarfile.TarFile, budget: _Budget) -> list[tuple[_Member, tarfile.TarInfo]]:
    """Every member checked, header by header (a bomb is stopped at the header that crosses the cap,
    not after decompressing all of it)."""
    out = []
    sizes: dict[str, int] = {}
    for info in tf:
        name = _normalise(archive, info.name)
        if not name:
            continue  # the archive's own "./" entry
        if info.isreg():
            budget.charge(name, info.size, declared=True)
            sizes[name] = info.size
            out.append((_Member(name, "file"), info))
        elif info.isdir():
            out.append((_Member(name, "dir"), info))
        elif info.issym():
            _check_link(archive, name, info.linkname)
            out.append((_Member(name, "symlink", info.linkname), info))
        elif info.islnk():
            # A hard link names another member of the archive, relative to the archive root.
            target = _normalise(archive, info.linkname)
            budget.charge(name, sizes.get(target, 0), declared=True)  # extracted as a copy of the target
            sizes[name] = sizes.get(target, 0)
            out.append((_Member(name, "hardlink", target), info))
        else:
            kind = "device file" if (info.ischr() or info.isblk()) else "FIFO" if info.isfifo() else "special file"
            raise UnsafeArchiveError(f"{archive}: member {info.name!r} is a {kind}; refusing to extract")
    return out


def _zip_members(archive: Path, zf: zipfile.ZipFile, budget: _Budget) -> list[tuple[_Member, zipfile.ZipInfo]]:
    out = []
    for info in zf.infolist():
        name = _normalise(archive, info.filename)
        if not name:
            continue
        mode = info.external_attr >> 16  # Unix mode bits; the type bits are 0 when no Unix tool set them
        if info.is_dir() or stat.S_ISDIR(mode):
            out.append((_Member(name, "dir"), info))
        elif stat.S_ISLNK(mode):
            if info.file_size > _MAX_LINK_TARGET:
                raise UnsafeArchiveError(f"{archive}: link {name!r} has a {info.file_size:,}-byte target; refusing")
            target = zf.read(info).decode("utf-8", "replace")
            _check_link(archive, name, target)
            out.append((_Member(name, "symlink", target), info))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a regular file (mode {oct(mode)}); "
                                     "refusing to extract")
        else:
            # zipfile never returns more than a member's declared size (it fails the CRC instead).
            budget.charge(name, info.file_size, declared=True)
            out.append((_Member(name, "file"), info))
    return out


def _ensure_inside(root: Path, path: Path, what: str) -> None:
    """The real location of `path`'s folder must be inside `root` (links created earlier included)."""
    real = Path(os.path.realpath(path.parent))
    if real != root and root not in real.parents:
        raise UnsafeArchiveError(f"{what}: would be written through a link to {real}, outside the extraction folder")


def _link_in(root: Path, folder: Path) -> str:
    """The member name of the first component of `folder` (under `root`) that is a link or not a folder."""
    rel = folder.relative_to(root)
    for i in range(1, len(rel.parts) + 1):
        p = root.joinpath(*rel.parts[:i])
        if p.is_symlink() or not p.is_dir():
            chain = f" -> {os.readlink(p)!r}" if p.is_symlink() else ""
            return f"{'/'.join(rel.parts[:i])!r}{chain}"
    return repr(str(rel))


def _write_stream(src, dest: Path, member: str, budget: _Budget) -> None:
    with open(dest, "wb") as f:
        while block := src.read(_CHUNK):
            budget.charge(member, len(block))  # before writing: the cap is never exceeded on disk
            f.write(block)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False,
                 limits: ExtractionLimits | None = None) -> Path:
    """Extract a tar (any compression) or zip archive into `dest`, atomically; returns `dest`.

    Refuses (UnsafeArchiveError, nothing written) absolute member names, `..` components,
    symbolic or hard links that point outside `dest`, and device files, FIFOs or other
    special members. Refuses (ArchiveTooLargeError, nothing kept) an archive that expands past
    `limits` (default: `default_limits()`, see `set_default_limits`), naming the member that
    crosses the cap. With `overwrite`, an existing `dest` is replaced; otherwise it is an error.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or _default_limits
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
                # every member checked, declared sizes included, before anything is written
                members = _zip_members(archive, zf, _Budget(archive, limits))
                _extract(archive, root, members, lambda info: zf.open(info), _Budget(archive, limits))
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = _tar_members(archive, tf, _Budget(archive, limits))
                _extract(archive, root, members, lambda info: tf.extractfile(info), _Budget(archive, limits))
        else:
            raise UnsafeArchiveError(f"{archive}: neither a zip nor a tar archive")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _extract(archive: Path, root: Path, members: list, open_member, budget: _Budget) -> None:
    files: dict[str, Path] = {}
    for m, info in members:
        path = root / m.name
        where = f"{archive}: member {m.name!r}"
        _ensure_inside(root, path, where)  # before mkdir: never create folders through a link
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            # A link earlier in the archive (or a chain of them) stands where this member's folder
            # should be and leads to no folder: the archive is inconsistent, not the disk.
            raise UnsafeArchiveError(f"{where}: its folder {_link_in(root, path.parent)} is a link (or a file) that "
                                     "leads to no folder of the archive; refusing") from None
        if m.kind == "dir":
            if path.is_symlink():
                raise UnsafeArchiveError(f"{where}: a folder with the name of an earlier link; refusing")
            path.mkdir(exist_ok=True)
        elif m.kind == "file":
            if path.is_symlink():
                path.unlink()  # never write through a link; a later member replaces it
            try:
                with open_member(info) as src:
                    _write_stream(src, path, m.name, budget)
            except (zipfile.BadZipFile, tarfile.ReadError, EOFError) as e:
                # zipfile names only the member ("Bad CRC-32 for file ..."); say which archive and why.
                raise UnsafeArchiveError(f"{where}: its data does not match what the archive declares for it "
                                         f"(size or checksum; {type(e).__name__}: {e}); the archive is "
                                         "damaged or crafted; refusing") from None
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
            budget.charge(m.name, files[m.link].stat().st_size)
            shutil.copyfile(files[m.link], path)  # a copy: the extracted tree never shares inodes
            files[m.name] = path
