# Included by cfdseedConfig.cmake, which `cfdseed cmakedir` writes for one Python environment
# (CFDSEED_PYTHON_EXECUTABLE; CFDSEED_PYTHON_SITE, its site-packages folders separated by ':', not a
# CMake list; CFDSEED_CAPI_DIR). Builds cfdseed::cfdseed from source inside the solver's own build,
# with the solver's compilers and MPI (capi/CMakeLists.txt).
if(NOT TARGET cfdseed::cfdseed)
  # libcfdseed is C++ (pybind11's embedding API) on MPI's C API: a C or Fortran solver gets both
  get_property(_cfdseed_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
  foreach(_cfdseed_lang C CXX)
    if(NOT _cfdseed_lang IN_LIST _cfdseed_languages)
      enable_language(${_cfdseed_lang})
    endif()
  endforeach()
  add_subdirectory("${CFDSEED_CAPI_DIR}" "${CMAKE_BINARY_DIR}/_cfdseed" EXCLUDE_FROM_ALL)
  # the solver's `cmake --install` installs libcfdseed into its library folder (the solver's
  # INSTALL_RPATH names it, e.g. "$ORIGIN/../lib"); here, as an EXCLUDE_FROM_ALL folder's own
  # install rules are not run. CFDSEED_INSTALL OFF leaves the library out.
  option(CFDSEED_INSTALL "install libcfdseed with the solver (cmake --install)" ON)
  if(CFDSEED_INSTALL)
    include(GNUInstallDirs)
    install(TARGETS cfdseed LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}" OPTIONAL)  # OPTIONAL: not linked, not built
  endif()
endif()
set(cfdseed_FOUND TRUE)
