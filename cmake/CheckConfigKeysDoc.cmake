# Test script: regenerates docs/CONFIG-KEYS.md with GENERATOR and fails when the committed DOC
# differs (the doc is stale: the key table in configs/deepspeed_keys.cpp changed without it).
# Usage: cmake -DGENERATOR=<troupe_config_keys_doc> -DDOC=<docs/CONFIG-KEYS.md> -P this file
execute_process(COMMAND ${GENERATOR} OUTPUT_VARIABLE generated RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${GENERATOR} failed (${rc})")
endif()
if(NOT EXISTS ${DOC})
  message(FATAL_ERROR "${DOC} is missing: run `${GENERATOR} > ${DOC}`")
endif()
file(READ ${DOC} committed)
if(NOT committed STREQUAL generated)
  message(FATAL_ERROR "${DOC} is stale (configs/deepspeed_keys.cpp changed): run `${GENERATOR} > ${DOC}` and commit it")
endif()
