// The adjoint-state backward of the acoustic op for grid-parallel execution (every cell of every
// shot at once): the CUDA backward (acoustic_adjoint_cuda.cu) and its host twin
// (acoustic_adjoint_grid_host.cpp: the same schedule and per-cell code run by loops, so that
// machines without a GPU test it against the CPU adjoint of acoustic_adjoint_cpu.cpp).
//
// The maths is that of acoustic_adjoint_cpu.cpp (its header comment derives it): per step, from
// last to first, inject g_n at the receivers, then
//   pass 1 (per cell):  grad += lambda_{n+1} L_n; u = V lambda_{n+1}; with C-PML per axis
//                       t = (1+b) u + b Lzeta, Lzeta <- a (u + Lzeta), w = a b LPsi + b' t,
//                       LPsi <- a LPsi, e2 = (1+b) t;
//   pass 2 (per cell):  sponge: lambda_n = D2(u) + (2 - kappa) lambda_{n+1} + beta,
//                         beta <- (kappa - 1) lambda_{n+1};
//                       C-PML: lambda_n = D2x(e2x) + D2z(e2z) - D1x(wx) - D1z(wz)
//                         + 2 lambda_{n+1} + beta, beta <- -lambda_{n+1}, LPsi -= D1(t) per axis.
// Unlike the CPU code (which computes the C-PML temporaries only in the strips where pass 2 reads
// them), pass 1 computes them at every cell: with a = b = b' = 0 inside the model they reduce
// exactly to t = e2 = u, w = Lzeta = 0 and a LPsi = 0, so the extra cells change nothing.
//
// Memory (per shot, in cells of the halo-inclusive grid): the forward state (2 fields, 8 with the
// C-PML's double-buffered psi), checkpoints every k steps (n_state = 2 or 6 fields each), the
// recomputed L_n of one segment (k fields), the adjoint fields (3, or 12 with the C-PML) and the
// per-shot gradient (1). k = ceil(sqrt(nt n_state)) (acoustic_checkpoint_interval) minimises
// ckpt + segment: 2 sqrt(nt n_state) fields instead of the nt of a stored history. The Python
// caller splits the batch when this does not fit the free device memory.
// Work: one forward pass storing the checkpoints, then per segment its recomputation and the
// adjoint: 2 forward passes + the adjoint. Per-shot gradients are folded onto the model grid (the
// transpose of the edge replication) and summed over shots in float64 by one thread per model cell:
// no atomics, the result is deterministic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "ubd/acoustic.h"
#include "ubd/acoustic_grid.h"
#include "ubd/stencil.h"

