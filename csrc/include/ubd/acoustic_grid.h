// The acoustic solver's per-cell code for grid-parallel execution: one call per cell of one shot,
// every shot of every model stepped at once. Used by the CUDA kernels (acoustic_cuda.cu,
// acoustic_adjoint_cuda.cu) and by the host loops that run the same code on the CPU
// (acoustic_adjoint_grid_host.cpp), so the CUDA backward's schedule and per-cell maths are
// testable on machines without a GPU. Same PDE, scheme and boundaries as ubd/acoustic.h; the
// point formulas come from ubd/stencil.h.
//
// Field layout: each field holds every shot's padded grid with a halo of kHalo zero cells,
// shot t at offset t * cells, cell (i, j) at (i + kHalo) * ld + (j + kHalo). Per-cell arrays
// without halo (the stored L_n, per-shot gradients) are laid out (shot, nz, nx).
#pragma once

#include <cstdint>

#include "ubd/acoustic.h"
#include "ubd/stencil.h"

#if defined(__CUDACC__)
#define UBD_RESTRICT __restrict__
#else
#define UBD_RESTRICT __restrict
#endif

namespace ubd {
namespace grid {

constexpr int64_t kHalo = 2;

// Sizes, coefficients and pointers of one call, in the compute dtype (passed by value to kernels).
template <typename T>
struct Args {
  int64_t n_shots, nt, nzm, nxm, pad, nz, nx, ld, cells, n_receivers, total_shots;
  bool cpml, wrap;
  T rdx2, rdz2, rdx, rdz;
  const T* vdt2;
  const T* kx;
  const T* kz;
  const T* ax;
  const T* bx;
  const T* dbx;
  const T* az;
  const T* bz;
  const T* dbz;
  const int64_t* source_rc;
  const int64_t* receiver_rc;
  const T* wavelet;
  T* out;
};

template <typename T>
inline Args<T> make_args(const AcousticForwardParams& p) {
  Args<T> a{};
  a.n_shots = p.n_shots;
  a.nt = p.nt;
  a.nzm = p.nzm;
  a.nxm = p.nxm;
  a.pad = p.pad;
  a.nz = padded_nz(p);
  a.nx = padded_nx(p);
  a.ld = a.nx + 2 * kHalo;
  a.cells = (a.nz + 2 * kHalo) * a.ld;
  a.n_receivers = p.n_receivers;
  a.total_shots = p.n_models * p.n_shots;
  a.cpml = p.boundary == Boundary::kCpml;
  a.wrap = p.wrap;
  a.rdx2 = T(p.rdx2);
  a.rdz2 = T(p.rdz2);
  a.rdx = T(p.rdx);
  a.rdz = T(p.rdz);
  a.vdt2 = static_cast<const T*>(p.vdt2);
  a.kx = static_cast<const T*>(p.kx);
  a.kz = static_cast<const T*>(p.kz);
  a.ax = static_cast<const T*>(p.ax);
  a.bx = static_cast<const T*>(p.bx);
  a.dbx = static_cast<const T*>(p.dbx);
  a.az = static_cast<const T*>(p.az);
  a.bz = static_cast<const T*>(p.bz);
  a.dbz = static_cast<const T*>(p.dbz);
  a.source_rc = p.source_rc;
  a.receiver_rc = p.receiver_rc;
  a.wavelet = static_cast<const T*>(p.wavelet);
  a.out = static_cast<T*>(p.out);
  return a;
}

UBD_HD int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Field offset of padded cell (i, j) within a shot; with wrap, neighbours outside the grid wrap.
template <typename T>
UBD_HD int64_t cell(const Args<T>& a, int64_t i, int64_t j) {
  if (a.wrap) {
    i = i < 0 ? i + a.nz : (i >= a.nz ? i - a.nz : i);
    j = j < 0 ? j + a.nx : (j >= a.nx ? j - a.nx : j);
  }
  return (i + kHalo) * a.ld + (j + kHalo);
}

// (v dt)^2 of padded cell (i, j) of model b (edge replication of the model).
template <typename T>
UBD_HD T vdt2_at(const Args<T>& a, int64_t b, int64_t i, int64_t j) {
  return a.vdt2[b * a.nzm * a.nxm + clamp64(i - a.pad, 0, a.nzm - 1) * a.nxm +
                clamp64(j - a.pad, 0, a.nxm - 1)];
}

// Sponge damping kappa of cell (i, j) of model b: kx[j] + kz[i] inside the model's columns; 0 with
// the C-PML or without profiles.
template <typename T>
UBD_HD T kappa_at(const Args<T>& a, int64_t b, int64_t i, int64_t j) {
  T kappa = T(0);
  if (!a.cpml) {
    if (a.kx) kappa += a.kx[b * a.nx + j];
    if (a.kz && j >= a.pad && j < a.pad + a.nxm) kappa += a.kz[b * a.nz + i];
  }
  return kappa;
}

// Field offset of receiver r, or -1 when it lies outside the padded grid (the raw op skips the
// Python checks: such a receiver records NaN instead of reading out of bounds).
template <typename T>
UBD_HD int64_t receiver_offset(const Args<T>& a, int64_t r) {
  const int64_t i = a.receiver_rc[2 * r], j = a.receiver_rc[2 * r + 1];
  if (i < 0 || i >= a.nz || j < 0 || j >= a.nx) return -1;
  return (i + kHalo) * a.ld + (j + kHalo);
}

// One leapfrog step of cell (i, j) of shot t: Q <- P_{n+1} (Q holds P_{n-1} on entry), the C-PML
// fields of the layer, the source injected at its cell. With lap0, also stores L_n (the term that
// multiplies (v dt)^2, the adjoint's input) at lap0[(t nz + i) nx + j].
template <typename T>
UBD_HD void step_cell(const Args<T>& a, int64_t n, int64_t i, int64_t j, int64_t t,
                      const T* UBD_RESTRICT P0, T* UBD_RESTRICT Q0, const T* UBD_RESTRICT psx0,
                      T* UBD_RESTRICT psxn0, const T* UBD_RESTRICT psz0, T* UBD_RESTRICT pszn0,
                      T* UBD_RESTRICT zx0, T* UBD_RESTRICT zz0, T* UBD_RESTRICT lap0) {
  const int64_t b = t / a.n_shots, s = t % a.n_shots;
  const int64_t base = t * a.cells;
  const T* P = P0 + base;
  T* Q = Q0 + base;
  const int64_t c = cell(a, i, j);
  const T pc = P[c];
  T d2x = fd4_d2(P[cell(a, i, j - 2)], P[cell(a, i, j - 1)], pc, P[cell(a, i, j + 1)],
                 P[cell(a, i, j + 2)]) *
          a.rdx2;
  T d2z = fd4_d2(P[cell(a, i - 2, j)], P[cell(a, i - 1, j)], pc, P[cell(a, i + 1, j)],
                 P[cell(a, i + 2, j)]) *
          a.rdz2;
  // the C-PML update covers the layer plus kHalo model cells that its d/dx(a psi) stencil reaches
  const bool xpml = j < a.pad + kHalo || j >= a.pad + a.nxm - kHalo;
  const bool zpml = i < a.pad + kHalo || i >= a.pad + a.nzm - kHalo;
  const T v = vdt2_at(a, b, i, j);
  if (a.cpml) {
    const int64_t L = a.ld;
    if (xpml) {
      const T* ps = psx0 + base;
      const T du = fd4_d1(P[c - 2], P[c - 1], P[c + 1], P[c + 2]) * a.rdx;
      const T dap = fd4_d1(ps[c - 2], ps[c - 1], ps[c + 1], ps[c + 2]) * a.rdx;
      T psi_new;
      d2x = cpml_term(d2x, du, dap, ps[c], a.ax[b * a.nx + j], a.bx[b * a.nx + j],
                      a.dbx[b * a.nx + j], zx0[base + c], psi_new);
      psxn0[base + c] = psi_new;
    }
    if (zpml) {
      const T* ps = psz0 + base;
      const T du = fd4_d1(P[c - 2 * L], P[c - L], P[c + L], P[c + 2 * L]) * a.rdz;
      const T dap = fd4_d1(ps[c - 2 * L], ps[c - L], ps[c + L], ps[c + 2 * L]) * a.rdz;
      T psi_new;
      d2z = cpml_term(d2z, du, dap, ps[c], a.az[b * a.nz + i], a.bz[b * a.nz + i],
                      a.dbz[b * a.nz + i], zz0[base + c], psi_new);
      pszn0[base + c] = psi_new;
    }
  }
  const T lap = d2x + d2z;
  T next = leapfrog(pc, Q[c], v, lap, kappa_at(a, b, i, j));
  if (i == a.source_rc[2 * s] && j == a.source_rc[2 * s + 1]) next += v * a.wavelet[n];
  Q[c] = next;
  if (lap0) lap0[(t * a.nz + i) * a.nx + j] = lap;
}

// Receiver r of shot t records P_{n+1} (in Q0) as sample n (NaN for a receiver off the grid).
template <typename T>
UBD_HD void record_cell(const Args<T>& a, int64_t n, int64_t t, int64_t r, const T* Q0, T* out) {
  const int64_t c = receiver_offset(a, r);
  out[(t * a.nt + n) * a.n_receivers + r] = c < 0 ? T(NAN) : Q0[t * a.cells + c];
}

}  // namespace grid
}  // namespace ubd
