# cmake -P driver of the consumer tests (see CMakeLists.txt here). Inputs (-D):
#   MODE          find_package | add_subdirectory
#   CONSUMER_DIR  the consumer's source dir        WORK_DIR  scratch dir (wiped first)
#   CXX           the compiler                     GENERATOR the CMake generator
#   LCMAE_SOURCE_DIR  lcmae's source tree          LCMAE_BUILD_DIR  lcmae's build tree (find_package)
#   PREFIX        install prefix, wiped first (find_package)
#   EXPECT_DATA   ON if the find_package consumer must get lcmae::data
# Steps: [install lcmae into PREFIX], configure, build, run; the program's output must
# end in LCMAE_CONSUMER_OK.
function(step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  message("---- ${what}: ${ARGN}\n${_out}")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "consumer (${MODE}): ${what} failed (${_rc})")
  endif()
  set(step_output "${_out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_bin "${WORK_DIR}/build")
set(_cfg -S "${CONSUMER_DIR}/${MODE}" -B "${_bin}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}"
         -DCMAKE_BUILD_TYPE=)

if(MODE STREQUAL "find_package")
  set(_prefix "${PREFIX}")
  file(REMOVE_RECURSE "${_prefix}")
  step("install lcmae" "${CMAKE_COMMAND}" --install "${LCMAE_BUILD_DIR}" --prefix "${_prefix}")
  foreach(_f include/lcmae/vit/config.hpp include/lcmae/models/vit_encoder.hpp)
    if(NOT EXISTS "${_prefix}/${_f}")
      message(FATAL_ERROR "the install has no ${_f}")
    endif()
  endforeach()
  # The prefix only: lcmae must not be found through its build tree or the source tree.
  step("configure" "${CMAKE_COMMAND}" ${_cfg} "-DCMAKE_PREFIX_PATH=${_prefix}"
       -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON "-DEXPECT_DATA=${EXPECT_DATA}")
  string(REGEX MATCH "from [^;\n]*" _from "${step_output}")
  if(NOT _from MATCHES "^from ${_prefix}/")
    message(FATAL_ERROR "lcmae was not found in the install prefix ${_prefix} (${_from})")
  endif()
elseif(MODE STREQUAL "add_subdirectory")
  step("configure" "${CMAKE_COMMAND}" ${_cfg} "-DLCMAE_SOURCE_DIR=${LCMAE_SOURCE_DIR}")
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

step("build" "${CMAKE_COMMAND}" --build "${_bin}" --target consumer)
step("run" "${_bin}/consumer")
if(NOT step_output MATCHES "6880 params, output 5 x 16" OR NOT step_output MATCHES "LCMAE_CONSUMER_OK")
  message(FATAL_ERROR "the consumer did not print LCMAE_CONSUMER_OK")
endif()
if(MODE STREQUAL "find_package" AND EXPECT_DATA AND NOT step_output MATCHES "lcmae::data linked")
  message(FATAL_ERROR "the consumer was not built with lcmae::data")
endif()
