"""Does a set of velocity maps have the structure of the FlatVel-A family?

FlatVel-A maps (:func:`ubdiff_phys.data.families.layered.flatvel_a`) are layered: every row is
constant, velocity never decreases with depth, and all of the increase happens in sharp jumps
between layers. :func:`layer_structure` measures each of the three properties per map and says
which maps pass all three ("flatvel-like"). :func:`pca_frechet` compares whole sets: the Fréchet
distance between the two sets' projections onto a PCA basis fitted on reference maps, and
:func:`pca_frechet_floor` gives the distance two independent sets of family maps of the same size
already have (the number a good sample set should come close to).

Maps are (N, 1, nz, nx) or (N, nz, nx) in m/s, row 0 = surface, as a torch tensor or numpy array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ubdiff_phys.data.families import generate
from ubdiff_phys.eval.frechet import frechet_distance, gaussian_stats

__all__ = [
    "LayerStructure",
    "PCABasis",
    "layer_structure",
    "pca_basis",
    "pca_frechet",
    "pca_frechet_floor",
]

#: Pass thresholds of the three tests (module defaults of :func:`layer_structure`).
ROW_STD_MAX = 20.0  # m/s
DECREASE_MAX = 20.0  # m/s
JUMP_MIN = 50.0  # m/s: a single-row increase larger than this is a jump
JUMP_SHARE_MIN = 0.8


def _maps3d(v: torch.Tensor | np.ndarray, what: str = "maps") -> np.ndarray:
    """(N, 1, nz, nx) or (N, nz, nx) maps -> float64 numpy (N, nz, nx); checks shape, finiteness."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    x = np.asarray(v, dtype=np.float64)
    if x.ndim == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{what} of shape {x.shape}: expected (N, 1, nz, nx)")
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1] < 2 or x.shape[2] < 1:
        raise ValueError(
            f"{what} must be (N, nz, nx) or (N, 1, nz, nx) with nz >= 2, got {x.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return x


@dataclass(frozen=True)
class LayerStructure:
    """Per-map layer statistics of N maps, and which tests each map passes.

    Attributes:
        row_std: (N,) mean over rows of the within-row standard deviation [m/s].
        max_decrease: (N,) largest decrease of the row-mean profile from one row to the next,
            ``max(0, max_i (p[i] - p[i+1]))`` [m/s].
        jump_share: (N,) share of the top-to-bottom increase ``p[-1] - p[0]`` carried by
            single-row jumps (increases > ``jump_min``); see :func:`layer_structure` for the edge
            cases. Dimensionless.
        pass_row_std, pass_max_decrease, pass_jump_share: (N,) bool, each test passed.
        flatvel_like: (N,) bool, all three passed.
        thresholds: the thresholds used (``row_std_max``, ``decrease_max``, ``jump_min``,
            ``jump_share_min``).
    """

    row_std: np.ndarray
    max_decrease: np.ndarray
    jump_share: np.ndarray
    pass_row_std: np.ndarray
    pass_max_decrease: np.ndarray
    pass_jump_share: np.ndarray
    flatvel_like: np.ndarray
    thresholds: dict[str, float]

    def summary(self) -> dict[str, float]:
        """Shares of maps passing each test and all three, and the median of each statistic.

        Keys: ``n``, ``share_row_std``, ``share_max_decrease``, ``share_jump_share``,
        ``share_flatvel_like``, ``median_row_std`` [m/s], ``median_max_decrease`` [m/s],
        ``median_jump_share``. With N = 0 the shares and medians are NaN.
        """
        n = int(self.row_std.shape[0])

        def share(a: np.ndarray) -> float:
            return float(a.mean()) if n else float("nan")

        def median(a: np.ndarray) -> float:
            return float(np.median(a)) if n else float("nan")

        return {
            "n": float(n),
            "share_row_std": share(self.pass_row_std),
            "share_max_decrease": share(self.pass_max_decrease),
            "share_jump_share": share(self.pass_jump_share),
            "share_flatvel_like": share(self.flatvel_like),
            "median_row_std": median(self.row_std),
            "median_max_decrease": median(self.max_decrease),
            "median_jump_share": median(self.jump_share),
        }


def _jump_share(profile: np.ndarray, jump_min: float) -> np.ndarray:
    """Jump share of row-mean profiles (N, nz) [m/s] -> (N,); edge cases as in layer_structure."""
    step = np.diff(profile, axis=1)  # (N, nz-1): p[i+1] - p[i]
    is_jump = step > jump_min
    jumps = np.where(is_jump, step, 0.0).sum(axis=1)
    total = profile[:, -1] - profile[:, 0]
    small = total <= jump_min
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(small, 0.0, jumps / np.where(small, 1.0, total))
    return np.where(small & ~is_jump.any(axis=1), 1.0, share)


def layer_structure(
    v: torch.Tensor | np.ndarray,
    *,
    row_std_max: float = ROW_STD_MAX,
    decrease_max: float = DECREASE_MAX,
    jump_min: float = JUMP_MIN,
    jump_share_min: float = JUMP_SHARE_MIN,
) -> LayerStructure:
    """Per-map FlatVel-A structure tests.

    With p the row-mean profile (nz,) of a map [m/s] (row 0 = surface):

    1. ``row_std``: mean over rows of the within-row (population) standard deviation [m/s].
       Passes when ``<= row_std_max`` (20 m/s).
    2. ``max_decrease = max(0, max_i (p[i] - p[i+1]))`` [m/s]. Passes when ``<= decrease_max``
       (20 m/s).
    3. ``jump_share = sum of (p[i+1] - p[i]) over the i with p[i+1] - p[i] > jump_min, divided by
       p[-1] - p[0]``. Passes when ``>= jump_share_min`` (0.8). Edge cases:

       - ``p[-1] - p[0] <= jump_min`` (no real net increase) and no jump: 1.0 (a constant map, or
         one that only drifts by small steps, is trivially layered; its decreases are judged by
         test 2);
       - ``p[-1] - p[0] <= jump_min`` with at least one jump: 0.0 (the jumps were given back by
         decreases, not a layered profile);
       - otherwise the plain ratio, which exceeds 1 when gradual decreases give back part of the
         increase the jumps made (reported unclipped).

    A map is ``flatvel_like`` when it passes all three. Real FlatVel-A maps (rows exactly
    constant, sorted layer velocities) give ``row_std = 0`` and ``max_decrease = 0``; their
    ``jump_share`` is 1 unless two adjacent layers happen to differ by ``jump_min`` or less.

    Args:
        v: (N, 1, nz, nx) or (N, nz, nx) velocity [m/s], torch tensor or numpy array, finite.

    Returns:
        :class:`LayerStructure` with (N,) arrays; ``.summary()`` gives the set's shares and medians.
    """
    x = _maps3d(v)
    row_std = x.std(axis=2).mean(axis=1)
    p = x.mean(axis=2)
    max_decrease = np.maximum((p[:, :-1] - p[:, 1:]).max(axis=1), 0.0)
    jump_share = _jump_share(p, jump_min)
    ok_std = row_std <= row_std_max
    ok_dec = max_decrease <= decrease_max
    ok_jump = jump_share >= jump_share_min
    return LayerStructure(
        row_std=row_std,
        max_decrease=max_decrease,
        jump_share=jump_share,
        pass_row_std=ok_std,
        pass_max_decrease=ok_dec,
        pass_jump_share=ok_jump,
        flatvel_like=ok_std & ok_dec & ok_jump,
        thresholds={
            "row_std_max": float(row_std_max),
            "decrease_max": float(decrease_max),
            "jump_min": float(jump_min),
            "jump_share_min": float(jump_share_min),
        },
    )


@dataclass(frozen=True)
class PCABasis:
    """A PCA of flattened maps (from :func:`pca_basis`).

    Attributes:
        mean: (D,) mean map, D = nz*nx [m/s], float64.
        components: (K, D) orthonormal principal directions, largest variance first.
        std: (K,) standard deviation of the fitted maps along each direction [m/s].
    """

    mean: torch.Tensor
    components: torch.Tensor
    std: torch.Tensor

    def project(
        self, maps: torch.Tensor | np.ndarray, *, whiten: bool = False, what: str = "maps"
    ) -> torch.Tensor:
        """(N, 1, nz, nx) or (N, nz, nx) maps [m/s] -> (N, K) float64 coordinates: centred with
        the basis mean, in m/s, or in units of each component's std when ``whiten``."""
        x = torch.from_numpy(_maps3d(maps, what)).flatten(1)
        if x.shape[1] != self.mean.shape[0]:
            raise ValueError(
                f"{what} have {x.shape[1]} cells per map, the PCA basis {self.mean.shape[0]}"
            )
        y = (x - self.mean) @ self.components.T
        return y / self.std if whiten else y


def pca_basis(reference_fit: torch.Tensor | np.ndarray, n_components: int = 32) -> PCABasis:
    """PCA of flattened maps, deterministic (float64).

    Computed from the eigendecomposition of the (M, M) Gram matrix of the centred maps: the same
    directions as an SVD of the centred (M, nz*nx) data, much cheaper for M << nz*nx. Each
    component's sign is fixed so that its largest-magnitude entry is positive (the distances
    below do not depend on the signs).

    Args:
        reference_fit: (M, 1, nz, nx) or (M, nz, nx) velocity [m/s]; M > n_components.
        n_components: number of principal directions kept (>= 1); the reference maps must vary
            along that many directions (a ValueError says otherwise).

    Returns:
        :class:`PCABasis` with ``n_components`` directions.
    """
    x = torch.from_numpy(_maps3d(reference_fit, "reference_fit")).flatten(1)
    m, d = x.shape
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    if n_components >= m or n_components > d:
        raise ValueError(
            f"n_components={n_components} needs more than {n_components} reference maps and at "
            f"most nz*nx={d} components; got {m} maps"
        )
    mean = x.mean(dim=0)
    xc = x - mean
    w, u = torch.linalg.eigh(xc @ xc.T)  # ascending
    w, u = w.flip(0)[:n_components], u.flip(1)[:, :n_components]
    if not bool(w[-1] > 1e-10 * w[0]):
        rank = int((w > 1e-10 * w[0]).sum())
        raise ValueError(
            f"reference_fit varies along only {rank} directions, fewer than "
            f"n_components={n_components}"
        )
    comp = (u.T @ xc) / w.sqrt()[:, None]
    sign = torch.sign(comp.gather(1, comp.abs().argmax(dim=1, keepdim=True)))
    return PCABasis(mean=mean, components=comp * sign, std=(w / (m - 1)).sqrt())


def pca_frechet(
    reference_fit: torch.Tensor | np.ndarray | PCABasis,
    a: torch.Tensor | np.ndarray,
    b: torch.Tensor | np.ndarray,
    n_components: int = 32,
    *,
    whiten: bool = False,
) -> float:
    """Fréchet distance between maps ``a`` and ``b`` in a PCA space fitted on ``reference_fit``.

    The PCA (:func:`pca_basis`) is fitted on ``reference_fit`` only; ``a`` and ``b`` are centred
    with the reference mean, projected onto the ``n_components`` leading directions, and the
    Gaussians fitted to the two projections are compared with
    :func:`ubdiff_phys.eval.frechet.frechet_distance`. Deterministic.

    In m/s (``whiten=False``, the default) the distance is dominated by the few large-variance,
    smooth directions (overall velocity level and gradient), so it is insensitive to fine-scale
    changes such as smeared interfaces; ``whiten=True`` divides each coordinate by the reference
    std along it, weighing all ``n_components`` directions equally (dimensionless), which makes it
    more sensitive to them. Report which one with the number.

    Args:
        reference_fit: (M, 1, nz, nx) or (M, nz, nx) velocity [m/s], M > n_components; or a
            :class:`PCABasis` already fitted (then ``n_components`` is ignored).
        a, b: (Na, ...) and (Nb, ...) maps on the same grid [m/s], Na, Nb >= 2.
        n_components: PCA dimensions kept.
        whiten: measure in units of the reference std per direction.

    Returns:
        Fréchet distance, >= 0: in (m/s)^2, or dimensionless when ``whiten``; about 0 for
        identical sets. Read it against :func:`pca_frechet_floor` for the same set size: with
        small sets two independent sets of one family are far from 0 apart.
    """
    basis = (
        reference_fit
        if isinstance(reference_fit, PCABasis)
        else pca_basis(reference_fit, n_components)
    )
    mu_a, s_a = gaussian_stats(basis.project(a, whiten=whiten, what="a"))
    mu_b, s_b = gaussian_stats(basis.project(b, whiten=whiten, what="b"))
    return frechet_distance(mu_a, s_a, mu_b, s_b)


def pca_frechet_floor(
    reference_fit: torch.Tensor | np.ndarray | PCABasis,
    n: int,
    *,
    family: str = "flatvel-a",
    seed: int = 0,
    start: int = 0,
    n_components: int = 32,
    whiten: bool = False,
) -> float:
    """Family-vs-family floor of :func:`pca_frechet` for sets of ``n`` maps.

    Generates maps ``start .. start+2n-1`` of the family's stream
    (:func:`ubdiff_phys.data.families.generate` with ``seed``), splits them into two independent
    sets of ``n`` and returns their :func:`pca_frechet` under the basis fitted on
    ``reference_fit``. Pass the number of generated samples as ``n``: the distance of a sample
    set to family maps should be read against this floor. Choose ``seed``/``start`` so that these
    maps are not the ones in ``reference_fit`` or in the set the samples are compared with. The
    floor itself scatters from seed to seed (in m/s by a factor 2-4 at n = 64-256): average a few
    seeds for a stable number.

    Args:
        reference_fit: as in :func:`pca_frechet`, on the family's 70 x 70 grid [m/s].
        n: maps per set (>= 2).
        family: a name of :data:`ubdiff_phys.data.families.FAMILIES`.
        seed, start: where in the family's seeded stream the 2n maps are taken.
        n_components, whiten: as in :func:`pca_frechet`.

    Returns:
        Fréchet distance, (m/s)^2 or dimensionless when ``whiten``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    maps = generate(family, 2 * n, seed=seed, start=start)
    return pca_frechet(reference_fit, maps[:n], maps[n:], n_components, whiten=whiten)
