"""The prepared inputs of the acoustic forward op, shared by the native and reference backends."""

from __future__ import annotations

import math
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

    def check(self) -> None:
        """Refuse anything that would make a kernel read or write out of bounds, on either
        device (the CUDA entry point cannot inspect device memory, so this is the one check both
        share): tensor ranks and lengths, dtypes, one device, geometry inside the padded grid,
        the profiles the boundary needs, finite inputs. Raises ValueError / TypeError."""
        v = self.vdt2
        if not isinstance(v, torch.Tensor) or v.dim() != 3 or min(v.shape[1:], default=0) < 1:
            raise ValueError("vdt2 must be a (B, nzm, nxm) tensor with a non-empty grid")
        if v.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"vdt2 must be float32 or float64, got {v.dtype}")
        if not isinstance(self.pad, int) or self.pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {self.pad!r}")
        if self.boundary not in ("sponge", "cpml"):
            raise ValueError(f"boundary must be 'sponge' or 'cpml', got {self.boundary!r}")
        if not (math.isfinite(self.dx) and math.isfinite(self.dz) and self.dx > 0 and self.dz > 0):
            raise ValueError(f"dx, dz must be positive and finite, got {self.dx}, {self.dz}")
        b = v.shape[0]
        nz, nx = self.padded_shape
        cpml = self.boundary == "cpml"
        lengths = {"kx": nx, "kz": nz, "ax": nx, "bx": nx, "dbx": nx, "az": nz, "bz": nz}
        lengths["dbz"] = nz
        for name, n in lengths.items():
            t = getattr(self, name)
            needed = cpml == (name not in ("kx", "kz"))
            if t is None:
                if cpml and needed:
                    raise ValueError(f"the C-PML needs the {name} profile")
                continue
            if not needed:
                raise ValueError(f"{name} is not used by the {self.boundary} boundary: pass None")
            if tuple(t.shape) != (b, n):
                raise ValueError(f"{name} must have shape {(b, n)}, got {tuple(t.shape)}")
            if t.device != v.device or not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} must be finite and on {v.device}")
        if self.wrap and (cpml or nz < 2 or nx < 2):
            raise ValueError("periodic wrap needs the sponge boundary and a padded grid >= 2 x 2")
        for name in ("source_rc", "receiver_rc"):
            rc = getattr(self, name)
            if rc.dim() != 2 or rc.shape[1] != 2 or rc.shape[0] < 1 or rc.is_floating_point():
                raise ValueError(f"{name} must be a non-empty (n, 2) integer tensor")
            rows, cols = rc[:, 0], rc[:, 1]
            inside = (rows >= 0) & (rows < nz) & (cols >= 0) & (cols < nx)
            if not bool(inside.all()):
                raise ValueError(f"{name} has locations outside the {nz} x {nx} padded grid")
        w = self.wavelet
        if w.dim() != 1 or not bool(torch.isfinite(w).all()):
            raise ValueError("wavelet must be a finite (nt,) tensor")
        if w.device != v.device:
            raise ValueError(f"wavelet is on {w.device}, the velocity on {v.device}")
