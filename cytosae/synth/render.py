"""Vectorised numpy renderer of single-cell blood-smear crops with exact concept masks.

How a crop is drawn
-------------------
A crop is a stack of *elements* (background, red cells, cytoplasm, granules of one type,
nucleus, nucleoli, Auer rods, ...).  Elements are painted in order with hard masks into an
``owner`` map (uint8, one element id per pixel; the last painter wins).  Each element carries
two colours ``c0``/``c1`` and a set of concept tags; each pixel carries a mix weight ``t`` and a
multiplicative ``shade`` (texture, e.g. chromatin or red-cell pallor).  The image is then::

    rgb = (c0[owner] * (1 - t) + c1[owner] * t) * shade * illumination + sensor_noise

so a concept mask, ``any(tag in tags[owner])``, is exactly the set of pixels whose colour came
from an element with that concept.  Shapes are implicit functions (distance fields) evaluated on
coordinate grids in micrometres; granules of one population are drawn in one pass with a jittered,
warped cell-noise (Worley) grid; textures are random crops of a fixed, seeded noise bank.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import numpy as np

from cytosae.synth.celltypes import CELL_TYPES, SPECS, CellSpec, Granules
from cytosae.synth.stains import DOMAIN_STYLE, DOMAINS, jittered_palette

#: concepts with per-pixel ground truth (order = channel order of masks and patch fractions)
CONCEPTS: tuple[str, ...] = (
    "background",
    "red_cell",
    "platelet",
    "nucleus",
    "nucleus_round",
    "nucleus_kidney",
    "nucleus_band",
    "nucleus_lobed",
    "nucleus_bilobed",
    "nucleus_cup",
    "chromatin_coarse",
    "chromatin_fine",
    "nucleolus",
    "cytoplasm_pink",
    "cytoplasm_blue",
    "cytoplasm_grey",
    "cytoplasm_deep_blue",
    "granule_neutrophilic",
    "granule_eosinophilic",
    "granule_basophilic",
    "granule_azurophilic",
    "granule_abnormal_eosinophil",
    "auer_rod",
    "faggot_bundle",
    "vacuole",
    "hof",
    "projections",
    "smudge",
    "debris",
)
CONCEPT_INDEX: dict[str, int] = {c: i for i, c in enumerate(CONCEPTS)}

#: default field of view (um) per domain: MLL23/Hehr show ~25 um (datasets.md)
DOMAIN_FIELD_UM: dict[str, float] = {
    "metafer": 25.0,
    "cellavision": 36.0,
    "precipoint": 28.0,
    "marrow": 25.0,
}

_REF_PPU = 288 / 25.0  # pixels per um at which the texture bank is defined
_BANK = 512


@functools.lru_cache(maxsize=1)
def _bank() -> np.ndarray:
    """Fixed noise bank (5, 512, 512) float32, zero mean, unit sd: white, fine, medium, coarse, very coarse."""
    rng = np.random.default_rng(20240601)
    out = np.empty((5, _BANK, _BANK), np.float32)
    f = np.fft.fftfreq(_BANK)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    for i, sigma in enumerate((0.0, 1.2, 3.0, 7.0, 30.0)):
        z = rng.standard_normal((_BANK, _BANK))
        if sigma > 0:  # periodic Gaussian blur in the Fourier domain
            z = np.fft.ifft2(np.fft.fft2(z) * np.exp(-2 * (np.pi * sigma) ** 2 * f2)).real
        out[i] = ((z - z.mean()) / z.std()).astype(np.float32)
    return out


WHITE, FINE, MEDIUM, COARSE, VCOARSE = range(5)


@dataclasses.dataclass
class Scene:
    """A rendered crop before colouring: owner map, element table and per-pixel mix/shade."""

    owner: np.ndarray  # (H, W) uint8 element id
    t: np.ndarray  # (H, W) float32 mix weight between c0 and c1
    shade: np.ndarray  # (H, W) float32
    illum: np.ndarray  # (H, W) float32 illumination
    noise: np.ndarray  # (H, W) float32 additive sensor noise
    c0: list[np.ndarray]
    c1: list[np.ndarray]
    tags: list[tuple[str, ...]]
    cell_type: str
    domain: str

    @property
    def tagbits(self) -> np.ndarray:
        """(n_elements,) uint64 bit set of concept indices per element."""
        bits = np.zeros(len(self.tags), np.uint64)
        for e, tags in enumerate(self.tags):
            for c in tags:
                bits[e] |= np.uint64(1) << np.uint64(CONCEPT_INDEX[c])
        return bits

    def paint(self, recolor: dict[str, tuple[float, float, float]] | None = None) -> np.ndarray:
        """Colour the scene: (H, W, 3) uint8.

        Args:
            recolor: optional concept -> RGB; every element carrying that concept gets this
                colour for both c0 and c1 (used to check that masks are the painted pixels).
        """
        c0 = np.stack(self.c0).astype(np.float32)
        c1 = np.stack(self.c1).astype(np.float32)
        if recolor:
            for e, tags in enumerate(self.tags):
                for c, rgb in recolor.items():
                    if c in tags:
                        c0[e] = rgb
                        c1[e] = rgb
        dc = c1 - c0
        gain = self.shade * self.illum
        rgb = np.empty((*self.owner.shape, 3), np.float32)
        for ch in range(3):
            x = np.take(dc[:, ch], self.owner)
            x *= self.t
            x += np.take(c0[:, ch], self.owner)
            x *= gain
            x += self.noise
            rgb[..., ch] = x
        rgb += 0.5
        np.clip(rgb, 0, 255, out=rgb)
        return rgb.astype(np.uint8)

    def masks(self) -> np.ndarray:
        """(n_concepts, H, W) bool concept masks (exactly the pixels painted by tagged elements)."""
        per_px = self.tagbits[self.owner]
        shifts = np.arange(len(CONCEPTS), dtype=np.uint64)[:, None, None]
        return ((per_px[None] >> shifts) & np.uint64(1)).astype(bool)


class _Canvas:
    def __init__(self, H: int, W: int, ppu: float, rng: np.random.Generator) -> None:
        self.H, self.W, self.ppu, self.rng = H, W, ppu, rng
        self.stride = max(1, round(_REF_PPU / ppu))
        while self.stride > 1 and max(H, W) * self.stride > _BANK:
            self.stride -= 1
        self.owner = np.zeros((H, W), np.uint8)
        self.t = np.zeros((H, W), np.float32)
        self.shade = np.ones((H, W), np.float32)
        self.y = ((np.arange(H, dtype=np.float32) - (H - 1) / 2) / ppu)[:, None]
        self.x = ((np.arange(W, dtype=np.float32) - (W - 1) / 2) / ppu)[None, :]
        self.c0: list[np.ndarray] = []
        self.c1: list[np.ndarray] = []
        self.tags: list[tuple[str, ...]] = []

    def element(self, tags: tuple[str, ...], c0: np.ndarray, c1: np.ndarray | None = None) -> int:
        if len(self.tags) >= 255:
            raise RuntimeError("too many elements in one crop")
        self.tags.append(tags)
        self.c0.append(np.asarray(c0, np.float32))
        self.c1.append(np.asarray(c0 if c1 is None else c1, np.float32))
        return len(self.tags) - 1

    def window(self, cy: float, cx: float, r: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
        """Pixel window covering the disc (cy, cx, r) in um, and the (h,1)/(1,w) coordinates relative to its centre."""
        H, W, p = self.H, self.W, self.ppu
        i0 = int(np.clip(np.floor((cy - r) * p + (H - 1) / 2), 0, H))
        i1 = int(np.clip(np.ceil((cy + r) * p + (H - 1) / 2) + 1, 0, H))
        j0 = int(np.clip(np.floor((cx - r) * p + (W - 1) / 2), 0, W))
        j1 = int(np.clip(np.ceil((cx + r) * p + (W - 1) / 2) + 1, 0, W))
        sl = (slice(i0, i1), slice(j0, j1))
        return sl[0], sl[1], self.y[sl[0]] - cy, self.x[:, sl[1]] - cx

    def tex(self, kind: int, ys: slice, xs: slice) -> np.ndarray:
        """Random crop of the noise bank for a window (float32, unit sd)."""
        h = ys.stop - ys.start
        w = xs.stop - xs.start
        s = self.stride
        oy = int(self.rng.integers(0, _BANK - h * s + 1))
        ox = int(self.rng.integers(0, _BANK - w * s + 1))
        return _bank()[kind, oy : oy + h * s : s, ox : ox + w * s : s]

    def paint(
        self,
        ys: slice,
        xs: slice,
        mask: np.ndarray,
        eid: int,
        t: np.ndarray | float = 0.0,
        shade: np.ndarray | float = 1.0,
    ) -> None:
        np.copyto(self.owner[ys, xs], np.uint8(eid), where=mask)
        np.copyto(self.t[ys, xs], t, where=mask, casting="same_kind")
        np.copyto(self.shade[ys, xs], shade, where=mask, casting="same_kind")


def _atan2(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Fast float32 atan2 (polynomial, max error ~1e-5 rad); np.arctan2 is ~40x slower than a multiply."""
    ax, ay = np.abs(x), np.abs(y)
    mx = np.maximum(ax, ay)
    mx += np.float32(1e-20)
    q = np.minimum(ax, ay) / mx
    s = q * q
    r = (
        (np.float32(-0.0464964749) * s + np.float32(0.15931422)) * s - np.float32(0.327622764)
    ) * s * q + q
    r = np.where(ay > ax, np.float32(np.pi / 2) - r, r)
    r = np.where(x < 0, np.float32(np.pi) - r, r)
    return np.where(y < 0, -r, r)


