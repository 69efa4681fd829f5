// Adjoint-state backward of the acoustic forward op on the CPU (C++17 + OpenMP): the gradient of a
// loss with respect to (v dt)^2, for every boundary mode of ubd/acoustic.h.
//
// The discrete adjoint. One forward step maps the state s_n = (P_n, P_{n-1}[, Psi, zeta per axis])
// to s_{n+1} linearly:
//   P_{n+1} = 2 P_n - P_{n-1} + V L_n - kappa (P_n - P_{n-1}),   P_{n+1}[src] += V[src] w[n]
//   L_n = Dxx P_n + Dzz P_n, or with C-PML the terms of stencil.h::cpml_term
// and records y_n = P_{n+1}[receivers]. V = (v dt)^2 on the padded grid enters only as the
// multiplier of L_n and of the injected wavelet, so for a loss J with g_n = dJ/dy_n
//   dJ/dV = sum_n lambda_{n+1} * L_n   (+ lambda_{n+1}[src] w[n] at the source cell),
// where lambda_{n+1} is the adjoint of P_{n+1}: the transposed step run backward in time with g_n
// injected at the receivers. The stencils are exactly transposed: Dxx, Dzz are symmetric (also
// with the periodic wrap), the first-derivative stencil is antisymmetric (D1^T = -D1), so the
// adjoint is the exact gradient of the discrete forward (no "optimise-then-discretise" error):
//   sponge:  u = V lambda;  lambda_n = L[u] + (2 - kappa) lambda_{n+1} + beta_{n+1};
//            beta_n = (kappa - 1) lambda_{n+1}        (beta: adjoint of P_n in its P_{n-1} role)
//   C-PML:   per axis with u = V lambda:  t = (1+b) u + b Lzeta,  Lzeta <- a (u + Lzeta),
//            w = a b LPsi + b' t,  LPsi <- a LPsi - D1(t);  lambda_n gets (1+b) D2(t) - D1(w).
// The velocity gradient folds the padded grid back onto the model (edge replication transposed).
//
// Memory: checkpointing, not the wavefield history. The state every k steps is stored, then the
// segments are walked from last to first: restore the segment's first state, recompute its k steps
// keeping only L_n (one field a step), and run the adjoint back through them. The states come
// either from the forward that produced the gathers (acoustic_forward_cpu with `checkpoints`; the
// Python op keeps them when they are small, k chosen to balance them against the recomputation
// buffer: forward + backward = 2 forward passes + the adjoint), or from the backward's own forward
// pass (k = ceil(sqrt(nt * state fields)), per-thread scratch: 3 forward passes + the adjoint, and
// per (model, shot) about 2 sqrt(nt m) fields, m = 2 state fields for the sponge modes, 6 with
// C-PML, instead of nt). Exact either way: a restart reproduces the forward's states (the stored
// ones come from the forward kernel, whose row code is shared; rounding may differ by an ulp).
//
// Work split as in the forward: one OpenMP task per (model, shot) with private scratch; per-shot
// gradients go to separate buffers and are summed over shots after the parallel region, so the
// result does not depend on the thread count or the schedule.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "ubd/acoustic.h"
#include "ubd/acoustic_rows.h"
#include "ubd/stencil.h"

#ifdef UBD_WITH_OPENMP
#include <omp.h>
#endif

