/* cfdseed.h: the C API of cfdseed (libcfdseed), for C, C++ and (through module cfdseed) Fortran.
 *
 * One collective call seeds the solver's own distributed arrays, exactly as cfdseed.init_field does
 * for an mpi4py solver: the field is built on rank 0 of `comm` and streamed into every rank's block,
 * then checked. libcfdseed embeds the Python environment recorded by `cfdseed cmakedir` (README:
 * "Compiled solvers: C, C++ and Fortran"); the solver's MPI must be the MPI of that environment's
 * mpi4py (checked: CFDSEED_ERROR_MPI otherwise).
 *
 * Axis order of the grid is always (x, y, z) = (streamwise, wall-normal, spanwise); walls at y = 0
 * and y = ly; x and z periodic and uniform.
 */
#ifndef CFDSEED_H
#define CFDSEED_H

#include <stddef.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes: the same on every rank (cfdseed/capi.py STATUS, Fortran module cfdseed). */
enum cfdseed_status {
    CFDSEED_OK = 0,
    CFDSEED_ERROR_ARGUMENT = 1,      /* a bad argument of the call: options JSON, a null pointer */
    CFDSEED_ERROR_GRID = 2,          /* shape, lengths, y, operators; ranks disagreeing on them */
    CFDSEED_ERROR_DECOMPOSITION = 3, /* blocks outside the grid, gaps, overlaps */
    CFDSEED_ERROR_TRANSPORT = 4,     /* the arrays: extents, axes, element type, shared memory */
    CFDSEED_ERROR_SOURCE = 5,        /* unknown source, bad options, the source failed */
    CFDSEED_ERROR_CONSTRAINT = 6,    /* delivered, but a check failed: the report says which */
    CFDSEED_ERROR_MPI = 7,           /* MPI not initialised, or not the MPI of mpi4py */
    CFDSEED_ERROR_PYTHON = 8,        /* the embedded Python could not start or import cfdseed */
    CFDSEED_ERROR_INTERNAL = 9       /* anything else (a bug): the message names it */
};

/* Element type of the solver's arrays. */
enum cfdseed_dtype {
    CFDSEED_FLOAT = 1,  /* float  (real(c_float)) */
    CFDSEED_DOUBLE = 2  /* double (real(c_double)) */
};

/* The checks init_field ran on the delivered field (cfdseed.constraints.ConstraintReport).
 * Velocities are relative to U_ref = |bulk velocity|, divergence to U_ref / h, h = ly / 2. */
typedef struct cfdseed_report {
    int checked;            /* 1: the checks ran (CFDSEED_OK or CFDSEED_ERROR_CONSTRAINT), else 0 */
    int passed;             /* 1: every figure within its tolerance */
    char operators[16];     /* "central" or "spectral": the operators of divergence, walls, bulk */
    double no_slip;         /* max |u_i| on the walls / U_ref */
    double seam_x;          /* largest jump across the periodic seam / largest interior increment */
    double seam_z;
    double divergence_max;  /* max |div u| / (U_ref / h) */
    double divergence_rms;  /* RMS of div u / (U_ref / h) */
    double cross_flow;      /* max over y of |plane-mean v|, |plane-mean w| / U_ref */
    double bulk_velocity;   /* trapezoidal bulk velocity (solver units) */
    double u_ref;           /* U_ref */
    double max_abs;         /* max |u_i| (solver units) */
    long long nonfinite;    /* NaN/Inf count */
} cfdseed_report;

/* Collective over `comm`: build an initial condition and write this rank's block into u, v, w.
 *
 * comm          the solver's communicator; every rank calls
 * shape         global points (nx, ny, nz)
 * lengths       box (lx, ly, lz)
 * y             ny wall-normal coordinates, strictly increasing inside [0, ly]
 * operators     "central" (finite differences/volumes) or "spectral"; NULL: "central"
 * start, count  this rank's block in (x, y, z): first global index (0-based) and number of points
 * u, v, w       the solver's arrays, pointing at the block's first point (after any halo)
 * dtype         CFDSEED_FLOAT or CFDSEED_DOUBLE
 * axes          which of x, y, z each array index is, in index order: "xyz", "zyx", "xzy", ...
 * strides       element strides of the three array indices (in the order of `axes`); any values,
 *               so halo cells and either memory order need no copy. A C array a[nz+2][ny][nx+2]
 *               (one halo cell in x and z) with the block at &a[1][0][1]: axes "zyx",
 *               strides {ny*(nx+2), nx+2, 1}; Fortran u(0:nx+1, ny, 0:nz+1) at u(1,1,1): axes "xyz",
 *               strides {1, nx+2, (nx+2)*ny}
 * source        a registered source: "gan", "plug", "laminar", "trig", "streaks", "analytic", ...
 * options       the source's options as a JSON object ("{\"re_tau\": 180}"); NULL or "": none
 * seed          random seed; negative: fresh entropy
 * report        filled on every rank when the checks ran; may be NULL
 * message       filled with "" or the error, the same on every rank (truncated to message_size - 1)
 *
 * Returns CFDSEED_OK or an error status, the same on every rank. Never aborts the job and never
 * hangs on an error of one rank. On any error but CFDSEED_ERROR_CONSTRAINT the arrays are untouched.
 */
int cfdseed_init_field(MPI_Comm comm,
                       const int shape[3], const double lengths[3], const double *y, const char *operators,
                       const int start[3], const int count[3],
                       void *u, void *v, void *w, int dtype, const char *axes, const ptrdiff_t strides[3],
                       const char *source, const char *options, long long seed,
                       cfdseed_report *report, char *message, size_t message_size);

/* The same call for Fortran and other languages (module cfdseed wraps it): the communicator as a
 * Fortran handle, y with its length, and each array with its own extents and strides in the order
 * of `axes` (extents[0..2], strides[0..2] for u, [3..5] for v, [6..8] for w); the block's count is
 * u's extents, start is 0-based. */
int cfdseed_init_field_f(MPI_Fint comm,
                         const int shape[3], const double lengths[3], const double *y, int ny,
                         const char *operators, const int start[3],
                         void *u, void *v, void *w, int dtype, const char *axes,
                         const int extents[9], const ptrdiff_t strides[9],
                         const char *source, const char *options, long long seed,
                         cfdseed_report *report, char *message, size_t message_size);

/* Optional, not collective: end the embedded interpreter if libcfdseed started it (call it before
 * MPI_Finalize, if at all, from the thread that made the first cfdseed_init_field call). Later calls
 * of cfdseed_init_field return CFDSEED_ERROR_PYTHON: numpy cannot be started twice in one process.
 * Returns CFDSEED_OK; CFDSEED_ERROR_PYTHON (and leaves Python running) from any other thread.
 *
 * The embedded interpreter ignores PYTHONHOME, PYTHONPATH and the other PYTHON* variables of the
 * job: it runs exactly the environment `cfdseed cmakedir` recorded. If it cannot start, every later
 * call returns the same CFDSEED_ERROR_PYTHON (CPython cannot be started twice). */
int cfdseed_finalize(void);

#ifdef __cplusplus
}
#endif

#endif /* CFDSEED_H */
