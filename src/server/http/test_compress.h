// Test helper: compresses a body as gzip (16 + 15), zlib (15) or raw deflate (-15), the
// way clients do, for the tests of the inflater and of the servers that use it.
#pragma once

#include <zlib.h>

#include <string>

#include <gtest/gtest.h>

namespace sibyl::server::http_test_util {

inline std::string Compress(const std::string& data, int window_bits = 16 + 15, int level = 9) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

inline std::string Gzip(const std::string& data) { return Compress(data); }

}  // namespace sibyl::server::http_test_util
