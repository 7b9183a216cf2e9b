"""Archives refused for inconsistent members say which archive, which member and why (issue 25, point 5)."""
import struct
import zipfile

import pytest

from divcoeff.archives import UnsafeArchiveError, safe_extract
from test_archives import _tar


def _nothing_extracted(folder, dest):
    assert not dest.exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".extracting")]


@pytest.mark.parametrize("links", [
    [("a", "symlink", "b"), ("b", "symlink", "c")],   # a chain ending nowhere
    [("a", "symlink", "b"), ("b", "symlink", "a")],   # a loop
])
def test_a_member_under_a_link_chain_that_leads_to_no_folder_names_archive_member_and_link(tmp_path, links):
    tar = _tar(tmp_path / "chain.tar", [*links, ("a/f.txt", "file", b"x")], mode="w")
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(tar, dest)
    msg = str(e.value)
    assert msg.startswith(f"{tar}: member 'a/f.txt': its folder 'a' -> 'b' is a link")
    assert ".extracting" not in msg  # the temporary folder means nothing to the user
    _nothing_extracted(tmp_path, dest)


def test_a_member_under_a_file_is_refused_naming_the_file(tmp_path):
    tar = _tar(tmp_path / "f.tar", [("x", "file", b"1"), ("x/y", "file", b"2")], mode="w")
    with pytest.raises(UnsafeArchiveError, match=r"member 'x/y': its folder 'x' is a link \(or a file\)"):
        safe_extract(tar, tmp_path / "out")
    _nothing_extracted(tmp_path, tmp_path / "out")


def _zip_lying_about_size(path, name, data, declared):
    """A stored zip whose local and central headers declare `declared` bytes (and as many compressed)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    local, central = raw.find(b"PK\x03\x04"), raw.rfind(b"PK\x01\x02")
    for offset in (local + 18, local + 22, central + 20, central + 24):  # compressed, uncompressed size
        struct.pack_into("<I", raw, offset, declared)
    path.write_bytes(bytes(raw))
    return path


def test_a_zip_member_lying_about_its_size_names_the_archive_the_member_and_why(tmp_path):
    z = _zip_lying_about_size(tmp_path / "lie.zip", "m.bin", b"hello world" * 100, 10)
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as e:
        safe_extract(z, dest)
    msg = str(e.value)
    assert msg.startswith(f"{z}: member 'm.bin': its data does not match what the archive declares")
    assert "Bad CRC-32" in msg
    _nothing_extracted(tmp_path, dest)
