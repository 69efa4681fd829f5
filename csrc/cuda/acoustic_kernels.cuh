// CUDA kernels shared by the acoustic forward (acoustic_cuda.cu) and backward
// (acoustic_adjoint_cuda.cu): the time step, the receivers' record and a grid-stride loop over any
// per-index functor of ubd/acoustic_adjoint_grid.h. The per-cell code is in ubd/acoustic_grid.h.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ubd/acoustic_grid.h"

namespace ubd {
namespace cuda_kernels {

constexpr int kBlockX = 32;
constexpr int kBlockY = 8;
constexpr int kEachThreads = 256;

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
  }
}

// One leapfrog step of every cell of every shot (grid z strides over the shots); with lap0, L_n
// is stored too (the backward's recomputation).
template <typename T>
__global__ void step_kernel(grid::Args<T> a, int64_t n, const T* __restrict__ P0,
                            T* __restrict__ Q0, const T* __restrict__ psx0, T* __restrict__ psxn0,
                            const T* __restrict__ psz0, T* __restrict__ pszn0, T* __restrict__ zx0,
                            T* __restrict__ zz0, T* __restrict__ lap0) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t i = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (i >= a.nz || j >= a.nx) return;
  for (int64_t t = blockIdx.z; t < a.total_shots; t += gridDim.z) {
    grid::step_cell(a, n, i, j, t, P0, Q0, psx0, psxn0, psz0, pszn0, zx0, zz0, lap0);
  }
}

// The launch geometry of step_kernel: 32 x 8 cells per block, grid z over the shots.
template <typename T>
inline void launch_step(const grid::Args<T>& a, int64_t n, const T* P, T* Q, const T* psx, T* psxn,
                        const T* psz, T* pszn, T* zx, T* zz, T* lap, cudaStream_t stream) {
  const dim3 block(kBlockX, kBlockY, 1);
  const dim3 blocks(static_cast<unsigned>((a.nx + kBlockX - 1) / kBlockX),
                    static_cast<unsigned>((a.nz + kBlockY - 1) / kBlockY),
                    static_cast<unsigned>(std::min<int64_t>(a.total_shots, 65535)));
  step_kernel<T><<<blocks, block, 0, stream>>>(a, n, P, Q, psx, psxn, psz, pszn, zx, zz, lap);
}

template <typename T>
__global__ void record_kernel(grid::Args<T> a, int64_t n, const T* __restrict__ Q0,
                              T* __restrict__ out) {
  const int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (k >= a.total_shots * a.n_receivers) return;
  grid::record_cell(a, n, k / a.n_receivers, k % a.n_receivers, Q0, out);
}

template <typename T>
inline void launch_record(const grid::Args<T>& a, int64_t n, const T* Q, T* out,
                          cudaStream_t stream) {
  const int64_t n_rec = a.total_shots * a.n_receivers;
  if (n_rec == 0) return;
  const unsigned blocks = static_cast<unsigned>((n_rec + 255) / 256);
  record_kernel<T><<<blocks, 256, 0, stream>>>(a, n, Q, out);
}

// f(i) for every i in [0, n), grid-stride (F: a functor with a __host__ __device__ operator()).
template <typename F>
__global__ void each_kernel(F f, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += stride) {
    f(i);
  }
}

template <typename F>
inline void launch_each(int64_t n, const F& f, cudaStream_t stream) {
  if (n <= 0) return;
  const int64_t blocks = std::min<int64_t>((n + kEachThreads - 1) / kEachThreads, 1 << 20);
  each_kernel<F><<<static_cast<unsigned>(blocks), kEachThreads, 0, stream>>>(f, n);
}

}  // namespace cuda_kernels
}  // namespace ubd