namespace ubd {
namespace {

constexpr int64_t kHalo = 2;
constexpr int64_t kVec = 8;  // C-PML segment boundaries are multiples of this (see the forward)

inline int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}
inline int64_t round_down(int64_t n, int64_t m) {
  return n / m * m;
}

template <typename T>
struct Geometry {
  int64_t nz, nx, ld, cells;  // padded grid, leading dimension with halo, halo-inclusive size
  int64_t at(int64_t i, int64_t j) const { return (i + kHalo) * ld + (j + kHalo); }
};

// Periodic copy of the interior into the halo (OpenFWI's wrap), as in the forward: the halo rows
// (interior columns only; the stencils never read the corners) and each row's column halo.
template <typename T>
void fill_periodic_halo_rows(const Geometry<T>& g, T* f) {
  const int64_t nz = g.nz, nx = g.nx;
  for (int64_t h = 1; h <= kHalo; ++h) {
    std::copy(f + g.at(nz - h, 0), f + g.at(nz - h, 0) + nx, f + g.at(-h, 0));
    std::copy(f + g.at(h - 1, 0), f + g.at(h - 1, 0) + nx, f + g.at(nz + h - 1, 0));
  }
}

template <typename T>
inline void fill_periodic_halo_columns(const Geometry<T>& g, T* f, int64_t i) {
  const int64_t nx = g.nx;
  T* r = f + g.at(i, 0);
  r[-1] = r[nx - 1];
  r[-2] = r[nx - 2];
  r[nx] = r[0];
  r[nx + 1] = r[1];
}

template <typename T>
void fill_periodic_halo(const Geometry<T>& g, T* f) {
  fill_periodic_halo_rows(g, f);
  for (int64_t i = 0; i < g.nz; ++i) fill_periodic_halo_columns(g, f, i);
}

// One (model, shot) task's inputs on the padded grid.
template <typename T>
struct Shot {
  const AcousticForwardParams* p;
  Geometry<T> g;
  bool cpml, kappa, wrap;
  T rdx2, rdz2, rdx, rdz;
  const T* V;  // (nz, nx) padded (v dt)^2
  const T* K;  // (nz, nx) sponge kappa, or nullptr
  const T *ax, *bx, *dbx, *az, *bz, *dbz;
  int64_t src;                      // halo-inclusive offset of the source cell
  int64_t src_cell;                 // offset of the source cell in (nz, nx)
  const std::vector<int64_t>* rec;  // halo-inclusive receiver offsets
  const T* wavelet;
};

// Forward state of one shot: P, P_prev and the C-PML fields (Psi = a psi, zeta), halo-inclusive.
template <typename T>
struct State {
  std::vector<T> P, Pp, psx, psz, zx, zz, psx_new, psz_new;
  void init(int64_t cells, bool cpml) {
    for (auto* v : {&P, &Pp}) v->assign(static_cast<size_t>(cells), T(0));
    for (auto* v : {&psx, &psz, &zx, &zz, &psx_new, &psz_new}) {
      v->assign(cpml ? static_cast<size_t>(cells) : 0, T(0));
    }
  }
  // The fields that define the state (the *_new buffers are scratch).
  std::vector<std::vector<T>*> fields(bool cpml) {
    if (cpml) return {&P, &Pp, &psx, &psz, &zx, &zz};
    return {&P, &Pp};
  }
};

// Adjoint fields of one shot, halo-inclusive (halo cells stay zero unless wrapped).
template <typename T>
struct Adjoint {
  std::vector<T> lam, beta, u;              // adjoint of P_{n+1}, of P_n as P_prev; V lam
  std::vector<T> lpx, lpz, lzx, lzz;        // adjoints of Psi and zeta (C-PML)
  std::vector<T> e2x, e2z, wx, wz, tx, tz;  // per-step temporaries (C-PML)
  void init(int64_t cells, bool cpml) {
    for (auto* v : {&lam, &beta, &u}) v->assign(static_cast<size_t>(cells), T(0));
    for (auto* v : {&lpx, &lpz, &lzx, &lzz, &e2x, &e2z, &wx, &wz, &tx, &tz}) {
      v->assign(cpml ? static_cast<size_t>(cells) : 0, T(0));
    }
  }
};

// Column/row ranges of the C-PML mode where the absorbing terms vanish: the profiles are zero
// inside the model and d/dx(Psi) reaches kHalo cells into it, so columns [x0, x1) have no x terms
// and rows [z0, z1) no z terms (the forward kernel's strips). There the forward is the plain
// leapfrog and the adjoint the plain transposed Laplacian; the Psi/zeta fields and their adjoints
// stay zero, or are multiplied by zero coefficients before they are read.
struct CpmlSegments {
  int64_t x0, x1, z0, z1;
};

template <typename T>
CpmlSegments cpml_segments(const Shot<T>& s) {
  const AcousticForwardParams& p = *s.p;
  const int64_t nx = s.g.nx;
  // as in the forward kernel: the x-strips are widened into the model to multiples of kVec, so no
  // SIMD loop has a scalar remainder (there a = b = db = Psi = zeta = 0 and every term reduces
  // exactly to the plain one)
  const int64_t x0 = std::min(round_up(p.pad + kHalo, kVec), nx);
  const int64_t x1 = x0 + round_down(std::max<int64_t>(nx - p.pad - kHalo - x0, 0), kVec);
  const int64_t z0 = std::min(p.pad + kHalo, s.g.nz);
  const int64_t z1 = std::max(z0, p.pad + p.nzm - kHalo);
  return {x0, x1, z0, z1};
}

// The forward kernel's row arguments for row i of this shot's state (acoustic_rows.h): the
// recomputation steps with the forward's own row code, storing L_n in Lrow.
template <typename T>
cpu::RowArgs<T> row_args(const Shot<T>& s, State<T>& st, int64_t i, T* Lrow) {
  const Geometry<T>& g = s.g;
  const int64_t o = g.at(i, 0);
  cpu::RowArgs<T> r{};
  r.P = st.P.data() + o;
  r.Q = st.Pp.data() + o;
  r.ld = g.ld;
  r.rdx2 = s.rdx2;
  r.rdz2 = s.rdz2;
  r.rdx = s.rdx;
  r.rdz = s.rdz;
  r.V = s.V + i * g.nx;
  r.K = s.K ? s.K + i * g.nx : nullptr;
  r.lap = Lrow;
  if (s.cpml) {
    r.ax = s.ax;
    r.bx = s.bx;
    r.dbx = s.dbx;
    r.psx = st.psx.data() + o;
    r.psxn = st.psx_new.data() + o;
    r.zx = st.zx.data() + o;
    r.az = s.az[i];
    r.bz = s.bz[i];
    r.dbz = s.dbz[i];
    r.psz = st.psz.data() + o;
    r.pszn = st.psz_new.data() + o;
    r.zz = st.zz.data() + o;
  }
  return r;
}

// One forward step: P_prev <- P_{n+1} (then swapped); L (nz, nx) <- L_n when StoreL.
template <typename T, bool Cpml, bool Kappa, bool StoreL>
void forward_step(const Shot<T>& s, State<T>& st, int64_t n, T* L) {
  const Geometry<T>& g = s.g;
  if (s.wrap) fill_periodic_halo(g, st.P.data());
  for (int64_t i = 0; i < g.nz; ++i) {
    const cpu::RowArgs<T> r = row_args(s, st, i, StoreL ? L + i * g.nx : nullptr);
    if constexpr (Cpml) {
      const CpmlSegments c = cpml_segments(s);
      if (i < c.z0 || i >= c.z1) {
        cpu::row_segment<T, false, true, true, StoreL>(r, 0, c.x0);
        cpu::row_segment<T, false, false, true, StoreL>(r, c.x0, c.x1);
        cpu::row_segment<T, false, true, true, StoreL>(r, c.x1, g.nx);
      } else {
        cpu::row_segment<T, false, true, false, StoreL>(r, 0, c.x0);
        cpu::row_segment<T, false, false, false, StoreL>(r, c.x0, c.x1);
        cpu::row_segment<T, false, true, false, StoreL>(r, c.x1, g.nx);
      }
    } else {
      cpu::row_segment<T, Kappa, false, false, StoreL>(r, 0, g.nx);
    }
  }
  st.Pp[s.src] += s.V[s.src_cell] * s.wavelet[n];
  std::swap(st.P, st.Pp);
  if constexpr (Cpml) {
    std::swap(st.psx, st.psx_new);
    std::swap(st.psz, st.psz_new);
  }
}

// Adjoint pass 1 on row i: the gradient and u = V lam.
template <typename T>
inline void adjoint_pass1_row(const Shot<T>& s, Adjoint<T>& a, int64_t i, const T* L, T* grad) {
  const Geometry<T>& g = s.g;
  const int64_t o = g.at(i, 0);
  const T* __restrict lr = a.lam.data() + o;
  const T* __restrict Vr = s.V + i * g.nx;
  const T* __restrict Lr = L + i * g.nx;
  T* __restrict gr = grad + i * g.nx;
  T* __restrict ur = a.u.data() + o;
#pragma omp simd
  for (int64_t j = 0; j < g.nx; ++j) {
    gr[j] += lr[j] * Lr[j];
    ur[j] = Vr[j] * lr[j];
  }
}

// The C-PML per-cell temporaries of one axis on row i, columns [j0, j1) (pass 1): t = (1+b) u +
// b Lzeta, Lzeta <- a (u + Lzeta), w = a b LPsi + b' t, LPsi <- a LPsi, e2 = (1+b) t. ZAxis: the
// row's z coefficients (scalars), else the x coefficients per column.
template <typename T, bool ZAxis>
inline void adjoint_cpml_temps(const Shot<T>& s, Adjoint<T>& a, int64_t i, int64_t j0, int64_t j1) {
  const int64_t o = s.g.at(i, 0);
  const T* __restrict ur = a.u.data() + o;
  T* __restrict lp = (ZAxis ? a.lpz.data() : a.lpx.data()) + o;
  T* __restrict lz = (ZAxis ? a.lzz.data() : a.lzx.data()) + o;
  T* __restrict e2 = (ZAxis ? a.e2z.data() : a.e2x.data()) + o;
  T* __restrict w = (ZAxis ? a.wz.data() : a.wx.data()) + o;
  T* __restrict t = (ZAxis ? a.tz.data() : a.tx.data()) + o;
  const T* __restrict ax = s.ax;
  const T* __restrict bx = s.bx;
  const T* __restrict dbx = s.dbx;
  const T az = s.az[i], bz = s.bz[i], dbz = s.dbz[i];
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    const T av = ZAxis ? az : ax[j], bv = ZAxis ? bz : bx[j], dbv = ZAxis ? dbz : dbx[j];
    const T u = ur[j];
    const T t1 = (T(1) + bv) * u + bv * lz[j];
    lz[j] = av * (u + lz[j]);
    w[j] = av * bv * lp[j] + dbv * t1;
    lp[j] = av * lp[j];
    e2[j] = (T(1) + bv) * t1;
    t[j] = t1;
  }
}

