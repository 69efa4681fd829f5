"""The prepared inputs of the acoustic forward op, shared by the native and reference backends."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["AcousticProblem"]


@dataclass(frozen=True)
class AcousticProblem:
    """Everything the time-stepping kernel needs, in the compute dtype and on the compute device.

    The model grid is padded by ``pad`` cells on every side by edge replication (the kernel never
    stores the padded velocity). ``NZ = nzm + 2 pad``, ``NX = nxm + 2 pad``.

    Attributes:
        vdt2: (B, nzm, nxm) ``(v dt)^2`` [m^2] of the unpadded models.
        pad: padding cells per side.
        boundary: "sponge" (damping ``kappa``; optional periodic wrap) or "cpml".
        wrap: sponge only: neighbours wrap periodically at the padded grid's edge (OpenFWI).
        dx, dz: cell sizes [m].
        kx, kz: sponge ``kappa = d dt`` along the padded axes, (B, NX) and (B, NZ), or None.
            The 2-D damping is ``kx[j] + kz[i] * [j within the model's columns]``.
        ax, bx, dbx / az, bz, dbz: C-PML coefficients (B, NX) / (B, NZ) (db in 1/m), or None.
        source_rc: (S, 2) int64 (row, col) of each shot's source on the padded grid.
        receiver_rc: (R, 2) int64 (row, col) of the receivers on the padded grid.
        wavelet: (nt,) source time function; sample n-1 is injected at step n as
            ``p[src] += (v dt)^2 w[n-1]``.
    """

    vdt2: torch.Tensor
    pad: int
    boundary: str
    wrap: bool
    dx: float
    dz: float
    kx: torch.Tensor | None
    kz: torch.Tensor | None
    ax: torch.Tensor | None
    bx: torch.Tensor | None
    dbx: torch.Tensor | None
    az: torch.Tensor | None
    bz: torch.Tensor | None
    dbz: torch.Tensor | None
    source_rc: torch.Tensor
    receiver_rc: torch.Tensor
    wavelet: torch.Tensor

    @property
    def n_models(self) -> int:
        return self.vdt2.shape[0]

    @property
    def n_shots(self) -> int:
        return self.source_rc.shape[0]

    @property
    def n_receivers(self) -> int:
        return self.receiver_rc.shape[0]

    @property
    def nt(self) -> int:
        return self.wavelet.shape[0]

    @property
    def padded_shape(self) -> tuple[int, int]:
        return self.vdt2.shape[1] + 2 * self.pad, self.vdt2.shape[2] + 2 * self.pad
