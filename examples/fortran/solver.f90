! A minimal MPI "solver" in Fortran that receives its initial condition from cfdseed.
!
! It decomposes the README's main-job channel (64 x 65 x 48, 4 pi x 2 x 4 pi/3, Chebyshev y with
! walls) into x-z pencils on its own, allocates halo'd arrays u(0:n1+1, 0:n2+1, 0:n3+1) as CaNS
! does, lets cfdseed_init_field fill the interior u(1:n1, 1:n2, 1:n3) in place (no copy) from the
! packaged GAN, and prints the report on rank 0:
!
!   mpiexec -n 4 build/fortran/solver [--source gan] [--options '{"re_tau": 180}'] [--seed 1]
!                                     [--precision single]
!
! --precision single: a single-precision solver (real(c_float) arrays, lengths and y).
!
! --fault block:R  rank R declares a block shifted by one point; --fault y:R  rank R passes ny-1
! points of y. Either must give every rank the same error status and message and leave every array
! untouched.
program solver
  use mpi
  use cfdseed
  use, intrinsic :: iso_c_binding, only: c_double, c_float
  implicit none
  integer, parameter :: nx = 64, ny = 65, nz = 48
  real(c_double), parameter :: sentinel = -7   ! the arrays before seeding; the halo keeps it after
  real(c_double), allocatable, target :: u(:,:,:), v(:,:,:), w(:,:,:)
  real(c_float), allocatable, target :: us(:,:,:), vs(:,:,:), ws(:,:,:)
  real(c_double) :: pi, lengths(3), y(ny)
  integer :: ierr, rank, nprocs, dims(2), cx, cz, start(3), n1, n2, n3, j, a, seed, status, fault_rank
  integer :: touched, touched_halo
  character(len=1024) :: arg, val, source, options, fault, message, prec
  type(cfdseed_report) :: report

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, rank, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, nprocs, ierr)

  source = 'gan'; options = ''; fault = ''; seed = 1; prec = 'double'
  do a = 1, command_argument_count() - 1, 2
    call get_command_argument(a, arg)
    call get_command_argument(a + 1, val)
    select case (arg)
    case ('--source'); source = val
    case ('--options'); options = val
    case ('--seed'); read (val, *) seed
    case ('--fault'); fault = val
    case ('--precision'); prec = val
    end select
  end do
  fault_rank = -1
  if (index(fault, ':') > 0) read (fault(index(fault, ':') + 1:), *) fault_rank

  ! the global grid: Chebyshev-Lobatto points with both walls
  pi = acos(-1.0_c_double)
  lengths = [4 * pi, 2.0_c_double, 4 * pi / 3]
  do j = 1, ny
    y(j) = 0.5_c_double * lengths(2) * (1 - cos(pi * (j - 1) / (ny - 1)))
  end do
  y(1) = 0; y(ny) = lengths(2)

  ! the solver's own x-z pencils (whole wall-normal lines); start is 1-based, as 2decomp's xstart
  dims = 0
  call MPI_Dims_create(nprocs, 2, dims, ierr)
  cx = rank / dims(2); cz = mod(rank, dims(2))
  start = [cx * nx / dims(1) + 1, 1, cz * nz / dims(2) + 1]
  n1 = (cx + 1) * nx / dims(1) - cx * nx / dims(1)
  n2 = ny
  n3 = (cz + 1) * nz / dims(2) - cz * nz / dims(2)
  if (fault(1:5) == 'block' .and. rank == fault_rank) start(1) = start(1) + 1

  ! halo'd storage, one ghost cell on every side
  allocate (u(0:n1+1, 0:n2+1, 0:n3+1), v(0:n1+1, 0:n2+1, 0:n3+1), w(0:n1+1, 0:n2+1, 0:n3+1))
  u = sentinel; v = sentinel; w = sentinel

  if (prec == 'single' .and. fault /= '') error stop '--precision single takes no --fault'
  if (prec == 'single') then
    ! the solver's own single-precision arrays and coordinates; widened below for the checks
    allocate (us(0:n1+1, 0:n2+1, 0:n3+1), vs(0:n1+1, 0:n2+1, 0:n3+1), ws(0:n1+1, 0:n2+1, 0:n3+1))
    us = real(sentinel, c_float); vs = us; ws = us
    call cfdseed_init_field(MPI_COMM_WORLD, [nx, ny, nz], real(lengths, c_float), real(y, c_float), start, &
                            us(1:n1, 1:n2, 1:n3), vs(1:n1, 1:n2, 1:n3), ws(1:n1, 1:n2, 1:n3), 'xyz', &
                            trim(source), status, options=trim(options), seed=seed, report=report, &
                            message=message)
    u = us; v = vs; w = ws
  else if (fault(1:2) == 'y:' .and. rank == fault_rank) then
    call cfdseed_init_field(MPI_COMM_WORLD, [nx, ny, nz], lengths, y(1:ny-1), start, u(1:n1, 1:n2, 1:n3), &
                            v(1:n1, 1:n2, 1:n3), w(1:n1, 1:n2, 1:n3), 'xyz', trim(source), status, &
                            options=trim(options), seed=seed, report=report, message=message)
  else
    call cfdseed_init_field(MPI_COMM_WORLD, [nx, ny, nz], lengths, y, start, u(1:n1, 1:n2, 1:n3), &
                            v(1:n1, 1:n2, 1:n3), w(1:n1, 1:n2, 1:n3), 'xyz', trim(source), status, &
                            options=trim(options), seed=seed, report=report, message=message)
  end if

  ! what the call wrote: interior points only (halo untouched), or nothing at all on error
  touched = count(u /= sentinel .or. v /= sentinel .or. w /= sentinel)
  touched_halo = touched - count(u(1:n1, 1:n2, 1:n3) /= sentinel .or. v(1:n1, 1:n2, 1:n3) /= sentinel &
                                 .or. w(1:n1, 1:n2, 1:n3) /= sentinel)
  call MPI_Allreduce(MPI_IN_PLACE, touched, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)
  call MPI_Allreduce(MPI_IN_PLACE, touched_halo, 1, MPI_INTEGER, MPI_SUM, MPI_COMM_WORLD, ierr)

  if (status /= CFDSEED_OK) then
    write (*, '(a,i0,a,i0,2a)') 'rank ', rank, ': status ', status, ': ', trim(message)
    write (*, '(a,i0,2a)') 'rank ', rank, ': arrays untouched: ', merge('yes', 'no ', touched == 0)
  else if (rank == 0) then
    write (*, '(i0,a,6(i0,a))') nprocs, ' rank(s), block of rank 0: x ', start(1) - 1, ':', start(1) - 1 + n1, &
      ', y ', start(2) - 1, ':', start(2) - 1 + n2, ', z ', start(3) - 1, ':', start(3) - 1 + n3, ''
    write (*, '(a,i0,2a)') 'report: passed ', merge(1, 0, report%passed), ', operators ', trim(report%operators)
    write (*, '(a,es11.4)') '  no-slip          ', report%no_slip
    write (*, '(a,es11.4)') '  seam x           ', report%seam_x
    write (*, '(a,es11.4)') '  seam z           ', report%seam_z
    write (*, '(a,es11.4)') '  divergence max   ', report%divergence_max
    write (*, '(a,es11.4)') '  divergence rms   ', report%divergence_rms
    write (*, '(a,es11.4)') '  mean cross-flow  ', report%cross_flow
    write (*, '(a,f11.6)') '  bulk velocity    ', report%bulk_velocity
    write (*, '(a,f11.6)') '  max |u|          ', report%max_abs
    write (*, '(2a)') 'halo untouched: ', merge('yes', 'no ', touched_halo == 0)
  end if
  flush (6)
  call cfdseed_finalize()   ! optional: before MPI_Finalize
  call MPI_Finalize(ierr)
  if (status /= CFDSEED_OK) stop status, quiet=.true.   ! the exit status of the job
end program solver
