// Fused GroupNorm -> FiLM -> SiLU (forward and backward): the torch-free native interface.
//
// Maths (x of shape (B, C, L), G groups of Cg = C / G consecutive channels, N = Cg L elements):
//   mean_bg = (1/N) sum_{c in g, l} x_bcl,   var_bg = (1/N) sum (x - mean)^2   (biased, as
//   torch.nn.functional.group_norm; Wu & He 2018, "Group Normalization", ECCV)
//   rstd_bg = 1 / sqrt(var_bg + eps),        xhat = (x - mean) rstd
//   h = (gamma_c xhat + beta_c) (1 + scale_bc) + shift_bc   (FiLM: Perez et al. 2018, AAAI)
//   y = silu(h) = h sigmoid(h)                              (Elfwing et al. 2018)
// Per (b, c) this is one affine map of the centred x: h = A_bc (x - mean_bg) + D_bc with
//   a_bc = gamma_c (1 + scale_bc),  A_bc = rstd_bg a_bc,  D_bc = beta_c (1 + scale_bc) + shift_bc
// (centring first keeps float32 accurate when |mean| >> std: A x and A mean would cancel), so the
// forward is one statistics pass plus one elementwise pass per group.
// Backward, with gh = dy * silu'(h), silu'(h) = s (1 + h (1 - s)), s = sigmoid(h):
//   S1_bc = sum_l gh,  S2_bc = sum_l gh xhat
//   grad_shift_bc = S1_bc,  grad_scale_bc = gamma_c S2_bc + beta_c S1_bc
//   grad_gamma_c = sum_b (1 + scale_bc) S2_bc,  grad_beta_c = sum_b (1 + scale_bc) S1_bc
//   m1_bg = (1/N) sum_{c in g} a_bc S1_bc,  m2_bg = (1/N) sum_{c in g} a_bc S2_bc
//   grad_x = rstd (a_bc gh - m1 - xhat m2) = P_bc gh + Q_bg x + R_bg,
//   P = rstd a, Q = -rstd^2 m2, R = -rstd m1 - Q mean  (the standard group-norm backward).
// Statistics and sums are accumulated in float (half/bfloat16/float32 storage; CPU partial sums in
// double) or double (float64). Missing gamma/beta/scale/shift (nullptr) mean 1/0/0/0.
#pragma once
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(__CUDACC__)
#define UBD_GN_HD __host__ __device__ __forceinline__
#else
#define UBD_GN_HD inline
#endif

namespace ubd {

// Storage dtype of every tensor of one call (mean/rstd/workspace use the accumulation dtype:
// double for kFloat64, float otherwise). The CPU kernels take kFloat32 and kFloat64 only.
enum class GnDType : int32_t { kFloat32 = 0, kFloat64 = 1, kFloat16 = 2, kBFloat16 = 3 };

// All pointers are contiguous arrays on the device that runs the op.
struct GroupNormFiLMSiLUParams {
  int64_t batch = 0;     // B
  int64_t channels = 0;  // C (a multiple of groups)
  int64_t length = 0;    // L (product of the spatial sizes)
  int64_t groups = 0;    // G
  double eps = 1e-5;
  GnDType dtype = GnDType::kFloat32;

  const void* x = nullptr;       // (B, C, L)
  const void* scale = nullptr;   // (B, C) FiLM scale (y uses 1 + scale), nullptr: 0
  const void* shift = nullptr;   // (B, C) FiLM shift, nullptr: 0
  const void* weight = nullptr;  // (C,) GroupNorm gamma, nullptr: 1
  const void* bias = nullptr;    // (C,) GroupNorm beta, nullptr: 0

  // forward writes y, mean, rstd; backward reads mean, rstd (as saved by the forward)
  void* y = nullptr;     // (B, C, L)
  void* mean = nullptr;  // (B, G) accumulation dtype
  void* rstd = nullptr;  // (B, G) accumulation dtype

