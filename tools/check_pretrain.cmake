# Multi-step checks of `lcmae pretrain` on a small subset of Fashion-MNIST (a few seconds each):
#   MODE=run_resume  run A: 4 optimiser steps at once; run B: 2 steps, then --resume for 2 more.
#                    Both write config.json, metrics.jsonl (one line per logging step, no duplicate
#                    after the resume), checkpoint and training state; A's and B's final
#                    checkpoint.safetensors and train_state.safetensors are identical byte for byte;
#                    B's resumed run also runs the k-NN on a few hundred images (eval-knn.json).
#   MODE=sigint      Ctrl-C (SIGINT, sent twice 50 ms apart as `timeout` does) saves and exits 0;
#                    the run resumes from that save.
#   MODE=nan         an absurd --blr makes the loss non-finite: exit status 1, a message naming the
#                    step and the loss part, and the checkpoint of the last good step stays.
#   MODE=precision   --precision: a bad value exits 2; bf16 trains (CPU with AVX512-BF16, read from
#                    /proc/cpuinfo) or exits 1 naming AVX512-BF16 (other CPUs).
# EXE: the lcmae program; WORK: a scratch folder (emptied first).
# `lcmae pretrain ARGN` must exit with expect_rc and print something matching regex (check_cli.cmake).
function(run_lcmae expect_rc regex)
  set(EXPECT_RC ${expect_rc})
  set(REGEX "${regex}")
  set(ARGS pretrain ${ARGN})
  include(${CMAKE_CURRENT_LIST_DIR}/check_cli.cmake)
endfunction()
function(require_files dir)
  foreach(f IN LISTS ARGN)
    if(NOT EXISTS ${dir}/${f})
      message(FATAL_ERROR "${dir}/${f} was not written")
    endif()
  endforeach()
endfunction()
# The "step" of every metrics.jsonl line, as a list.
function(metric_steps file out_var)
  file(STRINGS ${file} lines)
  set(steps)
  foreach(l IN LISTS lines)
    string(REGEX REPLACE "^\\{\"step\": ([0-9]+),.*" "\\1" s "${l}")
    list(APPEND steps ${s})
  endforeach()
  set(${out_var} "${steps}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
set(common --limit 256 --batch 4 --accum 2 --save-every 2 --log-every 1 --threads 1 --seed 7)
if(MODE STREQUAL "run_resume")
  run_lcmae(0 "--steps reached: saving.*saved .*/A/checkpoint.safetensors .* at step 4" ${common} --steps 4 --no-eval --out ${WORK}/A)
  require_files(${WORK}/A config.json metrics.jsonl checkpoint.safetensors train_state.safetensors)
  file(READ ${WORK}/A/config.json cfg)
  if(NOT cfg MATCHES "\"steps\": 4," OR NOT cfg MATCHES "\"accum\": 2," OR NOT cfg MATCHES "\"blr\": 0.0015,")
    message(FATAL_ERROR "config.json does not hold the effective options:\n${cfg}")
  endif()
  metric_steps(${WORK}/A/metrics.jsonl a_steps)
  if(NOT a_steps STREQUAL "1;2;3;4")
    message(FATAL_ERROR "metrics.jsonl of A has the steps '${a_steps}', expected 1;2;3;4")
  endif()
  # B: the same options from a --config file (the command line's --steps 2 wins over its 99), then
  # --resume for the rest (--out defaults to the --resume folder)
  file(WRITE ${WORK}/b.json "{\"limit\": 256, \"batch\": 4, \"accum\": 2, \"save-every\": 2, \"log-every\": 1,
 \"threads\": 1, \"seed\": 7, \"blr\": 1.5e-3, \"steps\": 99, \"no-eval\": true}")
  run_lcmae(0 "--steps reached: saving.*at step 2" --config ${WORK}/b.json --steps 2 --out ${WORK}/B)
  # a line a crash could have left after the last save is dropped on resume
  file(APPEND ${WORK}/B/metrics.jsonl "{\"step\": 3, \"epoch\": 0}\n")
  run_lcmae(0 "resumed from .* at step 2 .*at step 4.*k-NN .k 20, T 0.07. mean +top-1 .*cls +top-1"
            ${common} --steps 4 --resume ${WORK}/B --eval-limit-train 200 --eval-limit-test 100)
  require_files(${WORK}/B config.json metrics.jsonl checkpoint.safetensors train_state.safetensors eval-knn.json)
  metric_steps(${WORK}/B/metrics.jsonl b_steps)
  if(NOT b_steps STREQUAL "1;2;3;4")
    message(FATAL_ERROR "metrics.jsonl of B has the steps '${b_steps}', expected 1;2;3;4")
  endif()
  foreach(f checkpoint.safetensors train_state.safetensors)
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${WORK}/A/${f} ${WORK}/B/${f} RESULT_VARIABLE diff)
    if(diff)
      message(FATAL_ERROR "${f}: the resumed run differs from the uninterrupted one")
    endif()
  endforeach()
  message("exact resume: A and B wrote identical checkpoint and training state")
