#include "store/number_columns.h"

#include <algorithm>

namespace sibyl {
namespace {
constexpr std::string_view kColumnFileMagic = "SIBYLCOLS1\n";
constexpr int kColumnFileZstdLevel = 3;
}  // namespace

void PutNumberColumns(const NumberColumnBatch& batch, ByteWriter& out) {
  out.SignedVarint(batch.time_ms);
  out.Varint(batch.actors.size());
  ActorId previous = 0;
  for (ActorId a : batch.actors) {
    out.Varint(a - previous);  // ascending: deltas of consecutive scored users are small
    previous = a;
  }
  out.Varint(batch.columns.size());
  for (const NumberColumnBatch::Column& c : batch.columns) {
    out.Varint(c.key);
    out.Varint(c.values.size());
    out.Raw(c.values.data(), c.values.size() * sizeof(double));
  }
}

Result<std::shared_ptr<const NumberColumnBatch>> GetNumberColumns(ByteReader& in, std::string_view what) {
  auto batch = std::make_shared<NumberColumnBatch>();
  batch->time_ms = in.SignedVarint();
  const uint64_t n = in.Varint();
  // Every actor takes at least a byte: a count beyond the bytes left is damage, not a
  // reason to allocate.
  if (!in.ok() || n > in.remaining()) return Corruption("{}: bad number column batch header", what);
  batch->actors.resize(n);
  uint64_t actor = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t delta = in.Varint();
    actor += delta;
    if ((i > 0 && delta == 0) || actor > UINT32_MAX) return Corruption("{}: number column actors out of order", what);
    batch->actors[i] = static_cast<ActorId>(actor);
  }
  const uint64_t columns = in.Varint();
  if (!in.ok() || columns > in.remaining()) return Corruption("{}: truncated number column batch", what);
  for (uint64_t k = 0; k < columns; ++k) {
    NumberColumnBatch::Column& c = batch->columns.emplace_back();
    c.key = static_cast<DictId>(in.Varint());
    const uint64_t count = in.Varint();
    if (!in.ok() || (count != 1 && count != n) || count * sizeof(double) > in.remaining())
      return Corruption("{}: number column {} has a bad value count", what, k);
    c.values.resize(count);
    std::string_view bytes = in.View(count * sizeof(double));
    std::copy_n(bytes.data(), bytes.size(), reinterpret_cast<char*>(c.values.data()));
  }
  if (!in.ok()) return Corruption("{}: truncated number column batch", what);
  return std::shared_ptr<const NumberColumnBatch>(std::move(batch));
}

std::string EncodeNumberColumnFile(const NumberColumnBatch& batch) {
  std::string raw;
  ByteWriter w(&raw);
  PutNumberColumns(batch, w);
  std::string file(kColumnFileMagic);
  AppendCompressedBlock(raw, kColumnFileZstdLevel, &file);
  return file;
}

Result<std::shared_ptr<const NumberColumnBatch>> DecodeNumberColumnFile(std::string_view file, std::string_view what) {
  if (!file.starts_with(kColumnFileMagic)) return Corruption("{}: bad magic", what);
  ByteReader r(file.substr(kColumnFileMagic.size()));
  ASSIGN_OR_RETURN(std::string raw, ReadCompressedBlock(r, what));
  if (!r.done()) return Corruption("{}: trailing bytes", what);
  ByteReader b(raw);
  ASSIGN_OR_RETURN(auto batch, GetNumberColumns(b, what));
  if (!b.done()) return Corruption("{}: trailing bytes in the number column batch", what);
  return batch;
}

}  // namespace sibyl
