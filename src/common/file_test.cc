#include "common/file.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// What a power loss leaves (zeros from a sector boundary, or from where the bad bytes
// start, to the sector's end) counts; zeros a flipped bit or a record's own content could
// make do not.
TEST(FileTest, UnwrittenSectorsAreZerosToASectorEnd) {
  std::string data(2048, 'x');
  EXPECT_FALSE(HasUnwrittenSector(data, 0, data.size()));
  std::string tail = data;
  std::fill(tail.begin() + 700, tail.end(), '\0');
  EXPECT_TRUE(HasUnwrittenSector(tail, 700, tail.size()));  // zeros to the end of the file
  std::string sector = data;
  std::fill(sector.begin() + 1024, sector.begin() + 1536, '\0');
  EXPECT_TRUE(HasUnwrittenSector(sector, 600, 2048));
  EXPECT_FALSE(HasUnwrittenSector(sector, 1536, 2048));  // the hole is before `from`
  std::string unaligned = data;
  std::fill(unaligned.begin() + 1000, unaligned.begin() + 1500, '\0');  // not to a sector end
  EXPECT_FALSE(HasUnwrittenSector(unaligned, 0, 2048));
  std::string short_run = data;
  std::fill(short_run.begin() + 1024 - 15, short_run.begin() + 1024, '\0');  // 15 bytes to a sector end
  EXPECT_FALSE(HasUnwrittenSector(short_run, 1024 - 15, 2048));
  std::fill(short_run.begin() + 1024 - 16, short_run.begin() + 1024, '\0');
  EXPECT_TRUE(HasUnwrittenSector(short_run, 1024 - 16, 2048));  // from where the bad bytes start
  std::string one_zero = data;
  one_zero[1024] = '\0';  // a flipped bit never makes more than one zero byte
  EXPECT_FALSE(HasUnwrittenSector(one_zero, 0, 2048));
}

}  // namespace
}  // namespace sibyl
