// Acoustic 2-D forward modelling on CUDA. Same PDE, scheme, conventions and boundaries as the CPU
// kernel (see ubd/acoustic.h); the per-cell step is ubd/acoustic_grid.h (shared with the backward,
// acoustic_adjoint_cuda.cu, and its host twin), the per-point maths ubd/stencil.h (shared with the
// CPU).
//
// Layout: every shot of every model is stepped at once. The caller provides a zeroed workspace of
// acoustic_forward_workspace_elems() elements holding, per shot, the two leapfrog fields (and for
// C-PML the double-buffered psi_x, psi_z and zeta_x, zeta_z), each with a halo of 2 zero cells.
// Per time step: one launch updates all cells of all shots (grid z = shot, source injection fused
// into the update of the source cell), one launch records the receivers. The whole time loop runs
// inside this call on the caller's stream. Periodic wrap (OpenFWI sponge) is done by index
// arithmetic, so the halo is only read when wrap is off. Receivers outside the grid (only the raw
// op can pass them) record NaN rather than reading out of bounds.
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "acoustic_kernels.cuh"
#include "ubd/acoustic.h"
#include "ubd/acoustic_grid.h"
#include "ubd/stencil.h"

namespace ubd {
namespace {

using cuda_kernels::check_cuda;
using cuda_kernels::launch_record;
using cuda_kernels::launch_step;
using grid::Args;
using grid::kHalo;

// Fused misfit: one block per shot accumulates the four sums of this step over the receivers
// (block reduction in shared memory, thread 0 adds to the shot's float64 sums). Launches on one
// stream are ordered, so no atomics are needed across steps.
constexpr int kMisfitThreads = 128;

template <typename T>
__global__ void misfit_kernel(Args<T> a, int64_t n, const T* __restrict__ Q0,
                              const T* __restrict__ observed, double* __restrict__ misfit,
                              bool normalise, double lo, double hi) {
  __shared__ double red[4][kMisfitThreads];
  for (int64_t t = blockIdx.x; t < a.total_shots; t += gridDim.x) {
    double acc[4] = {0, 0, 0, 0};
    for (int64_t r = threadIdx.x; r < a.n_receivers; r += blockDim.x) {
      const int64_t c = grid::receiver_offset(a, r);  // off the grid (raw op): NaN sums
      const double sim = c < 0 ? NAN : Q0[t * a.cells + c];
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
  const Args<T> a = grid::make_args<T>(p);

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
  const unsigned misfit_blocks = static_cast<unsigned>(std::min<int64_t>(a.total_shots, 65535));
  for (int64_t n = 0; n < a.nt; ++n) {
    launch_step(a, n, P, Q, psx, psxn, psz, pszn, zx, zz, static_cast<T*>(nullptr), stream);
    if (p.observed) {
      misfit_kernel<T><<<misfit_blocks, kMisfitThreads, 0, stream>>>(
          a, n, Q, static_cast<const T*>(p.observed), p.misfit, p.normalise, p.norm_lo, p.norm_hi);
    } else {
      launch_record(a, n, Q, a.out, stream);
    }
    std::swap(P, Q);
    std::swap(psx, psxn);
    std::swap(psz, pszn);
  }
  check_cuda(cudaGetLastError(), "acoustic_forward_cuda: kernel launch");
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