  // backward only: grad_y in, grads out (nullptr: that grad is not wanted)
  const void* grad_y = nullptr;  // (B, C, L)
  void* grad_x = nullptr;        // (B, C, L)
  void* grad_scale = nullptr;    // (B, C)
  void* grad_shift = nullptr;    // (B, C)
  void* grad_weight = nullptr;   // (C,)
  void* grad_bias = nullptr;     // (C,)
  // backward only: caller-allocated group_norm_film_silu_workspace_elems() elements of the
  // accumulation dtype (per-(b, c) partial sums for grad_weight/grad_bias)
  void* workspace = nullptr;
  void* stream = nullptr;  // CUDA only: cudaStream_t (nullptr = legacy default stream)
};

// Accumulation-dtype elements of workspace the backward needs (2 B C when grad_weight or
// grad_bias is wanted, else 0), the same on CPU and CUDA.
inline int64_t group_norm_film_silu_workspace_elems(const GroupNormFiLMSiLUParams& p) {
  return (p.grad_weight != nullptr || p.grad_bias != nullptr) ? 2 * p.batch * p.channels : 0;
}

// Throw std::invalid_argument on inconsistent sizes / dtypes, std::runtime_error on CUDA failure.
void group_norm_film_silu_forward_cpu(const GroupNormFiLMSiLUParams& p);
void group_norm_film_silu_backward_cpu(const GroupNormFiLMSiLUParams& p);
void group_norm_film_silu_forward_cuda(const GroupNormFiLMSiLUParams& p);
void group_norm_film_silu_backward_cuda(const GroupNormFiLMSiLUParams& p);

// Size and pointer checks shared by the CPU and CUDA entry points (`who` names the caller).
inline void gn_check_params(const GroupNormFiLMSiLUParams& p, bool backward, const char* who) {
  auto fail = [who](const std::string& what) {
    throw std::invalid_argument(std::string(who) + ": " + what);
  };
  if (p.batch < 0 || p.channels < 0 || p.length < 0) fail("negative size");
  if (p.groups <= 0) fail("groups must be positive, got " + std::to_string(p.groups));
  if (p.channels % p.groups != 0) {
    fail("channels (" + std::to_string(p.channels) + ") not divisible by groups (" +
         std::to_string(p.groups) + ")");
  }
  if (!(p.eps >= 0)) fail("eps must be >= 0");
  if (p.batch * p.channels * p.length == 0) return;  // nothing to read or write
  if (p.x == nullptr || p.mean == nullptr || p.rstd == nullptr) fail("x, mean and rstd are needed");
  if (!backward && p.y == nullptr) fail("y is needed");
  if (backward) {
    if (p.grad_y == nullptr || p.grad_x == nullptr) fail("grad_y and grad_x are needed");
    if (group_norm_film_silu_workspace_elems(p) > 0 && p.workspace == nullptr) {
      fail("grad_weight/grad_bias need a workspace of 2 B C elements");
    }
  }
}

// Per-point maths shared by the CPU and CUDA kernels (Acc = float or double).

// The map h = A (x - mean) + D of channel c of sample b (see the top of this file); `a` is
// returned too because the backward needs it.
template <typename Acc>
struct GnChannelMap {
  Acc a, A, D;
};

template <typename Acc>
UBD_GN_HD GnChannelMap<Acc> gn_channel_map(Acc rstd, Acc gamma, Acc beta, Acc scale, Acc shift) {
  const Acc one_plus = Acc(1) + scale;
  GnChannelMap<Acc> m;
  m.a = gamma * one_plus;
  m.A = rstd * m.a;
  m.D = beta * one_plus + shift;
  return m;
}

// d silu(h) / dh from h and s = sigmoid(h).
template <typename Acc>
UBD_GN_HD Acc silu_grad(Acc h, Acc s) {
  return s * (Acc(1) + h * (Acc(1) - s));
}

// mean and rstd from the shifted sums S = sum (x - k), SS = sum (x - k)^2 of n elements (k: any
// element of the group, which keeps SS - S^2/n free of cancellation for data far from zero).
template <typename Acc>
UBD_GN_HD void gn_moments(Acc k, Acc S, Acc SS, Acc n, Acc eps, Acc* mean, Acc* rstd) {
  const Acc m = S / n;
  Acc var = SS / n - m * m;
  var = var > Acc(0) ? var : Acc(0);
  *mean = k + m;
#if defined(__CUDA_ARCH__)
  *rstd = Acc(1) / sqrt(var + eps);
#else
  *rstd = Acc(1) / std::sqrt(var + eps);
#endif
}

}  // namespace ubd