elseif(MODE STREQUAL "nan")
  run_lcmae(1 "stopped at step 3 .micro-batch 2.: the (mim|gg|mim and gg) loss(es)? (is|are) not finite .*the last good checkpoint in .* is step 2"
            --limit 64 --batch 16 --blr 1e30 --save-every 1 --threads 1 --no-eval --out ${WORK}/N)
  require_files(${WORK}/N checkpoint.safetensors train_state.safetensors)
elseif(MODE STREQUAL "sigint")
  # Ctrl-C after a few seconds: saved, exit status 0, and the run resumes from there. The request
  # comes twice, 50 ms apart, as coreutils' `timeout` sends it (to the child, then to its process
  # group): one request, which must not end the program before it saves.
  execute_process(COMMAND sh -c "\"$0\" pretrain --limit 4096 --batch 8 --threads 1 --no-eval --save-every 0 --out \"$1\" &
                                 p=$!; sleep 6; kill -INT $p; sleep 0.05; kill -INT $p; wait $p" ${EXE} ${WORK}/S
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}${err}")
  if(NOT rc STREQUAL "0" OR NOT "${out}" MATCHES "stop requested: saving and exiting.*saved .*checkpoint.safetensors")
    message(FATAL_ERROR "Ctrl-C: exit status '${rc}', expected 0 after 'stop requested: saving and exiting'")
  endif()
  require_files(${WORK}/S checkpoint.safetensors train_state.safetensors metrics.jsonl config.json)
  run_lcmae(0 "resumed from .*S at step [0-9]+" --limit 4096 --batch 8 --threads 1 --no-eval --save-every 0 --minutes 0.01
            --resume ${WORK}/S)
elseif(MODE STREQUAL "precision")
  run_lcmae(2 "option --precision expects fp32, tf32 or bf16, got 'fp16'" --precision fp16 --out ${WORK}/P0)
  # bf16 trains where the CPU has AVX512-BF16 (read at test time) and is refused, naming it, elsewhere
  file(READ /proc/cpuinfo cpuinfo)
  if(cpuinfo MATCHES "avx512_bf16")
    run_lcmae(0 "GEMM bf16 .own AVX512-BF16 kernel.*--steps reached: saving" --precision bf16 --limit 64 --batch 16 --steps 2
              --threads 1 --no-eval --out ${WORK}/P1)
    file(READ ${WORK}/P1/config.json cfg)
    if(NOT cfg MATCHES "\"precision\": \"bf16\"")
      message(FATAL_ERROR "config.json does not record the precision:\n${cfg}")
    endif()
  else()
    run_lcmae(1 "AVX512-BF16" --precision bf16 --limit 64 --batch 16 --steps 2 --threads 1 --no-eval --out ${WORK}/P1)
  endif()
else()
  message(FATAL_ERROR "MODE must be run_resume, nan, sigint or precision")
endif()
