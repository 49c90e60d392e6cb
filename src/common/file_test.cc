#include "common/file.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>

namespace sibyl {
namespace {

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-file-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

TEST(FileTest, AtomicWriteReplacesContentAndLeavesNoTemp) {
  std::string dir = TempDir();
  std::string path = dir + "/f";
  ASSERT_TRUE(WriteFileAtomic(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomic(path, "two").ok());
  EXPECT_EQ(*ReadFile(path), "two");
  EXPECT_FALSE(FileExists(path + ".tmp"));
  std::filesystem::remove_all(dir);
}

TEST(FileTest, ReadMissingFileNamesIt) {
  Result<std::string> r = ReadFile("/nonexistent/sibyl");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("/nonexistent/sibyl"), std::string::npos);
}

TEST(FileTest, GzipIsReadTransparently) {
  std::string dir = TempDir();
  std::string path = dir + "/x.gz";
  gzFile gz = gzopen(path.c_str(), "wb");
  gzputs(gz, "hello\nworld\n");
  gzclose(gz);
  EXPECT_EQ(*ReadFileMaybeGzip(path), "hello\nworld\n");
  ASSERT_TRUE(WriteFileAtomic(path, std::string("\x1f\x8b garbage", 10)).ok());
  EXPECT_EQ(ReadFileMaybeGzip(path).status().code(), StatusCode::kCorruption);
  std::filesystem::remove_all(dir);
}

TEST(FileTest, AppendFileTracksSizeAndTruncates) {
  std::string dir = TempDir();
  auto f = AppendFile::Open(dir + "/log");
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("abc").ok());
  ASSERT_TRUE((*f)->Append("def").ok());
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_EQ((*f)->size(), 6u);
  ASSERT_TRUE((*f)->Truncate(4).ok());
  EXPECT_EQ(*ReadFile(dir + "/log"), "abcd");
  std::filesystem::remove_all(dir);
}

// Appends past the early-writeback threshold (16 MB), a truncation behind it and more
// appends keep the file's bytes exactly those appended.
TEST(FileTest, LongAppendsWithEarlyWritebackKeepEveryByte) {
  std::string dir = TempDir();
  auto f = AppendFile::Open(dir + "/log");
  ASSERT_TRUE(f.ok());
  std::string expected;
  for (int i = 0; i < 40; ++i) {
    std::string piece(1 << 20, static_cast<char>('a' + i % 26));
    ASSERT_TRUE((*f)->Append(piece).ok());
    expected += piece;
  }
  ASSERT_TRUE((*f)->Truncate(20 << 20).ok());
  expected.resize(20 << 20);
  for (int i = 0; i < 20; ++i) {
    std::string piece(1 << 20, static_cast<char>('A' + i));
    ASSERT_TRUE((*f)->Append(piece).ok());
    expected += piece;
  }
  ASSERT_TRUE((*f)->Sync().ok());
  EXPECT_EQ((*f)->size(), expected.size());
  EXPECT_TRUE(*ReadFile(dir + "/log") == expected);
  std::filesystem::remove_all(dir);
}

TEST(FileTest, Crc32cMatchesKnownVector) {
  // The standard check value of CRC-32C.
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), 0xE3069283u);
  std::string long_input(1000, 'x');
  EXPECT_NE(Crc32c(long_input), Crc32c(long_input.substr(1)));
}

TEST(FileTest, Crc32cHexIsEightLowercaseDigits) {
  EXPECT_EQ(Crc32cHex("123456789"), "e3069283");  // the standard check value 0xE3069283
  EXPECT_EQ(Crc32cHex(""), "00000000");
}

TEST(FileTest, Crc32cHardwareAndPortablePathsAgree) {
  std::string data;
  uint64_t x = 12345;
  for (int i = 0; i < 5000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    data.push_back(static_cast<char>(x >> 56));
  }
  // Every length 0..64 (the 8-byte loop and its tail) and offsets that misalign the words.
  for (size_t offset = 0; offset < 8; ++offset)
    for (size_t length = 0; length <= 64; ++length) {
      std::string_view piece = std::string_view(data).substr(offset, length);
      ASSERT_EQ(Crc32c(piece), Crc32cPortable(piece)) << offset << " " << length;
      ASSERT_EQ(Crc32c(piece, 0xDEADBEEF), Crc32cPortable(piece, 0xDEADBEEF));
    }
  EXPECT_EQ(Crc32c(data), Crc32cPortable(data));
  EXPECT_EQ(Crc32cPortable("123456789"), 0xE3069283u);
}

}  // namespace
}  // namespace sibyl
