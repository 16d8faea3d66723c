# Helpers to register tests.
#   wm_add_unit_test(name src...)                 plain GoogleTest, one process
#   wm_add_mpi_test(name RANKS 1 2 4 SOURCES ...)  GoogleTest under mpirun at each rank count,
#                                                  with tests/common/mpi_gtest_main.cpp as main
set(WM_MPIEXEC_FLAGS --oversubscribe)
set(WM_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=1")

function(wm_add_unit_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE wafermesh_lib GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT 300 LABELS unit)
endfunction()

function(wm_add_mpi_test name)
  cmake_parse_arguments(A "" "" "RANKS;SOURCES" ${ARGN})
  add_executable(${name} ${A_SOURCES} ${PROJECT_SOURCE_DIR}/tests/common/mpi_gtest_main.cpp)
  target_link_libraries(${name} PRIVATE wafermesh_lib GTest::gtest)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/common)
  foreach(n IN LISTS A_RANKS)
    add_test(NAME ${name}_np${n}
             COMMAND ${MPIEXEC_EXECUTABLE} ${WM_MPIEXEC_FLAGS} ${MPIEXEC_NUMPROC_FLAG} ${n}
                     $<TARGET_FILE:${name}>)
    set_tests_properties(${name}_np${n} PROPERTIES TIMEOUT 300 LABELS mpi
                         ENVIRONMENT "${WM_MPI_ENV}")
  endforeach()
endfunction()
