#include "server/http/gunzip.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace sibyl::server {

ContentCoding ParseContentEncoding(std::string_view header) {
  while (!header.empty() && std::isspace(static_cast<unsigned char>(header.front()))) header.remove_prefix(1);
  while (!header.empty() && std::isspace(static_cast<unsigned char>(header.back()))) header.remove_suffix(1);
  std::string lower(header);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.empty() || lower == "identity") return ContentCoding::kIdentity;
  if (lower == "gzip" || lower == "x-gzip") return ContentCoding::kGzip;
  if (lower == "deflate") return ContentCoding::kDeflate;
  return ContentCoding::kUnsupported;
}

namespace {

// One zlib stream, ended on every path out.
class ZStream {
 public:
  explicit ZStream(int window_bits) { ok_ = inflateInit2(&z_, window_bits) == Z_OK; }
  ~ZStream() {
    if (ok_) inflateEnd(&z_);
  }
  ZStream(const ZStream&) = delete;
  ZStream& operator=(const ZStream&) = delete;
  bool ok() const { return ok_; }
  z_stream& z() { return z_; }

 private:
  z_stream z_{};
  bool ok_ = false;
};

enum class Outcome { kDone, kTooLarge, kBadData };

// One pass over the stream. With `out` null the output is only counted (`produced`), so a
// bomb is found having allocated nothing; otherwise it is appended to `out`.
Outcome InflateWith(std::string_view in, int window_bits, bool members, size_t max_output, std::string* out,
                    size_t& produced) {
  ZStream stream(window_bits);
  if (!stream.ok()) return Outcome::kBadData;
  z_stream& z = stream.z();
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::array<char, 64 * 1024> chunk;
  produced = 0;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = static_cast<uInt>(chunk.size());
    const int rc = inflate(&z, Z_NO_FLUSH);
    const size_t n = chunk.size() - z.avail_out;
    if (n > max_output - produced) return Outcome::kTooLarge;
    produced += n;
    if (out) out->append(chunk.data(), n);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back (RFC 1952 2.2).
      if (members && z.avail_in > 0) {
        if (inflateReset(&z) != Z_OK) return Outcome::kBadData;
        continue;
      }
      return z.avail_in == 0 ? Outcome::kDone : Outcome::kBadData;
    }
    if (rc == Z_BUF_ERROR && z.avail_in == 0) return Outcome::kBadData;  // truncated
    if (rc != Z_OK && rc != Z_BUF_ERROR) return Outcome::kBadData;
  }
}

// Two passes: the first counts the output against the cap, the second writes it into a
// buffer of exactly that size. Inflating twice costs far less than parsing the JSON
// after, and a bomb costs no memory at all.
Outcome InflateBounded(std::string_view in, int window_bits, bool members, size_t max_output, std::string& out) {
  size_t size = 0;
  const Outcome counted = InflateWith(in, window_bits, members, max_output, nullptr, size);
  if (counted != Outcome::kDone) return counted;
  out.clear();
  out.reserve(size);
  return InflateWith(in, window_bits, members, max_output, &out, size);
}

}  // namespace

Result<std::string> Inflate(std::string_view compressed, ContentCoding coding, size_t max_output) {
  // zlib counts input in uInt.
  if (compressed.size() > 0xFFFFFFFFu) return ResourceExhausted("compressed body over 4 GiB");
  std::string out;
  Outcome outcome = Outcome::kBadData;
  switch (coding) {
    case ContentCoding::kIdentity:
      if (compressed.size() > max_output) return ResourceExhausted("body over {} bytes", max_output);
      return std::string(compressed);
    case ContentCoding::kGzip:
      outcome = InflateBounded(compressed, 16 + MAX_WBITS, /*members=*/true, max_output, out);
      break;
    case ContentCoding::kDeflate:
      outcome = InflateBounded(compressed, MAX_WBITS, false, max_output, out);
      if (outcome == Outcome::kBadData) {
        outcome = InflateBounded(compressed, -MAX_WBITS, false, max_output, out);
      }
      break;
    case ContentCoding::kUnsupported: return InvalidArgument("unsupported content encoding");
  }
  switch (outcome) {
    case Outcome::kDone: return out;
    case Outcome::kTooLarge: return ResourceExhausted("body inflates to over {} bytes", max_output);
    case Outcome::kBadData: break;
  }
  return InvalidArgument("the body is not valid {} data", coding == ContentCoding::kGzip ? "gzip" : "deflate");
}

}  // namespace sibyl::server
