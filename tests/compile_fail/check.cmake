# cmake -P driver of lcmae_compile_fail_test (see CMakeLists.txt here). Inputs (-D): CXX, FLAGS,
# INCLUDES ('|'-separated), SOURCE, REGEX, WORK_DIR. Succeeds only if SOURCE fails to compile
# and the compiler output matches REGEX; if SOURCE mentions LCMAE_COMPILE_FAIL, it must also
# compile cleanly without that macro.
foreach(_v CXX SOURCE REGEX WORK_DIR)
  if(NOT DEFINED ${_v} OR "${${_v}}" STREQUAL "")
    message(FATAL_ERROR "compile_fail: ${_v} is not set")
  endif()
endforeach()
string(REPLACE "|" ";" _flags "${FLAGS}")
string(REPLACE "|" ";" _incs "${INCLUDES}")
set(_args ${_flags})
foreach(_d IN LISTS _incs)
  if(NOT _d STREQUAL "")
    list(APPEND _args "-I${_d}")
  endif()
endforeach()
file(MAKE_DIRECTORY "${WORK_DIR}")

function(_compile out_rc out_log)
  execute_process(
    COMMAND "${CXX}" ${_args} ${ARGN} -fsyntax-only "${SOURCE}"
    WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  set(${out_rc} "${_rc}" PARENT_SCOPE)
  set(${out_log} "${_out}" PARENT_SCOPE)
endfunction()

file(READ "${SOURCE}" _text)
string(FIND "${_text}" "LCMAE_COMPILE_FAIL" _guarded)
set(_defs "")
if(NOT _guarded EQUAL -1)
  set(_defs -DLCMAE_COMPILE_FAIL)
  _compile(_rc _log)
  if(NOT _rc EQUAL 0)
    message("compile_fail verdict: CONTROL_FAILED")
    message(FATAL_ERROR "compile_fail: ${SOURCE} does not compile even WITHOUT LCMAE_COMPILE_FAIL, "
                        "so its failure would prove nothing. Compiler output:\n${_log}")
  endif()
endif()

_compile(_rc _log ${_defs})
if(_rc EQUAL 0)
  message("compile_fail verdict: COMPILED")
  message(FATAL_ERROR "compile_fail: ${SOURCE} COMPILED, but it must not (expected an error "
                      "matching \"${REGEX}\")")
endif()
if(NOT _log MATCHES "${REGEX}")
  message("compile_fail verdict: WRONG_REASON")
  message(FATAL_ERROR "compile_fail: ${SOURCE} failed to compile, but not for the expected reason: "
                      "the output does not match \"${REGEX}\". Compiler output:\n${_log}")
endif()
string(REGEX MATCH "[^\n]*${REGEX}[^\n]*" _line "${_log}")
message("compile_fail verdict: FAILS_AS_EXPECTED")
message(STATUS "compile_fail: ${SOURCE} fails as expected: ${_line}")
