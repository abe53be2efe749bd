#!/usr/bin/env bash
# Set up the optional Dedalus environment .venv-dedalus (idempotent; used by CI).
#
# Dedalus 3 links Debian's libfftw3_mpi, which is built against Debian's Open MPI, so this
# environment uses the system Open MPI throughout: mpi4py is built from source with the system
# mpicc and cfdseed is installed WITHOUT the "mpi" extra (that extra pulls the PyPI mpich wheel,
# which must never be mixed into this environment). The core environment .venv is separate.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv-dedalus
export OMP_NUM_THREADS=1

# 1. System libraries: FFTW (serial + MPI) and Open MPI with headers.
need_apt=0
for f in /usr/include/fftw3.h /usr/include/fftw3-mpi.h /usr/bin/mpicc /usr/bin/mpiexec /usr/bin/python3; do
    [ -e "$f" ] || need_apt=1
done
# the Debian interpreter builds the C extensions: it needs its headers and the venv module
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c "import ensurepip, sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 1)" 2>/dev/null || need_apt=1
fi
if [ "$need_apt" = 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-dedalus: FFTW/Open MPI missing and not root; install as root:" >&2
        echo "  apt-get install -y libfftw3-dev libfftw3-mpi-dev libopenmpi-dev openmpi-bin python3-dev python3-venv" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q libfftw3-dev libfftw3-mpi-dev libopenmpi-dev openmpi-bin python3-dev python3-venv
fi

MPI_INC=$(mpicc --showme:incdirs | awk '{print $1}')
MPI_LIB=$(mpicc --showme:libdirs | awk '{print $1}')
ARCH_LIB=/usr/lib/$(gcc -dumpmachine)
export CC=mpicc
export MPI_INCLUDE_PATH=$MPI_INC MPI_LIBRARY_PATH=$MPI_LIB
export FFTW_INCLUDE_PATH=/usr/include FFTW_LIBRARY_PATH=$ARCH_LIB
export FFTW_STATIC=0
export PATH=/usr/bin:$PATH   # the system mpicc/mpiexec, never a venv's

# 2. The virtual environment.
PY=$VENV/bin/python
if [ ! -x "$PY" ]; then
    /usr/bin/python3 -m venv "$VENV"
    $PY -m pip install -q --upgrade pip wheel setuptools
fi
$PY -m pip install -q "numpy>=1.24" scipy h5py "cython" pytest hypothesis matplotlib

# 3. mpi4py against the system Open MPI (source build), unless already so.
if ! $PY -c "from mpi4py import MPI; import sys; sys.exit(0 if 'Open MPI' in MPI.Get_library_version() else 1)" 2>/dev/null; then
    $PY -m pip install -q --no-cache-dir --no-binary mpi4py --force-reinstall mpi4py
fi
if $PY -m pip show mpich >/dev/null 2>&1; then
    $PY -m pip uninstall -y -q mpich
fi

# 4. Dedalus from source against FFTW and Open MPI.
if ! $PY -c "import dedalus.public" 2>/dev/null; then
    $PY -m pip install -q --no-cache-dir --no-binary dedalus --no-build-isolation dedalus \
        || $PY -m pip install -q --no-cache-dir --no-binary dedalus dedalus
fi

# 5. cfdseed (torch pinned, from the local wheel), editable, without the mpi extra.
$PY -m pip install -q torch==2.13.0
$PY -m pip install -q pybind11 scikit-build-core
$PY -m pip install -q --no-build-isolation -e "$ROOT[test,dedalus]"

# 6. Smoke check: one MPI, Dedalus importable.
$PY - <<'PYEOF'
from mpi4py import MPI
import dedalus, dedalus.public  # noqa: F401
lib = MPI.Get_library_version()
if "Open MPI" not in lib:
    raise SystemExit(f"mpi4py uses {lib.splitlines()[0]!r}, expected the system Open MPI")
print("dedalus", dedalus.__version__, "|", lib.splitlines()[0])
PYEOF
