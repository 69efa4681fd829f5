// Acoustic 2-D forward modelling on the CPU (C++17 + OpenMP). See ubd/acoustic.h for the PDE, the
// scheme, the conventions and the boundaries, and ubd/stencil.h for the per-point maths.
//
// Work split: one OpenMP task per (model, shot); each thread time-steps its shot start to finish in
// private scratch (no synchronisation inside the time loop, unlike a fork/join per step).
// Every inner loop is a branch-free SIMD loop over whole vectors: rows are computed over
// nxr = nx rounded up to kVec columns, the extra "dead" columns having (v dt)^2 = 0 and zero
// coefficients, so they stay exactly zero (or, in the periodic halo, are refilled before use) and
// no scalar remainder loop ever runs (remainders made the 98-wide C-PML grid ~1.5x slower).
// Sponge rows take (v dt)^2 and kappa from per-row buffers rebuilt only when they change (the
// padded 310 x 310 OpenFWI velocity is never stored, which keeps a shot inside L2); C-PML rows are
// cut into x-strips and an interior at multiples of kVec, and interior rows are done in pairs.
// Denormals are flushed to zero while the kernel runs (FlushDenormals). With `checkpoints` set, the
// state every k steps is also stored for the backward (acoustic_adjoint_cpu.cpp). With `observed`
// set, the receivers' samples are compared on the fly (fused misfit) instead of being written out.
#include <algorithm>
#include <initializer_list>
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

constexpr int64_t kHalo = 2;  // stencil half-width; halo cells hold zeros or the periodic wrap
constexpr int64_t kVec = 8;   // row widths and segment boundaries are multiples of this

inline int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}
inline int64_t round_down(int64_t n, int64_t m) {
  return n / m * m;
}

using cpu::row_segment;
using cpu::RowArgs;

