// Acoustic 2-D forward modelling on CUDA. Same PDE, scheme, conventions and boundaries as the CPU
// kernel (see ubd/acoustic.h); the per-point maths comes from ubd/stencil.h, shared with the CPU.
//
// Layout: every shot of every model is stepped at once. The caller provides a zeroed workspace of
// acoustic_forward_workspace_elems() elements holding, per shot, the two leapfrog fields (and for
// C-PML the double-buffered psi_x, psi_z and zeta_x, zeta_z), each with a halo of 2 zero cells.
// Per time step: one launch updates all cells of all shots (grid z = shot, source injection fused
// into the update of the source cell), one launch records the receivers. The whole time loop runs
// inside this call on the caller's stream. Periodic wrap (OpenFWI sponge) is done by index
// arithmetic, so the halo is only read when wrap is off.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ubd/acoustic.h"
#include "ubd/stencil.h"

namespace ubd {
namespace {

constexpr int64_t kHalo = 2;
constexpr int kBlockX = 32;
constexpr int kBlockY = 8;

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("acoustic_forward_cuda: ") + what + ": " +
                             cudaGetErrorString(err));
  }
}

template <typename T>
struct DeviceArgs {
  int64_t n_shots, nt, nzm, nxm, pad, nz, nx, ld, cells, n_receivers, total_shots;
  bool cpml, wrap;
  T rdx2, rdz2, rdx, rdz;
  const T* vdt2;
  const T* kx;
  const T* kz;
  const T* ax;
  const T* bx;
  const T* dbx;
  const T* az;
  const T* bz;
  const T* dbz;
  const int64_t* source_rc;
  const int64_t* receiver_rc;
  const T* wavelet;
  T* out;
};

__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// Field index of padded cell (i, j) (halo layout); with wrap, neighbours outside the grid wrap.
template <typename T>
__device__ __forceinline__ int64_t cell(const DeviceArgs<T>& a, int64_t i, int64_t j) {
  if (a.wrap) {
    i = i < 0 ? i + a.nz : (i >= a.nz ? i - a.nz : i);
    j = j < 0 ? j + a.nx : (j >= a.nx ? j - a.nx : j);
  }
  return (i + kHalo) * a.ld + (j + kHalo);
}

template <typename T>
__global__ void step_kernel(DeviceArgs<T> a, int64_t n, const T* __restrict__ P0,
                            T* __restrict__ Q0, const T* __restrict__ psx0, T* __restrict__ psxn0,
                            const T* __restrict__ psz0, T* __restrict__ pszn0, T* __restrict__ zx0,
                            T* __restrict__ zz0) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t i = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (i >= a.nz || j >= a.nx) return;
  for (int64_t t = blockIdx.z; t < a.total_shots; t += gridDim.z) {
    const int64_t b = t / a.n_shots, s = t % a.n_shots;
    const int64_t base = t * a.cells;
    const T* P = P0 + base;
    T* Q = Q0 + base;
    const int64_t c = cell(a, i, j);
    const T pc = P[c];
    T d2x = fd4_d2(P[cell(a, i, j - 2)], P[cell(a, i, j - 1)], pc, P[cell(a, i, j + 1)],
                   P[cell(a, i, j + 2)]) *
            a.rdx2;
    T d2z = fd4_d2(P[cell(a, i - 2, j)], P[cell(a, i - 1, j)], pc, P[cell(a, i + 1, j)],
                   P[cell(a, i + 2, j)]) *
            a.rdz2;
    const bool in_cols = j >= a.pad && j < a.pad + a.nxm;
    // the C-PML update covers the layer plus kHalo model cells that its d/dx(a psi) stencil reaches
    const bool xpml = j < a.pad + kHalo || j >= a.pad + a.nxm - kHalo;
    const bool zpml = i < a.pad + kHalo || i >= a.pad + a.nzm - kHalo;
    const T v = a.vdt2[b * a.nzm * a.nxm + clamp64(i - a.pad, 0, a.nzm - 1) * a.nxm +
                       clamp64(j - a.pad, 0, a.nxm - 1)];
    T kappa = T(0);
    if (a.cpml) {
      const int64_t L = a.ld;
      if (xpml) {
        const T* ax = a.ax + b * a.nx;
        const T* s = psx0 + base;
        const T du = fd4_d1(P[c - 2], P[c - 1], P[c + 1], P[c + 2]) * a.rdx;
        const T dap = fd4_d1(s[c - 2], s[c - 1], s[c + 1], s[c + 2]) * a.rdx;
        T psi_new;
        d2x = cpml_term(d2x, du, dap, s[c], ax[j], a.bx[b * a.nx + j], a.dbx[b * a.nx + j],
                        zx0[base + c], psi_new);
        psxn0[base + c] = psi_new;
      }
      if (zpml) {
        const T* az = a.az + b * a.nz;
        const T* s = psz0 + base;
        const T du = fd4_d1(P[c - 2 * L], P[c - L], P[c + L], P[c + 2 * L]) * a.rdz;
        const T dap = fd4_d1(s[c - 2 * L], s[c - L], s[c + L], s[c + 2 * L]) * a.rdz;
        T psi_new;
        d2z = cpml_term(d2z, du, dap, s[c], az[i], a.bz[b * a.nz + i], a.dbz[b * a.nz + i],
                        zz0[base + c], psi_new);
        pszn0[base + c] = psi_new;
      }
    } else {
      if (a.kx) kappa += a.kx[b * a.nx + j];
      if (a.kz && in_cols) kappa += a.kz[b * a.nz + i];
    }
    T next = leapfrog(pc, Q[c], v, d2x + d2z, kappa);
    if (i == a.source_rc[2 * s] && j == a.source_rc[2 * s + 1]) next += v * a.wavelet[n];
    Q[c] = next;
  }
}

