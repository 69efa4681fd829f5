// Per-point finite-difference maths shared by the CPU (OpenMP) and CUDA kernels: the one source of
// truth for stencil coefficients and update formulas (DESIGN.md convention 3).
//
// 4th-order central differences on a uniform grid (Fornberg 1988):
//   f''(x) h^2 ~ -5/2 f0 + 4/3 (f1 + f-1) - 1/12 (f2 + f-2)
//   f'(x)  h   ~  2/3 (f1 - f-1) - 1/12 (f2 - f-2)
// Leapfrog update with an optional sponge (OpenFWI / CSIM a2d_mod_abc24):
//   p_next = 2 p - p_prev + (v dt)^2 lap - kappa (p - p_prev)
//   (= A p - B p_prev + alpha * [4/3 sum1 - 1/12 sum2] with A = 2 - 5 alpha - kappa, B = 1 - kappa)
// C-PML along one axis (Pasalic & McGarry 2010), single pass with the previous step's psi. The
// kernels store Psi = a psi (not psi), which turns d/dx(a psi) into a plain derivative of Psi:
//   psi_new  = a psi + b du = Psi + b du         (recursive convolution of the first derivative)
//   tmp      = d2u + d/dx(psi_new) = (1 + b) d2u + b' du + d/dx(Psi)
//   zeta_new = a zeta + b tmp
//   term     = tmp + zeta_new = (1 + b) tmp + a zeta      (replaces d2u in the Laplacian)
//   Psi_new  = a psi_new
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define UBD_HD __host__ __device__ __forceinline__
#else
#define UBD_HD inline
#endif

namespace ubd {

template <typename T>
struct Fd4 {
  static constexpr T c0 = T(-2.5);
  static constexpr T c1 = T(4.0 / 3.0);
  static constexpr T c2 = T(-1.0 / 12.0);
  static constexpr T g1 = T(2.0 / 3.0);
  static constexpr T g2 = T(-1.0 / 12.0);
};

// Second derivative times h^2 from the five samples f(-2h), f(-h), f(0), f(h), f(2h), written with
// differences to the centre (c0 = -2 (c1 + c2)): for smooth fields the neighbour differences are
// nearly exact in floating point, whereas c0 f0 + c1 (...) cancels. This takes the float32 vs
// float64 gather error from ~1e-5 to ~5e-7 (OpenFWI survey) for three extra subtractions per axis.
template <typename T>
UBD_HD T fd4_d2(T m2, T m1, T c, T p1, T p2) {
  return Fd4<T>::c1 * ((m1 - c) + (p1 - c)) + Fd4<T>::c2 * ((m2 - c) + (p2 - c));
}

// First derivative times h from the four samples f(-2h), f(-h), f(h), f(2h).
template <typename T>
UBD_HD T fd4_d1(T m2, T m1, T p1, T p2) {
  return Fd4<T>::g1 * (p1 - m1) + Fd4<T>::g2 * (p2 - m2);
}

// Leapfrog update; kappa = 0 outside a sponge.
template <typename T>
UBD_HD T leapfrog(T p, T p_prev, T vdt2, T lap, T kappa) {
  return T(2) * p - p_prev + vdt2 * lap - kappa * (p - p_prev);
}

template <typename T>
UBD_HD T leapfrog(T p, T p_prev, T vdt2, T lap) {
  return T(2) * p - p_prev + vdt2 * lap;
}

// C-PML term along one axis. d2u [1/m^2], du [1/m], dPsi = d/dx(Psi_old) [1/m^2], Psi_old = a psi
// at this cell; a, b dimensionless, db = db/dx [1/m]. Updates zeta in place, writes Psi_new,
// returns the term that replaces d2u.
template <typename T>
UBD_HD T cpml_term(T d2u, T du, T dPsi, T Psi_old, T a, T b, T db, T& zeta, T& Psi_new) {
  const T tmp = (T(1) + b) * d2u + db * du + dPsi;
  const T term = (T(1) + b) * tmp + a * zeta;
  zeta = b * tmp + a * zeta;
  Psi_new = a * (b * du + Psi_old);
  return term;
}

// OpenFWI seismic normalisation of one sample: 2 (sign(x) log1p|x| - lo) / (hi - lo) - 1, with lo,
// hi the log-transformed bounds of the dataset (specs/data.md section 2).
template <typename T>
UBD_HD T openfwi_normalise(T x, T lo, T hi) {
  const T l = x < T(0) ? -log1p(-x) : log1p(x);
  return T(2) * (l - lo) / (hi - lo) - T(1);
}

}  // namespace ubd
