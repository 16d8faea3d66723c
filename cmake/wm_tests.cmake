# Helpers to register tests.
#   wm_add_unit_test(name src...)                 plain GoogleTest, one process
#   wm_add_mpi_test(name RANKS 1 2 4 SOURCES ...)  GoogleTest under mpirun at each rank count,
#                                                  with tests/common/mpi_gtest_main.cpp as main
# A test links the layer it tests, named by its folder: tests/noc/... links wm_noc (and through it
# the layers below), so a test sees the headers its layer sees and no others.
set(WM_MPIEXEC_FLAGS --oversubscribe)
# The tests' MPI jobs run on one machine: the ob1 layer over shared memory (UCX's start-up costs
# 0.2 s per job), and mpirun reports a job whose rank exited non-zero at once (it otherwise waits
# odls_base_sigkill_timeout, 1 s, twice, although every rank has exited by itself).
set(WM_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1;OMPI_MCA_pml=ob1;OMPI_MCA_odls_base_sigkill_timeout=0")

function(wm_test_layer out)
  get_filename_component(layer "${CMAKE_CURRENT_SOURCE_DIR}" NAME)
  if(NOT TARGET wm_${layer})
    message(FATAL_ERROR "tests in ${CMAKE_CURRENT_SOURCE_DIR}: no layer wm_${layer} to link")
  endif()
  set(${out} wm_${layer} PARENT_SCOPE)
endfunction()

function(wm_add_unit_test name)
  wm_test_layer(layer)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE ${layer} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS unit)
endfunction()

function(wm_add_mpi_test name)
  cmake_parse_arguments(A "" "" "RANKS;SOURCES" ${ARGN})
  wm_test_layer(layer)
  add_executable(${name} ${A_SOURCES} ${PROJECT_SOURCE_DIR}/tests/common/mpi_gtest_main.cpp)
  target_link_libraries(${name} PRIVATE ${layer} GTest::gtest)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
  foreach(n IN LISTS A_RANKS)
    add_test(NAME ${name}_np${n}
             COMMAND ${MPIEXEC_EXECUTABLE} ${WM_MPIEXEC_FLAGS} ${MPIEXEC_NUMPROC_FLAG} ${n}
                     $<TARGET_FILE:${name}>)
    set_tests_properties(${name}_np${n} PROPERTIES TIMEOUT 300 LABELS mpi
                         ENVIRONMENT "${WM_MPI_ENV}")
  endforeach()
endfunction()
