// The server's handling of raw request bytes (src/server/http): Beast's request parser
// with the server's header limit, then the path and query decoding the router sees; and
// the bounded inflater on arbitrary gzip/deflate bodies (the first byte picks which).
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "server/http/gunzip.h"
#include "server/http/router.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  namespace bhttp = boost::beast::http;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr size_t kCap = 1 << 20;
  switch (data[0] % 3) {
    case 0: {
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(16 * 1024);
      parser.body_limit(kCap);
      boost::beast::error_code ec;
      parser.eager(true);
      parser.put(boost::asio::buffer(input.data(), input.size()), ec);
      if (!parser.is_header_done()) return 0;
      const std::string target(parser.get().target());
      const size_t question = target.find('?');
      const std::string path = sibyl::server::DecodeUrl(std::string_view(target).substr(0, question), false);
      if (path.size() > target.size()) __builtin_trap();  // decoding never grows
      if (question != std::string::npos) (void)sibyl::server::ParseQuery(std::string_view(target).substr(question + 1));
      (void)sibyl::server::ParseContentEncoding(std::string(parser.get()[bhttp::field::content_encoding]));
      return 0;
    }
    case 1:
    case 2: {
      const auto coding = data[0] % 3 == 1 ? sibyl::server::ContentCoding::kGzip : sibyl::server::ContentCoding::kDeflate;
      auto out = sibyl::server::Inflate(input, coding, kCap);
      if (out.ok() && out->size() > kCap) __builtin_trap();  // the cap holds
      return 0;
    }
  }
  return 0;
}
