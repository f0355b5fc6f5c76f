# CUDA detection. nvcc lives in /usr/local/cuda/bin and is often not on PATH; CUDA must never be
# named in project() because configuring fails hard on machines without nvcc. CI machines have
# nvcc but no GPU: they compile every .cu file and the GPU tests skip (exit 77).
include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
set(_troupe_cuda_default OFF)
if(CMAKE_CUDA_COMPILER)
  set(_troupe_cuda_default ON)
endif()
option(TROUPE_CUDA "Build the CUDA kernels and GPU tests" ${_troupe_cuda_default})
option(TROUPE_NCCL "Build the NCCL collective backend (needs TROUPE_CUDA)" ${_troupe_cuda_default})

if(TROUPE_CUDA)
  # Shared runtime: otherwise cudart is linked twice (static by nvcc, shared by CUDA::cudart).
  set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)
  if(NOT CMAKE_CUDA_ARCHITECTURES)
    # "native" fails on machines without a GPU and nvcc 13 rejects anything below sm_75.
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 knows no CUDA20 dialect for nvcc
  find_package(CUDAToolkit REQUIRED)
  if(TROUPE_NCCL)
    find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
    find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include)
    if(NOT NCCL_LIBRARY OR NOT NCCL_INCLUDE_DIR)
      message(FATAL_ERROR "TROUPE_NCCL=ON but NCCL was not found (set NCCL_LIBRARY / NCCL_INCLUDE_DIR or -DTROUPE_NCCL=OFF)")
    endif()
  endif()
  # cuDNN backs the CUDA convolution (kernels/cuda/conv_cudnn.cpp). On by default where its header
  # and library are found (CI has them under /usr/local/cuda); without it conv2d_available() is
  # false and the GPU tests skip their convolution cases.
  find_path(CUDNN_INCLUDE_DIR cudnn.h
            HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/include /usr/include/x86_64-linux-gnu)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/lib/x86_64-linux-gnu)
  set(_troupe_cudnn_default OFF)
  if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(_troupe_cudnn_default ON)
  endif()
  option(TROUPE_CUDNN "Build the cuDNN convolution (needs TROUPE_CUDA)" ${_troupe_cudnn_default})
  if(TROUPE_CUDNN AND NOT (CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY))
    message(FATAL_ERROR "TROUPE_CUDNN=ON but cuDNN was not found (set CUDNN_INCLUDE_DIR / CUDNN_LIBRARY or -DTROUPE_CUDNN=OFF)")
  endif()
else()
  set(TROUPE_NCCL OFF CACHE BOOL "" FORCE)
  set(TROUPE_CUDNN OFF CACHE BOOL "" FORCE)
endif()
message(STATUS "troupe: CUDA=${TROUPE_CUDA} NCCL=${TROUPE_NCCL} cuDNN=${TROUPE_CUDNN}")
