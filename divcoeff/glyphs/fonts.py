"""Finding the installed font faces and what they cover.

A face is one font inside a file (a .ttc holds several). Coverage comes from the face's cmap
(fontTools), so nothing is rendered to find out what a font claims; what it really draws is
checked later against its tofu and blank renders (divcoeff.glyphs.render).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont

log = logging.getLogger(__name__)
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int          # face index inside a collection; 0 for single-face files
    family: str         # typographic family (name ID 16, else 1): "DejaVu Sans", not "DejaVu Sans Bold"
    style: str
    codepoints: frozenset

    @property
    def label(self) -> str:
        return f"{Path(self.path).name}#{self.index} ({self.family} {self.style})"


def _name(tt: TTFont, *ids: int) -> str:
    for i in ids:
        value = tt["name"].getDebugName(i) if "name" in tt else None
        if value:
            return value.strip()
    return ""


def _face(path: Path, index: int, tt: TTFont) -> FontFace | None:
    if not any(t in tt for t in ("glyf", "CFF ", "CFF2")):
        log.warning("skipping %s#%d: no outline glyphs (bitmap-only fonts cannot be scaled)", path, index)
        return None
    cmap = tt.getBestCmap()
    if not cmap:
        log.warning("skipping %s#%d: no usable character map", path, index)
        return None
    family = _name(tt, 16, 1) or path.stem
    return FontFace(str(path), index, family, _name(tt, 17, 2) or "Regular", frozenset(cmap))


def read_faces(path: str | Path) -> list[FontFace]:
    """The faces of one font file; unreadable files and faces are skipped with a warning."""
    path = Path(path)
    faces = []
    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            tts = list(enumerate(TTCollection(str(path), lazy=True).fonts))
        else:
            tts = [(0, TTFont(str(path), lazy=True))]
        for index, tt in tts:
            face = _face(path, index, tt)
            if face is not None:
                faces.append(face)
    except Exception as e:  # fontTools raises many kinds for damaged files; any of them means "skip"
        log.warning("skipping unreadable font %s: %s: %s", path, type(e).__name__, e)
    return faces


def find_font_files(font_dirs: list[str]) -> list[Path]:
    """Every font file under the given folders (recursively), sorted, duplicates (symlinks) once."""
    seen, files = set(), []
    for d in font_dirs:
        root = Path(d)
        if not root.is_dir():
            log.info("font folder %s does not exist; skipped", root)
            continue
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in FONT_SUFFIXES and p.is_file():
                real = p.resolve()
                if real not in seen:
                    seen.add(real)
                    files.append(p)
    return files


def scan_fonts(font_dirs: list[str]) -> list[FontFace]:
    faces = []
    for path in find_font_files(font_dirs):
        faces.extend(read_faces(path))
    return faces
