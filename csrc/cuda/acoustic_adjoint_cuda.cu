// Adjoint-state backward of the acoustic op on CUDA: the schedule and per-cell code of
// ubd/acoustic_adjoint_grid.h (derivation, memory and work there) run by CUDA kernels on the
// caller's stream. Every cell of every shot is one thread per launch: per time step of the
// recomputation one step_kernel (storing L_n), per adjoint step three launches (receiver
// injection, pass 1, pass 2); launches on one stream are ordered, so no atomics are needed and the
// gradient is deterministic. The same code runs on the host in acoustic_adjoint_grid_host.cpp,
// where tests compare it with the CPU adjoint on machines without a GPU.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>

#include "acoustic_kernels.cuh"
#include "ubd/acoustic.h"
#include "ubd/acoustic_adjoint_grid.h"

namespace ubd {
namespace {

// The executor of grid::backward_grid on a CUDA stream.
struct CudaExec {
  cudaStream_t stream;

  template <typename T>
  void step(const grid::Args<T>& a, int64_t n, const T* P, T* Q, const T* psx, T* psxn,
            const T* psz, T* pszn, T* zx, T* zz, T* lap) {
    cuda_kernels::launch_step(a, n, P, Q, psx, psxn, psz, pszn, zx, zz, lap, stream);
  }
  template <typename T>
  void record(const grid::Args<T>& a, int64_t n, const T* Q, T* out) {
    cuda_kernels::launch_record(a, n, Q, out, stream);
  }
  template <typename F>
  void each(int64_t n, const F& f) {
    cuda_kernels::launch_each(n, f, stream);
  }
  template <typename T>
  void copy(T* dst, const T* src, int64_t count) {
    cuda_kernels::check_cuda(
        cudaMemcpyAsync(dst, src, count * sizeof(T), cudaMemcpyDeviceToDevice, stream),
        "acoustic_backward_cuda: copy");
  }
  template <typename T>
  void zero(T* dst, int64_t count) {
    cuda_kernels::check_cuda(cudaMemsetAsync(dst, 0, count * sizeof(T), stream),
                             "acoustic_backward_cuda: zero fill");
  }
  void done() {
    cuda_kernels::check_cuda(cudaGetLastError(), "acoustic_backward_cuda: kernel launch");
  }
};

}  // namespace

void acoustic_backward_cuda(const AcousticForwardParams& p) {
  grid::check_grid_backward(p, "acoustic_backward_cuda");
  CudaExec ex{static_cast<cudaStream_t>(p.stream)};
  const int64_t m = p.n_models * p.nzm * p.nxm;
  const size_t size = p.dtype == DType::kFloat32 ? sizeof(float) : sizeof(double);
  if (p.n_models * p.n_shots * p.nt == 0) {  // no shot or no step: the gradient is zero
    cuda_kernels::check_cuda(cudaMemsetAsync(p.grad_vdt2, 0, m * size, ex.stream),
                             "acoustic_backward_cuda: zero fill");
    return;
  }
  if (p.dtype == DType::kFloat32) {
    grid::backward_grid<float>(p, static_cast<float*>(p.workspace), ex);
  } else {
    grid::backward_grid<double>(p, static_cast<double*>(p.workspace), ex);
  }
}

}  // namespace ubd
