// Request bodies sent with Content-Encoding gzip or deflate, inflated by streaming zlib
// under a cap: the output is first counted in a fixed 64 KB window, so a body that would
// inflate past the cap stops there (ResourceExhausted) having allocated nothing, and a
// valid one is then written once into a buffer of its exact size. A 1 MB "gzip bomb"
// costs a few milliseconds, not the gigabyte it expands to (docs/SERVER.md).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sibyl::server {

enum class ContentCoding { kIdentity, kGzip, kDeflate, kUnsupported };

// The Content-Encoding header's value ("", "identity", "gzip", "x-gzip", "deflate",
// case-insensitive). A list of codings ("gzip, br") is unsupported.
ContentCoding ParseContentEncoding(std::string_view header);

// Asked for the inflated size, exactly, before the buffer holding it is allocated; false
// refuses it (the server's budget of bodies in memory is full) and Inflate then returns
// ResourceExhausted without allocating. The caller releases what it granted.
using InflateReserve = std::function<bool(size_t bytes)>;

// Inflates `compressed` (gzip, possibly several members; deflate: zlib-wrapped or raw,
// as clients disagree on what HTTP's "deflate" means). ResourceExhausted when the output
// would exceed `max_output` bytes or `reserve` refuses it; InvalidArgument when the data
// is not a complete stream of the coding, with zlib's reason: "request body is not valid
// gzip: incorrect data check" (a bad CRC), "...: truncated", "...: trailing garbage after
// the gzip data (incorrect header check)", ...
Result<std::string> Inflate(std::string_view compressed, ContentCoding coding, size_t max_output,
                            const InflateReserve& reserve = {});

}  // namespace sibyl::server
