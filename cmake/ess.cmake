# ess_embed(TARGET VAR FILES...) compiles the given files into a static library exposing
#   const ess_embedded_file VAR[]; const size_t VAR_count;
# so binaries carry proto/ and migrations/ with them (no runtime file lookups in containers).
function(ess_embed target var)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${var}_embedded.c)
  # A CMake list cannot cross the command line intact: pass it '|'-separated.
  string(REPLACE ";" "|" files_arg "${ARGN}")
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DVAR=${var} -DBASE=${CMAKE_CURRENT_SOURCE_DIR}
            "-DFILES=${files_arg}" -P ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${ARGN} ${CMAKE_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "Embedding ${var}" VERBATIM)
  add_library(${target} STATIC ${out})
  target_include_directories(${target} PUBLIC ${CMAKE_SOURCE_DIR}/cmake/include)
endfunction()

# ess_add_test(NAME SOURCES src... LIBS lib... LABELS label...)
# Registers one CTest entry per ESS_TEST(case) found in the sources, named NAME.case, each
# running `NAME case`. The case list is generated from the sources, so it cannot drift.
function(ess_add_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  set(cases "")
  foreach(src IN LISTS T_SOURCES)
    file(STRINGS ${src} lines REGEX "^ESS_TEST\\([a-z0-9_]+\\)")
    foreach(line IN LISTS lines)
      string(REGEX REPLACE "^ESS_TEST\\(([a-z0-9_]+)\\).*" "\\1" case "${line}")
      list(APPEND cases ${case})
    endforeach()
  endforeach()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${T_SOURCES})
  set(entries "")
  foreach(case IN LISTS cases)
    string(APPEND entries "    ESS_TEST_ENTRY(${case}) \\\n")
  endforeach()
  set(list_dir ${CMAKE_CURRENT_BINARY_DIR}/${name}_list)
  file(CONFIGURE OUTPUT ${list_dir}/ess_test_list.h
       CONTENT "#define ESS_TEST_LIST(ESS_TEST_ENTRY) \\\n${entries}\n" @ONLY)
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${ESS_TEST_OUTPUT_DIRECTORY})
  target_include_directories(${name} PRIVATE ${list_dir} ${CMAKE_SOURCE_DIR}/tests/support)
  target_link_libraries(${name} PRIVATE ess_testkit ${T_LIBS} PkgConfig::CMOCKA)
  foreach(case IN LISTS cases)
    add_test(NAME ${name}.${case} COMMAND ${name} ${case})
    set_tests_properties(${name}.${case} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 120
      ENVIRONMENT "ESS_BIN_DIR=${CMAKE_BINARY_DIR}/bin;ESS_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  endforeach()
endfunction()