// Where pass 2 reads the C-PML temporaries: the x ones in columns [0, xa) and [xb, nx), the z ones
// in rows [0, za) and [zb, nz) (the absorbing segments of cpml_segments and the kHalo cells their
// stencils reach). Elsewhere pass 2 reads u, so pass 1 skips them there (the values it would write
// are never read; the Psi/zeta adjoints outside stay zero or meet zero coefficients).
struct CpmlStrips {
  int64_t xa, xb, za, zb;
};

template <typename T>
CpmlStrips cpml_strips(const Shot<T>& s) {
  const CpmlSegments c = cpml_segments(s);
  const int64_t nx = s.g.nx, za = std::min(c.z0 + kHalo, s.g.nz);
  // rounded out to multiples of kVec like the segments (extra cells get u's values, unread)
  const int64_t xa = std::min(round_up(c.x0 + kHalo, kVec), nx);
  const int64_t xb = std::max(nx - round_up(std::max<int64_t>(nx - c.x1 + kHalo, 0), kVec), xa);
  return {xa, xb, za, std::max(c.z1 - kHalo, za)};
}

// Pass 1 on row i: gradient, u and, with C-PML, the temporaries where pass 2 reads them.
template <typename T, bool Cpml>
inline void adjoint_pass1(const Shot<T>& s, Adjoint<T>& a, int64_t i, const T* L, T* grad,
                          const CpmlStrips& c) {
  adjoint_pass1_row(s, a, i, L, grad);
  if constexpr (Cpml) {
    adjoint_cpml_temps<T, false>(s, a, i, 0, c.xa);
    adjoint_cpml_temps<T, false>(s, a, i, c.xb, s.g.nx);
    if (i < c.za || i >= c.zb) adjoint_cpml_temps<T, true>(s, a, i, 0, s.g.nx);
  }
}

