! Module cfdseed: the Fortran face of libcfdseed (cfdseed.h), through iso_c_binding.
!
!   use cfdseed
!   type(cfdseed_report) :: report
!   call cfdseed_init_field(comm, shape, lengths, y, start, u(1:n1,1:n2,1:n3), v(1:n1,1:n2,1:n3), &
!                           w(1:n1,1:n2,1:n3), "xyz", "gan", status, options='{"re_tau": 180}', &
!                           seed=1, report=report, message=message)
!
! Collective over comm (an integer handle: MPI_COMM_WORLD of `use mpi`, or comm%MPI_VAL of mpi_f08).
! Pass the interior of halo'd storage as array sections: the module takes the block's extents from
! them and each index's element stride from the addresses of neighbouring elements, so the halo is
! skipped without a copy. Pass sections or whole arrays, never expressions (u*1 is a temporary).
! start(1:3) is the 1-based global index of the block's first point along x, y, z (2decomp's
! xstart); axes names what each array index is ("xyz" for u(x, y, z)). Arrays real(c_double) or
! real(c_float); lengths and y real(c_double), or real(c_float) with real(c_float) arrays. status is
! CFDSEED_OK or an error, with the same value and message on every rank.
module cfdseed
  use, intrinsic :: iso_c_binding
  implicit none
  private

  public :: cfdseed_init_field, cfdseed_finalize, cfdseed_report
  public :: CFDSEED_OK, CFDSEED_ERROR_ARGUMENT, CFDSEED_ERROR_GRID, CFDSEED_ERROR_DECOMPOSITION, &
            CFDSEED_ERROR_TRANSPORT, CFDSEED_ERROR_SOURCE, CFDSEED_ERROR_CONSTRAINT, CFDSEED_ERROR_MPI, &
            CFDSEED_ERROR_PYTHON, CFDSEED_ERROR_INTERNAL

  ! status codes: those of cfdseed.h
  integer, parameter :: CFDSEED_OK = 0, CFDSEED_ERROR_ARGUMENT = 1, CFDSEED_ERROR_GRID = 2, &
                        CFDSEED_ERROR_DECOMPOSITION = 3, CFDSEED_ERROR_TRANSPORT = 4, &
                        CFDSEED_ERROR_SOURCE = 5, CFDSEED_ERROR_CONSTRAINT = 6, CFDSEED_ERROR_MPI = 7, &
                        CFDSEED_ERROR_PYTHON = 8, CFDSEED_ERROR_INTERNAL = 9
  integer(c_int), parameter :: C_FLOAT_CODE = 1, C_DOUBLE_CODE = 2

  !> The checks init_field ran (cfdseed_report of cfdseed.h); velocities / U_ref, divergence / (U_ref/h).
  type :: cfdseed_report
    logical :: checked = .false.           ! the checks ran (CFDSEED_OK or CFDSEED_ERROR_CONSTRAINT)
    logical :: passed = .false.            ! every figure within its tolerance
    character(len=16) :: operators = ''    ! "central" or "spectral"
    real(c_double) :: no_slip = 0, seam_x = 0, seam_z = 0, divergence_max = 0, divergence_rms = 0, &
                      cross_flow = 0, bulk_velocity = 0, u_ref = 0, max_abs = 0
    integer(c_long_long) :: nonfinite = 0
  end type

  type, bind(c) :: c_report
    integer(c_int) :: checked, passed
    character(kind=c_char) :: operators(16)
    real(c_double) :: no_slip, seam_x, seam_z, divergence_max, divergence_rms, cross_flow, &
                      bulk_velocity, u_ref, max_abs
    integer(c_long_long) :: nonfinite
  end type

  interface cfdseed_init_field
    module procedure init_field_double, init_field_float, init_field_single
  end interface

  interface
    integer(c_int) function c_init_field(comm, shape, lengths, y, ny, operators, start, u, v, w, dtype, &
                                         axes, extents, strides, source, options, seed, report, message, &
                                         message_size) bind(c, name="cfdseed_init_field_f")
      import :: c_int, c_double, c_char, c_ptr, c_ptrdiff_t, c_long_long, c_size_t, c_report
      integer(c_int), value :: comm, ny, dtype
      integer(c_int), intent(in) :: shape(3), start(3), extents(9)
      real(c_double), intent(in) :: lengths(3), y(*)
      character(kind=c_char), intent(in) :: operators(*), axes(*), source(*), options(*)
      type(c_ptr), value :: u, v, w
      integer(c_ptrdiff_t), intent(in) :: strides(9)
      integer(c_long_long), value :: seed
      type(c_report), intent(out) :: report
      character(kind=c_char), intent(out) :: message(*)
      integer(c_size_t), value :: message_size
    end function

    integer(c_int) function c_finalize() bind(c, name="cfdseed_finalize")
      import :: c_int
    end function
  end interface

