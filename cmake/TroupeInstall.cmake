# `cmake --install`: the libraries (exported as troupe::<name>), the public headers under
# include/<folder>/, the troupe command, and lib/cmake/troupe/ with troupeConfig.cmake, its version
# file and FindCAF.cmake (Debian's CAF has no CMake config, so users get troupe's find module).
include(CMakePackageConfigHelpers)

get_property(_troupe_libraries GLOBAL PROPERTY TROUPE_EXPORTED_LIBRARIES)
install(TARGETS ${_troupe_libraries} troupe_openblas EXPORT troupeTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Headers keep the repository layout, so `#include "memory/tensor.hpp"` works the same installed.
foreach(_dir memory kernels comm trace data models configs actors scheduler)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${_dir}
          FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h" PATTERN "*.cuh")
endforeach()

set(_troupe_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/troupe)
install(EXPORT troupeTargets NAMESPACE troupe:: DESTINATION ${_troupe_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/troupeConfig.cmake.in
  ${PROJECT_BINARY_DIR}/troupeConfig.cmake INSTALL_DESTINATION ${_troupe_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/troupeConfig.cmake ${PROJECT_BINARY_DIR}/troupeConfigVersion.cmake
        ${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake DESTINATION ${_troupe_cmake_dir})
