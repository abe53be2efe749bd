// libcfdseed: the entry points of cfdseed.h.
//
// Thin by design: start the recorded Python environment in this process (or join the host's
// interpreter), agree with MPI on any failure of one rank before the collective Python call, hand
// plain values to cfdseed.capi.init_field and copy its outcome back. Every check of a value is
// Python's (cfdseed.capi, cfdseed.init_field); here only what would crash C (null pointers).
#include <pybind11/embed.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "cfdseed.h"

#ifndef CFDSEED_PYTHON_EXECUTABLE
#error "CFDSEED_PYTHON_EXECUTABLE (the embedded environment's interpreter) must be defined by the build"
#endif
#ifndef CFDSEED_PYTHON_SITE
#define CFDSEED_PYTHON_SITE ""
#endif

namespace py = pybind11;

// The ABI family of the solver's mpi.h, compared with the one mpi4py was built for (cfdseed.capi.check_mpi).
#if defined(MPICH_NAME) || defined(MPICH_VERSION) || defined(I_MPI_VERSION) || defined(MVAPICH2_VERSION)
#define CFDSEED_MPI_ABI "mpich"
#elif defined(OPEN_MPI)
#define CFDSEED_MPI_ABI "openmpi"
#else
#define CFDSEED_MPI_ABI ""
#endif
static_assert(sizeof(MPI_Fint) == sizeof(int), "module cfdseed passes MPI handles as C int");

