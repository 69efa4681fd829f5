// pybind11 module `ubdiff_phys._C`: the only place that knows Python. It receives raw pointers
// (uintptr_t), sizes and a stream handle from ubdiff_phys.ops and fills the torch-free parameter
// structs of csrc/include/ubd. No CUDA headers, no libtorch.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <utility>

#include "ubd/acoustic.h"
#include "ubd/group_norm_film_silu.h"

namespace py = pybind11;

#ifndef UBD_VERSION_INFO
#define UBD_VERSION_INFO "dev"
#endif

namespace {

template <typename Field>
auto ptr_property(Field ubd::AcousticForwardParams::* field) {
  return py::cpp_function([field](const ubd::AcousticForwardParams& p) {
    return reinterpret_cast<std::uintptr_t>(p.*field);
  });
}

// Pointer property for any params struct (the fused U-Net ops).
template <typename P, typename Field>
void def_ptr_field(py::class_<P>& cls, const char* name, Field P::* field) {
  cls.def_property(
      name, [field](const P& p) { return reinterpret_cast<std::uintptr_t>(p.*field); },
      [field](P& p, std::uintptr_t v) { p.*field = reinterpret_cast<Field>(v); });
}

py::dict build_info() {
  py::dict d;
  d["version"] = UBD_VERSION_INFO;
#ifdef UBD_WITH_CUDA
  d["cuda"] = true;
  d["cuda_version"] = UBD_CUDA_VERSION;
  d["cuda_architectures"] = UBD_CUDA_ARCHS;
#else
  d["cuda"] = false;
  d["cuda_version"] = py::none();
  d["cuda_architectures"] = py::none();
#endif
#ifdef UBD_WITH_OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
#if defined(__VERSION__)
  d["cxx_compiler"] = __VERSION__;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "ubdiff_phys native kernels (torch-free; called through ubdiff_phys.ops)";

  py::enum_<ubd::Boundary>(m, "Boundary")
      .value("sponge", ubd::Boundary::kSponge)
      .value("cpml", ubd::Boundary::kCpml);
  py::enum_<ubd::DType>(m, "DType")
      .value("float32", ubd::DType::kFloat32)
      .value("float64", ubd::DType::kFloat64);

  using P = ubd::AcousticForwardParams;
  py::class_<P> params(m, "AcousticForwardParams");
  params.def(py::init<>())
      .def_readwrite("n_models", &P::n_models)
      .def_readwrite("n_shots", &P::n_shots)
      .def_readwrite("nt", &P::nt)
      .def_readwrite("nzm", &P::nzm)
      .def_readwrite("nxm", &P::nxm)
      .def_readwrite("pad", &P::pad)
      .def_readwrite("n_receivers", &P::n_receivers)
      .def_readwrite("boundary", &P::boundary)
      .def_readwrite("dtype", &P::dtype)
      .def_readwrite("wrap", &P::wrap)
      .def_readwrite("rdx2", &P::rdx2)
      .def_readwrite("rdz2", &P::rdz2)
      .def_readwrite("rdx", &P::rdx)
      .def_readwrite("normalise", &P::normalise)
      .def_readwrite("norm_lo", &P::norm_lo)
      .def_readwrite("norm_hi", &P::norm_hi)
      .def_readwrite("checkpoint_every", &P::checkpoint_every)
      .def_readwrite("rdz", &P::rdz);
  // Pointer fields travel as integers (data_ptr() of tensors the caller keeps alive).
#define UBD_PTR_FIELD(name, type)                    \
  params.def_property(#name, ptr_property(&P::name), \
                      [](P& p, std::uintptr_t v) { p.name = reinterpret_cast<type>(v); })
  UBD_PTR_FIELD(vdt2, const void*);
  UBD_PTR_FIELD(kx, const void*);
  UBD_PTR_FIELD(kz, const void*);
  UBD_PTR_FIELD(ax, const void*);
  UBD_PTR_FIELD(bx, const void*);
  UBD_PTR_FIELD(dbx, const void*);
  UBD_PTR_FIELD(az, const void*);
  UBD_PTR_FIELD(bz, const void*);
  UBD_PTR_FIELD(dbz, const void*);
  UBD_PTR_FIELD(source_rc, const int64_t*);
  UBD_PTR_FIELD(receiver_rc, const int64_t*);
  UBD_PTR_FIELD(wavelet, const void*);
  UBD_PTR_FIELD(out, void*);
  UBD_PTR_FIELD(workspace, void*);
  UBD_PTR_FIELD(stream, void*);
  UBD_PTR_FIELD(observed, const void*);
  UBD_PTR_FIELD(misfit, double*);
  UBD_PTR_FIELD(grad_out, const void*);
  UBD_PTR_FIELD(grad_misfit, const double*);
  UBD_PTR_FIELD(grad_vdt2, void*);
  UBD_PTR_FIELD(checkpoints, void*);
#undef UBD_PTR_FIELD

  // The CPU kernel releases the GIL: it may run for seconds and never touches Python objects.
  m.def("acoustic_forward_cpu", &ubd::acoustic_forward_cpu, py::arg("params"),
        py::call_guard<py::gil_scoped_release>());
  m.def("acoustic_forward_cuda", &ubd::acoustic_forward_cuda, py::arg("params"),
        py::call_guard<py::gil_scoped_release>());
  m.def("acoustic_backward_cpu", &ubd::acoustic_backward_cpu, py::arg("params"),
        py::call_guard<py::gil_scoped_release>());
  m.def("acoustic_backward_cuda", &ubd::acoustic_backward_cuda, py::arg("params"),
        py::call_guard<py::gil_scoped_release>());
  m.def("acoustic_backward_grid_host", &ubd::acoustic_backward_grid_host, py::arg("params"),
        py::call_guard<py::gil_scoped_release>());
  m.def("acoustic_backward_workspace_elems", &ubd::acoustic_backward_workspace_elems,
        py::arg("params"));
  m.def("acoustic_checkpoint_elems", &ubd::acoustic_checkpoint_elems, py::arg("params"));
  m.def("acoustic_forward_workspace_elems", &ubd::acoustic_forward_workspace_elems,
        py::arg("params"));
  // Fused GroupNorm -> FiLM -> SiLU (ubdiff_phys.ops.group_norm_film_silu).
  py::enum_<ubd::GnDType>(m, "GnDType")
      .value("float32", ubd::GnDType::kFloat32)
      .value("float64", ubd::GnDType::kFloat64)
      .value("float16", ubd::GnDType::kFloat16)
      .value("bfloat16", ubd::GnDType::kBFloat16);
  using GnP = ubd::GroupNormFiLMSiLUParams;
  py::class_<GnP> gn(m, "GroupNormFiLMSiLUParams");
  gn.def(py::init<>())
      .def_readwrite("batch", &GnP::batch)
      .def_readwrite("channels", &GnP::channels)
      .def_readwrite("length", &GnP::length)
      .def_readwrite("groups", &GnP::groups)
      .def_readwrite("eps", &GnP::eps)
      .def_readwrite("dtype", &GnP::dtype);
  for (auto [name, field] : {std::pair{"x", &GnP::x},
                             {"scale", &GnP::scale},
                             {"shift", &GnP::shift},
                             {"weight", &GnP::weight},
                             {"bias", &GnP::bias},
                             {"grad_y", &GnP::grad_y}}) {
    def_ptr_field(gn, name, field);
  }
  for (auto [name, field] : {std::pair{"y", &GnP::y},
                             {"mean", &GnP::mean},
                             {"rstd", &GnP::rstd},
                             {"grad_x", &GnP::grad_x},
                             {"grad_scale", &GnP::grad_scale},
                             {"grad_shift", &GnP::grad_shift},
                             {"grad_weight", &GnP::grad_weight},
                             {"grad_bias", &GnP::grad_bias},
                             {"workspace", &GnP::workspace},
                             {"stream", &GnP::stream}}) {
    def_ptr_field(gn, name, field);
  }
  m.def("group_norm_film_silu_workspace_elems", &ubd::group_norm_film_silu_workspace_elems,
        py::arg("params"));
  // Short kernels: the GIL is still released (they never touch Python objects).
  m.def("group_norm_film_silu_forward_cpu", &ubd::group_norm_film_silu_forward_cpu,
        py::arg("params"), py::call_guard<py::gil_scoped_release>());
  m.def("group_norm_film_silu_backward_cpu", &ubd::group_norm_film_silu_backward_cpu,
        py::arg("params"), py::call_guard<py::gil_scoped_release>());
  m.def("group_norm_film_silu_forward_cuda", &ubd::group_norm_film_silu_forward_cuda,
        py::arg("params"), py::call_guard<py::gil_scoped_release>());
  m.def("group_norm_film_silu_backward_cuda", &ubd::group_norm_film_silu_backward_cuda,
        py::arg("params"), py::call_guard<py::gil_scoped_release>());

  m.def("cuda_built", &ubd::cuda_built);
  m.def("cuda_device_count", &ubd::cuda_device_count);
  m.def("build_info", &build_info);
}
