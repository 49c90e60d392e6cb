#include "store/codec.h"

#include <zstd.h>

#include <memory>

#include "common/file.h"

namespace sibyl {

void AppendCompressedBlock(std::string_view raw, int level, std::string* out) {
  // One compression context and one scratch buffer per thread, reused: a fresh context
  // per block allocated (and page-faulted) megabytes of tables every time, and a fresh
  // buffer was zero-filled before zstd overwrote it.
  struct Scratch {
    ZSTD_CCtx* context = ZSTD_createCCtx();
    std::string buffer;
    ~Scratch() { ZSTD_freeCCtx(context); }
  };
  thread_local Scratch scratch;
  size_t bound = ZSTD_compressBound(raw.size());
  if (scratch.buffer.size() < bound) scratch.buffer.resize(bound);
  size_t n = scratch.context == nullptr
                 ? ZSTD_compress(scratch.buffer.data(), bound, raw.data(), raw.size(), level)
                 : ZSTD_compressCCtx(scratch.context, scratch.buffer.data(), bound, raw.data(),
                                     raw.size(), level);
  // Compression into a buffer of ZSTD_compressBound bytes cannot fail.
  std::string_view compressed(scratch.buffer.data(), ZSTD_isError(n) ? 0 : n);
  ByteWriter w(out);
  w.Varint(raw.size());
  w.Varint(compressed.size());
  w.U32(Crc32c(compressed));
  out->append(compressed);
  // Keep the scratch for typical blocks, not for the rare huge one.
  if (scratch.buffer.size() > (64u << 20)) std::string().swap(scratch.buffer);
}

Result<std::string> ReadCompressedBlock(ByteReader& reader, std::string_view what) {
  uint64_t raw_size = reader.Varint();
  uint64_t compressed_size = reader.Varint();
  uint32_t crc = reader.U32();
  if (!reader.ok() || compressed_size > reader.remaining() || raw_size > (1ull << 40))
    return Corruption("{}: truncated block header", what);
  // Checksum and decompress in place: no copy of the compressed bytes.
  std::string_view compressed = reader.View(compressed_size);
  if (Crc32c(compressed) != crc) return Corruption("{}: checksum mismatch", what);
  std::string raw(raw_size, '\0');
  // One decompression context per thread: ZSTD_decompress would allocate and initialise
  // a fresh one (~100 KB) for every block.
  thread_local std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> context(ZSTD_createDCtx(), &ZSTD_freeDCtx);
  if (context == nullptr) return Internal("{}: cannot create a zstd context", what);
  size_t n = ZSTD_decompressDCtx(context.get(), raw.data(), raw.size(), compressed.data(), compressed.size());
  if (ZSTD_isError(n) || n != raw_size)
    return Corruption("{}: block does not decompress ({})", what,
                      ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size mismatch");
  return raw;
}

}  // namespace sibyl
