// The CUDA backward's schedule and per-cell code (ubd/acoustic_adjoint_grid.h) run on the host:
// each "launch" is an OpenMP loop over its indices, each copy a memcpy. It exists so that machines
// without a GPU test the CUDA adjoint's code (the tests compare it with acoustic_backward_cpu);
// it is not a production path (it stores every shot's fields at once, like the GPU).
#include <cstdint>
#include <cstring>

#include "ubd/acoustic.h"
#include "ubd/acoustic_adjoint_grid.h"

namespace ubd {
namespace {

struct HostExec {
  template <typename F>
  void each(int64_t n, const F& f) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) f(i);
  }
  template <typename T>
  void step(const grid::Args<T>& a, int64_t n, const T* P, T* Q, const T* psx, T* psxn,
            const T* psz, T* pszn, T* zx, T* zz, T* lap) {
    const int64_t per = a.nz * a.nx;
#pragma omp parallel for schedule(static)
    for (int64_t idx = 0; idx < a.total_shots * per; ++idx) {
      const int64_t t = idx / per, i = (idx % per) / a.nx, j = idx % a.nx;
      grid::step_cell(a, n, i, j, t, P, Q, psx, psxn, psz, pszn, zx, zz, lap);
    }
  }
  template <typename T>
  void record(const grid::Args<T>& a, int64_t n, const T* Q, T* out) {
    for (int64_t t = 0; t < a.total_shots; ++t) {
      for (int64_t r = 0; r < a.n_receivers; ++r) grid::record_cell(a, n, t, r, Q, out);
    }
  }
  template <typename T>
  void copy(T* dst, const T* src, int64_t count) {
    std::memcpy(dst, src, static_cast<size_t>(count) * sizeof(T));
  }
  template <typename T>
  void zero(T* dst, int64_t count) {
    std::memset(dst, 0, static_cast<size_t>(count) * sizeof(T));
  }
  void done() {}
};

}  // namespace

int64_t acoustic_backward_workspace_elems(const AcousticForwardParams& p) {
  return grid::backward_layout(p).total;
}

void acoustic_backward_grid_host(const AcousticForwardParams& p) {
  grid::check_grid_backward(p, "acoustic_backward_grid_host");
  AcousticForwardParams q = p;  // on the host the geometry can be checked up front
  q.out = q.grad_vdt2;
  q.observed = nullptr;
  q.checkpoints = nullptr;
  HostExec ex;
  const int64_t m = p.n_models * p.nzm * p.nxm;
  if (p.n_models * p.n_shots * p.nt == 0) {
    const size_t size = p.dtype == DType::kFloat32 ? sizeof(float) : sizeof(double);
    std::memset(p.grad_vdt2, 0, static_cast<size_t>(m) * size);
    return;
  }
  check_acoustic_params(q);
  if (p.dtype == DType::kFloat32) {
    grid::backward_grid<float>(p, static_cast<float*>(p.workspace), ex);
  } else {
    grid::backward_grid<double>(p, static_cast<double*>(p.workspace), ex);
  }
}

}  // namespace ubd
