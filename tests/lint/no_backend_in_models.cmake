# Principle 10, "models never name a backend", as a test: fails when a source file under models/,
# actors/, scheduler/, tools/ or examples/ includes a backend's kernel header (kernels/cpu/,
# kernels/cuda/) or calls into a backend namespace (cpu::, cuda::) instead of the ops layer
# (kernels/ops/). Run as `cmake -DROOT=<source dir> -P no_backend_in_models.cmake`; it reads the
# source tree only, so it works from a fresh clone before anything is built.
if(NOT DEFINED ROOT)
  message(FATAL_ERROR "no_backend_in_models: pass -DROOT=<source dir>")
endif()

set(violations "")
foreach(folder models actors scheduler tools examples)
  file(GLOB_RECURSE sources "${ROOT}/${folder}/*.hpp" "${ROOT}/${folder}/*.cpp"
       "${ROOT}/${folder}/*.h" "${ROOT}/${folder}/*.cc" "${ROOT}/${folder}/*.cu"
       "${ROOT}/${folder}/*.inc")
  foreach(source ${sources})
    file(STRINGS "${source}" lines)
    set(line_number 0)
    foreach(line IN LISTS lines)
      math(EXPR line_number "${line_number} + 1")
      # `cpu::` at a word start (so `to_cpu::` or `cpu_context` do not count).
      if(line MATCHES "#[ \t]*include[ \t]*[<\"]kernels/(cpu|cuda)/" OR
         line MATCHES "(^|[^A-Za-z0-9_])(cpu|cuda)::")
        file(RELATIVE_PATH relative "${ROOT}" "${source}")
        string(APPEND violations "  ${relative}:${line_number}: ${line}\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR
    "models, actors, scheduler, tools and examples must reach kernels through the ops layer "
    "(kernels/ops/, DESIGN.md principle 10), but these lines name a backend:\n${violations}")
endif()
message(STATUS "no backend named outside kernels/")
