// Stand-ins compiled when the build has no CUDA toolkit (UBD_CUDA=OFF or none found): the fused
// GroupNorm -> FiLM -> SiLU CUDA entry points exist with the same signatures and raise a clear
// error (ubdiff_phys.ops routes CUDA tensors to the reference backend before getting here).
#include <stdexcept>

#include "ubd/group_norm_film_silu.h"

namespace ubd {

namespace {
[[noreturn]] void no_cuda(const char* who) {
  throw std::runtime_error(
      std::string(who) +
      ": this build of ubdiff_phys has no CUDA kernels (built with UBD_CUDA=OFF or without nvcc); "
      "reinstall with a CUDA toolkit on PATH, e.g. UBD_CUDA=ON pip install ., or pass "
      "backend=\"reference\"");
}
}  // namespace

void group_norm_film_silu_forward_cuda(const GroupNormFiLMSiLUParams&) {
  no_cuda("group_norm_film_silu_forward_cuda");
}

void group_norm_film_silu_backward_cuda(const GroupNormFiLMSiLUParams&) {
  no_cuda("group_norm_film_silu_backward_cuda");
}

}  // namespace ubd