// Two adjacent rows i, i + 1 without absorbing terms, V rows vld apart: the z-neighbour loads are
// shared between the rows (6 instead of 10 per column pair).
template <typename T>
inline void row_pair_plain(const RowArgs<T>& r, int64_t vld, int64_t j0, int64_t j1) {
  const T* __restrict P = r.P;
  T* __restrict Q = r.Q;
  const T* __restrict V = r.V;
  const int64_t L = r.ld;
  const T rdx2 = r.rdx2, rdz2 = r.rdz2;
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    const T a = P[j - 2 * L], b = P[j - L], c = P[j], d = P[j + L], e = P[j + 2 * L];
    const T f = P[j + 3 * L];
    const T lap0 =
        fd4_d2(P[j - 2], P[j - 1], c, P[j + 1], P[j + 2]) * rdx2 + fd4_d2(a, b, c, d, e) * rdz2;
    const T lap1 = fd4_d2(P[j + L - 2], P[j + L - 1], d, P[j + L + 1], P[j + L + 2]) * rdx2 +
                   fd4_d2(b, c, d, e, f) * rdz2;
    Q[j] = leapfrog(c, Q[j], V[j], lap0);
    Q[j + L] = leapfrog(d, Q[j + L], V[j + vld], lap1);
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

// Private scratch of one thread. Fields have kHalo cells on every side of the nz x nxr block
// (nxr = nx rounded up to kVec; columns nx..nxr-1 are dead columns).
template <typename T>
struct ShotScratch {
  int64_t nz = 0, nx = 0, nxr = 0, ld = 0;
  std::vector<T> f0, f1;                  // leapfrog fields
  std::vector<T> psx0, psx1, psz0, psz1;  // C-PML Psi = a psi (double-buffered)
  std::vector<T> zx, zz;                  // C-PML zeta
  std::vector<T> vpad;                    // C-PML: padded (v dt)^2, (nz, nxr), 0 in dead columns
  std::vector<T> ax, bx, dbx;             // C-PML: x coefficients, (nxr), 0 in dead columns
  std::vector<T> vrow, krow;              // sponge: (v dt)^2 and kappa of the current row, (nxr)

  void init(int64_t nz_, int64_t nx_, bool cpml) {
    nz = nz_;
    nx = nx_;
    nxr = round_up(nx, kVec);
    ld = nxr + 2 * kHalo;
    const size_t n = static_cast<size_t>(ld * (nz + 2 * kHalo));
    f0.assign(n, T(0));
    f1.assign(n, T(0));
    if (cpml) {
      for (auto* v : {&psx0, &psx1, &psz0, &psz1, &zx, &zz}) v->assign(n, T(0));
      vpad.assign(static_cast<size_t>(nz * nxr), T(0));
      for (auto* v : {&ax, &bx, &dbx}) v->assign(static_cast<size_t>(nxr), T(0));
    } else {
      vrow.assign(static_cast<size_t>(nxr), T(0));
      krow.assign(static_cast<size_t>(nxr), T(0));
    }
  }
  void zero_fields() {
    for (auto* v : {&f0, &f1, &psx0, &psx1, &psz0, &psz1, &zx, &zz}) {
      std::fill(v->begin(), v->end(), T(0));
    }
  }
  // Offset of cell (i, j), i in [-2, nz+2), j in [-2, nxr+2).
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

// One time step of the sponge modes ("openfwi", "none") over all rows.
template <typename T>
void sweep_sponge(const AcousticForwardParams& p, const Model<T>& m, ShotScratch<T>& sc,
                  RowArgs<T>& r, const T* P, T* Q) {
  const int64_t nz = sc.nz, nx = sc.nx, nxr = sc.nxr, pad = p.pad, nzm = p.nzm, nxm = p.nxm;
  const bool kappa = m.kx || m.kz;
  int64_t v_row = -1;  // model row whose (v dt)^2 is in sc.vrow
  T k_row = T(-1);     // kz value whose kappa row is in sc.krow
  r.V = sc.vrow.data();
  r.K = sc.krow.data();
  for (int64_t i = 0; i < nz; ++i) {
    const int64_t mr = std::clamp<int64_t>(i - pad, 0, nzm - 1);
    if (mr != v_row) {  // edge-replicated (v dt)^2 of this padded row
      const T* src = m.vdt2 + mr * nxm;
      std::fill(sc.vrow.begin(), sc.vrow.begin() + pad, src[0]);
      std::copy(src, src + nxm, sc.vrow.begin() + pad);
      std::fill(sc.vrow.begin() + pad + nxm, sc.vrow.begin() + nx, src[nxm - 1]);
      v_row = mr;
    }
    const int64_t off = sc.at(i, 0);
    r.P = P + off;
    r.Q = Q + off;
    if (!kappa) {
      row_segment<T, false, false, false>(r, 0, nxr);
      continue;
    }
    const T kz = m.kz ? m.kz[i] : T(0);
    if (kz != k_row) {  // kappa = kx + kz inside the model's columns only (OpenFWI)
      for (int64_t j = 0; j < nx; ++j) {
        const bool in_cols = j >= pad && j < pad + nxm;
        sc.krow[j] = (m.kx ? m.kx[j] : T(0)) + (in_cols ? kz : T(0));
      }
      k_row = kz;
    }
    row_segment<T, true, false, false>(r, 0, nxr);
  }
}

// One time step of the C-PML mode over all rows.
template <typename T>
void sweep_cpml(const AcousticForwardParams& p, const Model<T>& m, ShotScratch<T>& sc,
                RowArgs<T>& r, const T* P, T* Q, const T* psx, T* psxn, const T* psz, T* pszn) {
  const int64_t nz = sc.nz, nx = sc.nx, nxr = sc.nxr, pad = p.pad, nzm = p.nzm;
  // d/dx(Psi) reaches kHalo cells into the model: the x-PML update covers [0, xs0) and
  // [xs1, nxr), at least the pad plus kHalo columns on each side, cut at multiples of kVec (in the
  // extra model and dead columns a = b = db = Psi = zeta = 0 and the term reduces to d2u).
  const int64_t xs0 = std::min(round_up(pad + kHalo, kVec), nxr);
  const int64_t xs1 = xs0 + round_down(std::max<int64_t>(nx - pad - kHalo - xs0, 0), kVec);
  const int64_t z0 = pad + kHalo, z1 = pad + nzm - kHalo;  // rows without z-PML: [z0, z1)
  r.ax = sc.ax.data();
  r.bx = sc.bx.data();
  r.dbx = sc.dbx.data();
  auto set_row = [&](int64_t row) {
    const int64_t o = sc.at(row, 0);
    r.P = P + o;
    r.Q = Q + o;
    r.V = sc.vpad.data() + row * nxr;
    r.psx = psx + o;
    r.psxn = psxn + o;
    r.zx = sc.zx.data() + o;
    r.psz = psz + o;
    r.pszn = pszn + o;
    r.zz = sc.zz.data() + o;
    r.az = m.az[row];
    r.bz = m.bz[row];
    r.dbz = m.dbz[row];
  };
  for (int64_t i = 0; i < nz; ++i) {
    set_row(i);
    if (i < z0 || i >= z1) {
      row_segment<T, false, true, true>(r, 0, xs0);
      row_segment<T, false, false, true>(r, xs0, xs1);
      row_segment<T, false, true, true>(r, xs1, nxr);
    } else if (i + 1 < z1) {  // two interior rows at once
      row_segment<T, false, true, false>(r, 0, xs0);
      row_segment<T, false, true, false>(r, xs1, nxr);
      row_pair_plain<T>(r, nxr, xs0, xs1);
      set_row(++i);
      row_segment<T, false, true, false>(r, 0, xs0);
      row_segment<T, false, true, false>(r, xs1, nxr);
    } else {
      row_segment<T, false, true, false>(r, 0, xs0);
      row_segment<T, false, false, false>(r, xs0, xs1);
      row_segment<T, false, true, false>(r, xs1, nxr);
    }
  }
}

// Copy the state (P, P_prev[, Psi_x, Psi_z, zeta_x, zeta_z]) to dst in the backward's layout:
// each field halo-inclusive with leading dimension nx + 2 kHalo (the dead columns dropped; those
// next to the grid are zero, or periodic copies the next step refills, like the backward's halo).
template <typename T>
void store_state(const ShotScratch<T>& sc, std::initializer_list<const T*> fields, T* dst) {
  const int64_t w = sc.nx + 2 * kHalo, rows = sc.nz + 2 * kHalo;
  for (const T* f : fields) {
    for (int64_t i = 0; i < rows; ++i) {
      const T* src = f + i * sc.ld;
      std::copy(src, src + w, dst + i * w);
    }
    dst += rows * w;
  }
}

template <typename T>
void run_shot(const AcousticForwardParams& p, const Model<T>& m, int64_t src_row, int64_t src_col,
              const T* wavelet, T* out, const T* observed, double* sums, ShotScratch<T>& sc,
              T* ckpt) {
  const int64_t nz = sc.nz, nx = sc.nx, nxr = sc.nxr, pad = p.pad, nzm = p.nzm, nxm = p.nxm;
  const bool cpml = p.boundary == Boundary::kCpml;
  sc.zero_fields();
  if (cpml) {  // edge-replicated (v dt)^2 over the padded grid and the x coefficients
    for (int64_t i = 0; i < nz; ++i) {
      const T* src = m.vdt2 + std::clamp<int64_t>(i - pad, 0, nzm - 1) * nxm;
      for (int64_t j = 0; j < nx; ++j) {
        sc.vpad[i * nxr + j] = src[std::clamp<int64_t>(j - pad, 0, nxm - 1)];
      }
    }
    std::copy(m.ax, m.ax + nx, sc.ax.begin());
    std::copy(m.bx, m.bx + nx, sc.bx.begin());
    std::copy(m.dbx, m.dbx + nx, sc.dbx.begin());
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
  for (int64_t k = 0; k < p.n_receivers; ++k) {
    rec[k] = sc.at(p.receiver_rc[2 * k], p.receiver_rc[2 * k + 1]);
  }
  RowArgs<T> r{};
  r.ld = sc.ld;
  r.rdx2 = T(p.rdx2);
  r.rdz2 = T(p.rdz2);
  r.rdx = T(p.rdx);
  r.rdz = T(p.rdz);
  const int64_t k = ckpt ? acoustic_checkpoint_interval(p) : 0;
  const int64_t per_state = (cpml ? 6 : 2) * (nz + 2 * kHalo) * (nx + 2 * kHalo);
  for (int64_t n = 0; n < p.nt; ++n) {
    if (ckpt && n % k == 0) {
      T* dst = ckpt + (n / k) * per_state;
      if (cpml) {
        store_state<T>(sc, {P, Q, psx, psz, sc.zx.data(), sc.zz.data()}, dst);
      } else {
        store_state<T>(sc, {P, Q}, dst);
      }
    }
    if (cpml) {
      sweep_cpml(p, m, sc, r, P, Q, psx, psxn, psz, pszn);
      std::swap(psx, psxn);
      std::swap(psz, pszn);
    } else {
      if (p.wrap) fill_periodic_halo(P, nz, nx, sc.ld);
      sweep_sponge(p, m, sc, r, P, Q);
    }
    Q[src] += src_vdt2 * wavelet[n];
    if (observed) {  // fused misfit: compare instead of recording
      const T* obs = observed + n * p.n_receivers;
      for (int64_t k = 0; k < p.n_receivers; ++k) {
        const double sim = Q[rec[k]], o = obs[k];
        sums[0] += (sim - o) * (sim - o);
        sums[1] += sim * sim;
        if (p.normalise) {
          const double ns = openfwi_normalise(sim, p.norm_lo, p.norm_hi);
          const double no = openfwi_normalise(o, p.norm_lo, p.norm_hi);
          sums[2] += (ns - no) * (ns - no);
          sums[3] += ns * ns;
        }
      }
    } else {
      T* o = out + n * p.n_receivers;
      for (int64_t k = 0; k < p.n_receivers; ++k) o[k] = Q[rec[k]];
    }
    std::swap(P, Q);
  }
}

template <typename T>
void forward(const AcousticForwardParams& p) {
  const int64_t nz = padded_nz(p), nx = padded_nx(p);
  const int64_t tasks = p.n_models * p.n_shots;
  const bool cpml = p.boundary == Boundary::kCpml;
  const T* vdt2 = static_cast<const T*>(p.vdt2);
  const int64_t ckpt_per_task = tasks ? acoustic_checkpoint_elems(p) / tasks : 0;
  auto prof = [](const void* ptr, int64_t b, int64_t n) {
    return ptr ? static_cast<const T*>(ptr) + b * n : nullptr;
  };
  std::string error;
#pragma omp parallel
  {
    cpu::FlushDenormals ftz;
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
        const int64_t trace0 = t * p.nt * p.n_receivers;
        T* out = p.out ? static_cast<T*>(p.out) + trace0 : nullptr;
        const T* observed = p.observed ? static_cast<const T*>(p.observed) + trace0 : nullptr;
        double* sums = p.misfit ? p.misfit + 4 * t : nullptr;
        T* ckpt = p.checkpoints ? static_cast<T*>(p.checkpoints) + t * ckpt_per_task : nullptr;
        run_shot<T>(p, m, p.source_rc[2 * s], p.source_rc[2 * s + 1],
                    static_cast<const T*>(p.wavelet), out, observed, sums, sc, ckpt);
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
  if (p.observed && !p.misfit) fail("observed gathers given without a misfit output");
  if (!p.vdt2 || !p.wavelet || (!p.out && !p.observed) || (p.n_shots && !p.source_rc) ||
      (p.n_receivers && !p.receiver_rc)) {
    fail("null pointer");
  }
  if (p.boundary == Boundary::kCpml && !(p.ax && p.bx && p.dbx && p.az && p.bz && p.dbz)) {
    fail("C-PML needs a, b and db/dx profiles along both axes");
  }
  if (p.boundary == Boundary::kCpml && p.wrap) fail("periodic wrap is only defined for the sponge");
  const int64_t nz = padded_nz(p), nx = padded_nx(p);
  if (p.wrap && (nz < 2 || nx < 2)) fail("periodic wrap needs a padded grid of at least 2 x 2");
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
  if (p.checkpoints && (p.observed || !p.out)) {
    throw std::invalid_argument("acoustic_forward: checkpoints are stored with gathers only");
  }
  if (p.dtype == DType::kFloat32) {
    forward<float>(p);
  } else {
    forward<double>(p);
  }
}

}  // namespace ubd