// Adjoint pass 2 of the C-PML mode on row i, columns [j0, j1); where the x (z) terms vanish the
// temporaries equal u and the Psi adjoint is never used (it meets a zero coefficient).
template <typename T, bool XP, bool ZP>
inline void adjoint_cpml_segment(const Shot<T>& s, Adjoint<T>& a, int64_t i, int64_t j0,
                                 int64_t j1) {
  const Geometry<T>& g = s.g;
  const int64_t o = g.at(i, 0), ld = g.ld;
  T* __restrict lr = a.lam.data() + o;
  T* __restrict br = a.beta.data() + o;
  const T* __restrict ex = (XP ? a.e2x.data() : a.u.data()) + o;
  const T* __restrict ez = (ZP ? a.e2z.data() : a.u.data()) + o;
  const T* __restrict wx = a.wx.data() + o;
  const T* __restrict wz = a.wz.data() + o;
  const T* __restrict tx = a.tx.data() + o;
  const T* __restrict tz = a.tz.data() + o;
  T* __restrict lpx = a.lpx.data() + o;
  T* __restrict lpz = a.lpz.data() + o;
  const T rdx2 = s.rdx2, rdz2 = s.rdz2, rdx = s.rdx, rdz = s.rdz;
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    T d = fd4_d2(ex[j - 2], ex[j - 1], ex[j], ex[j + 1], ex[j + 2]) * rdx2 +
          fd4_d2(ez[j - 2 * ld], ez[j - ld], ez[j], ez[j + ld], ez[j + 2 * ld]) * rdz2;
    if constexpr (XP) {
      d -= fd4_d1(wx[j - 2], wx[j - 1], wx[j + 1], wx[j + 2]) * rdx;
      lpx[j] -= fd4_d1(tx[j - 2], tx[j - 1], tx[j + 1], tx[j + 2]) * rdx;
    }
    if constexpr (ZP) {
      d -= fd4_d1(wz[j - 2 * ld], wz[j - ld], wz[j + ld], wz[j + 2 * ld]) * rdz;
      lpz[j] -= fd4_d1(tz[j - 2 * ld], tz[j - ld], tz[j + ld], tz[j + 2 * ld]) * rdz;
    }
    const T l = lr[j];
    lr[j] = d + T(2) * l + br[j];
    br[j] = -l;
  }
}

// Adjoint pass 2 of the sponge modes on row i.
template <typename T, bool Kappa>
inline void adjoint_sponge_row(const Shot<T>& s, Adjoint<T>& a, int64_t i) {
  const Geometry<T>& g = s.g;
  const int64_t o = g.at(i, 0), ld = g.ld;
  T* __restrict lr = a.lam.data() + o;
  T* __restrict br = a.beta.data() + o;
  const T* __restrict u = a.u.data() + o;
  const T* __restrict Kr = Kappa ? s.K + i * g.nx : nullptr;
  const T rdx2 = s.rdx2, rdz2 = s.rdz2;
#pragma omp simd
  for (int64_t j = 0; j < g.nx; ++j) {
    const T lap = fd4_d2(u[j - 2], u[j - 1], u[j], u[j + 1], u[j + 2]) * rdx2 +
                  fd4_d2(u[j - 2 * ld], u[j - ld], u[j], u[j + ld], u[j + 2 * ld]) * rdz2;
    const T l = lr[j];
    if constexpr (Kappa) {
      lr[j] = lap + (T(2) - Kr[j]) * l + br[j];
      br[j] = (Kr[j] - T(1)) * l;
    } else {
      lr[j] = lap + T(2) * l + br[j];
      br[j] = -l;
    }
  }
}

