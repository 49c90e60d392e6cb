#include "common/checked_json.h"

#include <gtest/gtest.h>

#include <string>

namespace sibyl {
namespace {

const std::string kObject = "{\n \"a\": 1,\n \"b\": [0.5, \"x y\"]\n}";

TEST(CheckedJsonTest, RoundTripGivesTheObjectBack) {
  const std::string file = WithChecksum(kObject);
  EXPECT_TRUE(file.starts_with(R"({"crc32c":")")) << file;
  auto back = VerifyChecksum("f.json", file);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, kObject);
  auto empty = VerifyChecksum("e.json", WithChecksum("{}"));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, "{}");
  EXPECT_EQ(WithChecksum("{}").back(), '}') << "no dangling comma: the file stays JSON";
}

// Every single-byte change anywhere in the file, the checksum member included, is refused
// with the file's name: none can make a checked file pass, or pass as an unchecked one.
TEST(CheckedJsonTest, EveryChangedByteIsRefusedNamingTheFile) {
  const std::string file = WithChecksum(kObject);
  for (size_t i = 0; i < file.size(); ++i) {
    for (unsigned char mask : {0x01, 0x20, 0x80, 0xff}) {
      std::string damaged = file;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      auto read = VerifyChecksum("dir/version.json", damaged);
      ASSERT_FALSE(read.ok()) << "byte " << i << " xor " << int(mask) << " accepted: " << damaged;
      EXPECT_EQ(read.status().code(), StatusCode::kCorruption);
      EXPECT_NE(read.status().message().find("dir/version.json"), std::string::npos) << read.status().ToString();
    }
  }
}

TEST(CheckedJsonTest, FilesWithoutAChecksumAreReadAsTheyAre) {
  auto old = VerifyChecksum("old.json", kObject);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(*old, kObject);
  // nlohmann's compact form of an object whose first key is short.
  auto compact = VerifyChecksum("old.json", R"({"cutoff":"2024-01-01"})");
  EXPECT_TRUE(compact.ok()) << compact.status().ToString();
}

}  // namespace
}  // namespace sibyl
