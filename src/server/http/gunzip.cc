#include "server/http/gunzip.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

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

enum class Outcome { kDone, kTooLarge, kBadData, kRefused };

struct Inflated {
  Outcome outcome = Outcome::kBadData;
  std::string reason;  // for kBadData: zlib's message, or what went wrong in our words
  bool header_error = false;  // kBadData in the stream's header (wrong wrapper, or not compressed)
};

Inflated Bad(std::string reason, bool header_error = false) {
  return {Outcome::kBadData, std::move(reason), header_error};
}

// One pass over the stream. With `out` null the output is only counted (`produced`), so a
// bomb is found having allocated nothing; otherwise it is appended to `out`.
Inflated InflateWith(std::string_view in, int window_bits, bool members, size_t max_output, std::string* out,
                     size_t& produced) {
  ZStream stream(window_bits);
  if (!stream.ok()) return Bad("zlib could not start");
  z_stream& z = stream.z();
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::array<char, 64 * 1024> chunk;
  produced = 0;
  int member = 0;              // gzip member being read (0: the first)
  size_t member_output = 0;    // bytes the current member produced
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_out = static_cast<uInt>(chunk.size());
    const int rc = inflate(&z, Z_NO_FLUSH);
    const size_t n = chunk.size() - z.avail_out;
    if (n > max_output - produced) return {Outcome::kTooLarge};
    produced += n;
    member_output += n;
    if (out) out->append(chunk.data(), n);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back (RFC 1952 2.2).
      if (members && z.avail_in > 0) {
        if (inflateReset(&z) != Z_OK) return Bad("zlib could not reset");
        ++member;
        member_output = 0;
        continue;
      }
      if (z.avail_in == 0) return {Outcome::kDone};
      return Bad(fmt::format("trailing garbage after the end of the stream ({} bytes)", z.avail_in));
    }
    if (rc == Z_OK || (rc == Z_BUF_ERROR && z.avail_in > 0)) continue;
    // A failure: zlib's message when it gave one ("incorrect header check", "incorrect
    // data check" for a bad CRC, "invalid block type", ...); Z_BUF_ERROR with no input
    // left is a stream that ends early.
    std::string reason = rc == Z_BUF_ERROR  ? "truncated (the data ends before the stream does)"
                         : rc == Z_NEED_DICT ? "the stream needs a preset dictionary"
                         : z.msg != nullptr  ? std::string(z.msg)
                                             : fmt::format("zlib error {}", rc);
    const std::string_view msg = z.msg != nullptr ? z.msg : "";
    const bool in_header = produced == 0 && rc == Z_DATA_ERROR &&
                           (msg == "incorrect header check" || msg == "unknown compression method" ||
                            msg == "invalid window size");
    // A later "member" that is not gzip at all is junk a client appended.
    if (member > 0 && member_output == 0) return Bad("trailing garbage after the gzip data (" + reason + ")");
    return Bad(std::move(reason), in_header);
  }
}

// Two passes: the first counts the output against the cap, the second writes it into a
// buffer of exactly that size, reserved first. Inflating twice costs far less than parsing
// the JSON after, and a bomb costs no memory at all.
Inflated InflateBounded(std::string_view in, int window_bits, bool members, size_t max_output,
                        const InflateReserve& reserve, std::string& out) {
  size_t size = 0;
  Inflated counted = InflateWith(in, window_bits, members, max_output, nullptr, size);
  if (counted.outcome != Outcome::kDone) return counted;
  if (reserve && !reserve(size)) return {Outcome::kRefused};
  out.clear();
  out.reserve(size);
  return InflateWith(in, window_bits, members, max_output, &out, size);
}

}  // namespace

Result<std::string> Inflate(std::string_view compressed, ContentCoding coding, size_t max_output,
                            const InflateReserve& reserve) {
  // zlib counts input in uInt.
  if (compressed.size() > 0xFFFFFFFFu) return ResourceExhausted("compressed body over 4 GiB");
  std::string out;
  Inflated result;
  switch (coding) {
    case ContentCoding::kIdentity:
      if (compressed.size() > max_output) return ResourceExhausted("body over {} bytes", max_output);
      return std::string(compressed);
    case ContentCoding::kGzip:
      result = InflateBounded(compressed, 16 + MAX_WBITS, /*members=*/true, max_output, reserve, out);
      break;
    case ContentCoding::kDeflate:
      result = InflateBounded(compressed, MAX_WBITS, false, max_output, reserve, out);
      if (result.outcome == Outcome::kBadData) {
        // Not zlib-wrapped (or damaged): try raw deflate. When the zlib header was fine,
        // its failure is the one to report.
        Inflated raw = InflateBounded(compressed, -MAX_WBITS, false, max_output, reserve, out);
        if (raw.outcome != Outcome::kBadData || result.header_error) result = std::move(raw);
      }
      break;
    case ContentCoding::kUnsupported: return InvalidArgument("unsupported content encoding");
  }
  switch (result.outcome) {
    case Outcome::kDone: return out;
    case Outcome::kTooLarge: return ResourceExhausted("body inflates to over {} bytes", max_output);
    case Outcome::kRefused: return ResourceExhausted("no room for the inflated body in the server's memory budget");
    case Outcome::kBadData: break;
  }
  return InvalidArgument("request body is not valid {}: {}", coding == ContentCoding::kGzip ? "gzip" : "deflate data",
                         result.reason);
}

}  // namespace sibyl::server