template <typename T>
__global__ void record_kernel(DeviceArgs<T> a, int64_t n, const T* __restrict__ Q0) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= a.total_shots * a.n_receivers) return;
  const int64_t t = k / a.n_receivers, r = k % a.n_receivers;
  const int64_t c = (a.receiver_rc[2 * r] + kHalo) * a.ld + a.receiver_rc[2 * r + 1] + kHalo;
  a.out[(t * a.nt + n) * a.n_receivers + r] = Q0[t * a.cells + c];
}

// Fused misfit: one block per shot accumulates the four sums of this step over the receivers
// (block reduction in shared memory, thread 0 adds to the shot's float64 sums). Launches on one
// stream are ordered, so no atomics are needed across steps.
constexpr int kMisfitThreads = 128;

template <typename T>
__global__ void misfit_kernel(DeviceArgs<T> a, int64_t n, const T* __restrict__ Q0,
                              const T* __restrict__ observed, double* __restrict__ misfit,
                              bool normalise, double lo, double hi) {
  __shared__ double red[4][kMisfitThreads];
  for (int64_t t = blockIdx.x; t < a.total_shots; t += gridDim.x) {
    double acc[4] = {0, 0, 0, 0};
    for (int64_t r = threadIdx.x; r < a.n_receivers; r += blockDim.x) {
      const int64_t c = (a.receiver_rc[2 * r] + kHalo) * a.ld + a.receiver_rc[2 * r + 1] + kHalo;
      const double sim = Q0[t * a.cells + c];
      const double obs = observed[(t * a.nt + n) * a.n_receivers + r];
      acc[0] += (sim - obs) * (sim - obs);
      acc[1] += sim * sim;
      if (normalise) {
        const double ns = openfwi_normalise(sim, lo, hi), no = openfwi_normalise(obs, lo, hi);
        acc[2] += (ns - no) * (ns - no);
        acc[3] += ns * ns;
      }
    }
    for (int k = 0; k < 4; ++k) red[k][threadIdx.x] = acc[k];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) {
        for (int k = 0; k < 4; ++k) red[k][threadIdx.x] += red[k][threadIdx.x + stride];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      for (int k = 0; k < 4; ++k) misfit[4 * t + k] += red[k][0];
    }
    __syncthreads();
  }
}