def _cos_k(k: int, a: np.ndarray, b: np.ndarray, phase: float) -> np.ndarray:
    """cos(k * angle(a, b) + phase) for k in {2, 3} without computing the angle."""
    r = np.sqrt(a * a + b * b) + np.float32(1e-12)
    c, s = a / r, b / r
    if k == 2:
        ck, sk = c * c - s * s, 2 * c * s
    elif k == 3:
        ck, sk = c * (4 * c * c - 3), s * (3 - 4 * s * s)
    else:
        raise ValueError(f"_cos_k: k must be 2 or 3, got {k}")
    return ck * np.float32(np.cos(phase)) - sk * np.float32(np.sin(phase))


_LUT_N = 2048
_LUT_PHI = np.linspace(-np.pi, np.pi, _LUT_N + 1, dtype=np.float32)


def _angular(phi: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Evaluate a function of the angle given on :data:`_LUT_PHI` (nearest entry)."""
    idx = ((phi + np.float32(np.pi)) * np.float32(_LUT_N / (2 * np.pi)) + np.float32(0.5)).astype(
        np.int32
    )
    return np.take(table.astype(np.float32), idx)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    z = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return z * z * (3 - 2 * z)


def _rot(dy: np.ndarray, dx: np.ndarray, ang: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.float32(np.cos(ang)), np.float32(np.sin(ang))
    return dx * c + dy * s, dy * c - dx * s


def _segment_dist(
    u: np.ndarray, v: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distance from points (u, v) to the segment p0-p1 and the position (0..1) along it."""
    du, dv = p1[0] - p0[0], p1[1] - p0[1]
    L2 = du * du + dv * dv + 1e-12
    h = np.clip(((u - p0[0]) * du + (v - p0[1]) * dv) / L2, 0.0, 1.0)
    return np.sqrt((u - p0[0] - h * du) ** 2 + (v - p0[1] - h * dv) ** 2), h


# ----------------------------------------------------------------------------- shapes
def _nucleus_mask(
    shape: str, a: np.ndarray, b: np.ndarray, rn: float, spec: CellSpec, rng: np.random.Generator
) -> np.ndarray:
    """Implicit nucleus of the given shape in nucleus-local coordinates (a along the long axis)."""
    if shape in ("round", "kidney", "cup"):
        ax = rng.uniform(1.0, 1.18)
        rr = np.sqrt((a / ax) ** 2 + (b * ax) ** 2)
        p = rng.uniform(0, 2 * np.pi, 2)
        bump = 1 + 0.035 * _cos_k(2, a, b, p[0]) + 0.025 * _cos_k(3, a, b, p[1])
        m = rr < rn * bump
        if shape == "kidney":
            rd = rn * rng.uniform(0.45, 0.7)
            depth = rn * rng.uniform(0.25, 0.6)  # indent < half the width
            cx = rn / ax + rd - depth
            m &= (b - cx) ** 2 + a**2 > rd * rd
        elif shape == "cup":
            sa = rn * rng.uniform(
                0.6, 0.8
            )  # depth of the invagination (>= a quarter of the nucleus)
            sb = rn * rng.uniform(0.3, 0.42)
            c = rn / ax * rng.uniform(0.85, 1.0)
            m &= ((b - c) / sa) ** 2 + (a / sb) ** 2 > 1
        return m
    if shape == "band":
        R = rn * rng.uniform(0.66, 0.8)
        w = rn * rng.uniform(0.36, 0.48)
        half = np.deg2rad(rng.uniform(100, 145))
        r = np.sqrt(a * a + b * b)
        e1 = (R * np.cos(half), R * np.sin(half))
        e2 = (R * np.cos(half), -R * np.sin(half))
        dend = np.minimum(
            np.sqrt((a - e1[0]) ** 2 + (b - e1[1]) ** 2),
            np.sqrt((a - e2[0]) ** 2 + (b - e2[1]) ** 2),
        )
        inside = a > np.float32(np.cos(half)) * r  # |angle| < half
        d = np.where(inside, np.abs(r - R), dend)
        wob = 1 + 0.1 * _cos_k(3, a, b, rng.uniform(0, 6.3))
        return d < 0.5 * w * wob
    if shape == "bilobed":
        d = rn * rng.uniform(0.42, 0.6)
        rl = rn * rng.uniform(0.55, 0.66)
        sq = rng.uniform(0.8, 0.95)
        m = ((a - d) / rl) ** 2 + (b / (rl * sq)) ** 2 < 1
        m |= ((a + d) / (rl * rng.uniform(0.9, 1.1))) ** 2 + (b / (rl * sq)) ** 2 < 1
        strand, _ = _segment_dist(a, b, (-d, 0.0), (d, 0.0))
        return m | (strand < rn * 0.12)
    if shape == "lobed":
        n = int(rng.integers(int(spec.lobes[0]), int(spec.lobes[1]) + 1))
        span = np.deg2rad(rng.uniform(170, 260)) if n > 2 else np.deg2rad(rng.uniform(90, 150))
        angs = -span / 2 + span * np.arange(n) / max(n - 1, 1) + rng.normal(0, 0.12, n)
        rad = rn * rng.uniform(0.55, 0.7)
        rl0 = rn * {2: 0.55, 3: 0.46, 4: 0.41, 5: 0.37}.get(n, 0.37)
        cen = [
            (rad * np.cos(g) * rng.uniform(0.85, 1.1), rad * np.sin(g) * rng.uniform(0.85, 1.1))
            for g in angs
        ]
        m = np.zeros(np.broadcast_shapes(a.shape, b.shape), bool)
        for ca, cb in cen:
            rl = rl0 * rng.uniform(0.85, 1.15)
            q = rng.uniform(0.75, 1.0)
            o = rng.uniform(0, np.pi)
            ua, vb = _rot(b - cb, a - ca, o)
            m |= (ua / rl) ** 2 + (vb / (rl * q)) ** 2 < 1
        for p0, p1 in itertools.pairwise(cen):
            dd, _ = _segment_dist(a, b, p0, p1)
            m |= dd < rn * rng.uniform(0.06, 0.1)
        return m
    raise ValueError(f"unknown nucleus shape {shape!r}")


def _granules(
    cv: _Canvas,
    ys: slice,
    xs: slice,
    u: np.ndarray,
    v: np.ndarray,
    g: Granules,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One granule population drawn in batch: jittered, warped cell-noise (Worley) grids.

    Each grid site holds at most one granule of random radius and position, present with the
    population's density; dense populations overlay a second, rotated grid so the packing does not
    look like a lattice.  Returns (mask, shade) over the window; the shade darkens granule centres.
    """
    rmin, rmax = g.radius
    s = 2 * rmax * 1.08 + 0.02
    dens = rng.uniform(*g.density)
    n_layers = 2 if dens > 0.5 else 1
    m_all = np.zeros(np.broadcast_shapes(u.shape, v.shape), bool)
    shade = np.ones(m_all.shape, np.float32)
    for _layer in range(n_layers):
        ang = rng.uniform(0, np.pi)
        uu, vv = _rot(v, u, ang)
        warp = 0.4 * s
        uu = uu + warp * cv.tex(VCOARSE, ys, xs) + rng.uniform(0, s)
        vv = vv + warp * cv.tex(VCOARSE, ys, xs) + rng.uniform(0, s)
        gu = np.floor(uu / s)
        gv = np.floor(vv / s)
        u0, v0 = float(gu.min()), float(gv.min())
        nu = int(gu.max() - u0) + 1
        nv = int(gv.max() - v0) + 1
        n = nu * nv
        rad = rng.uniform(rmin, rmax, n).astype(np.float32)
        pu = rad + rng.random(n, dtype=np.float32) * (s - 2 * rad)
        pv = rad + rng.random(n, dtype=np.float32) * (s - 2 * rad)
        present = rng.random(n) < (dens if n_layers == 1 else dens * 0.85)
        idx = ((gv - v0) * nu + (gu - u0)).astype(np.int32)
        r = rad[idx]
        d2 = (uu - (gu * s + pu[idx])) ** 2 + (vv - (gv * s + pv[idx])) ** 2
        m = present[idx] & (d2 < r * r)
        sh = 0.8 + 0.24 * np.sqrt(d2) / np.maximum(r, 1e-3)
        np.copyto(shade, np.minimum(shade, sh), where=m)
        m_all |= m
    return m_all, shade


# ----------------------------------------------------------------------------- scene parts
def _background(cv: _Canvas, pal: dict[str, np.ndarray]) -> None:
    cv.element(("background",), pal["background"])


def _red_cells(
    cv: _Canvas, pal: dict[str, np.ndarray], n: int, keep_out: float, rng: np.random.Generator
) -> None:
    if n <= 0:
        return
    eid = cv.element(("red_cell",), pal["rbc_body"], pal["rbc_pallor"])
    hy, hx = cv.H / cv.ppu / 2, cv.W / cv.ppu / 2
    placed: list[tuple[float, float, float]] = []
    for _ in range(n * 12):
        if len(placed) >= n:
            break
        r = rng.uniform(3.4, 4.1)
        cy, cx = rng.uniform(-hy - 0.5 * r, hy + 0.5 * r), rng.uniform(-hx - 0.5 * r, hx + 0.5 * r)
        if np.hypot(cy, cx) < keep_out + 0.8 * r:
            continue
        if any(np.hypot(cy - py, cx - px) < 0.92 * (r + pr) for py, px, pr in placed):
            continue
        placed.append((cy, cx, r))
    for cy, cx, r in placed:
        ys, xs, dy, dx = cv.window(cy, cx, r * 1.12)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        q = rng.uniform(0.9, 1.0)
        u, v = _rot(dy, dx, rng.uniform(0, np.pi))
        d = np.sqrt((u / r) ** 2 + (v / (r * q)) ** 2)
        m = d < 1.0
        pallor = _smoothstep(0.5, 0.18, d) * rng.uniform(
            0.6, 1.0
        )  # central pallor ~ a third of the diameter
        shade = 1.0 - 0.2 * _smoothstep(0.7, 1.0, d) + 0.015 * cv.tex(MEDIUM, ys, xs)
        cv.paint(ys, xs, m, eid, t=pallor.astype(np.float32), shade=shade)


def _platelets(
    cv: _Canvas,
    pal: dict[str, np.ndarray],
    centres: list[tuple[float, float]],
    rng: np.random.Generator,
    eid: int | None = None,
) -> None:
    if not centres:
        return
    if eid is None:
        eid = cv.element(("platelet",), pal["platelet_centre"], pal["platelet_rim"])
    for cy, cx in centres:
        r = rng.uniform(0.8, 1.6)
        ys, xs, dy, dx = cv.window(cy, cx, r * 1.3)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        u, v = _rot(dy, dx, rng.uniform(0, np.pi))
        phi = _atan2(v, u)
        rr = np.sqrt((u / r) ** 2 + (v / (r * rng.uniform(0.7, 1.0))) ** 2)
        m = rr < 1 + 0.12 * np.cos(3 * phi + rng.uniform(0, 6.3)) + 0.06 * cv.tex(MEDIUM, ys, xs)
        t = np.clip(rr * 1.1 - 0.15 + 0.3 * cv.tex(FINE, ys, xs), 0, 1).astype(np.float32)
        cv.paint(ys, xs, m, eid, t=t, shade=1.0)


def _debris(
    cv: _Canvas, pal: dict[str, np.ndarray], n: int, rng: np.random.Generator, big: bool = False
) -> None:
    if n <= 0:
        return
    eid = cv.element(("debris",), pal["debris"], pal["background"])
    hy, hx = cv.H / cv.ppu / 2, cv.W / cv.ppu / 2
    for _ in range(n):
        r = rng.uniform(1.5, 5.0) if big else rng.uniform(0.3, 1.4)
        cy, cx = (
            (rng.uniform(-3, 3), rng.uniform(-3, 3))
            if big
            else (rng.uniform(-hy, hy), rng.uniform(-hx, hx))
        )
        ys, xs, dy, dx = cv.window(cy, cx, r * 1.6)
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        u, v = _rot(dy, dx, rng.uniform(0, np.pi))
        rr = np.sqrt((u / r) ** 2 + (v / (r * rng.uniform(0.35, 1.0))) ** 2)
        m = rr < 1 + 0.45 * cv.tex(COARSE, ys, xs)
        t = np.clip(0.35 + 0.35 * cv.tex(MEDIUM, ys, xs), 0, 1).astype(np.float32)
        cv.paint(ys, xs, m, eid, t=t, shade=1.0)


def _smudge(
    cv: _Canvas, pal: dict[str, np.ndarray], spec: CellSpec, rng: np.random.Generator
) -> float:
    """A ruptured cell: smeared, streaky pale chromatin without membrane or cytoplasm."""
    R = rng.uniform(*spec.diameter) / 2
    cy, cx = rng.normal(0, 0.8, 2)
    stretch = rng.uniform(1.0, 1.5)
    ys, xs, dy, dx = cv.window(cy, cx, R * stretch * 1.35)
    u, v = _rot(dy, dx, rng.uniform(0, np.pi))
    rho = np.sqrt((u / stretch) ** 2 + v**2)
    phi = _atan2(v, u)
    p = rng.uniform(0, 6.3, 3)
    table = R * (
        1
        + 0.14 * np.cos(2 * _LUT_PHI + p[0])
        + 0.09 * np.cos(3 * _LUT_PHI + p[1])
        + 0.05 * np.cos(5 * _LUT_PHI + p[2])
    )
    m = rho < _angular(phi, table) * (
        1 + 0.1 * cv.tex(VCOARSE, ys, xs) + 0.05 * cv.tex(COARSE, ys, xs)
    )
    eid = cv.element(("smudge",), pal["smudge"], pal["smudge_streak"])
    streak = 0.5 + 0.5 * np.sin(v * rng.uniform(2.0, 3.5) + 1.2 * cv.tex(VCOARSE, ys, xs))
    t = np.clip(streak * 0.7 + 0.15 * cv.tex(MEDIUM, ys, xs) + 0.3 * (1 - rho / R), 0, 1).astype(
        np.float32
    )
    cv.paint(ys, xs, m, eid, t=t, shade=1.0 + 0.03 * cv.tex(MEDIUM, ys, xs))
    return R * stretch


def _choose(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    names = [o[0] for o in options]
    p = np.array([o[1] for o in options], float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _white_cell(
    cv: _Canvas,
    pal: dict[str, np.ndarray],
    spec: CellSpec,
    rng: np.random.Generator,
    cy: float,
    cx: float,
    R: float,
) -> None:
    """Cytoplasm, hof, granules, nucleus, nucleoli, vacuoles and Auer rods of one white cell."""
    ys, xs, dy, dx = cv.window(cy, cx, R * (1.45 if spec.projections else 1.2))
    u, v = _rot(dy, dx, rng.uniform(0, 2 * np.pi))
    ax = rng.uniform(1.0, 1.12)
    rho = np.sqrt((u / ax) ** 2 + (v * ax) ** 2)
    phi = _atan2(v, u)
    irr = spec.irregular
    k = np.arange(2, 7)
    amp = rng.normal(0, irr, 5) / k * 2
    ph = rng.uniform(0, 2 * np.pi, 5)
    Rphi = _angular(phi, R * (1 + sum(amp[i] * np.cos(k[i] * _LUT_PHI + ph[i]) for i in range(5))))
    cell = rho < Rphi
    # cytoplasm (edge colour towards the membrane)
    c0 = pal[spec.cyto]
    c1 = pal[spec.cyto_edge] if spec.cyto_edge else c0 * np.float32(0.93)
    cyto_id = cv.element((f"cytoplasm_{spec.hue}",), c0, c1)
    rel = rho / Rphi
    t_cyto = _smoothstep(0.5, 1.0, rel).astype(np.float32)
    cv.paint(ys, xs, cell, cyto_id, t=t_cyto, shade=1.0 + 0.025 * cv.tex(MEDIUM, ys, xs))
    if spec.projections:
        m_sp = rng.uniform(9, 16)
        spikes = (
            np.maximum(0.0, np.cos(m_sp * phi + rng.uniform(0, 6.3) + 0.8 * np.cos(3 * phi))) ** 10
        )
        spikes *= rng.uniform(0.18, 0.32) * (0.6 + 0.4 * np.cos(2 * phi + rng.uniform(0, 6.3)))
        proj = (rho < Rphi * (1 + spikes)) & ~cell
        pid = cv.element(("projections", f"cytoplasm_{spec.hue}"), c1, c1)
        cv.paint(ys, xs, proj, pid, shade=1.0)
    # nucleus geometry
    shape = _choose(rng, spec.shapes)
    rn = R * rng.uniform(*spec.nuc_frac)
    psi = rng.uniform(0, 2 * np.pi)
    ecc = rng.uniform(*spec.eccentric) * max(R - rn, 0.0)
    ny, nx = ecc * np.sin(psi), ecc * np.cos(psi)
    # the nucleus is evaluated only on its own window (inside the cell's)
    w0, w1, _, _ = cv.window(cy + ny, cx + nx, rn * 1.5)
    nys = slice(max(ys.start, w0.start), min(ys.stop, w0.stop))
    nxs = slice(max(xs.start, w1.start), min(xs.stop, w1.stop))
    sub = (
        slice(nys.start - ys.start, nys.stop - ys.start),
        slice(nxs.start - xs.start, nxs.stop - xs.start),
    )
    a, b = _rot(
        cv.y[nys] - np.float32(cy + ny),
        cv.x[:, nxs] - np.float32(cx + nx),
        psi + rng.normal(0, 0.6),
    )
    nuc_s = _nucleus_mask(shape, a, b, rn, spec, rng) & (rho[sub] < Rphi[sub] * 0.97)
    nuc = np.zeros(cell.shape, bool)
    nuc[sub] = nuc_s
    # hof: pale perinuclear zone on the side of the cell centre
    if spec.hof_p > 0 and rng.random() < spec.hof_p:
        hc = rn * 1.0 + 0.3
        hy_, hx_ = ny - hc * np.sin(psi), nx - hc * np.cos(psi)
        hu, hv = _rot(dy - np.float32(hy_), dx - np.float32(hx_), psi)
        hof = ((hu / (rn * 0.42)) ** 2 + (hv / (rn * 0.62)) ** 2 < 1) & cell & ~nuc
        hid = cv.element(("hof",), c0 * 0.45 + pal["background"] * 0.55)
        cv.paint(ys, xs, hof, hid, shade=1.0 + 0.02 * cv.tex(MEDIUM, ys, xs))
    inner = rho < Rphi * 0.95
    for g in spec.granules:
        if g.covers_nucleus:
            continue
        gm, gs = _granules(cv, ys, xs, u, v, g, rng)
        gid = cv.element((f"granule_{g.kind}",), pal[g.colour])
        cv.paint(ys, xs, gm & inner, gid, shade=gs)
    # nucleus with chromatin texture
    coarse = spec.chromatin == "coarse"
    nc = pal[spec.nuc_colour]
    light = nc * 0.55 + pal["cyto_pale"] * 0.45
    nid = cv.element(("nucleus", f"nucleus_{shape}", f"chromatin_{spec.chromatin}"), nc, light)
    if coarse:
        tt = np.clip(0.85 * cv.tex(MEDIUM, nys, nxs) - 0.2 + 0.25 * cv.tex(FINE, nys, nxs), 0, 0.85)
        sh = 1.0 - 0.05 * cv.tex(FINE, nys, nxs)
    else:
        tt = np.clip(0.3 + 0.12 * cv.tex(FINE, nys, nxs) + 0.1 * cv.tex(MEDIUM, nys, nxs), 0, 1)
        sh = 1.0 - 0.025 * cv.tex(FINE, nys, nxs)
    cv.paint(nys, nxs, nuc_s, nid, t=tt.astype(np.float32), shade=sh)
    # nucleoli
    n_nl = int(rng.integers(int(spec.nucleoli[0]), int(spec.nucleoli[1]) + 1))
    if n_nl > 0 and shape not in ("lobed", "band"):
        lid = cv.element(
            ("nucleus", f"nucleus_{shape}", "nucleolus"),
            pal["nucleolus"],
            nc * 0.3 + pal["nucleolus"] * 0.7,
        )
        nl = np.zeros(nuc_s.shape, bool)
        tl = np.zeros(nuc_s.shape, np.float32)
        for _ in range(n_nl):
            ang = rng.uniform(0, 2 * np.pi)
            rad = rn * rng.uniform(0.0, 0.5)
            ca, cb = rad * np.cos(ang), rad * np.sin(ang)
            lr = rng.uniform(0.45, 0.9)
            dd = np.sqrt(((a - ca) / lr) ** 2 + ((b - cb) / (lr * rng.uniform(0.7, 1.0))) ** 2)
            nl |= dd < 1
            tl = np.maximum(tl, _smoothstep(0.6, 1.0, dd))
        cv.paint(nys, nxs, nl & nuc_s, lid, t=tl, shade=1.0)
    for g in spec.granules:
        if not g.covers_nucleus:
            continue
        gm, gs = _granules(cv, ys, xs, u, v, g, rng)
        gid = cv.element((f"granule_{g.kind}",), pal[g.colour])
        cv.paint(ys, xs, gm & inner, gid, shade=gs)
    # vacuoles
    n_vac = int(rng.integers(int(spec.vacuoles[0]), int(spec.vacuoles[1]) + 1))
    if n_vac > 0:
        vid = cv.element(("vacuole",), pal["vacuole"], c0 * 0.5 + pal["vacuole"] * 0.5)
        for _ in range(n_vac):
            ang = rng.uniform(0, 2 * np.pi)
            rad = rng.uniform(0.45, 0.85) * R
            vr = rng.uniform(0.35, 0.9)
            dd = np.sqrt((u - rad * np.cos(ang)) ** 2 + (v - rad * np.sin(ang)) ** 2) / vr
            vm = (dd < 1) & inner & ~nuc
            cv.paint(ys, xs, vm, vid, t=_smoothstep(0.6, 1.0, dd).astype(np.float32), shade=1.0)
    # Auer rods
    p_auer, lo, hi, kind = spec.auer
    if p_auer > 0 and rng.random() < p_auer:
        tags = ("auer_rod", "faggot_bundle") if kind == "bundle" else ("auer_rod",)
        aid = cv.element(tags, pal["auer"], pal["auer"] * 0.8)
        rods = np.zeros(cell.shape, bool)
        for _ in range(int(rng.integers(lo, hi + 1))):
            ang = rng.uniform(0, 2 * np.pi)
            rad = rng.uniform(0.55, 0.75) * R
            cu, cvv = rad * np.cos(ang), rad * np.sin(ang)
            d_ang = ang + np.pi / 2 + rng.normal(0, 0.3)
            if kind == "long":
                L, w, n_r = rng.uniform(5.0, 8.0), rng.uniform(0.28, 0.4), 1
            elif kind == "bundle":
                L, w, n_r = rng.uniform(3.0, 5.5), rng.uniform(0.22, 0.32), int(rng.integers(5, 12))
            else:
                L, w, n_r = rng.uniform(2.0, 4.5), rng.uniform(0.35, 0.5), 1
            for j in range(n_r):
                off = (j - (n_r - 1) / 2) * w * 1.6
                jit = d_ang + rng.normal(0, 0.08 if kind == "bundle" else 0.0)
                su = cu - off * np.sin(d_ang) + rng.normal(0, 0.25 if n_r > 1 else 0)
                sv = cvv + off * np.cos(d_ang)
                p0 = (su - L / 2 * np.cos(jit), sv - L / 2 * np.sin(jit))
                p1 = (su + L / 2 * np.cos(jit), sv + L / 2 * np.sin(jit))
                dd, h = _segment_dist(u, v, p0, p1)
                taper = 1.0 - (2 * h - 1) ** 2 if kind == "long" else 1.0 - 0.5 * (2 * h - 1) ** 4
                rods |= dd < 0.5 * w * np.maximum(taper, 0.15)
        cv.paint(ys, xs, rods & (rho < Rphi), aid, shade=1.0)


def render_scene(
    cell_type: str,
    domain: str,
    size: int | tuple[int, int],
    rng: np.random.Generator,
    field_um: float | None = None,
) -> Scene:
    """Draw one crop (a white cell centred among red cells) without colouring it.

    Args:
        cell_type: one of :data:`CELL_TYPES`.
        domain: stain domain, one of :data:`DOMAINS`.
        size: ``n`` for an n x n crop or ``(H, W)``.
        rng: generator; it fixes every pixel.
        field_um: field of view across the larger side in um (default per domain, 25 um for Metafer).

    Returns:
        :class:`Scene` (call ``.paint()`` for RGB, ``.masks()`` for concept masks).
    """
    if cell_type not in SPECS:
        raise ValueError(f"unknown cell type {cell_type!r}; known: {CELL_TYPES}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown stain domain {domain!r}; known: {DOMAINS}")
    H, W = (size, size) if isinstance(size, (int, np.integer)) else (int(size[0]), int(size[1]))
    if H < 8 or W < 8:
        raise ValueError(f"crop size {size!r} too small (>= 8 px)")
    fov = DOMAIN_FIELD_UM[domain] if field_um is None else float(field_um)
    ppu = max(H, W) / fov
    spec = SPECS[cell_type]
    style = DOMAIN_STYLE[domain]
    pal = jittered_palette(domain, rng)
    cv = _Canvas(H, W, ppu, rng)
    _background(cv, pal)
    if spec.special == "smudge":
        keep = (spec.diameter[0] + spec.diameter[1]) / 4
    elif spec.special == "platelets":
        keep = 3.0
    elif spec.special == "artefact":
        keep = 4.0
    else:
        R = rng.uniform(*spec.diameter) / 2
        keep = R
    lo, hi = style["rbc"]  # type: ignore[misc]
    _red_cells(cv, pal, int(rng.integers(lo, hi + 1)), keep, rng)
    dlo, dhi = style["debris"]  # type: ignore[misc]
    _debris(cv, pal, int(rng.integers(dlo, dhi + 1)), rng)
    hy, hx = H / ppu / 2, W / ppu / 2
    stray = [(rng.uniform(-hy, hy), rng.uniform(-hx, hx))] if rng.random() < 0.2 else []
    if spec.special == "platelets":
        n = int(rng.integers(1, 9))
        stray += [tuple(rng.normal(0, 1.6, 2)) for _ in range(n)]  # type: ignore[misc]
    _platelets(cv, pal, stray, rng)
    if spec.special == "smudge":
        _smudge(cv, pal, spec, rng)
    elif spec.special == "artefact":
        _debris(cv, pal, int(rng.integers(1, 4)), rng, big=True)
    elif spec.special == "":
        cy, cx = rng.normal(0, 0.6, 2)
        _white_cell(cv, pal, spec, rng, float(cy), float(cx), R)
    illum = (1.0 + 0.012 * cv.tex(VCOARSE, slice(0, H), slice(0, W))).astype(
        np.float32
    ) * np.float32(rng.uniform(0.97, 1.03))
    noise = (float(style["noise"]) * cv.tex(WHITE, slice(0, H), slice(0, W))).astype(np.float32)  # type: ignore[arg-type]
    return Scene(cv.owner, cv.t, cv.shade, illum, noise, cv.c0, cv.c1, cv.tags, cell_type, domain)


def render_cell(
    cell_type: str,
    domain: str,
    size: int | tuple[int, int],
    rng: np.random.Generator,
    field_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one crop and its concept masks.

    Returns:
        ``(rgb_HW3 uint8, masks_CHW bool)`` with channels in :data:`CONCEPTS` order.
    """
    scene = render_scene(cell_type, domain, size, rng, field_um)
    return scene.paint(), scene.masks()
