# Records the git commit the binary was built from (provenance for results files).
find_package(Git QUIET)
set(WAFERMESH_GIT_COMMIT "unknown")
if(GIT_FOUND AND EXISTS "${PROJECT_SOURCE_DIR}/.git")
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse --short=12 HEAD
                  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
                  OUTPUT_VARIABLE _wm_commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                  RESULT_VARIABLE _wm_rc)
  if(_wm_rc EQUAL 0 AND _wm_commit)
    set(WAFERMESH_GIT_COMMIT "${_wm_commit}")
  endif()
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/version.hpp.in"
               "${PROJECT_BINARY_DIR}/generated/wafermesh/version.hpp" @ONLY)
