// Fused GroupNorm -> FiLM -> SiLU on CUDA: float32, float64, float16 and bfloat16 storage, float
// accumulation (double for float64). The maths and the backward formulas are at the top of
// ubd/group_norm_film_silu.h; the per-point formulas come from there too (shared with the CPU).
//
// One thread block per (sample, group); the group's N = Cg L elements are one contiguous block of
// memory, walked by the block with a unit-stride loop (coalesced).
// Forward kernel: shifted sums S, SS (shift k = the group's first element) per thread, block
// reduction (warp shuffles, then one value per warp through shared memory), then
// y = silu(A (x - mean) + D) in the same kernel; mean and rstd are saved for the backward.
// Backward kernel: pass 1 gives each channel row to a segment of W lanes (W = the power of two
// >= min(L, 32), so 32 / W rows per warp at small L), which computes gh = dy silu'(h) and reduces
// S1 = sum gh, S2 = sum gh xhat with xor shuffles inside the segment; pass 2 recomputes gh (the
// group was just read, so from L1/L2) and writes grad_x. grad_gamma / grad_beta: per-(b, c)
// partials in the workspace, summed over b by a second small kernel (deterministic, no atomics).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "ubd/group_norm_film_silu.h"

namespace ubd {
namespace {

constexpr int kThreads = 256;  // multiple of 32, at most 1024 (block_sum keeps 32 warp slots)
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

void check_cuda(cudaError_t err, const char* who) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(who) + ": " + cudaGetErrorString(err));
  }
}

