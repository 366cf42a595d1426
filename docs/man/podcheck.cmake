# cmake -DPODCHECKER=/usr/bin/podchecker -DPOD=FILE.pod -P podcheck.cmake
#
# Runs podchecker with every warning enabled on FILE.pod and fails on an
# error or a warning, printing podchecker's report; a clean page prints
# nothing (podchecker's "pod syntax OK" is dropped to keep the build quiet).
if(NOT PODCHECKER OR NOT POD)
  message(FATAL_ERROR "usage: cmake -DPODCHECKER=... -DPOD=... -P podcheck.cmake")
endif()
execute_process(
  COMMAND ${PODCHECKER} -warnings -warnings ${POD}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR out MATCHES "\\*\\*\\* (ERROR|WARNING)")
  message(FATAL_ERROR "podchecker ${POD} (status ${rc}):\n${out}")
endif()