template <typename T>
void forward(const AcousticForwardParams& p) {
  DeviceArgs<T> a{};
  a.n_shots = p.n_shots;
  a.nt = p.nt;
  a.nzm = p.nzm;
  a.nxm = p.nxm;
  a.pad = p.pad;
  a.nz = padded_nz(p);
  a.nx = padded_nx(p);
  a.ld = a.nx + 2 * kHalo;
  a.cells = (a.nz + 2 * kHalo) * a.ld;
  a.n_receivers = p.n_receivers;
  a.total_shots = p.n_models * p.n_shots;
  a.cpml = p.boundary == Boundary::kCpml;
  a.wrap = p.wrap;
  a.rdx2 = T(p.rdx2);
  a.rdz2 = T(p.rdz2);
  a.rdx = T(p.rdx);
  a.rdz = T(p.rdz);
  a.vdt2 = static_cast<const T*>(p.vdt2);
  a.kx = static_cast<const T*>(p.kx);
  a.kz = static_cast<const T*>(p.kz);
  a.ax = static_cast<const T*>(p.ax);
  a.bx = static_cast<const T*>(p.bx);
  a.dbx = static_cast<const T*>(p.dbx);
  a.az = static_cast<const T*>(p.az);
  a.bz = static_cast<const T*>(p.bz);
  a.dbz = static_cast<const T*>(p.dbz);
  a.source_rc = p.source_rc;
  a.receiver_rc = p.receiver_rc;
  a.wavelet = static_cast<const T*>(p.wavelet);
  a.out = static_cast<T*>(p.out);

  T* ws = static_cast<T*>(p.workspace);
  const int64_t field = a.cells * a.total_shots;
  T* P = ws;
  T* Q = ws + field;
  T* psx = a.cpml ? ws + 2 * field : nullptr;
  T* psxn = a.cpml ? ws + 3 * field : nullptr;
  T* psz = a.cpml ? ws + 4 * field : nullptr;
  T* pszn = a.cpml ? ws + 5 * field : nullptr;
  T* zx = a.cpml ? ws + 6 * field : nullptr;
  T* zz = a.cpml ? ws + 7 * field : nullptr;

  cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  const dim3 block(kBlockX, kBlockY, 1);
  const dim3 grid(static_cast<unsigned>((a.nx + kBlockX - 1) / kBlockX),
                  static_cast<unsigned>((a.nz + kBlockY - 1) / kBlockY),
                  static_cast<unsigned>(std::min<int64_t>(a.total_shots, 65535)));
  const int64_t n_rec = a.total_shots * a.n_receivers;
  const unsigned rec_blocks = static_cast<unsigned>((n_rec + 255) / 256);
  const unsigned misfit_blocks = static_cast<unsigned>(std::min<int64_t>(a.total_shots, 65535));
  for (int64_t n = 0; n < a.nt; ++n) {
    step_kernel<T><<<grid, block, 0, stream>>>(a, n, P, Q, psx, psxn, psz, pszn, zx, zz);
    if (p.observed) {
      misfit_kernel<T><<<misfit_blocks, kMisfitThreads, 0, stream>>>(
          a, n, Q, static_cast<const T*>(p.observed), p.misfit, p.normalise, p.norm_lo, p.norm_hi);
    } else if (n_rec > 0) {
      record_kernel<T><<<rec_blocks, 256, 0, stream>>>(a, n, Q);
    }
    std::swap(P, Q);
    std::swap(psx, psxn);
    std::swap(psz, pszn);
  }
  check_cuda(cudaGetLastError(), "kernel launch");
}

}  // namespace

void acoustic_forward_cuda(const AcousticForwardParams& p) {
  if (p.n_models * p.n_shots * p.nt == 0) return;
  if (!p.workspace) throw std::invalid_argument("acoustic_forward_cuda: workspace is null");
  if (p.observed && !p.misfit) {
    throw std::invalid_argument(
        "acoustic_forward_cuda: observed gathers given without a misfit output");
  }
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

bool cuda_built() {
  return true;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace ubd