// Storage <-> accumulation conversions.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float load(const float* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ double load(const double* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ float load(const __half* p, int64_t i) {
  return __half2float(p[i]);
}
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store(float* p, int64_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void store(double* p, int64_t i, double v) {
  p[i] = v;
}
__device__ __forceinline__ void store(__half* p, int64_t i, float v) {
  p[i] = __float2half_rn(v);
}
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float sigmoid(float h) {
  return 1.0f / (1.0f + expf(-h));
}
__device__ __forceinline__ double sigmoid(double h) {
  return 1.0 / (1.0 + exp(-h));
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Sum of u and of v over the whole block, returned to every thread. blockDim.x must be a multiple
// of 32; every thread of the block must call it (it has barriers).
template <typename A>
__device__ __forceinline__ void block_sum2(A& u, A& v) {
  __shared__ A su[32], sv[32];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  u = warp_sum(u);
  v = warp_sum(v);
  if (lane == 0) {
    su[warp] = u;
    sv[warp] = v;
  }
  __syncthreads();
  u = lane < n_warps ? su[lane] : A(0);
  v = lane < n_warps ? sv[lane] : A(0);
  u = warp_sum(u);
  v = warp_sum(v);
  __syncthreads();  // su/sv may be reused by a later call
}

template <typename T>
struct Args {
  using A = typename Acc<T>::type;
  int64_t B, C, L, G, Cg, N;
  A eps;
  const T* x;
  const T* scale;
  const T* shift;
  const T* weight;
  const T* bias;
  T* y;
  A* mean;
  A* rstd;
  const T* grad_y;
  T* grad_x;
  T* grad_scale;
  T* grad_shift;
  T* grad_weight;
  T* grad_bias;
  A* ws;    // (2, B, C) partials for grad_weight / grad_bias, or nullptr
  int seg;  // backward pass 1: lanes per channel row (power of two, 1..32)

  __device__ __forceinline__ A gamma(int64_t c) const { return weight ? load(weight, c) : A(1); }
  __device__ __forceinline__ A beta(int64_t c) const { return bias ? load(bias, c) : A(0); }
  __device__ __forceinline__ A sc(int64_t bc) const { return scale ? load(scale, bc) : A(0); }
  __device__ __forceinline__ A sh(int64_t bc) const { return shift ? load(shift, bc) : A(0); }
  __device__ __forceinline__ GnChannelMap<A> map(int64_t b, int64_t c, A r) const {
    return gn_channel_map<A>(r, gamma(c), beta(c), sc(b * C + c), sh(b * C + c));
  }
};

template <typename T>
__global__ void __launch_bounds__(kThreads) forward_kernel(Args<T> a) {
  using A = typename Acc<T>::type;
  const int64_t bg = blockIdx.x;  // one block per (b, g)
  const int64_t b = bg / a.G, g = bg % a.G;
  const int64_t base = bg * a.N;  // x[b, g Cg + cl, l] = x[base + cl L + l]

  const A k = load(a.x, base);
  A s = 0, ss = 0;
  const int n = static_cast<int>(a.N), len = static_cast<int>(a.L);  // <= 2^30 (dispatch checks)
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const A d = load(a.x, base + i) - k;
    s += d;
    ss += d * d;
  }
  block_sum2(s, ss);
  A mean, rstd;
  gn_moments<A>(k, s, ss, static_cast<A>(a.N), a.eps, &mean, &rstd);
  if (threadIdx.x == 0) {
    a.mean[bg] = mean;
    a.rstd[bg] = rstd;
  }

  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t c = g * a.Cg + i / len;
    const GnChannelMap<A> m = a.map(b, c, rstd);
    const A h = m.A * (load(a.x, base + i) - mean) + m.D;
    store(a.y, base + i, h * sigmoid(h));
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) backward_kernel(Args<T> a) {
  using A = typename Acc<T>::type;
  const int64_t bg = blockIdx.x;
  const int64_t b = bg / a.G, g = bg % a.G;
  const int64_t base = bg * a.N;
  const A mean = a.mean[bg], rstd = a.rstd[bg];

  // pass 1: rows to lane segments of width a.seg; loop bounds are warp-uniform (shuffles below)
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  const int rows_per_warp = kWarp / a.seg;
  const int seg_id = lane / a.seg, sub = lane % a.seg;
  A t1 = 0, t2 = 0;  // this thread's share of sum_c a_c S1_c and sum_c a_c S2_c
  for (int64_t row0 = static_cast<int64_t>(warp) * rows_per_warp; row0 < a.Cg;
       row0 += static_cast<int64_t>(n_warps) * rows_per_warp) {
    const int64_t cl = row0 + seg_id;
    const bool active = cl < a.Cg;
    const int64_t c = g * a.Cg + cl;
    GnChannelMap<A> m{A(0), A(0), A(0)};
    A s1 = 0, s2 = 0;
    if (active) {
      m = a.map(b, c, rstd);
      const int64_t row = base + cl * a.L;
      for (int64_t l = sub; l < a.L; l += a.seg) {
        const A d = load(a.x, row + l) - mean;
        const A h = m.A * d + m.D;
        const A gh = load(a.grad_y, row + l) * silu_grad(h, sigmoid(h));
        s1 += gh;
        s2 += gh * (d * rstd);
      }
    }
    // reduce inside each aligned segment of a.seg lanes (xor offsets < a.seg stay inside it)
    for (int offset = a.seg / 2; offset > 0; offset >>= 1) {
      s1 += __shfl_xor_sync(kFullMask, s1, offset);
      s2 += __shfl_xor_sync(kFullMask, s2, offset);
    }
    if (active && sub == 0) {
      const int64_t bc = b * a.C + c;
      const A gam = a.gamma(c), bet = a.beta(c);
      if (a.grad_shift) store(a.grad_shift, bc, s1);
      if (a.grad_scale) store(a.grad_scale, bc, gam * s2 + bet * s1);
      if (a.ws) {
        const A one_plus = A(1) + a.sc(bc);
        a.ws[bc] = one_plus * s2;
        a.ws[a.B * a.C + bc] = one_plus * s1;
      }
      t1 += m.a * s1;
      t2 += m.a * s2;
    }
  }
  block_sum2(t1, t2);
  const A n = static_cast<A>(a.N);
  const A Q = -rstd * rstd * (t2 / n);
  const A R = -rstd * (t1 / n);

  // pass 2: grad_x = P gh + Q (x - mean) + R with P = rstd a = m.A
  const int n_elems = static_cast<int>(a.N), len = static_cast<int>(a.L);  // <= 2^30
  for (int i = threadIdx.x; i < n_elems; i += blockDim.x) {
    const int64_t c = g * a.Cg + i / len;
    const GnChannelMap<A> m = a.map(b, c, rstd);
    const A d = load(a.x, base + i) - mean;
    const A h = m.A * d + m.D;
    const A gh = load(a.grad_y, base + i) * silu_grad(h, sigmoid(h));
    store(a.grad_x, base + i, m.A * gh + Q * d + R);
  }
}

// grad_gamma[c] = sum_b ws[0, b, c], grad_beta[c] = sum_b ws[1, b, c]; one thread per channel.
template <typename T>
__global__ void affine_grad_kernel(Args<T> a) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= a.C) return;
  A sw = 0, sb = 0;
  for (int64_t b = 0; b < a.B; ++b) {
    sw += a.ws[b * a.C + c];
    sb += a.ws[a.B * a.C + b * a.C + c];
  }
  if (a.grad_weight) store(a.grad_weight, c, sw);
  if (a.grad_bias) store(a.grad_bias, c, sb);
}