// Pass 2 on row i: lambda_{n+1} -> lambda_n (and the Psi adjoints) from the pass-1 fields of rows
// i - kHalo .. i + kHalo.
template <typename T, bool Cpml, bool Kappa>
inline void adjoint_pass2(const Shot<T>& s, Adjoint<T>& a, int64_t i) {
  if constexpr (Cpml) {
    const CpmlSegments c = cpml_segments(s);
    const int64_t nx = s.g.nx;
    if (i < c.z0 || i >= c.z1) {
      adjoint_cpml_segment<T, true, true>(s, a, i, 0, c.x0);
      adjoint_cpml_segment<T, false, true>(s, a, i, c.x0, c.x1);
      adjoint_cpml_segment<T, true, true>(s, a, i, c.x1, nx);
    } else {
      adjoint_cpml_segment<T, true, false>(s, a, i, 0, c.x0);
      adjoint_cpml_segment<T, false, false>(s, a, i, c.x0, c.x1);
      adjoint_cpml_segment<T, true, false>(s, a, i, c.x1, nx);
    }
  } else {
    adjoint_sponge_row<T, Kappa>(s, a, i);
  }
}

// The periodic wrap (sponge modes only: the C-PML temporaries have no periodic halo) with the
// passes interleaved: pass 1 first on the rows the halo rows copy (the last and first kHalo), the
// halo rows filled, then the rest as without the wrap, each row's column halo filled right after
// its pass 1, and the last kHalo rows' pass 2 at the end (they read the halo copy of the first).
template <typename T, bool Kappa>
void adjoint_passes_wrapped(const Shot<T>& s, Adjoint<T>& a, const T* L, T* grad) {
  const Geometry<T>& g = s.g;
  const int64_t nz = g.nz;
  T* u = a.u.data();
  const CpmlStrips none{0, 0, 0, 0};
  auto pass1 = [&](int64_t i) {
    adjoint_pass1<T, false>(s, a, i, L, grad, none);
    fill_periodic_halo_columns(g, u, i);
  };
  const int64_t edge = std::min(kHalo, nz);
  for (int64_t i = std::max(nz - kHalo, edge); i < nz; ++i) pass1(i);
  for (int64_t i = 0; i < edge; ++i) pass1(i);
  fill_periodic_halo_rows(g, u);
  for (int64_t i = edge; i < nz; ++i) {
    if (i < nz - kHalo) pass1(i);
    adjoint_pass2<T, false, Kappa>(s, a, i - kHalo);
  }
  for (int64_t i = std::max(nz - kHalo, int64_t{0}); i < nz; ++i) {
    adjoint_pass2<T, false, Kappa>(s, a, i);
  }
}

// One adjoint step n (backward in time): inject g_n, accumulate dJ/dV, lambda_{n+1} -> lambda_n.
// Pass 2 of row i reads pass 1's fields of rows up to i + kHalo only, so the two passes run
// interleaved, pass 2 kHalo rows behind pass 1: each row's fields are reused while still in cache
// (with the periodic wrap, adjoint_passes_wrapped orders the rows so that the halo is filled before
// it is read). Same operations, same order per cell: the result is bit-identical to running the
// passes one after the other.
template <typename T, bool Cpml, bool Kappa>
void adjoint_step(const Shot<T>& s, Adjoint<T>& a, int64_t n, const T* L, const T* g_n, T* grad) {
  const Geometry<T>& g = s.g;
  const int64_t R = static_cast<int64_t>(s.rec->size());
  T* lam = a.lam.data();
  for (int64_t k = 0; k < R; ++k) lam[(*s.rec)[k]] += g_n[k];
  grad[s.src_cell] += lam[s.src] * s.wavelet[n];
  const CpmlStrips c = Cpml ? cpml_strips(s) : CpmlStrips{0, 0, 0, 0};
  if (s.wrap) {
    if constexpr (!Cpml) {  // the wrap is refused with C-PML (acoustic_forward_cpu's checks)
      if (g.nz > 2 * kHalo) {
        adjoint_passes_wrapped<T, Kappa>(s, a, L, grad);
        return;
      }
    }
    for (int64_t i = 0; i < g.nz; ++i) adjoint_pass1<T, Cpml>(s, a, i, L, grad, c);
    fill_periodic_halo(g, a.u.data());
    for (int64_t i = 0; i < g.nz; ++i) adjoint_pass2<T, Cpml, Kappa>(s, a, i);
    return;
  }
  for (int64_t i = 0; i < g.nz + kHalo; ++i) {
    if (i < g.nz) adjoint_pass1<T, Cpml>(s, a, i, L, grad, c);
    if (i >= kHalo) adjoint_pass2<T, Cpml, Kappa>(s, a, i - kHalo);
  }
}

// Per-thread scratch, sized once for the padded grid.
template <typename T>
struct Scratch {
  State<T> st;
  Adjoint<T> adj;
  std::vector<T> V, K, ckpt, seg, sim, g;
  std::vector<T> grad;
  std::vector<int64_t> rec;
};

