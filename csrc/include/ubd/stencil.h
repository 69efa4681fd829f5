// Per-point finite-difference maths shared by the CPU (OpenMP) and CUDA kernels: the one source of
// truth for stencil coefficients and update formulas (DESIGN.md convention 3).
//
// 4th-order central differences on a uniform grid (Fornberg 1988):
//   f''(x) h^2 ~ -5/2 f0 + 4/3 (f1 + f-1) - 1/12 (f2 + f-2)
//   f'(x)  h   ~  2/3 (f1 - f-1) - 1/12 (f2 - f-2)
// Leapfrog update with an optional sponge (OpenFWI / CSIM a2d_mod_abc24):
//   p_next = 2 p - p_prev + (v dt)^2 lap - kappa (p - p_prev)
//   (= A p - B p_prev + alpha * [4/3 sum1 - 1/12 sum2] with A = 2 - 5 alpha - kappa, B = 1 - kappa)
// C-PML along one axis (Pasalic & McGarry 2010), single pass with the previous step's psi:
//   psi_new  = a psi + b du                      (recursive convolution of the first derivative)
//   tmp      = d2u + d/dx(psi_new) = (1 + b) d2u + b' du + d/dx(a psi)
//   zeta_new = a zeta + b tmp
//   term     = tmp + zeta_new = (1 + b) tmp + a zeta      (replaces d2u in the Laplacian)
#pragma once

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

// Second derivative times h^2 from the five samples f(-2h), f(-h), f(0), f(h), f(2h).
template <typename T>
UBD_HD T fd4_d2(T m2, T m1, T c, T p1, T p2) {
  return Fd4<T>::c1 * (m1 + p1) + Fd4<T>::c2 * (m2 + p2) + Fd4<T>::c0 * c;
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

// C-PML term along one axis. d2u [1/m^2], du [1/m], d_apsi = d/dx(a psi_old) [1/m^2];
// a, b dimensionless, db = db/dx [1/m]. Updates zeta in place, writes psi_new, returns the term.
template <typename T>
UBD_HD T cpml_term(T d2u, T du, T d_apsi, T psi_old, T a, T b, T db, T& zeta, T& psi_new) {
  const T tmp = (T(1) + b) * d2u + db * du + d_apsi;
  const T term = (T(1) + b) * tmp + a * zeta;
  zeta = b * tmp + a * zeta;
  psi_new = b * du + a * psi_old;
  return term;
}

}  // namespace ubd
