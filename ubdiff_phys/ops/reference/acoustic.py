"""Pure-PyTorch acoustic forward modelling: the same maths as csrc/include/ubd/stencil.h.

Readable rather than fast (every shot of every model is stepped at once as a (B, S, NZ, NX) tensor,
one Python iteration per time step), and differentiable by autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ubdiff_phys.ops.problem import AcousticProblem

__all__ = ["acoustic_forward_reference", "misfit_sums_reference"]

# 4th-order central-difference coefficients (Fornberg 1988)
C0, C1, C2 = -5.0 / 2.0, 4.0 / 3.0, -1.0 / 12.0  # second derivative * h^2
G1, G2 = 2.0 / 3.0, -1.0 / 12.0  # first derivative * h


def _shifted(f: torch.Tensor, di: int, dj: int, wrap: bool) -> torch.Tensor:
    """f[..., i + di, j + dj] with periodic wrap, or zero beyond the edge."""
    if wrap:
        return torch.roll(f, shifts=(-di, -dj), dims=(-2, -1))
    nz, nx = f.shape[-2:]
    fp = F.pad(f, (2, 2, 2, 2))
    return fp[..., 2 + di : 2 + di + nz, 2 + dj : 2 + dj + nx]


def _d2(f: torch.Tensor, axis: str, wrap: bool) -> torch.Tensor:
    """Second derivative times h^2 along "x" (columns) or "z" (rows).

    Written with differences to the centre (C0 = -2 (C1 + C2)), as in stencil.h: for smooth fields
    this avoids the cancellation of C0 f against the neighbours and keeps float32 accurate.
    """
    s = (lambda k: _shifted(f, 0, k, wrap)) if axis == "x" else (lambda k: _shifted(f, k, 0, wrap))
    return C1 * ((s(-1) - f) + (s(1) - f)) + C2 * ((s(-2) - f) + (s(2) - f))


def _d1(f: torch.Tensor, axis: str, wrap: bool) -> torch.Tensor:
    """First derivative times h along "x" (columns) or "z" (rows)."""
    s = (lambda k: _shifted(f, 0, k, wrap)) if axis == "x" else (lambda k: _shifted(f, k, 0, wrap))
    return G1 * (s(1) - s(-1)) + G2 * (s(2) - s(-2))


def acoustic_forward_reference(problem: AcousticProblem) -> torch.Tensor:
    """Time-step every shot of every model; returns gathers of shape (B, S, nt, R).

    Scheme (see :class:`AcousticProblem` and csrc/include/ubd/acoustic.h):
    ``p_next = 2 p - p_prev + (v dt)^2 (Dxx p + Dzz p) - kappa (p - p_prev)``, then
    ``p_next[src] += (v dt)^2[src] w[n-1]``, then sample n-1 = ``p_next`` at the receivers.
    With C-PML, ``Dxx p`` (``Dzz p``) inside the layer is replaced by the convolutional-PML term.
    """
    pr = problem
    vdt2 = pr.vdt2
    b_count, s_count, nt = pr.n_models, pr.n_shots, pr.nt
    nz, nx = pr.padded_shape
    pad, wrap = pr.pad, pr.wrap
    dtype, device = vdt2.dtype, vdt2.device
    v = F.pad(vdt2[:, None], (pad, pad, pad, pad), mode="replicate")  # (B, 1, NZ, NX)
    rdx, rdz = 1.0 / pr.dx, 1.0 / pr.dz

    kappa = None
    if pr.boundary == "sponge" and (pr.kx is not None or pr.kz is not None):
        kappa = torch.zeros(b_count, 1, nz, nx, dtype=dtype, device=device)
        if pr.kx is not None:
            kappa = kappa + pr.kx[:, None, None, :]
        if pr.kz is not None:
            in_cols = torch.zeros(nx, dtype=dtype, device=device)
            in_cols[pad : nx - pad] = 1.0
            kappa = kappa + pr.kz[:, None, :, None] * in_cols
    cpml = pr.boundary == "cpml"
    if cpml:
        ax, bx, dbx = (t[:, None, None, :] for t in (pr.ax, pr.bx, pr.dbx))
        az, bz, dbz = (t[:, None, :, None] for t in (pr.az, pr.bz, pr.dbz))

    p = torch.zeros(b_count, s_count, nz, nx, dtype=dtype, device=device)
    p_prev = torch.zeros_like(p)
    psx, psz, zx, zz = (torch.zeros_like(p) for _ in range(4))

    s_idx = torch.arange(s_count, device=device)
    src_r, src_c = pr.source_rc[:, 0].to(device), pr.source_rc[:, 1].to(device)
    rec_r, rec_c = pr.receiver_rc[:, 0].to(device), pr.receiver_rc[:, 1].to(device)
    src_vdt2 = v[:, 0, src_r, src_c]  # (B, S)
    b_idx = torch.arange(b_count, device=device)[:, None].expand(b_count, s_count)

    samples = []
    for n in range(nt):
        d2x = _d2(p, "x", wrap) * rdx**2
        d2z = _d2(p, "z", wrap) * rdz**2
        if cpml:
            dux = _d1(p, "x", False) * rdx
            dapx = _d1(ax * psx, "x", False) * rdx
            tmpx = (1 + bx) * d2x + dbx * dux + dapx
            d2x, zx, psx = (1 + bx) * tmpx + ax * zx, bx * tmpx + ax * zx, bx * dux + ax * psx
            duz = _d1(p, "z", False) * rdz
            dapz = _d1(az * psz, "z", False) * rdz
            tmpz = (1 + bz) * d2z + dbz * duz + dapz
            d2z, zz, psz = (1 + bz) * tmpz + az * zz, bz * tmpz + az * zz, bz * duz + az * psz
        p_next = 2 * p - p_prev + v * (d2x + d2z)
        if kappa is not None:
            p_next = p_next - kappa * (p - p_prev)
        src_index = (
            b_idx,
            s_idx.expand(b_count, s_count),
            src_r.expand(b_count, s_count),
            src_c.expand(b_count, s_count),
        )
        p_next = p_next.index_put(src_index, src_vdt2 * pr.wavelet[n], accumulate=True)
        samples.append(p_next[:, :, rec_r, rec_c])
        p_prev, p = p, p_next
    return torch.stack(samples, dim=2)


def openfwi_normalise(x: torch.Tensor, log_lo: float, log_hi: float) -> torch.Tensor:
    """2 (sign(x) log1p|x| - lo) / (hi - lo) - 1 (specs/data.md §2), as in stencil.h."""
    return 2 * (torch.sign(x) * torch.log1p(x.abs()) - log_lo) / (log_hi - log_lo) - 1


def misfit_sums_reference(
    simulated: torch.Tensor, observed: torch.Tensor, log_bounds: tuple[float, float] | None
) -> torch.Tensor:
    """Per-shot misfit sums of the fused native path, from materialised gathers.

    Args:
        simulated, observed: (B, S, nt, R) gathers (physical amplitude).
        log_bounds: (lo, hi) log-transformed seismic bounds, or None (no normalised sums).

    Returns:
        (B, S, 4) float64: sum (sim - obs)^2, sum sim^2, and the same in normalised units (zero
        without ``log_bounds``).
    """
    sim, obs = simulated.double(), observed.double()
    out = torch.zeros(*sim.shape[:2], 4, dtype=torch.float64, device=sim.device)
    out[..., 0] = (sim - obs).square().sum(dim=(2, 3))
    out[..., 1] = sim.square().sum(dim=(2, 3))
    if log_bounds is not None:
        ns, no = (openfwi_normalise(x, *log_bounds) for x in (sim, obs))
        out[..., 2] = (ns - no).square().sum(dim=(2, 3))
        out[..., 3] = ns.square().sum(dim=(2, 3))
    return out
