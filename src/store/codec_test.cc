// The byte codec under every column and log record: varints round-trip at any position
// (the unchecked fast path and the checked path near the end), and truncated or overlong
// input fails instead of reading past the end. Also the inline name comparison of the
// dictionaries and the parse threads' memo.
#include "store/codec.h"
#include "store/dictionary.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace sibyl {
namespace {

TEST(CodecTest, VarintsRoundTripAtEveryDistanceFromTheEnd) {
  std::mt19937_64 random(7);
  std::vector<uint64_t> values = {0, 1, 127, 128, 16383, 16384, UINT64_MAX, UINT64_MAX - 1,
                                  uint64_t{1} << 63, uint64_t{1} << 35};
  for (int i = 0; i < 2000; ++i) values.push_back(random() >> (random() % 64));
  std::string bytes;
  ByteWriter writer(&bytes);
  for (uint64_t v : values) writer.Varint(v);
  ByteReader reader(bytes);
  for (uint64_t v : values) ASSERT_EQ(reader.Varint(), v);
  EXPECT_TRUE(reader.ok());
  EXPECT_TRUE(reader.done());
  // Also signed values, which zig-zag through the same path.
  std::string signed_bytes;
  ByteWriter signed_writer(&signed_bytes);
  for (uint64_t v : values) signed_writer.SignedVarint(static_cast<int64_t>(v));
  ByteReader signed_reader(signed_bytes);
  for (uint64_t v : values) ASSERT_EQ(signed_reader.SignedVarint(), static_cast<int64_t>(v));
  EXPECT_TRUE(signed_reader.ok());
}

TEST(CodecTest, TruncatedVarintFailsWithoutReadingPastTheEnd) {
  std::string bytes;
  ByteWriter writer(&bytes);
  writer.Varint(UINT64_MAX);  // 10 bytes
  for (size_t keep = 0; keep < bytes.size(); ++keep) {
    ByteReader reader(std::string_view(bytes).substr(0, keep));
    reader.Varint();
    EXPECT_FALSE(reader.ok()) << keep;
  }
}

TEST(CodecTest, OverlongVarintFails) {
  // Eleven continuation bytes then an end byte, far from the end of the input; and ten
  // continuation bytes that are the whole input.
  std::string overlong(11, '\x80');
  overlong.push_back('\x01');
  std::string far = overlong + std::string(20, '\0');
  ByteReader fast(far);
  fast.Varint();
  EXPECT_FALSE(fast.ok());
  std::string ten(10, '\x80');
  ByteReader exact(ten);
  exact.Varint();
  EXPECT_FALSE(exact.ok());
}

TEST(CodecTest, CompressedBlockRoundTripsAndDetectsDamage) {
  std::string raw;
  for (int i = 0; i < 10000; ++i) raw += std::to_string(i * 7919 % 1000);
  std::string block;
  AppendCompressedBlock(raw, 3, &block);
  ByteReader reader(block);
  Result<std::string> back = ReadCompressedBlock(reader, "block");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, raw);
  EXPECT_TRUE(reader.done());
  std::string damaged = block;
  damaged[damaged.size() / 2] ^= 0x20;
  ByteReader damaged_reader(damaged);
  Result<std::string> bad = ReadCompressedBlock(damaged_reader, "block");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().ToString().find("checksum"), std::string::npos);
}

}  // namespace
}  // namespace sibyl

namespace sibyl {
namespace {

// SameName compares with overlapping loads: every length, a difference at every place.
TEST(SameNameTest, FindsEveryDifferenceAtEveryLength) {
  for (size_t n = 0; n <= 40; ++n) {
    std::string a(n, 'x');
    for (size_t i = 0; i < n; ++i) a[i] = static_cast<char>('a' + i % 26);
    EXPECT_TRUE(SameName(a, std::string(a)));
    EXPECT_FALSE(SameName(a, a + "y"));
    for (size_t i = 0; i < n; ++i) {
      std::string b = a;
      b[i] ^= 1;
      EXPECT_FALSE(SameName(a, b)) << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace sibyl
