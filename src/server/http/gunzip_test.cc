#include "server/http/gunzip.h"
#include "server/http/test_compress.h"

#include <zlib.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sibyl::server {
namespace {

using http_test_util::Compress;

TEST(GunzipTest, ContentEncodingNames) {
  EXPECT_EQ(ParseContentEncoding(""), ContentCoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding("identity"), ContentCoding::kIdentity);
  EXPECT_EQ(ParseContentEncoding(" GZIP "), ContentCoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("x-gzip"), ContentCoding::kGzip);
  EXPECT_EQ(ParseContentEncoding("deflate"), ContentCoding::kDeflate);
  EXPECT_EQ(ParseContentEncoding("br"), ContentCoding::kUnsupported);
  EXPECT_EQ(ParseContentEncoding("gzip, br"), ContentCoding::kUnsupported);
}

TEST(GunzipTest, InflatesGzipZlibRawDeflateAndGzipMembers) {
  const std::string text = R"({"api_key":"k","events":[{"user_id":"u","event_type":"e"}]})";
  auto gz = Inflate(Compress(text, 16 + 15), ContentCoding::kGzip, 1000);
  ASSERT_TRUE(gz.ok()) << gz.status().ToString();
  EXPECT_EQ(*gz, text);
  EXPECT_EQ(*Inflate(Compress(text, 15), ContentCoding::kDeflate, 1000), text);
  EXPECT_EQ(*Inflate(Compress(text, -15), ContentCoding::kDeflate, 1000), text);
  // Two gzip members back to back are one body (RFC 1952).
  EXPECT_EQ(*Inflate(Compress("abc", 16 + 15) + Compress("def", 16 + 15), ContentCoding::kGzip, 1000), "abcdef");
  // Exactly the cap is allowed.
  EXPECT_TRUE(Inflate(Compress(text, 16 + 15), ContentCoding::kGzip, text.size()).ok());
}

TEST(GunzipTest, ABombStopsAtTheCap) {
  // 64 MiB of zeros compress to ~64 KB; the cap is 1 MB.
  const std::string bomb = Compress(std::string(64 << 20, '\0'), 16 + 15);
  ASSERT_LT(bomb.size(), 200'000u);
  auto out = Inflate(bomb, ContentCoding::kGzip, 1'000'000);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Inflate(std::string(2000, 'x'), ContentCoding::kIdentity, 1000).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(GunzipTest, DamagedOrTruncatedDataIsInvalid) {
  const std::string gz = Compress(std::string(10000, 'a') + "tail", 16 + 15);
  EXPECT_EQ(Inflate(gz.substr(0, gz.size() / 2), ContentCoding::kGzip, 1 << 20).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Inflate("not gzip at all", ContentCoding::kGzip, 1 << 20).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Inflate(gz + "junk", ContentCoding::kGzip, 1 << 20).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Inflate("", ContentCoding::kGzip, 1 << 20).status().code(), StatusCode::kInvalidArgument);
}

// The 400 an SDK gets says what is wrong with its body, in zlib's words (issue 18).
TEST(GunzipTest, InvalidDataNamesTheReason) {
  const std::string gz = Compress(std::string(10000, 'a') + "tail", 16 + 15);
  auto reason = [](const std::string& data, ContentCoding coding = ContentCoding::kGzip) {
    return Inflate(data, coding, 1 << 20).status().message();
  };
  const std::string prefix = "request body is not valid gzip: ";
  EXPECT_EQ(reason("not gzip at all"), prefix + "incorrect header check");
  EXPECT_EQ(reason(gz.substr(0, gz.size() / 2)), prefix + "truncated (the data ends before the stream does)");
  std::string bad_crc = gz;
  bad_crc[gz.size() - 8] ^= 1;  // the trailer: CRC-32, then the length
  EXPECT_EQ(reason(bad_crc), prefix + "incorrect data check");
  std::string bad_length = gz;
  bad_length[gz.size() - 4] ^= 1;
  EXPECT_EQ(reason(bad_length), prefix + "incorrect length check");
  EXPECT_EQ(reason(gz + "junk"), prefix + "trailing garbage after the gzip data (incorrect header check)");
  EXPECT_EQ(reason(Compress("abc", -15) + "zz", ContentCoding::kDeflate),
            "request body is not valid deflate data: trailing garbage after the end of the stream (2 bytes)");
  EXPECT_EQ(reason(Compress("abc", 15).substr(0, 4), ContentCoding::kDeflate),
            "request body is not valid deflate data: truncated (the data ends before the stream does)");
}

// The server's memory budget is asked for the exact inflated size before it is allocated.
TEST(GunzipTest, TheInflatedSizeIsReservedBeforeItIsAllocated) {
  const std::string text(300'000, 'x');
  const std::string gz = Compress(text, 16 + 15);
  std::vector<size_t> asked;
  auto refused = Inflate(gz, ContentCoding::kGzip, 1 << 20, [&](size_t bytes) {
    asked.push_back(bytes);
    return false;
  });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(asked, std::vector<size_t>{text.size()});
  auto granted = Inflate(gz, ContentCoding::kGzip, 1 << 20, [&](size_t bytes) {
    asked.push_back(bytes);
    return true;
  });
  ASSERT_TRUE(granted.ok());
  EXPECT_EQ(*granted, text);
  EXPECT_EQ(asked.size(), 2u);
  // Over the cap, nothing is asked for.
  EXPECT_FALSE(Inflate(gz, ContentCoding::kGzip, 1000, [&](size_t bytes) {
                 asked.push_back(bytes);
                 return true;
               }).ok());
  EXPECT_EQ(asked.size(), 2u);
}

}  // namespace
}  // namespace sibyl::server
