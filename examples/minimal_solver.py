"""A minimal mpi4py "solver" that receives its initial condition from cfdseed.

It decomposes a 64 x 65 x 48 channel into pencils on its own (no help from cfdseed), allocates its
own Fortran-ordered (x, z, y) arrays as a spectral code such as Dedalus would, lets
``cfdseed.init_field`` fill them (by default from the packaged GAN, at Re_tau = 180 in wall units
h = u_tau = 1), prints the report of the checks init_field ran on rank 0 and, with ``--picture``,
gathers the field for a quick-look PNG (u' on a y-z plane and on an x-z plane near the wall)::

    .venv/bin/mpiexec -n 4 .venv/bin/python examples/minimal_solver.py [--source gan] [--seed 1] [--picture ic.png]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from mpi4py import MPI

import cfdseed


def my_decomposition(comm: MPI.Intracomm, shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The solver's own x-z pencils: whole wall-normal lines on every rank."""
    px, pz = MPI.Compute_dims(comm.Get_size(), 2)
    cx, cz = divmod(comm.Get_rank(), pz)

    def split(n: int, parts: int, i: int) -> slice:
        return slice(i * n // parts, (i + 1) * n // parts)

    return split(shape[0], px, cx), slice(0, shape[1]), split(shape[2], pz, cz)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="gan", help="a registered cfdseed source name (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--picture", default=None, help="write a quick-look PNG of the delivered field here")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    # an exception on any rank (here or in the solver's own code) ends the job instead of hanging it
    with cfdseed.abort_on_error(comm):
        shape, lengths = (64, 65, 48), (4 * np.pi, 2.0, 4 * np.pi / 3)
        local = my_decomposition(comm, shape)
        # collective: a mistake in any rank's block raises the same error on every rank
        grid = cfdseed.Grid.collective(comm, shape, lengths, y="chebyshev", local=local)

        # the solver's own storage: three separate (x, z, y) Fortran arrays
        sx, sy, sz = grid.local_shape
        u, v, w = (np.zeros((sx, sz, sy), dtype=np.float64, order="F") for _ in range(3))

        # result=True: the report of the checks init_field ran comes back (no second check_field)
        seeded = cfdseed.init_field(comm, grid, source=args.source, seed=args.seed, out=(u, v, w), axes="xzy",
                                    result=True)
        if rank == 0:
            print(f"{size} rank(s), block of rank 0: {grid.local_shape} (x, y, z)")
            print(seeded.report)
        if args.picture:
            from cfdseed.generate import quicklook
            from cfdseed.transport import gather

            field = gather(comm, grid, (u, v, w), axes="xzy")  # collective; the global field on rank 0 only
            if rank == 0:
                png = quicklook(args.picture, field, grid, re_tau=180.0, title=f"minimal_solver --source {args.source}")
                print(f"picture: {png}")


if __name__ == "__main__":
    main()