// The loss gradient with respect to the recorded samples, (nt, R): given, or from the misfit sums'
// gradient and the recomputed gathers (d/dsim of the four sums of acoustic.h).
template <typename T>
void adjoint_source(const AcousticForwardParams& p, int64_t task, Scratch<T>& sc) {
  const int64_t n = p.nt * p.n_receivers;
  sc.g.resize(static_cast<size_t>(n));
  if (!p.observed) {
    const T* go = static_cast<const T*>(p.grad_out) + task * n;
    std::copy(go, go + n, sc.g.begin());
    return;
  }
  const T* obs = static_cast<const T*>(p.observed) + task * n;
  const double* gm = p.grad_misfit + 4 * task;
  double sums[4] = {0, 0, 0, 0};
  const double lo = p.norm_lo, hi = p.norm_hi;
  for (int64_t k = 0; k < n; ++k) {
    const double x = sc.sim[k], o = obs[k];
    double d = 2 * gm[0] * (x - o) + 2 * gm[1] * x;
    sums[0] += (x - o) * (x - o);
    sums[1] += x * x;
    if (p.normalise) {
      const double nx = openfwi_normalise(x, lo, hi), no = openfwi_normalise(o, lo, hi);
      const double dn = 2.0 / (hi - lo) / (1.0 + std::fabs(x));
      d += (2 * gm[2] * (nx - no) + 2 * gm[3] * nx) * dn;
      sums[2] += (nx - no) * (nx - no);
      sums[3] += nx * nx;
    }
    sc.g[k] = T(d);
  }
  if (p.misfit) std::copy(sums, sums + 4, p.misfit + 4 * task);
}

// Pass 1 of the checkpointing: run the forward, storing the state every k steps in ckpt
// (n_ckpt * nf * cells) and, when sim is set, the recorded samples (nt, R).
template <typename T, bool Cpml, bool Kappa>
void checkpoint_pass(const Shot<T>& s, State<T>& st, int64_t nt, int64_t k, T* ckpt, T* sim) {
  const auto fields = st.fields(Cpml);
  const int64_t nf = static_cast<int64_t>(fields.size()), cells = s.g.cells;
  const int64_t R = static_cast<int64_t>(s.rec->size());
  st.init(cells, Cpml);
  for (int64_t n = 0; n < nt; ++n) {
    if (n % k == 0) {
      T* dst = ckpt + (n / k) * nf * cells;
      for (int64_t f = 0; f < nf; ++f)
        std::copy(fields[f]->begin(), fields[f]->end(), dst + f * cells);
    }
    forward_step<T, Cpml, Kappa, false>(s, st, n, nullptr);
    if (sim) {
      for (int64_t r = 0; r < R; ++r) sim[n * R + r] = st.P[(*s.rec)[r]];
    }
  }
}

// The backward of one (model, shot) task. ckpt: the task's stored states, from
// acoustic_forward_cpu (then pass 1 is skipped), or this thread's scratch to fill.
template <typename T, bool Cpml, bool Kappa>
void backward_shot(const AcousticForwardParams& p, const Shot<T>& s, int64_t task, int64_t k,
                   Scratch<T>& sc, T* ckpt) {
  const int64_t cells_model = s.g.nz * s.g.nx, R = p.n_receivers, nt = p.nt;
  const auto fields = sc.st.fields(Cpml);
  const int64_t nf = static_cast<int64_t>(fields.size()), cells = s.g.cells;
  const int64_t n_ckpt = (nt + k - 1) / k;
  if (p.checkpoints) {
    sc.st.init(cells, Cpml);
  } else {  // pass 1 (with the gathers when the misfit drives the adjoint)
    const bool record = p.observed != nullptr;
    if (record) sc.sim.resize(static_cast<size_t>(nt * R));
    checkpoint_pass<T, Cpml, Kappa>(s, sc.st, nt, k, ckpt, record ? sc.sim.data() : nullptr);
  }
  adjoint_source(p, task, sc);
  // pass 2: segments from last to first, recompute then adjoint
  sc.adj.init(cells, Cpml);
  sc.grad.assign(static_cast<size_t>(cells_model), T(0));
  for (int64_t c = n_ckpt - 1; c >= 0; --c) {
    const int64_t n0 = c * k, n1 = std::min(n0 + k, nt);
    const T* src = ckpt + c * nf * cells;
    for (int64_t f = 0; f < nf; ++f)
      std::copy(src + f * cells, src + (f + 1) * cells, fields[f]->begin());
    for (int64_t n = n0; n < n1; ++n) {
      forward_step<T, Cpml, Kappa, true>(s, sc.st, n, sc.seg.data() + (n - n0) * cells_model);
    }
    for (int64_t n = n1 - 1; n >= n0; --n) {
      adjoint_step<T, Cpml, Kappa>(s, sc.adj, n, sc.seg.data() + (n - n0) * cells_model,
                                   sc.g.data() + n * R, sc.grad.data());
    }
  }
}

// The sizes shared by the checkpointed forward and the backward.
template <typename T>
struct Plan {
  int64_t nz, nx, pad, tasks, cells_model;
  bool cpml, kappa;
  int64_t n_state, k, n_ckpt;
  Geometry<T> g;
};

