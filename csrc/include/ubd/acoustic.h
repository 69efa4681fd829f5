// Acoustic 2-D finite-difference forward modelling: the torch-free native interface.
//
// PDE:      p_tt = v^2 (p_xx + p_zz) + s(t) delta(x - x_s)          (constant density)
// Scheme:   leapfrog in time, 4th-order central differences in space
//           p^{n+1} = 2 p^n - p^{n-1} + (v dt)^2 L4[p^n] (- kappa (p^n - p^{n-1}) in a sponge),
//           source injected as p^{n+1}[src] += (v dt)^2 w[n-1] after the update, receivers record
//           p^{n+1} as sample n-1 (the OpenFWI / CSIM `a2d_mod_abc24` conventions,
//           specs/physics.md section 2).
// Grid:     the model (nzm x nxm cells) is padded by `pad` cells on every side by edge replication;
//           the padded grid (NZ = nzm + 2 pad, NX = nxm + 2 pad) is what is time-stepped.
// Boundary: kSponge: damping kappa(i, j) = kx[j] + kz[i] * [j inside the model's columns]
//                    (OpenFWI puts the vertical profile only above/below the model), with optional
//                    periodic wrap of the neighbours at the outer edge (OpenFWI does this).
//           kCpml:   convolutional PML (Pasalic & McGarry 2010, SEG Expanded Abstracts,
//           "Convolutional
//                    perfectly matched layer for isotropic and anisotropic acoustic wave
//                    equations") in the pad, zero field beyond the outer edge.
// Stability: leapfrog + 4th-order Laplacian needs v dt sqrt(1/dx^2 + 1/dz^2) <= sqrt(3/4); the
// Python
//           layer refuses anything beyond it before calling in here.
#pragma once
#include <cstdint>

namespace ubd {

enum class Boundary : int32_t { kSponge = 0, kCpml = 1 };
enum class DType : int32_t { kFloat32 = 0, kFloat64 = 1 };

// All pointers point to contiguous arrays in the compute dtype (`dtype`) unless typed otherwise,
// on the device that runs the op. Shapes use B = n_models, S = n_shots, R = n_receivers.
struct AcousticForwardParams {
  int64_t n_models = 0;      // B
  int64_t n_shots = 0;       // S (sources per model; one shot each)
  int64_t nt = 0;            // time steps == samples recorded
  int64_t nzm = 0, nxm = 0;  // model size in cells
  int64_t pad = 0;           // padding cells on each side (sponge or PML width)
  int64_t n_receivers = 0;   // R
  Boundary boundary = Boundary::kSponge;
  DType dtype = DType::kFloat32;
  bool wrap = false;          // sponge only: periodic neighbours at the padded grid's edge
  double rdx2 = 0, rdz2 = 0;  // 1/dx^2, 1/dz^2 [1/m^2]
  double rdx = 0, rdz = 0;    // 1/dx, 1/dz [1/m] (C-PML first derivatives)

  const void* vdt2 = nullptr;  // (B, nzm, nxm): (v dt)^2 [m^2] of the unpadded model
  // kSponge: kappa = d dt profiles along each padded axis, zero inside the model (nullptr: none)
  const void* kx = nullptr;  // (B, NX)
  const void* kz = nullptr;  // (B, NZ)
  // kCpml: recursive-convolution coefficients a, b and db/dx [1/m] per padded axis, zero inside
  const void* ax = nullptr;
  const void* bx = nullptr;
  const void* dbx = nullptr;  // (B, NX)
  const void* az = nullptr;
  const void* bz = nullptr;
  const void* dbz = nullptr;  // (B, NZ)