namespace ubd {
namespace grid {

template <typename T>
struct AdjointFields {
  T* lam;                            // adjoint of P_{n+1}
  T* beta;                           // adjoint of P_n in its P_prev role
  T* u;                              // V lambda (sponge)
  T *lpx, *lpz, *lzx, *lzz;          // adjoints of Psi = a psi and zeta per axis (C-PML)
  T *e2x, *e2z, *wx, *wz, *tx, *tz;  // pass-1 temporaries (C-PML)
};

// Decode a per-cell index (shot, i, j) of the (total_shots, nz, nx) grid.
template <typename T>
UBD_HD void decode(const Args<T>& a, int64_t idx, int64_t& t, int64_t& i, int64_t& j) {
  const int64_t per = a.nz * a.nx;
  t = idx / per;
  const int64_t r = idx - t * per;
  i = r / a.nx;
  j = r - i * a.nx;
}

// One thread per shot: g_n added at the receivers, then the source cell's gradient term
// lambda_{n+1}[src] w[n] (the wavelet enters multiplied by V).
template <typename T>
struct InjectShot {
  Args<T> a;
  AdjointFields<T> f;
  const T* g;  // (total_shots, nt, R) loss gradient w.r.t. the recorded samples
  T* gshot;    // (total_shots, nz, nx)
  int64_t n;
  UBD_HD void operator()(int64_t t) const {
    T* lam = f.lam + t * a.cells;
    const T* gn = g + (t * a.nt + n) * a.n_receivers;
    for (int64_t r = 0; r < a.n_receivers; ++r) {
      const int64_t c = receiver_offset(a, r);
      if (c >= 0) lam[c] += gn[r];
    }
    const int64_t s = t % a.n_shots, si = a.source_rc[2 * s], sj = a.source_rc[2 * s + 1];
    if (si >= 0 && si < a.nz && sj >= 0 && sj < a.nx) {
      gshot[(t * a.nz + si) * a.nx + sj] += lam[(si + kHalo) * a.ld + sj + kHalo] * a.wavelet[n];
    }
  }
};

template <typename T>
struct Pass1 {
  Args<T> a;
  AdjointFields<T> f;
  const T* L;  // (total_shots, nz, nx): L_n of this step
  T* gshot;
  UBD_HD void operator()(int64_t idx) const {
    int64_t t, i, j;
    decode(a, idx, t, i, j);
    const int64_t b = t / a.n_shots;
    const int64_t c = t * a.cells + (i + kHalo) * a.ld + (j + kHalo);
    const T lam = f.lam[c];
    gshot[idx] += lam * L[idx];
    const T u = vdt2_at(a, b, i, j) * lam;
    if (!a.cpml) {
      f.u[c] = u;
      return;
    }
    {
      const T av = a.ax[b * a.nx + j], bv = a.bx[b * a.nx + j], dbv = a.dbx[b * a.nx + j];
      const T t1 = (T(1) + bv) * u + bv * f.lzx[c];
      f.lzx[c] = av * (u + f.lzx[c]);
      f.wx[c] = av * bv * f.lpx[c] + dbv * t1;
      f.lpx[c] = av * f.lpx[c];
      f.e2x[c] = (T(1) + bv) * t1;
      f.tx[c] = t1;
    }
    {
      const T av = a.az[b * a.nz + i], bv = a.bz[b * a.nz + i], dbv = a.dbz[b * a.nz + i];
      const T t1 = (T(1) + bv) * u + bv * f.lzz[c];
      f.lzz[c] = av * (u + f.lzz[c]);
      f.wz[c] = av * bv * f.lpz[c] + dbv * t1;
      f.lpz[c] = av * f.lpz[c];
      f.e2z[c] = (T(1) + bv) * t1;
      f.tz[c] = t1;
    }
  }
};

template <typename T>
struct Pass2 {
  Args<T> a;
  AdjointFields<T> f;
  UBD_HD void operator()(int64_t idx) const {
    int64_t t, i, j;
    decode(a, idx, t, i, j);
    const int64_t base = t * a.cells, c = cell(a, i, j);
    T d;
    T keep = T(2), carry = T(-1);  // lambda_n += keep lambda_{n+1}; beta <- carry lambda_{n+1}
    if (!a.cpml) {
      const T* u = f.u + base;
      d = fd4_d2(u[cell(a, i, j - 2)], u[cell(a, i, j - 1)], u[c], u[cell(a, i, j + 1)],
                 u[cell(a, i, j + 2)]) *
              a.rdx2 +
          fd4_d2(u[cell(a, i - 2, j)], u[cell(a, i - 1, j)], u[c], u[cell(a, i + 1, j)],
                 u[cell(a, i + 2, j)]) *
              a.rdz2;
      const T kappa = kappa_at(a, t / a.n_shots, i, j);
      keep = T(2) - kappa;
      carry = kappa - T(1);
    } else {
      const int64_t L = a.ld;
      const T* ex = f.e2x + base;
      const T* ez = f.e2z + base;
      const T* wx = f.wx + base;
      const T* wz = f.wz + base;
      const T* tx = f.tx + base;
      const T* tz = f.tz + base;
      d = fd4_d2(ex[c - 2], ex[c - 1], ex[c], ex[c + 1], ex[c + 2]) * a.rdx2 +
          fd4_d2(ez[c - 2 * L], ez[c - L], ez[c], ez[c + L], ez[c + 2 * L]) * a.rdz2;
      d -= fd4_d1(wx[c - 2], wx[c - 1], wx[c + 1], wx[c + 2]) * a.rdx;
      d -= fd4_d1(wz[c - 2 * L], wz[c - L], wz[c + L], wz[c + 2 * L]) * a.rdz;
      f.lpx[base + c] -= fd4_d1(tx[c - 2], tx[c - 1], tx[c + 1], tx[c + 2]) * a.rdx;
      f.lpz[base + c] -= fd4_d1(tz[c - 2 * L], tz[c - L], tz[c + L], tz[c + 2 * L]) * a.rdz;
    }
    const T l = f.lam[base + c];
    f.lam[base + c] = d + keep * l + f.beta[base + c];
    f.beta[base + c] = carry * l;
  }
};

// One thread per model cell: the per-shot gradients folded onto the model grid (each model cell
// collects the padded cells that replicate it) and summed over the model's shots in float64.
template <typename T>
struct FoldGradient {
  Args<T> a;
  const T* gshot;
  T* grad;  // (B, nzm, nxm)
  UBD_HD void operator()(int64_t idx) const {
    const int64_t m = a.nzm * a.nxm, b = idx / m, mr = (idx - b * m) / a.nxm;
    const int64_t mc = idx - b * m - mr * a.nxm;
    const int64_t i0 = mr == 0 ? 0 : a.pad + mr, i1 = mr == a.nzm - 1 ? a.nz - 1 : a.pad + mr;
    const int64_t j0 = mc == 0 ? 0 : a.pad + mc, j1 = mc == a.nxm - 1 ? a.nx - 1 : a.pad + mc;
    double acc = 0;
    for (int64_t s = 0; s < a.n_shots; ++s) {
      const T* gs = gshot + (b * a.n_shots + s) * a.nz * a.nx;
      for (int64_t i = i0; i <= i1; ++i) {
        for (int64_t j = j0; j <= j1; ++j) acc += gs[i * a.nx + j];
      }
    }
    grad[idx] = T(acc);
  }
};

// The fused misfit's adjoint source, one thread per recorded sample: d/dsim of
// sum_k gm_k S_k for the four sums of acoustic.h (S0 = sum (sim - obs)^2, S1 = sum sim^2, S2, S3
// the same of the OpenFWI-normalised samples).
template <typename T>
struct MisfitAdjointSource {
  const T* sim;
  const T* obs;
  const double* gm;  // (total_shots, 4)
  T* g;
  int64_t per_shot;  // nt R
  bool normalise;
  double lo, hi;
  UBD_HD void operator()(int64_t idx) const {
    const double* w = gm + 4 * (idx / per_shot);
    const double x = sim[idx], o = obs[idx];
    double d = 2 * w[0] * (x - o) + 2 * w[1] * x;
    if (normalise) {
      const double nx = openfwi_normalise(x, lo, hi), no = openfwi_normalise(o, lo, hi);
      const double dn = 2.0 / (hi - lo) / (1.0 + fabs(x));
      d += (2 * w[2] * (nx - no) + 2 * w[3] * nx) * dn;
    }
    g[idx] = T(d);
  }
};

// One thread per shot: the four misfit sums of the recorded gathers, in sample order (float64).
template <typename T>
struct MisfitSums {
  const T* sim;
  const T* obs;
  double* sums;  // (total_shots, 4)
  int64_t per_shot;
  bool normalise;
  double lo, hi;
  UBD_HD void operator()(int64_t t) const {
    double s[4] = {0, 0, 0, 0};
    for (int64_t k = t * per_shot; k < (t + 1) * per_shot; ++k) {
      const double x = sim[k], o = obs[k];
      s[0] += (x - o) * (x - o);
      s[1] += x * x;
      if (normalise) {
        const double nx = openfwi_normalise(x, lo, hi), no = openfwi_normalise(o, lo, hi);
        s[2] += (nx - no) * (nx - no);
        s[3] += nx * nx;
      }
    }
    for (int q = 0; q < 4; ++q) sums[4 * t + q] = s[q];
  }
};

// Element counts of the backward's workspace parts (dtype elements).
struct BackwardLayout {
  int64_t field, n_state, n_state_buffers, k, n_ckpt, n_adjoint, per_step, samples;
  int64_t state, ckpt, seg, adjoint, gshot, misfit;  // offsets
  int64_t total;
};

inline BackwardLayout backward_layout(const AcousticForwardParams& p) {
  BackwardLayout w{};
  const bool cpml = p.boundary == Boundary::kCpml;
  const int64_t shots = p.n_models * p.n_shots, nz = padded_nz(p), nx = padded_nx(p);
  w.field = shots * (nz + 2 * kHalo) * (nx + 2 * kHalo);
  w.n_state = cpml ? 6 : 2;
  w.n_state_buffers = cpml ? 8 : 2;
  w.k = acoustic_checkpoint_interval(p);
  w.n_ckpt = (p.nt + w.k - 1) / w.k;
  w.n_adjoint = cpml ? 12 : 3;
  w.per_step = shots * nz * nx;
  w.samples = p.observed ? shots * p.nt * p.n_receivers : 0;
  w.state = 0;
  w.ckpt = w.state + w.n_state_buffers * w.field;
  w.seg = w.ckpt + w.n_ckpt * w.n_state * w.field;
  w.adjoint = w.seg + w.k * w.per_step;
  w.gshot = w.adjoint + w.n_adjoint * w.field;
  w.misfit = w.gshot + w.per_step;  // sim, then g (misfit-driven backward only)
  w.total = w.misfit + 2 * w.samples;
  return w;
}

// The backward schedule on an executor `ex` providing
//   ex.step(a, n, P, Q, psx, psxn, psz, pszn, zx, zz, lap)   one forward step of every cell
//   ex.record(a, n, Q, out)                                   the receivers' samples of step n
//   ex.each(n, functor)                                       functor(i) for i in [0, n)
//   ex.copy(dst, src, count) / ex.zero(dst, count)            element copies / zero fill (T)
//   ex.done()                                                 raise on an execution error
// `ws` holds backward_layout(p).total elements of T (no initial contents needed).
template <typename T, typename Exec>
void backward_grid(const AcousticForwardParams& p, T* ws, Exec& ex) {
  const Args<T> a = make_args<T>(p);
  const BackwardLayout w = backward_layout(p);
  const int64_t F = w.field;
  T* st[8] = {};
  for (int64_t f = 0; f < w.n_state_buffers; ++f) st[f] = ws + w.state + f * F;
  // the current state: P (P_n), Q (P_{n-1}), and with the C-PML psi_x, psi_z (+ scratch), zeta
  T *P = st[0], *Q = st[1], *psx = st[2], *psxn = st[3], *psz = st[4], *pszn = st[5];
  T *zx = st[6], *zz = st[7];
  ex.zero(ws + w.state, w.n_state_buffers * F);
  auto state_fields = [&](T* out[6]) {
    out[0] = P;
    out[1] = Q;
    out[2] = psx;
    out[3] = psz;
    out[4] = zx;
    out[5] = zz;
  };
  auto advance = [&](int64_t n, T* lap) {
    ex.step(a, n, P, Q, psx, psxn, psz, pszn, zx, zz, lap);
    std::swap(P, Q);
    std::swap(psx, psxn);
    std::swap(psz, pszn);
  };

  // pass 1: the forward, storing the state every k steps (and the gathers for the misfit)
  T* sim = p.observed ? ws + w.misfit : nullptr;
  for (int64_t n = 0; n < p.nt; ++n) {
    if (n % w.k == 0) {
      T* f6[6];
      state_fields(f6);
      for (int64_t f = 0; f < w.n_state; ++f) {
        ex.copy(ws + w.ckpt + ((n / w.k) * w.n_state + f) * F, f6[f], F);
      }
    }
    advance(n, nullptr);
    if (sim) ex.record(a, n, P, sim);
  }

  // the loss gradient with respect to the recorded samples
  const T* g = static_cast<const T*>(p.grad_out);
  if (p.observed) {
    T* gbuf = ws + w.misfit + w.samples;
    const int64_t per_shot = p.nt * p.n_receivers;
    const T* obs = static_cast<const T*>(p.observed);
    ex.each(w.samples, MisfitAdjointSource<T>{sim, obs, p.grad_misfit, gbuf, per_shot, p.normalise,
                                              p.norm_lo, p.norm_hi});
    if (p.misfit) {
      ex.each(a.total_shots,
              MisfitSums<T>{sim, obs, p.misfit, per_shot, p.normalise, p.norm_lo, p.norm_hi});
    }
    g = gbuf;
  }

  // pass 2: segments from last to first, recompute (storing L_n) then the adjoint back through it
  T* adj = ws + w.adjoint;
  ex.zero(adj, w.n_adjoint * F);
  ex.zero(ws + w.gshot, w.per_step);
  AdjointFields<T> fl{};
  fl.lam = adj;
  fl.beta = adj + F;
  if (a.cpml) {
    T** named[10] = {&fl.lpx, &fl.lpz, &fl.lzx, &fl.lzz, &fl.e2x,
                     &fl.e2z, &fl.wx,  &fl.wz,  &fl.tx,  &fl.tz};
    for (int q = 0; q < 10; ++q) *named[q] = adj + (2 + q) * F;
  } else {
    fl.u = adj + 2 * F;
  }
  T* gshot = ws + w.gshot;
  for (int64_t c = w.n_ckpt - 1; c >= 0; --c) {
    const int64_t n0 = c * w.k, n1 = std::min(n0 + w.k, p.nt);
    T* f6[6];
    state_fields(f6);
    for (int64_t f = 0; f < w.n_state; ++f) {
      ex.copy(f6[f], ws + w.ckpt + (c * w.n_state + f) * F, F);
    }
    for (int64_t n = n0; n < n1; ++n) advance(n, ws + w.seg + (n - n0) * w.per_step);
    for (int64_t n = n1 - 1; n >= n0; --n) {
      ex.each(a.total_shots, InjectShot<T>{a, fl, g, gshot, n});
      ex.each(w.per_step, Pass1<T>{a, fl, ws + w.seg + (n - n0) * w.per_step, gshot});
      ex.each(w.per_step, Pass2<T>{a, fl});
    }
  }
  ex.each(p.n_models * p.nzm * p.nxm, FoldGradient<T>{a, gshot, static_cast<T*>(p.grad_vdt2)});
  ex.done();
}

// The argument checks of the grid backward that need no device memory (sizes, pointers,
// boundary profiles); the geometry is guarded in the kernels. Throws std::invalid_argument.
inline void check_grid_backward(const AcousticForwardParams& p, const char* who) {
  auto fail = [who](const char* m) { throw std::invalid_argument(std::string(who) + ": " + m); };
  if (p.n_models < 0 || p.n_shots < 0 || p.nt < 0 || p.n_receivers < 0) fail("negative size");
  if (p.nzm < 1 || p.nxm < 1) fail("empty model");
  if (p.pad < 0) fail("negative pad");
  // without a shot or a step the gradient is zero and only grad_vdt2 is written
  const bool work = p.n_models * p.n_shots * p.nt > 0;
  if (!p.grad_vdt2 || (work && (!p.vdt2 || !p.wavelet || !p.workspace))) fail("null pointer");
  if (p.n_shots && !p.source_rc) fail("null source_rc");
  if (p.n_receivers && !p.receiver_rc) fail("null receiver_rc");
  if (work && (p.observed ? !p.grad_misfit : !p.grad_out)) {
    fail("needs grad_out, or observed with grad_misfit");
  }
  if (p.checkpoints) fail("stored checkpoints are a CPU feature");
  if (p.boundary == Boundary::kCpml && !(p.ax && p.bx && p.dbx && p.az && p.bz && p.dbz)) {
    fail("C-PML needs a, b and db/dx profiles along both axes");
  }
  if (p.boundary == Boundary::kCpml && p.wrap) fail("periodic wrap is only defined for the sponge");
  if (p.wrap && (padded_nz(p) < 2 || padded_nx(p) < 2)) fail("periodic wrap needs >= 2 x 2");
}

}  // namespace grid
}  // namespace ubd