template <typename T>
Plan<T> make_plan(const AcousticForwardParams& p) {
  Plan<T> pl{};
  pl.nz = padded_nz(p);
  pl.nx = padded_nx(p);
  pl.pad = p.pad;
  pl.tasks = p.n_models * p.n_shots;
  pl.cells_model = pl.nz * pl.nx;
  pl.cpml = p.boundary == Boundary::kCpml;
  pl.kappa = !pl.cpml && (p.kx || p.kz);
  pl.n_state = pl.cpml ? 6 : 2;
  pl.k = acoustic_checkpoint_interval(p);
  pl.n_ckpt = (p.nt + pl.k - 1) / pl.k;
  pl.g = Geometry<T>{pl.nz, pl.nx, pl.nx + 2 * kHalo, (pl.nz + 2 * kHalo) * (pl.nx + 2 * kHalo)};
  return pl;
}

// One thread's scratch, sized once (the checkpoint buffer only when the states are not given).
template <typename T>
void prepare_scratch(const AcousticForwardParams& p, const Plan<T>& pl, Scratch<T>& sc,
                     bool own_ckpt, bool adjoint) {
  sc.V.resize(static_cast<size_t>(pl.cells_model));
  if (pl.kappa) sc.K.resize(static_cast<size_t>(pl.cells_model));
  if (own_ckpt) sc.ckpt.resize(static_cast<size_t>(pl.n_ckpt * pl.n_state * pl.g.cells));
  if (adjoint) sc.seg.resize(static_cast<size_t>(pl.k * pl.cells_model));
  sc.rec.resize(static_cast<size_t>(p.n_receivers));
  for (int64_t r = 0; r < p.n_receivers; ++r) {
    sc.rec[r] = pl.g.at(p.receiver_rc[2 * r], p.receiver_rc[2 * r + 1]);
  }
}

// The padded (v dt)^2 and kappa of model b into the thread's scratch.
template <typename T>
void load_model(const AcousticForwardParams& p, const Plan<T>& pl, int64_t b, Scratch<T>& sc) {
  const int64_t nz = pl.nz, nx = pl.nx, pad = pl.pad;
  const T* vm = static_cast<const T*>(p.vdt2) + b * p.nzm * p.nxm;
  for (int64_t i = 0; i < nz; ++i) {
    const int64_t mr = std::clamp<int64_t>(i - pad, 0, p.nzm - 1);
    for (int64_t j = 0; j < nx; ++j) {
      sc.V[i * nx + j] = vm[mr * p.nxm + std::clamp<int64_t>(j - pad, 0, p.nxm - 1)];
    }
  }
  if (!pl.kappa) return;
  const T* kx = p.kx ? static_cast<const T*>(p.kx) + b * nx : nullptr;
  const T* kz = p.kz ? static_cast<const T*>(p.kz) + b * nz : nullptr;
  for (int64_t i = 0; i < nz; ++i) {
    for (int64_t j = 0; j < nx; ++j) {
      const bool in_cols = j >= pad && j < pad + p.nxm;
      sc.K[i * nx + j] = (kx ? kx[j] : T(0)) + (kz && in_cols ? kz[i] : T(0));
    }
  }
}

// Shot s_idx of model b (whose V, K are loaded in sc).
template <typename T>
Shot<T> make_shot(const AcousticForwardParams& p, const Plan<T>& pl, Scratch<T>& sc, int64_t b,
                  int64_t s_idx) {
  auto prof = [&](const void* ptr, int64_t n) {
    return ptr ? static_cast<const T*>(ptr) + b * n : nullptr;
  };
  const int64_t sr = p.source_rc[2 * s_idx], scol = p.source_rc[2 * s_idx + 1];
  return Shot<T>{&p,
                 pl.g,
                 pl.cpml,
                 pl.kappa,
                 p.wrap,
                 T(p.rdx2),
                 T(p.rdz2),
                 T(p.rdx),
                 T(p.rdz),
                 sc.V.data(),
                 pl.kappa ? sc.K.data() : nullptr,
                 prof(p.ax, pl.nx),
                 prof(p.bx, pl.nx),
                 prof(p.dbx, pl.nx),
                 prof(p.az, pl.nz),
                 prof(p.bz, pl.nz),
                 prof(p.dbz, pl.nz),
                 pl.g.at(sr, scol),
                 sr * pl.nx + scol,
                 &sc.rec,
                 static_cast<const T*>(p.wavelet)};
}

// Run f(task, shot, scratch) for every (model, shot) task, one OpenMP task each, with the model's
// padded fields loaded once per thread and model; errors are rethrown after the parallel region.
template <typename T, typename F>
void for_each_task(const AcousticForwardParams& p, const Plan<T>& pl, bool own_ckpt, bool adjoint,
                   const char* who, F&& f) {
  std::string error;
#pragma omp parallel
  {
    cpu::FlushDenormals ftz;  // as in the forward: the adjoint's fronts spread denormals too
    Scratch<T> sc;
    bool ready = false;
    int64_t model = -1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < pl.tasks; ++t) {
      try {
        if (!ready) {
          prepare_scratch(p, pl, sc, own_ckpt, adjoint);
          ready = true;
        }
        const int64_t b = t / p.n_shots;
        if (b != model) {
          load_model(p, pl, b, sc);
          model = b;
        }
        f(t, make_shot(p, pl, sc, b, t % p.n_shots), sc);
      } catch (const std::exception& e) {
#pragma omp critical
        error = e.what();
      }
    }
  }
  if (!error.empty()) throw std::runtime_error(std::string(who) + ": " + error);
}

