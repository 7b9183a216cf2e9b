"""Rendering one character in one face, with an optional random affine jitter.

Glyphs are drawn white on black at 3x the output size and reduced with a box filter. The
crop is a square around the glyph's ink centred horizontally and on the font's x-height
band vertically, sized from the em (not from the ink), so relative sizes survive: "o" stays
smaller than "O". A glyph too large for that square gets a larger square, never clipped.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from divcoeff.glyphs.fonts import FontFace

log = logging.getLogger(__name__)
SUPERSAMPLE = 3
# Code points no font maps: what a face draws for them is its tofu (.notdef) glyph.
UNMAPPED = (0x0378, 0x0379, 0x0380)
MIN_INK = 0.01  # fraction of the output image; below it a render counts as blank


class FontRenderError(RuntimeError):
    pass


class FaceRenderer:
    """Renders characters of one face at `size` x `size` pixels."""

    def __init__(self, face: FontFace, size: int):
        self.face = face
        self.size = int(size)
        self.em = SUPERSAMPLE * self.size * 0.8
        try:
            self.font = ImageFont.truetype(face.path, size=int(round(self.em)), index=face.index,
                                           layout_engine=ImageFont.Layout.BASIC)
            self._tofu = [self._canvas(cp) for cp in UNMAPPED]
        except OSError as e:  # e.g. "invalid pixel size" for bitmap-only fonts
            raise FontRenderError(f"cannot render with {face.label}: {e}") from e

    def _canvas(self, cp: int) -> np.ndarray:
        side = int(self.em * 2.2)
        img = Image.new("L", (side, side), 0)
        ImageDraw.Draw(img).text((side / 2, side * 0.62), chr(cp), font=self.font, fill=255, anchor="ms")
        return np.asarray(img)

    def _crop_box(self, ink: np.ndarray, side: int) -> tuple[float, float, float]:
        """Centre x, centre y and side of the square to cut from the canvas."""
        ys, xs = np.nonzero(ink > 0)
        if len(xs) == 0:
            return side / 2, side / 2, 1.25 * self.em
        cx = (xs.min() + xs.max() + 1) / 2
        cy = side * 0.62 - 0.35 * self.em  # the middle of the x-height band above the baseline
        half = 0.625 * self.em
        need = max(cx - xs.min(), xs.max() + 1 - cx, cy - ys.min(), ys.max() + 1 - cy) + 1
        return cx, cy, 2 * max(half, need)

    def render(self, cp: int, rng: np.random.Generator | None = None, jitter: dict | None = None) -> np.ndarray:
        """uint8 (size, size) image of character `cp`; jittered (rotation, scale, shift) when rng is given."""
        canvas = self._canvas(cp)
        cx, cy, box = self._crop_box(canvas, canvas.shape[0])
        out = SUPERSAMPLE * self.size
        angle, scale, dx, dy = 0.0, 1.0, 0.0, 0.0
        if rng is not None and jitter:
            angle = math.radians(rng.uniform(-1, 1) * jitter["rotate_deg"])
            scale = 1.0 + rng.uniform(-1, 1) * jitter["scale"]
            dx, dy = (rng.uniform(-1, 1, size=2) * jitter["translate"] * box)
        # Affine map from output pixel (u, v) to canvas (x, y): centre, rotate, scale, shift.
        k = box / out / scale
        cos, sin = math.cos(angle) * k, math.sin(angle) * k
        c0 = out / 2
        coeffs = (cos, -sin, cx + dx - cos * c0 + sin * c0,
                  sin, cos, cy + dy - sin * c0 - cos * c0)
        img = Image.fromarray(canvas).transform((out, out), Image.Transform.AFFINE, coeffs,
                                                resample=Image.Resampling.BILINEAR)
        return np.asarray(img.resize((self.size, self.size), Image.Resampling.BOX))

    def render_plain(self, cp: int) -> np.ndarray:
        return self.render(cp)

    def draws(self, cp: int) -> bool:
        """Whether the face really draws `cp`: not blank and not its tofu box (compared on the raw canvas)."""
        img = self._canvas(cp)
        if (img > 64).sum() < MIN_INK * (SUPERSAMPLE * self.size) ** 2:
            return False
        return not any(np.array_equal(img, t) for t in self._tofu)
