// Acoustic 2-D forward modelling on the CPU (C++17 + OpenMP). See ubd/acoustic.h for the PDE, the
// scheme, the conventions and the boundaries, and ubd/stencil.h for the per-point maths.
//
// Work split: one OpenMP task per (model, shot); each thread time-steps its shot start to finish in
// private scratch (no synchronisation inside the time loop, unlike a fork/join per step). Each row
// of the padded grid is cut into three segments (left pad, model columns, right pad) whose
// coefficients are known at compile time (velocity scalar or per column, sponge profile
// array / scalar / none, C-PML along x and/or z), so every inner loop is a branch-free SIMD loop.
// The padded velocity is never stored: edge replication means the pad's (v dt)^2 in a row is the
// model row's first or last value, which keeps a 310 x 310 OpenFWI shot (two fields) inside L2.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "ubd/acoustic.h"
#include "ubd/stencil.h"

#ifdef UBD_WITH_OPENMP
#include <omp.h>
#endif

namespace ubd {
namespace {

constexpr int64_t kHalo = 2;    // stencil half-width; halo cells hold zeros or the periodic wrap
constexpr int64_t kXStrip = 8;  // C-PML x-strips are widened to a multiple of this (SIMD width)

enum KappaMode { kNoKappa = 0, kKappaArray = 1, kKappaScalar = 2 };

template <typename T>
struct RowArgs {
  const T* __restrict P;  // current field, P[j] = cell (i, j); leading dimension ld
  T* __restrict Q;        // previous field on entry, next field on exit
  int64_t ld;
  T rdx2, rdz2, rdx, rdz;
  const T* __restrict V;  // (v dt)^2 per column (array segments)
  T vs;                   // (v dt)^2 (scalar segments)
  const T* __restrict K;  // sponge kappa per column
  T ks;                   // sponge kappa (scalar segments)
  // C-PML along x: per-column coefficients (with halo) and per-cell auxiliary fields
  const T* __restrict ax;
  const T* __restrict bx;
  const T* __restrict dbx;
  const T* __restrict psx;
  T* __restrict psxn;
  T* __restrict zx;
  // C-PML along z: this row's coefficients, auxiliary fields (psx/psz hold Psi = a psi)
  T az;
  T bz;
  T dbz;
  const T* __restrict psz;
  T* __restrict pszn;
  T* __restrict zz;
};

template <typename T, bool VArr, int KMode, bool XPml, bool ZPml>
inline void row_segment(const RowArgs<T>& r, int64_t j0, int64_t j1) {
  const T* __restrict P = r.P;
  T* __restrict Q = r.Q;
  const int64_t L = r.ld;
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    T d2x = fd4_d2(P[j - 2], P[j - 1], P[j], P[j + 1], P[j + 2]) * r.rdx2;
    T d2z = fd4_d2(P[j - 2 * L], P[j - L], P[j], P[j + L], P[j + 2 * L]) * r.rdz2;
    if constexpr (XPml) {
      const T* __restrict s = r.psx;
      const T du = fd4_d1(P[j - 2], P[j - 1], P[j + 1], P[j + 2]) * r.rdx;
      const T dps = fd4_d1(s[j - 2], s[j - 1], s[j + 1], s[j + 2]) * r.rdx;
      d2x = cpml_term(d2x, du, dps, s[j], r.ax[j], r.bx[j], r.dbx[j], r.zx[j], r.psxn[j]);
    }
    if constexpr (ZPml) {
      const T* __restrict s = r.psz;
      const T du = fd4_d1(P[j - 2 * L], P[j - L], P[j + L], P[j + 2 * L]) * r.rdz;
      const T dps = fd4_d1(s[j - 2 * L], s[j - L], s[j + L], s[j + 2 * L]) * r.rdz;
      d2z = cpml_term(d2z, du, dps, s[j], r.az, r.bz, r.dbz, r.zz[j], r.pszn[j]);
    }
    const T v = VArr ? r.V[j] : r.vs;
    if constexpr (KMode == kKappaArray) {
      Q[j] = leapfrog(P[j], Q[j], v, d2x + d2z, r.K[j]);
    } else if constexpr (KMode == kKappaScalar) {
      Q[j] = leapfrog(P[j], Q[j], v, d2x + d2z, r.ks);
    } else {
      Q[j] = leapfrog(P[j], Q[j], v, d2x + d2z);
    }
  }
}

// Private scratch of one thread: fields with a halo of kHalo cells on every side.
template <typename T>
struct ShotScratch {
  int64_t ld = 0, rows = 0;
  std::vector<T> f0, f1;                  // leapfrog fields
  std::vector<T> psx0, psx1, psz0, psz1;  // C-PML psi (double-buffered)
  std::vector<T> zx, zz;                  // C-PML zeta
  std::vector<T> vpad;                    // C-PML: padded (v dt)^2, (nz, nx), no halo
  void init(int64_t nz, int64_t nx, bool cpml) {
    ld = nx + 2 * kHalo;
    rows = nz + 2 * kHalo;
    const size_t n = static_cast<size_t>(ld * rows);
    f0.assign(n, T(0));
    f1.assign(n, T(0));
    if (cpml) {
      for (auto* v : {&psx0, &psx1, &psz0, &psz1, &zx, &zz}) v->assign(n, T(0));
      vpad.assign(static_cast<size_t>(nz * nx), T(0));
    }
  }
  void zero_fields() {
    for (auto* v : {&f0, &f1, &psx0, &psx1, &psz0, &psz1, &zx, &zz})
      std::fill(v->begin(), v->end(), T(0));
  }
  // Cell (i, j) of the padded grid, i in [-2, nz+2), j in [-2, nx+2).
  int64_t at(int64_t i, int64_t j) const { return (i + kHalo) * ld + (j + kHalo); }
};

template <typename T>
void fill_periodic_halo(T* f, int64_t nz, int64_t nx, int64_t ld) {
  auto row = [&](int64_t i) { return f + (i + kHalo) * ld + kHalo; };
  for (int64_t h = 1; h <= kHalo; ++h) {
    std::copy(row(nz - h), row(nz - h) + nx, row(-h));
    std::copy(row(h - 1), row(h - 1) + nx, row(nz + h - 1));
  }
  for (int64_t i = 0; i < nz; ++i) {
    T* r = row(i);
    r[-1] = r[nx - 1];
    r[-2] = r[nx - 2];
    r[nx] = r[0];
    r[nx + 1] = r[1];
  }
}

template <typename T>
struct Model {
  const T* vdt2;  // (nzm, nxm)
  const T* kx;    // (NX) or nullptr
  const T* kz;    // (NZ) or nullptr
  const T* ax;
  const T* bx;
  const T* dbx;  // (NX)
  const T* az;
  const T* bz;
  const T* dbz;  // (NZ)
};

template <typename T>
void run_shot(const AcousticForwardParams& p, const Model<T>& m, int64_t src_row, int64_t src_col,
              const T* wavelet, T* out, ShotScratch<T>& sc) {
  const int64_t nz = padded_nz(p), nx = padded_nx(p), pad = p.pad;
  const int64_t nzm = p.nzm, nxm = p.nxm, ld = sc.ld;
  const bool cpml = p.boundary == Boundary::kCpml;
  sc.zero_fields();
  if (cpml) {  // edge-replicated (v dt)^2 over the padded grid: one SIMD loop per row
    for (int64_t i = 0; i < nz; ++i) {
      const T* vrow = m.vdt2 + std::clamp<int64_t>(i - pad, 0, nzm - 1) * nxm;
      for (int64_t j = 0; j < nx; ++j)
        sc.vpad[i * nx + j] = vrow[std::clamp<int64_t>(j - pad, 0, nxm - 1)];
    }
  }
  T* P = sc.f0.data();
  T* Q = sc.f1.data();
  T* psx = cpml ? sc.psx0.data() : nullptr;
  T* psxn = cpml ? sc.psx1.data() : nullptr;
  T* psz = cpml ? sc.psz0.data() : nullptr;
  T* pszn = cpml ? sc.psz1.data() : nullptr;
  const int64_t src = sc.at(src_row, src_col);
  const T src_vdt2 = m.vdt2[std::clamp<int64_t>(src_row - pad, 0, nzm - 1) * nxm +
                            std::clamp<int64_t>(src_col - pad, 0, nxm - 1)];
  std::vector<int64_t> rec(static_cast<size_t>(p.n_receivers));
  for (int64_t k = 0; k < p.n_receivers; ++k)
    rec[k] = sc.at(p.receiver_rc[2 * k], p.receiver_rc[2 * k + 1]);

  RowArgs<T> r{};
  r.ld = ld;
  r.rdx2 = T(p.rdx2);
  r.rdz2 = T(p.rdz2);
  r.rdx = T(p.rdx);
  r.rdz = T(p.rdz);
  const int64_t jl0 = 0, jl1 = pad, jm1 = pad + nxm, jr1 = nx;
  // C-PML x-strips [0, xs0) and [xs1, nx): pad + kHalo columns rounded up to kXStrip
  const int64_t xs_width = (pad + kHalo + kXStrip - 1) / kXStrip * kXStrip;
  const int64_t xs0 = std::min(xs_width, nx / 2), xs1 = std::max(nx - xs_width, xs0);
  for (int64_t n = 0; n < p.nt; ++n) {
    if (p.wrap) fill_periodic_halo(P, nz, nx, ld);
    for (int64_t i = 0; i < nz; ++i) {
      const int64_t off = (i + kHalo) * ld + kHalo;
      r.P = P + off;
      r.Q = Q + off;
      const T* vrow = m.vdt2 + std::clamp<int64_t>(i - pad, 0, nzm - 1) * nxm;
      r.V = vrow - pad;
      const bool in_model_rows = i >= pad && i < pad + nzm;
      if (!cpml) {
        r.K = m.kx;
        r.ks = m.kz ? m.kz[i] : T(0);
        if (m.kx) {
          r.vs = vrow[0];
          row_segment<T, false, kKappaArray, false, false>(r, jl0, jl1);
          r.vs = vrow[nxm - 1];
          row_segment<T, false, kKappaArray, false, false>(r, jm1, jr1);
        } else {
          r.vs = vrow[0];
          row_segment<T, false, kNoKappa, false, false>(r, jl0, jl1);
          r.vs = vrow[nxm - 1];
          row_segment<T, false, kNoKappa, false, false>(r, jm1, jr1);
        }
        if (in_model_rows || !m.kz) {
          row_segment<T, true, kNoKappa, false, false>(r, jl1, jm1);
        } else {
          row_segment<T, true, kKappaScalar, false, false>(r, jl1, jm1);
        }
        continue;
      }
      // C-PML. d/dx(Psi) reaches kHalo cells into the model, so the x-PML update covers the pad
      // plus kHalo model columns, rounded up to whole SIMD vectors (kXStrip): in the extra model
      // columns a = b = db = Psi = zeta = 0 and the C-PML term reduces exactly to d2u. The z-PML
      // update covers the pad plus kHalo model rows.
      r.V = sc.vpad.data() + i * nx;
      r.ax = m.ax;
      r.bx = m.bx;
      r.dbx = m.dbx;
      r.psx = psx + off;
      r.psxn = psxn + off;
      r.zx = sc.zx.data() + off;
      r.psz = psz + off;
      r.pszn = pszn + off;
      r.zz = sc.zz.data() + off;
      r.az = m.az[i];
      r.bz = m.bz[i];
      r.dbz = m.dbz[i];
      if (i < pad + kHalo || i >= pad + nzm - kHalo) {
        row_segment<T, true, kNoKappa, true, true>(r, 0, xs0);
        row_segment<T, true, kNoKappa, false, true>(r, xs0, xs1);
        row_segment<T, true, kNoKappa, true, true>(r, xs1, nx);
      } else {
        row_segment<T, true, kNoKappa, true, false>(r, 0, xs0);
        row_segment<T, true, kNoKappa, false, false>(r, xs0, xs1);
        row_segment<T, true, kNoKappa, true, false>(r, xs1, nx);
      }
    }
    Q[src] += src_vdt2 * wavelet[n];
    T* o = out + n * p.n_receivers;
    for (int64_t k = 0; k < p.n_receivers; ++k) o[k] = Q[rec[k]];
    std::swap(P, Q);
    if (cpml) {
      std::swap(psx, psxn);
      std::swap(psz, pszn);
    }
  }
}

template <typename T>
void forward(const AcousticForwardParams& p) {
  const int64_t nz = padded_nz(p), nx = padded_nx(p);
  const int64_t tasks = p.n_models * p.n_shots;
  const bool cpml = p.boundary == Boundary::kCpml;
  const T* vdt2 = static_cast<const T*>(p.vdt2);
  auto prof = [](const void* ptr, int64_t b, int64_t n) {
    return ptr ? static_cast<const T*>(ptr) + b * n : nullptr;
  };
  std::string error;
#pragma omp parallel
  {
    ShotScratch<T> sc;
    bool ready = false;
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; ++t) {
      try {
        if (!ready) {
          sc.init(nz, nx, cpml);
          ready = true;
        }
        const int64_t b = t / p.n_shots, s = t % p.n_shots;
        Model<T> m{vdt2 + b * p.nzm * p.nxm, prof(p.kx, b, nx), prof(p.kz, b, nz),
                   prof(p.ax, b, nx),        prof(p.bx, b, nx), prof(p.dbx, b, nx),
                   prof(p.az, b, nz),        prof(p.bz, b, nz), prof(p.dbz, b, nz)};
        T* out = static_cast<T*>(p.out) + t * p.nt * p.n_receivers;
        run_shot<T>(p, m, p.source_rc[2 * s], p.source_rc[2 * s + 1],
                    static_cast<const T*>(p.wavelet), out, sc);
      } catch (const std::exception& e) {
#pragma omp critical
        error = e.what();
      }
    }
  }
  if (!error.empty()) throw std::runtime_error("acoustic_forward_cpu: " + error);
}

}  // namespace

