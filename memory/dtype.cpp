// Scalar dtype conversions (see dtype.hpp for the rounding contract).
#include "memory/dtype.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace troupe {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f16:
      return 2;
    case DType::bf16:
      return 2;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
  }
  throw std::invalid_argument("dtype_size: unknown dtype");
}

std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::i32:
      return "i32";
    case DType::i64:
      return "i64";
  }
  return "unknown";
}

bool parse_dtype(std::string_view name, DType& out) {
  for (DType d : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64}) {
    if (dtype_name(d) == name) {
      out = d;
      return true;
    }
  }
  return false;
}

bool is_floating(DType dtype) {
  return dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16;
}

std::uint16_t f32_to_f16_bits(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    const bool is_nan = abs > 0x7f800000u;
    return static_cast<std::uint16_t>(sign | 0x7c00u |
                                      (is_nan ? 0x0200u | ((abs >> 13) & 0x3ffu) : 0u));
  }
  if (abs >= 0x477ff000u) {  // rounds to a value >= 65520: overflow to infinity
    return static_cast<std::uint16_t>(sign | 0x7c00u);
  }
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // Shift the full significand (with the implicit 1) into half's subnormal range, rounding to
    // nearest even on the bits shifted out.
    const int exponent = static_cast<int>(abs >> 23);
    if (exponent < 102) return static_cast<std::uint16_t>(sign);  // < 2^-25: rounds to zero
    const std::uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - exponent;  // 14..24
    std::uint32_t half = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1u);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
    return static_cast<std::uint16_t>(sign | half);
  }
  // Normal: rebias the exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
  std::uint32_t half = ((abs - 0x38000000u) >> 13);
  const std::uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;
  return static_cast<std::uint16_t>(sign | half);
}

float f16_bits_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = static_cast<std::uint32_t>(bits & 0x8000u) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1fu;
  const std::uint32_t mantissa = bits & 0x3ffu;
  std::uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent == 0) {
    if (mantissa == 0) {
      out = sign;
    } else {  // subnormal half: exact in fp32
      const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
      return sign ? -magnitude : magnitude;
    }
  } else {
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(out);
}

std::uint16_t f32_to_bf16_bits(float value) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet, never round it into infinity
    return static_cast<std::uint16_t>((x >> 16) | 0x0040u);
  }
  const std::uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>((x + rounding) >> 16);
}

float bf16_bits_to_f32(std::uint16_t bits) {
  return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
}

namespace {

double load_as_double(const void* src, DType dtype, std::size_t i) {
  switch (dtype) {
    case DType::f32:
      return static_cast<const float*>(src)[i];
    case DType::f16:
      return f16_bits_to_f32(static_cast<const std::uint16_t*>(src)[i]);
    case DType::bf16:
      return bf16_bits_to_f32(static_cast<const std::uint16_t*>(src)[i]);
    case DType::i32:
      return static_cast<const std::int32_t*>(src)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const std::int64_t*>(src)[i]);
  }
  return 0.0;
}

}  // namespace

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, std::size_t count) {
  if (count == 0) return;  // an empty vector's data() may be null, which memcpy must not see
  if (src_dtype == dst_dtype) {
    std::memcpy(dst, src, count * dtype_size(src_dtype));
    return;
  }
  // Integer <-> integer keeps full i64 precision; everything else passes through fp32 or double.
  if (src_dtype == DType::i64 && dst_dtype == DType::i32) {
    for (std::size_t i = 0; i < count; ++i)
      static_cast<std::int32_t*>(dst)[i] =
          static_cast<std::int32_t>(static_cast<const std::int64_t*>(src)[i]);
    return;
  }
  for (std::size_t i = 0; i < count; ++i) {
    const double v = load_as_double(src, src_dtype, i);
    switch (dst_dtype) {
      case DType::f32:
        static_cast<float*>(dst)[i] = static_cast<float>(v);
        break;
      // Going through float first is exact for every source except i64 / i32 of large magnitude,
      // whose f16/bf16 value is then double-rounded; such inputs never reach these formats here.
      case DType::f16:
        static_cast<std::uint16_t*>(dst)[i] = f32_to_f16_bits(static_cast<float>(v));
        break;
      case DType::bf16:
        static_cast<std::uint16_t*>(dst)[i] = f32_to_bf16_bits(static_cast<float>(v));
        break;
      case DType::i32:
        static_cast<std::int32_t*>(dst)[i] = static_cast<std::int32_t>(v);
        break;
      case DType::i64:
        static_cast<std::int64_t*>(dst)[i] = static_cast<std::int64_t>(v);
        break;
    }
  }
}

}  // namespace troupe
