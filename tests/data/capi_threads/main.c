/* One rank, a 4 x 9 x 4 plug field: the first cfdseed_init_field on a pthread (which starts the
 * embedded Python), a second on the main thread, then cfdseed_finalize from the main thread, which
 * is not the starter: it must return CFDSEED_ERROR_PYTHON, not hang. Prints one status per line. */
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>

#include "cfdseed.h"

enum { NX = 4, NY = 9, NZ = 4, N = NX * NY * NZ };
static double u[N], v[N], w[N];

static int seed_once(void) {
    const int shape[3] = {NX, NY, NZ}, start[3] = {0, 0, 0}, count[3] = {NX, NY, NZ};
    const double lengths[3] = {2.0, 2.0, 1.0};
    double y[NY];
    for (int j = 0; j < NY; ++j) y[j] = 2.0 * j / (NY - 1);
    const ptrdiff_t strides[3] = {NY * NX, NX, 1};
    char message[512];
    int status = cfdseed_init_field(MPI_COMM_WORLD, shape, lengths, y, "central", start, count, u, v, w,
                                    CFDSEED_DOUBLE, "zyx", strides, "plug", "{}", 1, NULL, message, sizeof message);
    if (status) printf("message: %s\n", message);
    return status;
}

static void *first_call(void *out) {
    *(int *)out = seed_once();
    return NULL;
}

int main(int argc, char **argv) {
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int first = -1;
    pthread_t t;
    pthread_create(&t, NULL, first_call, &first);
    pthread_join(t, NULL);
    printf("first call (thread): %d\n", first);
    printf("second call (main): %d\n", seed_once());
    printf("finalize (main): %d\n", cfdseed_finalize());
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
