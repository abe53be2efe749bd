/* A minimal MPI "solver" in C that receives its initial condition from cfdseed.
 *
 * It decomposes the README's main-job channel (64 x 65 x 48, 4 pi x 2 x 4 pi/3, Chebyshev y with
 * walls) into x-z pencils on its own, allocates halo'd arrays u[nz+2][ny+2][nx+2] (one ghost cell
 * on every side, as a finite-volume code would), lets cfdseed_init_field fill the interior through
 * strides (no copy) from the packaged GAN, and prints the report on rank 0:
 *
 *   .venv/bin/mpiexec -n 4 build/c/solver [--source gan] [--options '{"re_tau": 180}'] [--seed 1]
 *
 * --fault block:R  rank R declares a block shifted by one point; --fault null:R  rank R passes no y.
 * Either must give every rank the same error status and message and leave every array untouched.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "cfdseed.h"

#define SENTINEL -7.0 /* what the solver's arrays hold before seeding; halo cells keep it after */

static int split(int n, int parts, int i) { return (int)((long)i * n / parts); } /* start of block i */

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    const char *source = "gan", *options = NULL, *fault = NULL;
    long long seed = 1;
    for (int a = 1; a + 1 < argc; a += 2) {
        if (!strcmp(argv[a], "--source")) source = argv[a + 1];
        else if (!strcmp(argv[a], "--options")) options = argv[a + 1];
        else if (!strcmp(argv[a], "--seed")) seed = atoll(argv[a + 1]);
        else if (!strcmp(argv[a], "--fault")) fault = argv[a + 1];
    }
    int fault_rank = fault && strchr(fault, ':') ? atoi(strchr(fault, ':') + 1) : -1;

    /* the global grid: Chebyshev-Lobatto points with both walls */
    const int shape[3] = {64, 65, 48};
    const double pi = acos(-1.0), lengths[3] = {4 * pi, 2.0, 4 * pi / 3};
    double y[65];
    for (int j = 0; j < shape[1]; ++j) y[j] = 0.5 * lengths[1] * (1.0 - cos(pi * j / (shape[1] - 1)));
    y[0] = 0.0, y[shape[1] - 1] = lengths[1];

    /* the solver's own x-z pencils: whole wall-normal lines on every rank */
    int dims[2] = {0, 0};
    MPI_Dims_create(size, 2, dims);
    int cx = rank / dims[1], cz = rank % dims[1];
    int start[3] = {split(shape[0], dims[0], cx), 0, split(shape[2], dims[1], cz)};
    int count[3] = {split(shape[0], dims[0], cx + 1) - start[0], shape[1],
                    split(shape[2], dims[1], cz + 1) - start[2]};
    if (fault && !strncmp(fault, "block", 5) && rank == fault_rank) start[0] += 1;

    /* halo'd storage u[nz+2][ny+2][nx+2]; the block starts at u[1][1][1] */
    const int hx = count[0] + 2, hy = count[1] + 2, hz = count[2] + 2;
    const size_t n = (size_t)hx * hy * hz;
    double *u = malloc(n * sizeof *u), *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; ++i) u[i] = v[i] = w[i] = SENTINEL;
    const size_t first = (size_t)hy * hx + hx + 1;
    const ptrdiff_t strides[3] = {(ptrdiff_t)hy * hx, hx, 1}; /* of the indices [z][y][x] */

    cfdseed_report report;
    char message[1024];
    int status = cfdseed_init_field(MPI_COMM_WORLD, shape, lengths,
                                    fault && !strncmp(fault, "null", 4) && rank == fault_rank ? NULL : y,
                                    "central", start, count, u + first, v + first, w + first, CFDSEED_DOUBLE,
                                    "zyx", strides, source, options, seed, &report, message, sizeof message);

    /* what the call wrote: interior points only (halo untouched), or nothing at all on error */
    long touched_halo = 0, touched = 0;
    for (int k = 0; k < hz; ++k)
        for (int j = 0; j < hy; ++j)
            for (int i = 0; i < hx; ++i) {
                size_t at = ((size_t)k * hy + j) * hx + i;
                int halo = k == 0 || k == hz - 1 || j == 0 || j == hy - 1 || i == 0 || i == hx - 1;
                int changed = u[at] != SENTINEL || v[at] != SENTINEL || w[at] != SENTINEL;
                touched_halo += halo && changed;
                touched += changed;
            }
    MPI_Allreduce(MPI_IN_PLACE, &touched_halo, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &touched, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);

    if (status != CFDSEED_OK) {
        printf("rank %d: status %d: %s\n", rank, status, message);
        printf("rank %d: arrays untouched: %s\n", rank, touched == 0 ? "yes" : "no");
    } else if (rank == 0) {
        printf("%d rank(s), block of rank 0: x %d:%d, y %d:%d, z %d:%d\n", size, start[0], start[0] + count[0],
               start[1], start[1] + count[1], start[2], start[2] + count[2]);
        printf("report: passed %d, operators %s\n", report.passed, report.operators);
        printf("  no-slip          %.4g\n", report.no_slip);
        printf("  seam x           %.4g\n", report.seam_x);
        printf("  seam z           %.4g\n", report.seam_z);
        printf("  divergence max   %.4g\n", report.divergence_max);
        printf("  divergence rms   %.4g\n", report.divergence_rms);
        printf("  mean cross-flow  %.4g\n", report.cross_flow);
        printf("  bulk velocity    %.6g\n", report.bulk_velocity);
        printf("  max |u|          %.6g\n", report.max_abs);
        printf("halo untouched: %s\n", touched_halo == 0 ? "yes" : "no");
    }
    fflush(stdout);
    free(u), free(v), free(w);
    cfdseed_finalize(); /* optional: before MPI_Finalize */
    MPI_Finalize();
    return status;
}
