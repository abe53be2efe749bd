// pybind11 bindings of the constraint kernels (cfdseed._core). Placeholder until kernels land.
#include <pybind11/pybind11.h>
namespace py = pybind11;
PYBIND11_MODULE(_core, m) { m.doc() = "cfdseed constraint kernels (internal)"; }