// The boundary mode's template instance of f<Cpml, Kappa>.
template <typename T, typename F>
void dispatch_mode(const Plan<T>& pl, F&& f) {
  if (pl.cpml) {
    f(std::true_type{}, std::false_type{});
  } else if (pl.kappa) {
    f(std::false_type{}, std::true_type{});
  } else {
    f(std::false_type{}, std::false_type{});
  }
}

template <typename T>
void backward(const AcousticForwardParams& p) {
  const Plan<T> pl = make_plan<T>(p);
  const int64_t per_task = pl.n_ckpt * pl.n_state * pl.g.cells, m = p.nzm * p.nxm;
  const int64_t nz = pl.nz, nx = pl.nx, pad = pl.pad;
  T* given = static_cast<T*>(p.checkpoints);
  // per-shot gradients on the model grid, summed over shots afterwards (deterministic)
  std::vector<double> shot_grad(static_cast<size_t>(pl.tasks * m), 0.0);
  for_each_task(
      p, pl, given == nullptr, true, "acoustic_backward_cpu",
      [&](int64_t t, const Shot<T>& s, Scratch<T>& sc) {
        T* ckpt = given ? given + t * per_task : sc.ckpt.data();
        dispatch_mode(pl, [&](auto cpml, auto kappa) {
          backward_shot<T, decltype(cpml)::value, decltype(kappa)::value>(p, s, t, pl.k, sc, ckpt);
        });
        // fold the padded grid onto the model (transpose of the edge replication)
        double* out = shot_grad.data() + t * m;
        for (int64_t i = 0; i < nz; ++i) {
          const int64_t mr = std::clamp<int64_t>(i - pad, 0, p.nzm - 1);
          for (int64_t j = 0; j < nx; ++j) {
            out[mr * p.nxm + std::clamp<int64_t>(j - pad, 0, p.nxm - 1)] += sc.grad[i * nx + j];
          }
        }
      });
  T* grad = static_cast<T*>(p.grad_vdt2);
  for (int64_t b = 0; b < p.n_models; ++b) {
    for (int64_t c = 0; c < m; ++c) {
      double acc = 0;
      for (int64_t s = 0; s < p.n_shots; ++s) acc += shot_grad[(b * p.n_shots + s) * m + c];
      grad[b * m + c] = T(acc);
    }
  }
}

}  // namespace

int64_t acoustic_checkpoint_interval(const AcousticForwardParams& p) {
  const int64_t n_state = p.boundary == Boundary::kCpml ? 6 : 2;
  int64_t k = p.checkpoint_every;
  if (k <= 0) k = static_cast<int64_t>(std::ceil(std::sqrt(double(p.nt) * double(n_state))));
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(p.nt, 1));
}

int64_t acoustic_checkpoint_elems(const AcousticForwardParams& p) {
  const int64_t k = acoustic_checkpoint_interval(p), n_ckpt = (p.nt + k - 1) / k;
  const int64_t cells = (padded_nz(p) + 2 * kHalo) * (padded_nx(p) + 2 * kHalo);
  const int64_t n_state = p.boundary == Boundary::kCpml ? 6 : 2;
  return p.n_models * p.n_shots * n_ckpt * n_state * cells;
}

void acoustic_backward_cpu(const AcousticForwardParams& p) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("acoustic_backward: " + m); };
  if (!p.grad_vdt2) fail("null grad_vdt2");
  const int64_t m = p.n_models * p.nzm * p.nxm;
  const bool work = p.n_models * p.n_shots * p.nt > 0;
  if (work && (p.observed ? !p.grad_misfit : !p.grad_out)) {
    fail("needs grad_out, or observed with grad_misfit");
  }
  if (p.observed && p.checkpoints) fail("stored checkpoints cannot drive the misfit's adjoint");
  if (!work) {  // no shot or no step: the gradient is zero
    if (p.dtype == DType::kFloat32) {
      std::fill(static_cast<float*>(p.grad_vdt2), static_cast<float*>(p.grad_vdt2) + m, 0.0f);
    } else {
      std::fill(static_cast<double*>(p.grad_vdt2), static_cast<double*>(p.grad_vdt2) + m, 0.0);
    }
    return;
  }
  AcousticForwardParams q = p;  // the forward's check, with the gradient as the output
  q.out = q.grad_vdt2;
  q.observed = nullptr;
  check_acoustic_params(q);
  if (p.dtype == DType::kFloat32) {
    backward<float>(p);
  } else {
    backward<double>(p);
  }
}

}  // namespace ubd
