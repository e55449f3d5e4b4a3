"""A small numpy rasteriser for the classic-control pictures (``render_mode="rgb_array"``).

Shapes are given in world units (metres) with y pointing up, as the physics has them; the canvas maps
them to pixels with one scale and an origin, and flips the rows only when the frame is read, so an
env never does pixel arithmetic itself. A pixel is painted when its centre lies inside the shape (no
anti-aliasing): plenty for a video of a cart or a pendulum, and exact enough to test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Colour = tuple[int, int, int]
Point = Sequence[float]


class Canvas:
    """An RGB picture ``height`` x ``width`` pixels, onto which filled shapes are painted in world units.

    Args:
        width, height: the frame's size in pixels.
        scale: pixels per world unit.
        origin: where the world's (0, 0) lies, in pixels from the bottom-left corner.
        background: the colour every pixel starts with.
    """

    def __init__(
        self, width: int, height: int, scale: float, origin: Point, background: Colour = (255, 255, 255)
    ) -> None:
        self.scale = float(scale)
        self.origin = np.asarray(origin, dtype=np.float64)
        # Row 0 is the bottom row until :meth:`frame` flips it: world y and row index then grow together.
        self._rows_up = np.empty((height, width, 3), dtype=np.uint8)
        self._rows_up[:] = background

    def _pixels(self, points: np.ndarray) -> np.ndarray:
        return self.origin + self.scale * np.asarray(points, dtype=np.float64)

    def _paint(self, low: np.ndarray, high: np.ndarray, inside, colour: Colour) -> None:
        """Paint the pixels between ``low`` and ``high`` (pixel corners) whose centres ``inside(x, y)`` accepts."""
        height, width, _ = self._rows_up.shape
        x0, y0 = np.maximum(np.floor(low).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(high).astype(int), (width, height))
        if x0 >= x1 or y0 >= y1:
            return  # wholly outside the frame
        xs = np.arange(x0, x1) + 0.5
        ys = np.arange(y0, y1)[:, None] + 0.5
        self._rows_up[y0:y1, x0:x1][inside(xs, ys)] = colour

    def polygon(self, vertices: Sequence[Point], colour: Colour) -> None:
        """Fill the convex polygon with these corners (in order, either way round)."""
        corners = self._pixels(vertices)
        edges = np.roll(corners, -1, axis=0) - corners

        def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            # Which side of each edge the pixel centre lies on: inside a convex polygon it is the same side for all.
            side = edges[:, 0, None, None] * (ys - corners[:, 1, None, None]) - edges[:, 1, None, None] * (
                xs - corners[:, 0, None, None]
            )
            return (side >= 0).all(axis=0) | (side <= 0).all(axis=0)

        self._paint(corners.min(axis=0), corners.max(axis=0), inside, colour)

    def box(self, centre: Point, width: float, height: float, colour: Colour) -> None:
        """Fill the upright rectangle of this size around ``centre``."""
        half = np.array([width / 2, height / 2])
        signs = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)])  # the corners, counter-clockwise
        self.polygon(np.asarray(centre, dtype=np.float64) + signs * half, colour)

    def bar(self, start: Point, end: Point, thickness: float, colour: Colour) -> None:
        """Fill a straight bar of this thickness from ``start`` to ``end`` (a rod, a pole, a line)."""
        start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
        along = end - start
        length = float(np.hypot(*along))
        if length == 0.0:
            return
        across = np.array([-along[1], along[0]]) / length * (thickness / 2)
        self.polygon([start - across, end - across, end + across, start + across], colour)

    def disc(self, centre: Point, radius: float, colour: Colour) -> None:
        """Fill the disc of ``radius`` around ``centre``."""
        cx, cy = self._pixels(centre)
        r = self.scale * radius

        def inside(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r

        self._paint(np.array([cx - r, cy - r]), np.array([cx + r, cy + r]), inside, colour)

    def frame(self) -> np.ndarray:
        """The picture as a fresh ``uint8`` array of shape (height, width, 3), top row first."""
        return self._rows_up[::-1].copy()


__all__ = ["Canvas", "Colour"]
