// Stand-ins compiled when the build has no CUDA toolkit (UBD_CUDA=OFF or none found): the CUDA
// entry points exist with the same signatures and raise a clear error.
#include <stdexcept>

#include "ubd/acoustic.h"

namespace ubd {

void acoustic_forward_cuda(const AcousticForwardParams&) {
  throw std::runtime_error(
      "acoustic_forward_cuda: this build of ubdiff_phys has no CUDA kernels (built with "
      "UBD_CUDA=OFF "
      "or without nvcc); reinstall with a CUDA toolkit on PATH, e.g. UBD_CUDA=ON pip install .");
}

int64_t acoustic_forward_workspace_elems(const AcousticForwardParams&) {
  return 0;
}

void acoustic_backward_cuda(const AcousticForwardParams&) {
  throw std::runtime_error(
      "acoustic_backward_cuda: this build of ubdiff_phys has no CUDA kernels (built with "
      "UBD_CUDA=OFF or without nvcc)");
}

bool cuda_built() {
  return false;
}

int cuda_device_count() {
  return 0;
}

}  // namespace ubd
