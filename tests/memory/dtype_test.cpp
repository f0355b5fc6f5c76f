// dtype conversions: round-to-nearest-even on the 16-bit formats, at the edges that break naive
// conversions (subnormals, the largest finite value, overflow, infinities, NaN).
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "memory/dtype.hpp"

using namespace troupe;

TEST_CASE("f16 conversion keeps exact values and rounds ties to even") {
  CHECK(f32_to_f16_bits(0.0f) == 0x0000);
  CHECK(f32_to_f16_bits(-0.0f) == 0x8000);
  CHECK(f32_to_f16_bits(1.0f) == 0x3c00);
  CHECK(f32_to_f16_bits(-2.0f) == 0xc000);
  CHECK(f32_to_f16_bits(65504.0f) == 0x7bff);  // max finite
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even -> 1.
  CHECK(f32_to_f16_bits(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3·2^-11 is halfway between 1+2^-10 (odd) and 1+2^-9 (even) -> rounds up.
  CHECK(f32_to_f16_bits(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  // Just above the halfway point rounds up.
  CHECK(f32_to_f16_bits(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)) == 0x3c01);
}

TEST_CASE("f16 conversion handles overflow, infinities and NaN") {
  CHECK(f32_to_f16_bits(65519.0f) == 0x7bff);  // below the rounding boundary
  CHECK(f32_to_f16_bits(65520.0f) == 0x7c00);  // halfway to 2^16 rounds to inf
  CHECK(f32_to_f16_bits(1e10f) == 0x7c00);
  CHECK(f32_to_f16_bits(-std::numeric_limits<float>::infinity()) == 0xfc00);
  const std::uint16_t nan = f32_to_f16_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7c00) == 0x7c00);
  CHECK((nan & 0x03ff) != 0);
  CHECK(std::isnan(f16_bits_to_f32(nan)));
  CHECK(std::isinf(f16_bits_to_f32(0x7c00)));
}

TEST_CASE("f16 subnormals convert exactly and round to nearest even") {
  const float smallest = std::ldexp(1.0f, -24);  // smallest positive subnormal half
  CHECK(f32_to_f16_bits(smallest) == 0x0001);
  CHECK(f16_bits_to_f32(0x0001) == smallest);
  CHECK(f16_bits_to_f32(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(f32_to_f16_bits(std::ldexp(1023.0f, -24)) == 0x03ff);
  CHECK(f32_to_f16_bits(smallest * 0.5f) == 0x0000);  // tie with 0 (even)
  CHECK(f32_to_f16_bits(smallest * 1.5f) == 0x0002);  // tie 1 vs 2 -> even 2
  CHECK(f32_to_f16_bits(std::nextafter(smallest * 0.5f, 1.0f)) == 0x0001);
  CHECK(f32_to_f16_bits(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  CHECK(f32_to_f16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
}

TEST_CASE("every f16 value survives a round trip through f32") {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = f16_bits_to_f32(h);
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16_bits(f) == h);
  }
}

TEST_CASE("bf16 conversion rounds to nearest even and keeps specials") {
  CHECK(f32_to_bf16_bits(1.0f) == 0x3f80);
  CHECK(f32_to_bf16_bits(std::bit_cast<float>(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(f32_to_bf16_bits(std::bit_cast<float>(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(f32_to_bf16_bits(std::bit_cast<float>(0x3f808001u)) == 0x3f81);
  CHECK(f32_to_bf16_bits(std::numeric_limits<float>::max()) == 0x7f80);  // overflows to inf
  CHECK(f32_to_bf16_bits(std::bit_cast<float>(0x7f7f0000u)) == 0x7f7f);  // max finite bf16
  CHECK(f32_to_bf16_bits(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload lives only in the low bits must not turn into infinity.
  CHECK(std::isnan(bf16_bits_to_f32(f32_to_bf16_bits(std::bit_cast<float>(0x7f800001u)))));
  CHECK(f32_to_bf16_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
  CHECK(f32_to_bf16_bits(std::bit_cast<float>(0x00010000u)) == 0x0001);  // bf16 subnormal
}

TEST_CASE("convert moves between every dtype pair") {
  const float src[4] = {1.5f, -2.0f, 0.0f, 100.0f};
  std::uint16_t half[4];
  convert(src, DType::f32, half, DType::f16, 4);
  float back[4];
  convert(half, DType::f16, back, DType::f32, 4);
  for (int i = 0; i < 4; ++i) CHECK(back[i] == src[i]);
  std::int64_t ints[4];
  convert(src, DType::f32, ints, DType::i64, 4);
  CHECK(ints[0] == 1);
  CHECK(ints[1] == -2);
  std::int32_t narrow[4];
  convert(ints, DType::i64, narrow, DType::i32, 4);
  CHECK(narrow[3] == 100);
  DType parsed{};
  CHECK(parse_dtype("bf16", parsed));
  CHECK(parsed == DType::bf16);
  CHECK_FALSE(parse_dtype("fp8", parsed));
}
