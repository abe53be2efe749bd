"""Write a small synthetic slice dataset for examples/train_tiny.toml (seconds, no solver needed).

    python examples/make_tiny_dataset.py [OUT.h5] [N]

Fields are not turbulence: a laminar-like mean profile plus random spanwise-periodic streaks and
noise that vanish at the walls, in the cfdseed.slices format, on a 33 x 32 Chebyshev x uniform grid.
"""

from __future__ import annotations

import sys

import numpy as np

from cfdseed.slices import DatasetWriter
from cfdseed.grid import wall_normal


def main(out: str = "examples/tiny.h5", n: int = 512, ny: int = 33, nz: int = 32) -> None:
    rng = np.random.default_rng(0)
    ly, lz = 2.0, np.pi
    y = wall_normal("chebyshev", ny, ly)
    z = np.arange(nz) * lz / nz
    wall = (y * (ly - y))[None, None, :, None]  # (1, 1, ny, 1), zero at both walls
    with DatasetWriter(out, y, z, attrs=dict(re_tau=180.0, nu=1.0 / 180.0, u_tau=1.0, ly=ly, lz=lz,
                                             source="synthetic: examples/make_tiny_dataset.py")) as w:
        for s in range(0, n, 128):
            m = min(128, n - s)
            k = rng.integers(1, 4, size=(m, 3, 1, 1))
            phase = rng.uniform(0, 2 * np.pi, size=(m, 3, 1, 1))
            streaks = np.sin(2 * np.pi * k * z[None, None, None, :] / lz + phase)  # (m, 3, 1, nz)
            f = wall * (0.3 * streaks + 0.1 * rng.standard_normal((m, 3, ny, nz)))
            f[:, 0] += 15.0 * wall[:, 0]  # mean streamwise profile
            w.append(f, t=np.arange(s, s + m) * 0.05)
    print(f"wrote {out}: {n} slices of 3 x {ny} x {nz}")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(int(a) for a in sys.argv[2:3]))
