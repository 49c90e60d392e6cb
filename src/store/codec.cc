#include "store/codec.h"

#include <zstd.h>

#include "common/file.h"

namespace sibyl {

void AppendCompressedBlock(std::string_view raw, int level, std::string* out) {
  std::string compressed;
  compressed.resize(ZSTD_compressBound(raw.size()));
  size_t n = ZSTD_compress(compressed.data(), compressed.size(), raw.data(), raw.size(), level);
  // Compression into a buffer of ZSTD_compressBound bytes cannot fail.
  compressed.resize(ZSTD_isError(n) ? 0 : n);
  ByteWriter w(out);
  w.Varint(raw.size());
  w.Varint(compressed.size());
  w.U32(Crc32c(compressed));
  out->append(compressed);
}

Result<std::string> ReadCompressedBlock(ByteReader& reader, std::string_view what) {
  uint64_t raw_size = reader.Varint();
  uint64_t compressed_size = reader.Varint();
  uint32_t crc = reader.U32();
  if (!reader.ok() || compressed_size > reader.remaining() || raw_size > (1ull << 40))
    return Corruption("{}: truncated block header", what);
  std::string compressed(compressed_size, '\0');
  reader.Raw(compressed.data(), compressed_size);
  if (Crc32c(compressed) != crc) return Corruption("{}: checksum mismatch", what);
  std::string raw(raw_size, '\0');
  size_t n = ZSTD_decompress(raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n) || n != raw_size)
    return Corruption("{}: block does not decompress ({})", what,
                      ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size mismatch");
  return raw;
}

}  // namespace sibyl