namespace {

struct Outcome {
    int status = CFDSEED_OK;
    std::string message;
    bool ok() const { return status == CFDSEED_OK; }
};

// One call, whichever entry point: pointers as given, extents and strides in array-index order.
struct Call {
    MPI_Comm comm;
    MPI_Fint fcomm;
    const int *shape;
    const double *lengths;
    const double *y;
    int ny;
    const char *operators;
    const int *start;
    int count[3];
    void *arrays[3];
    int extents[9];
    ptrdiff_t strides[9];
    int dtype;
    const char *axes, *source, *options;
    long long seed;
    const char *missing;  // a null pointer argument found by the entry point, else nullptr
};

bool g_started = false;    // libcfdseed started the interpreter (and may finalise it)
bool g_finalized = false;  // cfdseed_finalize ended it: numpy cannot start twice
PyThreadState *g_main = nullptr;  // our interpreter's thread state while the GIL is released
std::thread::id g_owner;          // the thread that started it: the only one that may finalise it
std::string g_start_error;        // why starting it failed: CPython cannot be started again after that
PyObject *g_bridge = nullptr;     // cfdseed.capi, kept until cfdseed_finalize

Outcome fail(int status, std::string message) { return {status, std::move(message)}; }

// Index of x, y, z in "xyz" for each array index, or -1 where `axes` is no permutation (Python says why).
void axis_index(const char *axes, int out[3]) {
    const char *names = "xyz";
    bool perm = axes && std::strlen(axes) == 3;
    for (int p = 0; p < 3; ++p) {
        const char *hit = perm ? std::strchr(names, axes[p]) : nullptr;
        out[p] = hit && axes[p] ? int(hit - names) : -1;
    }
    if (perm && (out[0] == out[1] || out[0] == out[2] || out[1] == out[2])) out[0] = out[1] = out[2] = -1;
}

std::string library_version() {
    char buf[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
    int n = 0;
    MPI_Get_library_version(buf, &n);
    return std::string(buf, std::max(0, std::min(n, MPI_MAX_LIBRARY_VERSION_STRING)));
}

Outcome null_pointers(const Call &c, const char *fn) {
    if (c.missing) return fail(CFDSEED_ERROR_ARGUMENT, std::string(fn) + ": " + c.missing + " is a null pointer");
    const std::pair<const void *, const char *> need[] = {
        {c.shape, "shape"}, {c.lengths, "lengths"}, {c.start, "start"}, {c.axes, "axes"}, {c.source, "source"}};
    for (const auto &[ptr, name] : need)
        if (!ptr) return fail(CFDSEED_ERROR_ARGUMENT, std::string(fn) + ": " + name + " is a null pointer");
    if (!c.y) return fail(CFDSEED_ERROR_ARGUMENT, std::string(fn) + ": y is a null pointer; pass the ny = " +
                                                      std::to_string(c.shape[1]) + " wall-normal coordinates");
    return {};
}

// Start the recorded environment's interpreter unless this process runs one (then the host's is used).
Outcome start_python() {
    if (g_finalized)
        return fail(CFDSEED_ERROR_PYTHON, "the embedded Python was ended by cfdseed_finalize and cannot start "
                                          "again in this process (numpy cannot be initialised twice)");
    if (!g_start_error.empty()) return fail(CFDSEED_ERROR_PYTHON, g_start_error);
    if (Py_IsInitialized()) return {};
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // the solver keeps its signal handling (Ctrl-C, SIGTERM)
    config.parse_argv = 0;
    config.use_environment = 0;  // exactly the recorded environment: no PYTHONHOME, PYTHONPATH of the job
    // the venv's interpreter as program name: sys.prefix becomes the venv, its site-packages load
    PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, CFDSEED_PYTHON_EXECUTABLE);
    if (PyStatus_Exception(st)) {
        PyConfig_Clear(&config);
        g_start_error = std::string("cannot configure the embedded Python ") + CFDSEED_PYTHON_EXECUTABLE + ": " +
                        (st.err_msg ? st.err_msg : "?");
        return fail(CFDSEED_ERROR_PYTHON, g_start_error);
    }
    try {
        py::initialize_interpreter(&config, 0, nullptr, false);
    } catch (const std::exception &e) {
        g_start_error = std::string("cannot start the embedded Python ") + CFDSEED_PYTHON_EXECUTABLE + ": " + e.what();
        return fail(CFDSEED_ERROR_PYTHON, g_start_error);
    }
    g_started = true;
    g_owner = std::this_thread::get_id();
    g_main = PyEval_SaveThread();  // calls take the GIL as any other thread would
    return {};
}

std::string describe(const py::error_already_set &e, bool with_type = true) {
    std::string name = "Exception", text;
    try {
        name = py::str(e.type().attr("__name__"));
        text = py::str(e.value());
    } catch (...) {
        text = e.what();
    }
    return text.empty() ? name : with_type ? name + ": " + text : text;
}

// Under the GIL: cfdseed.capi with the recorded site-packages (':'-separated) on sys.path.
py::object bridge() {
    if (!g_bridge) {
        py::module_ site = py::module_::import("site");
        py::list path = py::module_::import("sys").attr("path");
        std::string sites = CFDSEED_PYTHON_SITE;
        for (size_t a = 0; a < sites.size();) {
            size_t b = std::min(sites.find(':', a), sites.size());
            std::string dir = sites.substr(a, b - a);
            if (!dir.empty() && !path.contains(py::str(dir))) site.attr("addsitedir")(dir);
            a = b + 1;
        }
        py::module_ capi = py::module_::import("cfdseed.capi");
        capi.attr("embedded")();  // mpi4py must neither initialise nor finalise the solver's MPI
        g_bridge = capi.release().ptr();
    }
    return py::reinterpret_borrow<py::object>(g_bridge);
}

// Collective: the lowest failing rank's status and message on every rank (with its rank when size > 1).
void agree(MPI_Comm comm, Outcome &o) {
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int mine = o.ok() ? size : rank, first = size;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size) return;
    int head[2] = {o.status, int(o.message.size())};
    MPI_Bcast(head, 2, MPI_INT, first, comm);
    std::vector<char> text(o.message.begin(), o.message.end());
    text.resize(size_t(head[1]));
    if (head[1] > 0) MPI_Bcast(text.data(), head[1], MPI_CHAR, first, comm);
    o.status = head[0];
    o.message = std::string(text.begin(), text.end());
    if (size > 1) o.message = "[rank " + std::to_string(first) + "] " + o.message;
}

void fill_report(const py::dict &d, cfdseed_report *r) {
    r->checked = 1;
    r->passed = d["passed"].cast<bool>() ? 1 : 0;
    std::string ops = d["operators"].cast<std::string>();
    std::strncpy(r->operators, ops.c_str(), sizeof r->operators - 1);
    r->no_slip = d["no_slip"].cast<double>();
    r->seam_x = d["seam_x"].cast<double>();
    r->seam_z = d["seam_z"].cast<double>();
    r->divergence_max = d["divergence_max"].cast<double>();
    r->divergence_rms = d["divergence_rms"].cast<double>();
    r->cross_flow = d["cross_flow"].cast<double>();
    r->bulk_velocity = d["bulk_velocity"].cast<double>();
    r->u_ref = d["u_ref"].cast<double>();
    r->max_abs = d["max_abs"].cast<double>();
    r->nonfinite = d["nonfinite"].cast<long long>();
}