void check_acoustic_params(const AcousticForwardParams& p) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("acoustic_forward: " + m); };
  if (p.n_models < 0 || p.n_shots < 0 || p.nt < 0 || p.n_receivers < 0) fail("negative size");
  if (p.nzm < 1 || p.nxm < 1) fail("empty model");
  if (p.pad < 0) fail("negative pad");
  if (!p.vdt2 || !p.wavelet || !p.out || (p.n_shots && !p.source_rc) ||
      (p.n_receivers && !p.receiver_rc))
    fail("null pointer");
  if (p.boundary == Boundary::kCpml && !(p.ax && p.bx && p.dbx && p.az && p.bz && p.dbz))
    fail("C-PML needs a, b and db/dx profiles along both axes");
  if (p.boundary == Boundary::kCpml && p.wrap) fail("periodic wrap is only defined for the sponge");
  const int64_t nz = padded_nz(p), nx = padded_nx(p);
  for (int64_t s = 0; s < p.n_shots; ++s) {
    const int64_t i = p.source_rc[2 * s], j = p.source_rc[2 * s + 1];
    if (i < 0 || i >= nz || j < 0 || j >= nx) fail("source outside the padded grid");
  }
  for (int64_t k = 0; k < p.n_receivers; ++k) {
    const int64_t i = p.receiver_rc[2 * k], j = p.receiver_rc[2 * k + 1];
    if (i < 0 || i >= nz || j < 0 || j >= nx) fail("receiver outside the padded grid");
  }
}

void acoustic_forward_cpu(const AcousticForwardParams& p) {
  if (p.n_models * p.n_shots * p.nt == 0) return;  // nothing to do (empty tensors have null data)
  check_acoustic_params(p);
  if (p.dtype == DType::kFloat32) {
    forward<float>(p);
  } else {
    forward<double>(p);
  }
}

int64_t acoustic_forward_workspace_elems(const AcousticForwardParams& p) {
  const int64_t cells = (padded_nz(p) + 2 * kHalo) * (padded_nx(p) + 2 * kHalo);
  const int64_t buffers = p.boundary == Boundary::kCpml ? 8 : 2;
  return buffers * cells * p.n_models * p.n_shots;
}

}  // namespace ubd