contains

  subroutine init_field_double(comm, shape, lengths, y, start, u, v, w, axes, source, status, &
                               options, seed, operators, report, message)
    integer, intent(in) :: comm, shape(3), start(3)
    real(c_double), intent(in) :: lengths(3), y(:)
    real(c_double), intent(inout), target :: u(:,:,:), v(:,:,:), w(:,:,:)
    character(len=*), intent(in) :: axes, source
    integer, intent(out) :: status
    character(len=*), intent(in), optional :: options, operators
    integer, intent(in), optional :: seed
    type(cfdseed_report), intent(out), optional :: report
    character(len=*), intent(out), optional :: message
    type(c_ptr) :: p(3)
    integer(c_int) :: ext(9)
    integer(c_ptrdiff_t) :: str(9)

    call layout_double(u, p(1), ext(1:3), str(1:3))
    call layout_double(v, p(2), ext(4:6), str(4:6))
    call layout_double(w, p(3), ext(7:9), str(7:9))
    call call_c(comm, shape, lengths, y, start, p, C_DOUBLE_CODE, ext, str, axes, source, status, &
                options, seed, operators, report, message)
  end subroutine

  subroutine init_field_float(comm, shape, lengths, y, start, u, v, w, axes, source, status, &
                              options, seed, operators, report, message)
    integer, intent(in) :: comm, shape(3), start(3)
    real(c_double), intent(in) :: lengths(3), y(:)
    real(c_float), intent(inout), target :: u(:,:,:), v(:,:,:), w(:,:,:)
    character(len=*), intent(in) :: axes, source
    integer, intent(out) :: status
    character(len=*), intent(in), optional :: options, operators
    integer, intent(in), optional :: seed
    type(cfdseed_report), intent(out), optional :: report
    character(len=*), intent(out), optional :: message
    type(c_ptr) :: p(3)
    integer(c_int) :: ext(9)
    integer(c_ptrdiff_t) :: str(9)

    call layout_float(u, p(1), ext(1:3), str(1:3))
    call layout_float(v, p(2), ext(4:6), str(4:6))
    call layout_float(w, p(3), ext(7:9), str(7:9))
    call call_c(comm, shape, lengths, y, start, p, C_FLOAT_CODE, ext, str, axes, source, status, &
                options, seed, operators, report, message)
  end subroutine

  ! A single-precision solver's own call: lengths and y in real(c_float) too (widened exactly).
  subroutine init_field_single(comm, shape, lengths, y, start, u, v, w, axes, source, status, &
                               options, seed, operators, report, message)
    integer, intent(in) :: comm, shape(3), start(3)
    real(c_float), intent(in) :: lengths(3), y(:)
    real(c_float), intent(inout), target :: u(:,:,:), v(:,:,:), w(:,:,:)
    character(len=*), intent(in) :: axes, source
    integer, intent(out) :: status
    character(len=*), intent(in), optional :: options, operators
    integer, intent(in), optional :: seed
    type(cfdseed_report), intent(out), optional :: report
    character(len=*), intent(out), optional :: message

    call init_field_float(comm, shape, real(lengths, c_double), real(y, c_double), start, u, v, w, axes, &
                          source, status, options, seed, operators, report, message)
  end subroutine

  ! First element, extents and element strides of an array (section) as it lies in memory.
  subroutine layout_double(a, first, ext, str)
    real(c_double), intent(in), target :: a(:,:,:)
    type(c_ptr), intent(out) :: first
    integer(c_int), intent(out) :: ext(3)
    integer(c_ptrdiff_t), intent(out) :: str(3)
    integer(c_intptr_t) :: base

    ext = int(shape(a), c_int)
    str = 1
    first = c_null_ptr
    if (any(ext == 0)) return
    first = c_loc(a(1, 1, 1))
    base = transfer(first, base)
    if (ext(1) > 1) str(1) = (transfer(c_loc(a(2, 1, 1)), base) - base) / c_sizeof(a(1, 1, 1))
    if (ext(2) > 1) str(2) = (transfer(c_loc(a(1, 2, 1)), base) - base) / c_sizeof(a(1, 1, 1))
    if (ext(3) > 1) str(3) = (transfer(c_loc(a(1, 1, 2)), base) - base) / c_sizeof(a(1, 1, 1))
  end subroutine

  subroutine layout_float(a, first, ext, str)
    real(c_float), intent(in), target :: a(:,:,:)
    type(c_ptr), intent(out) :: first
    integer(c_int), intent(out) :: ext(3)
    integer(c_ptrdiff_t), intent(out) :: str(3)
    integer(c_intptr_t) :: base

    ext = int(shape(a), c_int)
    str = 1
    first = c_null_ptr
    if (any(ext == 0)) return
    first = c_loc(a(1, 1, 1))
    base = transfer(first, base)
    if (ext(1) > 1) str(1) = (transfer(c_loc(a(2, 1, 1)), base) - base) / c_sizeof(a(1, 1, 1))
    if (ext(2) > 1) str(2) = (transfer(c_loc(a(1, 2, 1)), base) - base) / c_sizeof(a(1, 1, 1))
    if (ext(3) > 1) str(3) = (transfer(c_loc(a(1, 1, 2)), base) - base) / c_sizeof(a(1, 1, 1))
  end subroutine

  subroutine call_c(comm, shape, lengths, y, start, p, dtype, ext, str, axes, source, status, &
                    options, seed, operators, report, message)
    integer, intent(in) :: comm, shape(3), start(3)
    real(c_double), intent(in) :: lengths(3), y(:)
    type(c_ptr), intent(in) :: p(3)
    integer(c_int), intent(in) :: dtype, ext(9)
    integer(c_ptrdiff_t), intent(in) :: str(9)
    character(len=*), intent(in) :: axes, source
    integer, intent(out) :: status
    character(len=*), intent(in), optional :: options, operators
    integer, intent(in), optional :: seed
    type(cfdseed_report), intent(out), optional :: report
    character(len=*), intent(out), optional :: message
    type(c_report) :: rep
    character(kind=c_char) :: buf(4096)
    integer(c_long_long) :: cseed
    integer :: i, n

    cseed = -1
    if (present(seed)) cseed = int(seed, c_long_long)
    status = c_init_field(int(comm, c_int), int(shape, c_int), lengths, y, int(size(y), c_int), &
                          cstr(operators, "central"), int(start - 1, c_int), p(1), p(2), p(3), dtype, &
                          cstr(axes), ext, str, cstr(source), cstr(options, ""), cseed, rep, buf, &
                          int(size(buf), c_size_t))
    if (present(message)) then
      message = ''
      n = 0
      do while (n < size(buf))
        if (buf(n + 1) == c_null_char) exit
        n = n + 1
      end do
      do i = 1, min(n, len(message))
        message(i:i) = buf(i)
      end do
    end if
    if (present(report)) then
      report%checked = rep%checked /= 0
      report%passed = rep%passed /= 0
      report%operators = ''
      do i = 1, size(rep%operators)
        if (rep%operators(i) == c_null_char) exit
        report%operators(i:i) = rep%operators(i)
      end do
      report%no_slip = rep%no_slip
      report%seam_x = rep%seam_x
      report%seam_z = rep%seam_z
      report%divergence_max = rep%divergence_max
      report%divergence_rms = rep%divergence_rms
      report%cross_flow = rep%cross_flow
      report%bulk_velocity = rep%bulk_velocity
      report%u_ref = rep%u_ref
      report%max_abs = rep%max_abs
      report%nonfinite = rep%nonfinite
    end if
  end subroutine

  ! A NUL-terminated copy of s (trailing blanks dropped), or of default where s is absent.
  function cstr(s, default) result(c)
    character(len=*), intent(in), optional :: s, default
    character(kind=c_char, len=:), allocatable :: c

    if (present(s)) then
      c = trim(s) // c_null_char
    else
      c = trim(default) // c_null_char
    end if
  end function

  !> Optional, not collective: end the embedded Python (before MPI_Finalize, if at all).
  subroutine cfdseed_finalize(status)
    integer, intent(out), optional :: status
    integer :: rc

    rc = c_finalize()
    if (present(status)) status = rc
  end subroutine

end module cfdseed