int finish(const Outcome &o, char *message, size_t message_size) {
    if (message && message_size > 0) {
        size_t n = std::min(o.message.size(), message_size - 1);
        std::memcpy(message, o.message.data(), n);
        message[n] = '\0';
    }
    return o.status;
}

int run(const Call &c, const char *fn, cfdseed_report *report, char *message, size_t message_size) {
    if (report) std::memset(report, 0, sizeof *report);
    if (message && message_size > 0) message[0] = '\0';
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Finalized(&finalized);
    // no agreement is possible without MPI or a communicator: these fail where they are
    if (!initialized || finalized)
        return finish(fail(CFDSEED_ERROR_MPI, std::string(fn) + ": MPI is " + (finalized ? "already finalised" : "not initialised") +
                                                  "; call it between MPI_Init and MPI_Finalize"),
                      message, message_size);
    if (c.comm == MPI_COMM_NULL)
        return finish(fail(CFDSEED_ERROR_ARGUMENT, std::string(fn) + ": comm is MPI_COMM_NULL"), message, message_size);

    // 1. local: arguments C must read, the interpreter, cfdseed.capi, the MPI check; then agree
    Outcome local = null_pointers(c, fn);
    if (local.ok()) local = start_python();
    if (!local.ok()) {
        agree(c.comm, local);
        return finish(local, message, message_size);
    }
    py::gil_scoped_acquire gil;
    py::object call, args;
    bool loaded = false;
    try {
        py::object capi = bridge();
        loaded = true;
        try {
            capi.attr("check_mpi")(library_version(), CFDSEED_MPI_ABI);
        } catch (py::error_already_set &e) {
            int status = capi.attr("status_of")(e.value()).cast<int>();
            local = fail(status, describe(e, status != CFDSEED_ERROR_INTERNAL));
        }
        if (local.ok()) {
            auto triple = [](const auto *p) { return py::make_tuple(p[0], p[1], p[2]); };
            py::list arrays;
            for (int i = 0; i < 3; ++i)
                arrays.append(py::make_tuple(reinterpret_cast<uintptr_t>(c.arrays[i]), triple(c.extents + 3 * i),
                                             triple(c.strides + 3 * i)));
            std::vector<double> y(c.y, c.y + std::max(0, c.ny));
            const char *dtype = c.dtype == CFDSEED_FLOAT ? "float32" : c.dtype == CFDSEED_DOUBLE ? "float64" : nullptr;
            std::string bad = "code " + std::to_string(c.dtype) + " (CFDSEED_FLOAT = 1, CFDSEED_DOUBLE = 2)";
            py::object seed = c.seed < 0 ? py::object(py::none()) : py::object(py::int_(c.seed));
            py::object options = c.options ? py::object(py::str(c.options)) : py::object(py::none());
            args = py::make_tuple(py::int_(c.fcomm), triple(c.shape), triple(c.lengths), y,
                                  c.operators ? c.operators : "central", triple(c.start), triple(c.count), arrays,
                                  dtype ? dtype : bad.c_str(), c.axes, c.source, options, seed);
            call = capi.attr("init_field");
        }
    } catch (py::error_already_set &e) {
        local = loaded ? fail(CFDSEED_ERROR_ARGUMENT, std::string(fn) + ": cannot pass the arguments: " + describe(e))
                       : fail(CFDSEED_ERROR_PYTHON, "the embedded Python (" CFDSEED_PYTHON_EXECUTABLE
                                                    ") cannot load cfdseed: " + describe(e));
    } catch (const std::exception &e) {
        local = fail(CFDSEED_ERROR_INTERNAL, std::string(fn) + ": " + e.what());
    }
    agree(c.comm, local);
    if (!local.ok()) return finish(local, message, message_size);

    // 2. collective: cfdseed.capi.init_field agrees on everything itself and returns one outcome
    Outcome out;
    try {
        py::tuple res = call(*args);
        out.status = res[0].cast<int>();
        out.message = res[1].cast<std::string>();
        if (report && !res[2].is_none()) fill_report(res[2].cast<py::dict>(), report);
    } catch (py::error_already_set &e) {
        out = fail(CFDSEED_ERROR_INTERNAL, std::string(fn) + ": " + describe(e));
    } catch (const std::exception &e) {
        out = fail(CFDSEED_ERROR_INTERNAL, std::string(fn) + ": " + e.what());
    }
    return finish(out, message, message_size);
}

}  // namespace

