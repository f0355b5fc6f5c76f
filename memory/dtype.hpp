// Element types troupe stores, their sizes and names, and the scalar conversions between fp32 and
// the 16-bit float formats. Conversions to f16/bf16 round to nearest, ties to even, and keep
// infinities and NaN (a NaN stays a quiet NaN); overflow rounds to infinity as IEEE 754 says.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace troupe {

enum class DType : std::uint8_t { f32, f16, bf16, i32, i64 };

std::size_t dtype_size(DType dtype);
std::string_view dtype_name(DType dtype);
// Parses "f32", "f16", "bf16", "i32", "i64"; returns false for anything else.
bool parse_dtype(std::string_view name, DType& out);
bool is_floating(DType dtype);

std::uint16_t f32_to_f16_bits(float value);
float f16_bits_to_f32(std::uint16_t bits);
std::uint16_t f32_to_bf16_bits(float value);
float bf16_bits_to_f32(std::uint16_t bits);

// Element-wise conversion between any two dtypes (float <-> int truncates toward zero like a C
// cast).
void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::size_t count);

}  // namespace troupe