  const int64_t* source_rc = nullptr;    // (S, 2) (row, col) in padded-grid cells
  const int64_t* receiver_rc = nullptr;  // (R, 2) (row, col) in padded-grid cells
  const void* wavelet = nullptr;  // (nt,) source time function, sample n-1 injected at step n
  void* out = nullptr;            // (B, S, nt, R) recorded pressure
  // Fused misfit (pair validation): when `observed` is set, each recorded sample is compared with
  // it during the time loop and nothing is written to `out` (which may be null). Per shot, four
  // float64 sums go to misfit[(b * S + s) * 4 + k]: k = 0: sum (sim - obs)^2, 1: sum sim^2, and
  // with `normalise`, 2 and 3 the same for n(x) = 2 (sign(x) log1p|x| - lo) / (hi - lo) - 1
  // (the OpenFWI seismic normalisation with log bounds lo = norm_lo, hi = norm_hi).
  const void* observed = nullptr;  // (B, S, nt, R)
  double* misfit = nullptr;        // (B, S, 4), zero-initialised by the caller
  bool normalise = false;
  double norm_lo = 0, norm_hi = 1;
  // Backward (acoustic_backward_cpu): the gradient of a loss with respect to (v dt)^2.
  // Either grad_out (B, S, nt, R), the loss gradient with respect to the recorded gathers, or,
  // with `observed`, grad_misfit (B, S, 4) float64, its gradient with respect to the four misfit
  // sums above (then `misfit`, if set, also receives the sums: value and gradient in one call).
  const void* grad_out = nullptr;
  const double* grad_misfit = nullptr;
  void* grad_vdt2 = nullptr;     // (B, nzm, nxm) output, written (not accumulated)
  int64_t checkpoint_every = 0;  // steps between stored states; 0 chooses sqrt(nt * state size)
  // CPU only: stored forward states, acoustic_checkpoint_elems(p) elements (dtype), laid out
  // (B * S, n_ckpt, n_state, nz + 4, nx + 4) on the halo-inclusive padded grid: written by
  // acoustic_forward_cpu along with the gathers (not with `observed`), read by
  // acoustic_backward_cpu instead of re-running the forward (same checkpoint_every; not with
  // `observed`). nullptr: neither stores, the backward re-runs the forward.
  void* checkpoints = nullptr;
  // CUDA only: caller-allocated workspace of `acoustic_forward_workspace_elems` elements (dtype)
  void* workspace = nullptr;
  void* stream = nullptr;  // CUDA only: cudaStream_t (nullptr = legacy default stream)
};

inline int64_t padded_nz(const AcousticForwardParams& p) {
  return p.nzm + 2 * p.pad;
}
inline int64_t padded_nx(const AcousticForwardParams& p) {
  return p.nxm + 2 * p.pad;
}

// Number of dtype elements of CUDA workspace needed for all B*S shots at once (0 without CUDA).
int64_t acoustic_forward_workspace_elems(const AcousticForwardParams& p);

// Run the whole time loop for every shot of every model. Throws std::invalid_argument /
// std::runtime_error with a readable message on bad sizes or a CUDA failure.
void acoustic_forward_cpu(const AcousticForwardParams& p);
void acoustic_forward_cuda(const AcousticForwardParams& p);

// The adjoint-state backward of acoustic_forward_cpu (acoustic_adjoint_cpu.cpp): fills grad_vdt2.
void acoustic_backward_cpu(const AcousticForwardParams& p);

// The backward on CUDA (acoustic_adjoint_cuda.cu; ubd/acoustic_adjoint_grid.h): all shots at once
// in a caller-allocated device workspace of acoustic_backward_workspace_elems(p) elements (dtype;
// no initial contents needed), on p.stream. Geometry outside the grid is guarded in the kernels,
// not refused (the Python layer checks it). Not with `checkpoints`.
void acoustic_backward_cuda(const AcousticForwardParams& p);
int64_t acoustic_backward_workspace_elems(const AcousticForwardParams& p);
// The same schedule and per-cell code run by host loops on host memory (`workspace` of
// acoustic_backward_workspace_elems(p) elements): lets machines without a GPU test the CUDA code.
void acoustic_backward_grid_host(const AcousticForwardParams& p);

// Steps between stored states (checkpoint_every, or sqrt(nt * state fields) when it is 0, clamped
// to [1, nt]) and the element count of `checkpoints`.
int64_t acoustic_checkpoint_interval(const AcousticForwardParams& p);
int64_t acoustic_checkpoint_elems(const AcousticForwardParams& p);

// The argument check shared by every entry point (sizes, pointers, geometry inside the grid,
// profiles present for the boundary). Throws std::invalid_argument.
void check_acoustic_params(const AcousticForwardParams& p);

// Capabilities of this build (acoustic_cuda_*.cpp/.cu).
bool cuda_built();
int cuda_device_count();

}  // namespace ubd