extern "C" {

int cfdseed_init_field(MPI_Comm comm, const int shape[3], const double lengths[3], const double *y,
                       const char *operators, const int start[3], const int count[3], void *u, void *v, void *w,
                       int dtype, const char *axes, const ptrdiff_t strides[3], const char *source,
                       const char *options, long long seed, cfdseed_report *report, char *message,
                       size_t message_size) {
    const char *fn = "cfdseed_init_field";
    Call c{};
    c.comm = comm;
    int initialized = 0;
    MPI_Initialized(&initialized);
    c.fcomm = initialized && comm != MPI_COMM_NULL ? MPI_Comm_c2f(comm) : 0;
    c.shape = shape, c.lengths = lengths, c.y = y, c.ny = shape ? shape[1] : 0, c.operators = operators;
    c.start = start, c.arrays[0] = u, c.arrays[1] = v, c.arrays[2] = w, c.dtype = dtype;
    c.axes = axes, c.source = source, c.options = options, c.seed = seed;
    c.missing = !count ? "count" : !strides ? "strides" : nullptr;
    if (!c.missing) {
        int idx[3];
        axis_index(axes, idx);
        for (int p = 0; p < 3; ++p) {
            c.count[p] = count[p];
            for (int i = 0; i < 3; ++i) {
                c.extents[3 * i + p] = count[idx[p] < 0 ? p : idx[p]];  // array index p holds axis idx[p]
                c.strides[3 * i + p] = strides[p];
            }
        }
    }
    return run(c, fn, report, message, message_size);
}

int cfdseed_init_field_f(MPI_Fint comm, const int shape[3], const double lengths[3], const double *y, int ny,
                         const char *operators, const int start[3], void *u, void *v, void *w, int dtype,
                         const char *axes, const int extents[9], const ptrdiff_t strides[9], const char *source,
                         const char *options, long long seed, cfdseed_report *report, char *message,
                         size_t message_size) {
    const char *fn = "cfdseed_init_field_f";
    Call c{};
    int initialized = 0;
    MPI_Initialized(&initialized);
    c.comm = initialized ? MPI_Comm_f2c(comm) : MPI_COMM_NULL;
    c.fcomm = comm;
    c.shape = shape, c.lengths = lengths, c.y = y, c.ny = ny, c.operators = operators;
    c.start = start, c.arrays[0] = u, c.arrays[1] = v, c.arrays[2] = w, c.dtype = dtype;
    c.axes = axes, c.source = source, c.options = options, c.seed = seed;
    c.missing = !extents ? "extents" : !strides ? "strides" : nullptr;
    if (c.missing) return run(c, fn, report, message, message_size);  // agreed like every local failure
    std::copy(extents, extents + 9, c.extents);
    std::copy(strides, strides + 9, c.strides);
    int idx[3];
    axis_index(axes, idx);
    for (int p = 0; p < 3; ++p) c.count[idx[p] < 0 ? p : idx[p]] = extents[p];  // the block is u's extents
    return run(c, fn, report, message, message_size);
}

int cfdseed_finalize(void) {
    // another thread would restore the starter's thread state and wait for its own GIL for ever
    if (g_started && !g_finalized && std::this_thread::get_id() != g_owner) return CFDSEED_ERROR_PYTHON;
    if (g_started && !g_finalized) {
        PyEval_RestoreThread(g_main);
        Py_XDECREF(g_bridge);
        g_bridge = nullptr;
        py::finalize_interpreter();
        g_finalized = true;
    }
    return CFDSEED_OK;
}

}  // extern "C"
