// One row of the acoustic leapfrog update on the CPU (and the denormal flush), shared by the
// forward kernel (acoustic_cpu.cpp) and the backward's recomputation (acoustic_adjoint_cpu.cpp), so
// the two step the same scheme with the same code. CPU only (OpenMP SIMD); the per-point maths is
// in stencil.h. Fields carry a halo of two cells; pointers point at column 0 of the row.
#pragma once

#include <cstdint>

#include "ubd/stencil.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#define UBD_HAVE_MXCSR 1
#endif

namespace ubd {
namespace cpu {

// Flush-to-zero / denormals-are-zero on this thread for the object's lifetime. Ahead of the
// wavefront the stencil spreads exponentially small precursors; below ~1e-38 (float) each
// operation on them costs a microcode assist. Flushing changes results by < 1e-38 absolute.
class FlushDenormals {
 public:
  FlushDenormals() {
#ifdef UBD_HAVE_MXCSR
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ | 0x8040);  // FTZ (bit 15) | DAZ (bit 6)
#endif
  }
  ~FlushDenormals() {
#ifdef UBD_HAVE_MXCSR
    _mm_setcsr(saved_);
#endif
  }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned int saved_ = 0;
};

template <typename T>
struct RowArgs {
  const T* P;  // current field, P[j] = cell (i, j); leading dimension ld
  T* Q;        // previous field on entry, next field on exit
  int64_t ld;
  T rdx2, rdz2, rdx, rdz;
  const T* V;  // (v dt)^2 per column
  const T* K;  // sponge kappa per column
  // C-PML along x: per-column coefficients and per-cell auxiliary fields (Psi = a psi)
  const T* ax;
  const T* bx;
  const T* dbx;
  const T* psx;
  T* psxn;
  T* zx;
  // C-PML along z: this row's coefficients and auxiliary fields
  T az, bz, dbz;
  const T* psz;
  T* pszn;
  T* zz;
  T* lap = nullptr;  // with StoreLap: the Laplacian-like term of each cell (the adjoint's L_n)
};

// One row segment [j0, j1) with the absorbing terms chosen at compile time; with StoreLap the
// term that multiplies (v dt)^2 is also written to r.lap[j] (the backward's recomputation).
template <typename T, bool Kappa, bool XPml, bool ZPml, bool StoreLap = false>
inline void row_segment(const RowArgs<T>& r, int64_t j0, int64_t j1) {
  // Everything the loop reads is copied to restrict-qualified locals: read through the struct,
  // the compiler cannot prove that the stores to Q leave it unchanged.
  const T* __restrict P = r.P;
  T* __restrict Q = r.Q;
  const int64_t L = r.ld;
  const T rdx2 = r.rdx2, rdz2 = r.rdz2, rdx = r.rdx, rdz = r.rdz;
  const T* __restrict V = r.V;
  const T* __restrict K = r.K;
  const T* __restrict ax = r.ax;
  const T* __restrict bx = r.bx;
  const T* __restrict dbx = r.dbx;
  const T* __restrict psx = r.psx;
  T* __restrict psxn = r.psxn;
  T* __restrict zx = r.zx;
  const T az = r.az, bz = r.bz, dbz = r.dbz;
  const T* __restrict psz = r.psz;
  T* __restrict pszn = r.pszn;
  T* __restrict zz = r.zz;
  T* __restrict lap = r.lap;
#pragma omp simd
  for (int64_t j = j0; j < j1; ++j) {
    T d2x = fd4_d2(P[j - 2], P[j - 1], P[j], P[j + 1], P[j + 2]) * rdx2;
    T d2z = fd4_d2(P[j - 2 * L], P[j - L], P[j], P[j + L], P[j + 2 * L]) * rdz2;
    if constexpr (XPml) {
      const T du = fd4_d1(P[j - 2], P[j - 1], P[j + 1], P[j + 2]) * rdx;
      const T dps = fd4_d1(psx[j - 2], psx[j - 1], psx[j + 1], psx[j + 2]) * rdx;
      d2x = cpml_term(d2x, du, dps, psx[j], ax[j], bx[j], dbx[j], zx[j], psxn[j]);
    }
    if constexpr (ZPml) {
      const T du = fd4_d1(P[j - 2 * L], P[j - L], P[j + L], P[j + 2 * L]) * rdz;
      const T dps = fd4_d1(psz[j - 2 * L], psz[j - L], psz[j + L], psz[j + 2 * L]) * rdz;
      d2z = cpml_term(d2z, du, dps, psz[j], az, bz, dbz, zz[j], pszn[j]);
    }
    if constexpr (Kappa) {
      Q[j] = leapfrog(P[j], Q[j], V[j], d2x + d2z, K[j]);
    } else {
      Q[j] = leapfrog(P[j], Q[j], V[j], d2x + d2z);
    }
    if constexpr (StoreLap) lap[j] = d2x + d2z;
  }
}

}  // namespace cpu
}  // namespace ubd