template <typename T>
Args<T> make_args(const GroupNormFiLMSiLUParams& p) {
  using A = typename Acc<T>::type;
  Args<T> a;
  a.B = p.batch;
  a.C = p.channels;
  a.L = p.length;
  a.G = p.groups;
  a.Cg = p.channels / p.groups;
  a.N = a.Cg * a.L;
  a.eps = static_cast<A>(p.eps);
  a.x = static_cast<const T*>(p.x);
  a.scale = static_cast<const T*>(p.scale);
  a.shift = static_cast<const T*>(p.shift);
  a.weight = static_cast<const T*>(p.weight);
  a.bias = static_cast<const T*>(p.bias);
  a.y = static_cast<T*>(p.y);
  a.mean = static_cast<A*>(p.mean);
  a.rstd = static_cast<A*>(p.rstd);
  a.grad_y = static_cast<const T*>(p.grad_y);
  a.grad_x = static_cast<T*>(p.grad_x);
  a.grad_scale = static_cast<T*>(p.grad_scale);
  a.grad_shift = static_cast<T*>(p.grad_shift);
  a.grad_weight = static_cast<T*>(p.grad_weight);
  a.grad_bias = static_cast<T*>(p.grad_bias);
  a.ws = static_cast<A*>(p.workspace);
  a.seg = kWarp;
  while (a.seg > 1 && a.seg / 2 >= a.L) a.seg /= 2;  // smallest power of two >= min(L, 32)
  return a;
}

constexpr int64_t kMaxBlocks = 2147483647;  // gridDim.x limit

template <typename T>
void run_forward(const GroupNormFiLMSiLUParams& p) {
  const Args<T> a = make_args<T>(p);
  const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  forward_kernel<T><<<static_cast<unsigned>(a.B * a.G), kThreads, 0, stream>>>(a);
  check_cuda(cudaGetLastError(), "group_norm_film_silu_forward_cuda: launch");
}

template <typename T>
void run_backward(const GroupNormFiLMSiLUParams& p) {
  const Args<T> a = make_args<T>(p);
  const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  backward_kernel<T><<<static_cast<unsigned>(a.B * a.G), kThreads, 0, stream>>>(a);
  check_cuda(cudaGetLastError(), "group_norm_film_silu_backward_cuda: launch");
  if (a.ws != nullptr) {
    const int threads = 128;
    const int64_t blocks = (a.C + threads - 1) / threads;
    affine_grad_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(a);
    check_cuda(cudaGetLastError(), "group_norm_film_silu_backward_cuda: launch (affine grads)");
  }
}

template <template <typename> class Fn>
void dispatch(const GroupNormFiLMSiLUParams& p, const char* who) {
  if (p.batch * p.groups > kMaxBlocks) {
    throw std::invalid_argument(std::string(who) + ": batch * groups exceeds the CUDA grid limit");
  }
  if ((p.channels / p.groups) * p.length > (int64_t{1} << 30)) {  // a group is indexed with int
    throw std::invalid_argument(std::string(who) + ": a group has more than 2^30 elements");
  }
  switch (p.dtype) {
    case GnDType::kFloat32:
      Fn<float>::run(p);
      break;
    case GnDType::kFloat64:
      Fn<double>::run(p);
      break;
    case GnDType::kFloat16:
      Fn<__half>::run(p);
      break;
    case GnDType::kBFloat16:
      Fn<__nv_bfloat16>::run(p);
      break;
    default:
      throw std::invalid_argument(std::string(who) + ": unknown dtype");
  }
}

template <typename T>
struct Forward {
  static void run(const GroupNormFiLMSiLUParams& p) { run_forward<T>(p); }
};
template <typename T>
struct Backward {
  static void run(const GroupNormFiLMSiLUParams& p) { run_backward<T>(p); }
};

}  // namespace

void group_norm_film_silu_forward_cuda(const GroupNormFiLMSiLUParams& p) {
  const char* who = "group_norm_film_silu_forward_cuda";
  gn_check_params(p, false, who);
  if (p.batch * p.channels * p.length == 0) return;
  dispatch<Forward>(p, who);
}

void group_norm_film_silu_backward_cuda(const GroupNormFiLMSiLUParams& p) {
  const char* who = "group_norm_film_silu_backward_cuda";
  gn_check_params(p, true, who);
  if (p.batch * p.channels * p.length == 0) return;
  dispatch<Backward>(p, who);
}

}  // namespace ubd
