// Fused GroupNorm -> FiLM -> SiLU on the CPU (C++17 + OpenMP); float32 and float64. The maths and
// the backward formulas are at the top of ubd/group_norm_film_silu.h.
//
// Work split: one OpenMP iteration per (sample, group); a group's Cg x L elements are one
// contiguous block of x (Cg L <= 32 KiB floats at the U-Net's shapes, so the second pass reads
// from L1/L2).
// Forward: pass 1 accumulates the shifted sums S, SS (SIMD partial sums over chunks of kChunk
// elements in T, chunks added in double), pass 2 applies h = A (x - mean) + D and silu per row.
// Backward: pass 1 computes gh = dy silu'(h) per row, stores it in grad_x (as scratch) and reduces
// S1, S2 per row; pass 2 turns gh into grad_x in place. grad_gamma / grad_beta are reduced over the
// batch afterwards from per-(b, c) partials in the workspace (deterministic, no atomics).
// exp is a branch-free polynomial (vexp below) so that every inner loop vectorises; the glibc exp
// only vectorises under -ffast-math.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ubd/group_norm_film_silu.h"

namespace ubd {
namespace {

constexpr int64_t kChunk = 512;            // elements per SIMD partial sum
constexpr int64_t kParallelMin = 1 << 14;  // fewer elements than this: run on one thread

// exp(z), z clamped to a finite range: z = n ln2 + r with |r| <= ln2 / 2 (n by round-to-nearest
// with the 1.5 * 2^(mantissa bits) trick), exp(r) by its Taylor polynomial (relative truncation
// error < 1e-8 for float, < 1e-17 for double), 2^n from the exponent bits. No calls, no floor
// (GCC only vectorises floor under -fno-trapping-math), so every loop that uses it vectorises.
inline float vexp(float z) {
  z = z < -87.0f ? -87.0f : (z > 87.0f ? 87.0f : z);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = z * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  const float r = (z - n * 0.693145751953125f) - n * 1.428606765330187e-6f;
  float q = 1.0f / 5040.0f;
  q = q * r + 1.0f / 720.0f;
  q = q * r + 1.0f / 120.0f;
  q = q * r + 1.0f / 24.0f;
  q = q * r + 1.0f / 6.0f;
  q = q * r + 0.5f;
  q = q * r + 1.0f;
  q = q * r + 1.0f;
  // n as an integer is the difference of the bit patterns of t and kRound
  const int32_t ni = __builtin_bit_cast(int32_t, t) - __builtin_bit_cast(int32_t, kRound);
  return q * __builtin_bit_cast(float, (ni + 127) << 23);
}

inline double vexp(double z) {
  z = z < -708.0 ? -708.0 : (z > 708.0 ? 708.0 : z);
  constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  const double t = z * 1.4426950408889634074 + kRound;
  const double n = t - kRound;
  const double r = (z - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  // Taylor coefficients 1/k!, k = 13 .. 0
  constexpr double c[14] = {1.0 / 6227020800.0,
                            1.0 / 479001600.0,
                            1.0 / 39916800.0,
                            1.0 / 3628800.0,
                            1.0 / 362880.0,
                            1.0 / 40320.0,
                            1.0 / 5040.0,
                            1.0 / 720.0,
                            1.0 / 120.0,
                            1.0 / 24.0,
                            1.0 / 6.0,
                            0.5,
                            1.0,
                            1.0};
  double q = c[0];
  for (int k = 1; k < 14; ++k) q = q * r + c[k];
  const int64_t ni = __builtin_bit_cast(int64_t, t) - __builtin_bit_cast(int64_t, kRound);
  return q * __builtin_bit_cast(double, (ni + 1023) << 52);
}

template <typename T>
inline T sigmoid(T h) {
  return T(1) / (T(1) + vexp(-h));
}

template <typename T>
struct View {
  const T* x;
  const T* scale;
  const T* shift;
  const T* weight;
  const T* bias;
  int64_t C, L, G, Cg, N;
  T eps;

  T gamma(int64_t c) const { return weight ? weight[c] : T(1); }
  T beta(int64_t c) const { return bias ? bias[c] : T(0); }
  T sc(int64_t b, int64_t c) const { return scale ? scale[b * C + c] : T(0); }
  T sh(int64_t b, int64_t c) const { return shift ? shift[b * C + c] : T(0); }
  GnChannelMap<T> map(int64_t b, int64_t c, T rstd) const {
    return gn_channel_map<T>(rstd, gamma(c), beta(c), sc(b, c), sh(b, c));
  }
};

template <typename T>
View<T> make_view(const GroupNormFiLMSiLUParams& p) {
  View<T> v;
  v.x = static_cast<const T*>(p.x);
  v.scale = static_cast<const T*>(p.scale);
  v.shift = static_cast<const T*>(p.shift);
  v.weight = static_cast<const T*>(p.weight);
  v.bias = static_cast<const T*>(p.bias);
  v.C = p.channels;
  v.L = p.length;
  v.G = p.groups;
  v.Cg = p.channels / p.groups;
  v.N = v.Cg * v.L;
  v.eps = static_cast<T>(p.eps);
  return v;
}

// Mean and rstd of the contiguous group x[0, n).
template <typename T>
void group_moments(const T* __restrict x, int64_t n, T eps, T* mean, T* rstd) {
  const T k = x[0];
  double S = 0, SS = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t i1 = std::min(n, i0 + kChunk);
    T s = 0, ss = 0;
#pragma omp simd reduction(+ : s, ss)
    for (int64_t i = i0; i < i1; ++i) {
      const T d = x[i] - k;
      s += d;
      ss += d * d;
    }
    S += s;
    SS += ss;
  }
  double m, r;
  gn_moments<double>(k, S, SS, static_cast<double>(n), static_cast<double>(eps), &m, &r);
  *mean = static_cast<T>(m);
  *rstd = static_cast<T>(r);
}

// Row lengths that the U-Net uses (powers of two up to 128) are compile-time constants (kL > 0)
// so that a row is straight-line SIMD code without remainder handling: at L = 16 a row is one
// AVX-512 vector, and the loop set-up would otherwise cost as much as the row. kL = 0: any L.
template <typename Fn>
void with_static_length(int64_t L, Fn&& fn) {
  switch (L) {
    case 8:
      fn(std::integral_constant<int64_t, 8>{});
      break;
    case 16:
      fn(std::integral_constant<int64_t, 16>{});
      break;
    case 32:
      fn(std::integral_constant<int64_t, 32>{});
      break;
    case 64:
      fn(std::integral_constant<int64_t, 64>{});
      break;
    case 128:
      fn(std::integral_constant<int64_t, 128>{});
      break;
    default:
      fn(std::integral_constant<int64_t, 0>{});
  }
}

template <typename T, int64_t kL>
void forward_group(const View<T>& v, int64_t b, int64_t g, T* __restrict y_all, T* mean_all,
                   T* rstd_all) {
  const int64_t L = kL > 0 ? kL : v.L;
  const int64_t bg = b * v.G + g;
  const T* __restrict x = v.x + bg * v.N;
  T* __restrict y = y_all + bg * v.N;
  T mean, rstd;
  group_moments(x, v.N, v.eps, &mean, &rstd);
  mean_all[bg] = mean;
  rstd_all[bg] = rstd;
  for (int64_t cl = 0; cl < v.Cg; ++cl) {
    const GnChannelMap<T> m = v.map(b, g * v.Cg + cl, rstd);
    const T A = m.A, D = m.D;
    const T* __restrict xr = x + cl * L;
    T* __restrict yr = y + cl * L;
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) {
      const T h = A * (xr[l] - mean) + D;
      yr[l] = h * sigmoid(h);
    }
  }
}

template <typename T>
void forward(const GroupNormFiLMSiLUParams& p) {
  const View<T> v = make_view<T>(p);
  T* y = static_cast<T*>(p.y);
  T* mean = static_cast<T*>(p.mean);
  T* rstd = static_cast<T*>(p.rstd);
  const int64_t tasks = p.batch * v.G;
  with_static_length(v.L, [&](auto static_length) {
    constexpr int64_t kL = decltype(static_length)::value;
#pragma omp parallel for schedule(static) if (tasks * v.N >= kParallelMin)
    for (int64_t t = 0; t < tasks; ++t) forward_group<T, kL>(v, t / v.G, t % v.G, y, mean, rstd);
  });
}

// gh = dy silu'(h) for l in [l0, l1) of one row, stored in gh; returns s1 = sum gh and
// s2 = sum gh xhat. The sums are kept in W explicit lanes and tree-reduced at the end: an
// `omp simd reduction` makes GCC add the lanes one after the other (a ~100-cycle dependency chain
// per row, as long as the whole row at L = 16).
template <typename T, int64_t kL>
inline void row_grad_chunk(const T* __restrict x, const T* __restrict dy, T* __restrict gh,
                           int64_t l0, int64_t l1, T mean, T rstd, T A, T D, T* s1, T* s2) {
  constexpr int64_t kLanes = 64 / sizeof(T);  // one 512-bit vector
  constexpr int64_t W = (kL > 0 && kL < kLanes) ? kL : kLanes;
  static_assert((W & (W - 1)) == 0, "the tree reduction needs a power-of-two lane count");
  T a1[W] = {}, a2[W] = {};
  const int64_t lv = l0 + (l1 - l0) / W * W;
  for (int64_t lb = l0; lb < lv; lb += W) {
#pragma omp simd
    for (int64_t j = 0; j < W; ++j) {
      const T d = x[lb + j] - mean;
      const T h = A * d + D;
      const T g = dy[lb + j] * silu_grad(h, sigmoid(h));
      gh[lb + j] = g;
      a1[j] += g;
      a2[j] += g * (d * rstd);
    }
  }
  for (int64_t l = lv; l < l1; ++l) {  // remainder (never for the static lengths)
    const T d = x[l] - mean;
    const T h = A * d + D;
    const T g = dy[l] * silu_grad(h, sigmoid(h));
    gh[l] = g;
    a1[l - lv] += g;
    a2[l - lv] += g * (d * rstd);
  }
  for (int64_t w = W / 2; w > 0; w /= 2) {
    for (int64_t j = 0; j < w; ++j) {
      a1[j] += a1[j + w];
      a2[j] += a2[j + w];
    }
  }
  *s1 = a1[0];
  *s2 = a2[0];
}

// Per-(b, group) backward; writes grad_x, grad_scale/grad_shift rows and the workspace partials.
template <typename T, int64_t kL>
void backward_group(const View<T>& v, const GroupNormFiLMSiLUParams& p, int64_t b, int64_t g) {
  const int64_t L = kL > 0 ? kL : v.L;
  const int64_t bg = b * v.G + g;
  const T* __restrict x = v.x + bg * v.N;
  const T* __restrict gy = static_cast<const T*>(p.grad_y) + bg * v.N;
  T* __restrict gx = static_cast<T*>(p.grad_x) + bg * v.N;
  const T mean = static_cast<const T*>(p.mean)[bg];
  const T rstd = static_cast<const T*>(p.rstd)[bg];
  T* grad_scale = static_cast<T*>(p.grad_scale);
  T* grad_shift = static_cast<T*>(p.grad_shift);
  T* ws = static_cast<T*>(p.workspace);  // (2, B, C) or nullptr
  const int64_t BC = p.batch * v.C;

  // pass 1: gh into gx, S1 = sum gh and S2 = sum gh xhat per channel row
  double t1 = 0, t2 = 0;  // sum_c a_c S1_c, sum_c a_c S2_c
  for (int64_t cl = 0; cl < v.Cg; ++cl) {
    const int64_t c = g * v.Cg + cl;
    const GnChannelMap<T> m = v.map(b, c, rstd);
    const T A = m.A, D = m.D;
    const T* __restrict xr = x + cl * L;
    const T* __restrict gyr = gy + cl * L;
    T* __restrict ghr = gx + cl * L;
    double S1 = 0, S2 = 0;
    for (int64_t l0 = 0; l0 < L; l0 += kChunk) {
      T s1, s2;
      row_grad_chunk<T, kL>(xr, gyr, ghr, l0, std::min(L, l0 + kChunk), mean, rstd, A, D, &s1, &s2);
      S1 += s1;
      S2 += s2;
    }
    const int64_t bc = b * v.C + c;
    if (grad_shift) grad_shift[bc] = static_cast<T>(S1);
    if (grad_scale) grad_scale[bc] = static_cast<T>(v.gamma(c) * S2 + v.beta(c) * S1);
    if (ws) {
      const double one_plus = 1.0 + static_cast<double>(v.sc(b, c));
      ws[bc] = static_cast<T>(one_plus * S2);
      ws[BC + bc] = static_cast<T>(one_plus * S1);
    }
    t1 += static_cast<double>(m.a) * S1;
    t2 += static_cast<double>(m.a) * S2;
  }

  // pass 2: grad_x = P gh + Q (x - mean) + R
  const double n = static_cast<double>(v.N);
  const T Q = static_cast<T>(-static_cast<double>(rstd) * rstd * (t2 / n));
  const T R = static_cast<T>(-static_cast<double>(rstd) * (t1 / n));
  for (int64_t cl = 0; cl < v.Cg; ++cl) {
    const GnChannelMap<T> m = v.map(b, g * v.Cg + cl, rstd);
    const T P = m.A;  // rstd a
    const T* __restrict xr = x + cl * L;
    T* __restrict gxr = gx + cl * L;
#pragma omp simd
    for (int64_t l = 0; l < L; ++l) gxr[l] = P * gxr[l] + Q * (xr[l] - mean) + R;
  }
}

template <typename T>
void backward(const GroupNormFiLMSiLUParams& p) {
  const View<T> v = make_view<T>(p);
  const int64_t tasks = p.batch * v.G;
  const int64_t B = p.batch, C = v.C;
  const T* ws = static_cast<const T*>(p.workspace);
  T* grad_weight = static_cast<T*>(p.grad_weight);
  T* grad_bias = static_cast<T*>(p.grad_bias);
#pragma omp parallel if (tasks * v.N >= kParallelMin)
  {
    with_static_length(v.L, [&](auto static_length) {
      constexpr int64_t kL = decltype(static_length)::value;
#pragma omp for schedule(static)
      for (int64_t t = 0; t < tasks; ++t) backward_group<T, kL>(v, p, t / v.G, t % v.G);
    });
    if (ws) {  // implicit barrier above: all partials are written
#pragma omp for schedule(static)
      for (int64_t c = 0; c < C; ++c) {
        double sw = 0, sb = 0;
        for (int64_t b = 0; b < B; ++b) {
          sw += ws[b * C + c];
          sb += ws[B * C + b * C + c];
        }
        if (grad_weight) grad_weight[c] = static_cast<T>(sw);
        if (grad_bias) grad_bias[c] = static_cast<T>(sb);
      }
    }
  }
}

void check_cpu_dtype(const GroupNormFiLMSiLUParams& p, const char* who) {
  if (p.dtype != GnDType::kFloat32 && p.dtype != GnDType::kFloat64) {
    throw std::invalid_argument(std::string(who) +
                                ": the CPU kernels take float32 or float64 (half and bfloat16 "
                                "run on CUDA, or through the reference backend)");
  }
}

}  // namespace

void group_norm_film_silu_forward_cpu(const GroupNormFiLMSiLUParams& p) {
  const char* who = "group_norm_film_silu_forward_cpu";
  gn_check_params(p, false, who);
  check_cpu_dtype(p, who);
  if (p.batch * p.channels * p.length == 0) return;
  if (p.dtype == GnDType::kFloat32) {
    forward<float>(p);
  } else {
    forward<double>(p);
  }
}

void group_norm_film_silu_backward_cpu(const GroupNormFiLMSiLUParams& p) {
  const char* who = "group_norm_film_silu_backward_cpu";
  gn_check_params(p, true, who);
  check_cpu_dtype(p, who);
  if (p.batch * p.channels * p.length == 0) return;
  if (p.dtype == GnDType::kFloat32) {
    backward<float>(p);
  } else {
    backward<double>(p);
  }
}

}  // namespace ubd
