"""Issue 15, sizes: archives are capped in total extracted bytes and in expansion ratio; a bomb fails
on the member that crosses the cap, named, with nothing extracted left behind."""
import io
import re
import struct
import tarfile
import zipfile
import zlib

import pytest

from divcoeff.archives import (ArchiveTooLargeError, ExtractionLimits, UnsafeArchiveError, default_limits,
                               safe_extract, set_default_limits)

MiB = 2**20


def zip_bomb(path, members=1000, member_size=2_100_000):
    """A zip of `members` entries of `member_size` zero bytes each, sharing one compressed body
    (written by hand: compressing 2.1 GB here would take as long as the bomb it tests)."""
    zeros = b"\0" * member_size
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = co.compress(zeros) + co.flush()
    crc = zlib.crc32(zeros)
    out, central = io.BytesIO(), io.BytesIO()
    for i in range(members):
        name = f"bomb/part-{i:04d}.bin".encode()
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(body), member_size,
                              len(name), 0) + name + body)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(body),
                                  member_size, len(name), 0, 0, 0, 0, 0, offset) + name)
    cd = central.getvalue()
    path.write_bytes(out.getvalue() + cd + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, members, members,
                                                       len(cd), out.tell(), 0))
    return path


def tar_gz_bomb(path, members=2100, member_size=MiB):
    """A tar.gz of `members` files of `member_size` zero bytes: a gzip stream of many gzip members,
    the zero block compressed once and repeated (gzip readers concatenate members)."""
    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = zeros.compress(b"\0" * member_size) + zeros.flush()
    parts = []
    for i in range(members):
        info = tarfile.TarInfo(f"bomb/part-{i:04d}.bin")
        info.size = member_size
        head = zlib.compressobj(9, zlib.DEFLATED, 31)
        parts += [head.compress(info.tobuf(format=tarfile.GNU_FORMAT)) + head.flush(), zeros]
    end = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts.append(end.compress(b"\0" * 1024) + end.flush())
    path.write_bytes(b"".join(parts))
    return path


def left_in(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("make, name", [(zip_bomb, "bomb.zip"), (tar_gz_bomb, "bomb.tar.gz")])
def test_a_2mb_archive_expanding_to_2gb_fails_on_the_crossing_member_under_the_defaults(tmp_path, make, name):
    archive = make(tmp_path / name)
    assert archive.stat().st_size < 3_000_000  # the 2 MB of the report
    with pytest.raises(ArchiveTooLargeError) as e:
        safe_extract(archive, tmp_path / "out")
    msg = str(e.value)
    cap = int(default_limits().max_ratio * archive.stat().st_size)
    assert str(archive) in msg and f"cap {cap:,} (archive_max_ratio 100" in msg
    # the member named is the first whose bytes take the total past the cap
    crossing = re.search(r"member 'bomb/part-(\d+)\.bin'", msg)
    assert crossing, msg
    size = 2_100_000 if name.endswith(".zip") else MiB
    assert int(crossing.group(1)) == cap // size
    assert left_in(tmp_path) == [name]  # no target, no temporary folder


def test_the_absolute_cap_applies_to_archives_whose_ratio_is_fine(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/first.bin", b"x" * 4000, compress_type=zipfile.ZIP_STORED)
        zf.writestr("a/second.bin", b"y" * 4000, compress_type=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveTooLargeError, match=r"member 'a/second.bin'.*archive_max_bytes 6,000"):
        safe_extract(z, tmp_path / "out", limits=ExtractionLimits.from_settings({"archive_max_bytes": 6000}))
    assert left_in(tmp_path) == ["a.zip"]
    assert (safe_extract(z, tmp_path / "out", limits=ExtractionLimits.from_settings({"archive_max_bytes": 8000})) / "a/second.bin").exists()


def test_hard_links_count_as_the_copies_they_become(tmp_path):
    tar = tmp_path / "links.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("data.bin")
        info.size = MiB
        tf.addfile(info, io.BytesIO(bytes(range(256)) * (MiB // 256)))
        for i in range(300):  # 300 more MiB once extracted, in a 1.2 MB tar
            link = tarfile.TarInfo(f"copy-{i:03d}")
            link.type, link.linkname = tarfile.LNKTYPE, "data.bin"
            tf.addfile(link)
    with pytest.raises(ArchiveTooLargeError, match=r"member 'copy-\d{3}' declares more"):
        safe_extract(tar, tmp_path / "out")
    assert left_in(tmp_path) == ["links.tar"]


def test_a_huge_zip_symlink_member_is_refused_without_reading_it(tmp_path):
    z = tmp_path / "l.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, b"a" * (50 * MiB))
    with pytest.raises(UnsafeArchiveError, match=r"link 'link' has a 52,428,800-byte target"):
        safe_extract(z, tmp_path / "out")


def test_small_archives_of_text_may_expand_more_than_the_ratio(tmp_path):
    z = tmp_path / "splits.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("splits/train.csv", b"n01532829,n01532829_1.jpg\n" * 400_000)  # ~10 MB, ratio > 100
    assert z.stat().st_size * 100 < 10 * MiB
    out = safe_extract(z, tmp_path / "out")
    assert (out / "splits/train.csv").stat().st_size == 26 * 400_000


def test_default_limits_come_from_the_fetch_settings(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("f.bin", b"z" * 5000)
    previous = set_default_limits({"archive_max_bytes": 4096, "archive_max_ratio": 100})
    try:
        assert default_limits() == ExtractionLimits(4096, 100.0)
        with pytest.raises(ArchiveTooLargeError, match="archive_max_bytes 4,096"):
            safe_extract(z, tmp_path / "out")
    finally:
        set_default_limits(previous)
    assert default_limits() == previous
    assert ExtractionLimits.from_settings({}) == ExtractionLimits(64 * 2**30, 100.0)  # the schema's defaults
    assert safe_extract(z, tmp_path / "out").joinpath("f.bin").stat().st_size == 5000


