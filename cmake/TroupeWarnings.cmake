# Compiler settings for troupe's own targets. Third-party headers come in as SYSTEM includes, so
# -Werror applies to our code only.
function(troupe_target_defaults target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Werror -Wno-missing-field-initializers>)
  # GCC 12's -Wrestrict misfires on std::string concatenation inlined at -O3 (GCC bug 105329).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Wno-restrict>)
  endif()
  if(TROUPE_SANITIZE)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()

# A project library: sources, its public include root is the repository root ("memory/tensor.hpp")
# in the build tree and <prefix>/include once installed. troupe_<x> is installed and exported as
# troupe::<x> (cmake/TroupeInstall.cmake) unless marked INTERNAL (the command line's own code).
function(troupe_library name)
  cmake_parse_arguments(ARG "INTERNAL" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT ARG_SOURCES)  # a folder whose code has not been written yet
    return()
  endif()
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
                                            $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  target_compile_features(${name} PUBLIC cxx_std_20)  # the headers need C++20 from users too
  troupe_target_defaults(${name})
  if(NOT ARG_INTERNAL)
    troupe_export_library(${name})
  endif()
endfunction()

# Marks a library for installation and export as troupe::<name without "troupe_">.
function(troupe_export_library name)
  string(REGEX REPLACE "^troupe_" "" short ${name})
  set_target_properties(${name} PROPERTIES EXPORT_NAME ${short})
  add_library(troupe::${short} ALIAS ${name})
  set_property(GLOBAL APPEND PROPERTY TROUPE_EXPORTED_LIBRARIES ${name})
endfunction()
