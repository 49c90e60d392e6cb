// Segment: an immutable run of events in columnar form, sorted by (actor, time). The
// write-ahead log, the in-memory table and the part files all hold segments; a part file
// is one encoded segment (docs/FORMAT.md).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/file.h"
#include "common/status.h"
#include "store/reader.h"

namespace sibyl {

// One event, dictionary-encoded, before it is sorted into a segment.
struct EncodedEvent {
  ActorId actor;
  EventTypeId type;
  int64_t time;
  int64_t session;
  uint32_t properties_begin, properties_end;  // into the builder's property list
};

struct EncodedProperty {
  DictId key;
  StoredValue value;
};

// A row of one of several segments.
struct RowRef {
  uint32_t input;
  uint32_t row;
};

// The SessionMarks (reader.h) of a session column, row by row.
std::vector<uint8_t> SessionMarks(const std::vector<int64_t>& session);

// Decoded optional columns: sessions and event properties.
struct SegmentExtras {
  // Session ids and their marks (reader.h): every extras with sessions (whole decodes,
  // scans' Extras(sessions, keys), in-memory segments).
  std::vector<int64_t> session;
  std::vector<uint8_t> session_marks;
  struct Column {
    DictId key;
    std::vector<uint32_t> rows;
    std::vector<StoredValue> values;
  };
  std::vector<Column> properties;  // sorted by key
};

// The time partition of t (`partition_ms` wide, aligned to the epoch): floor(t / partition_ms).
inline int64_t PartitionOf(int64_t t, int64_t partition_ms) {
  return t >= 0 ? t / partition_ms : -((-t + partition_ms - 1) / partition_ms);
}

class Segment {
 public:
  // Sorts `events` by (actor, time) and builds a segment.
  static std::shared_ptr<const Segment> Build(std::vector<EncodedEvent> events,
                                              const std::vector<EncodedProperty>& properties);
  // Sorts `events` by (actor, time), splits them by time partition (`partition_ms` wide,
  // aligned to the epoch) and builds one segment per partition, in time order, each
  // encoded at `level` (encoded() is that encoding, for the write-ahead log). The
  // segments keep their core columns decoded and the optional ones only encoded, decoded
  // on demand: a staged batch takes about 25 bytes an event in memory instead of 130,
  // and a checkpoint merges each partition from just the pieces that fall in it.
  static std::vector<std::shared_ptr<const Segment>> BuildEncoded(std::vector<EncodedEvent> events,
                                                                  const std::vector<EncodedProperty>& properties,
                                                                  int64_t partition_ms, int level);
  // Merges segments into one (each input stays valid).
  static std::shared_ptr<const Segment> Merge(
      const std::vector<std::shared_ptr<const Segment>>& inputs);
  // Merges segments and splits the result by time partition (`partition_ms` wide,
  // aligned to the epoch), in one pass; partitions in time order.
  static std::vector<std::shared_ptr<const Segment>> MergeByPartition(
      const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms);
  // The same partitions, equal row for row, handed to `each` one at a time in time order
  // and built only from the inputs whose time range overlaps them, so that a checkpoint
  // holds one or two partitions in memory instead of all of them. When inputs span so
  // many partitions that this would more than double the merge's work (rows not in time
  // order), everything is merged at once as MergeByPartition does. Stops at the first
  // error `each` returns.
  static Status MergeEachPartition(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                                   const std::function<Status(std::shared_ptr<const Segment>)>& each);

  // Encodes to bytes (a part file's content) with zstd at `level`.
  std::string Encode(int level) const;
  // A part file's content: Encode(level) followed by its u32 CRC-32C.
  std::string EncodePart(int level) const;
  // The same, and where in it the optional columns start.
  std::string EncodePart(int level, size_t* extras_at) const;
  // Decodes a part file (checking its checksum) into core columns; the optional ones
  // are decoded on demand from `file`.
  static Result<std::shared_ptr<const Segment>> Decode(std::shared_ptr<const MappedFile> file);
  // A part file just written from `segment` (EncodePart's bytes; `extras_at` as it gave):
  // `segment`'s core columns, without decoding them again (moved out of it when this call
  // holds its last reference, copied otherwise), and its optional columns read from
  // `file` on demand, as Decode's.
  static Result<std::shared_ptr<const Segment>> OfWrittenPart(std::shared_ptr<const Segment> segment,
                                                              std::shared_ptr<const MappedFile> file,
                                                              size_t extras_at);
  // Decodes bytes fully (write-ahead-log records). `what` names the source for errors.
  static Result<std::shared_ptr<const Segment>> DecodeBytes(std::string_view bytes,
                                                            std::string_view what);
  // Decodes the core columns of an encoding (Encode's, without a checksum: write-ahead-log
  // records, which have their own); the optional columns stay in `bytes`, decoded on demand.
  static Result<std::shared_ptr<const Segment>> DecodeEncoded(std::shared_ptr<const std::string> bytes,
                                                              std::string_view what);
  // The encoding this segment was built with or decoded from (BuildEncoded,
  // DecodeEncoded); null for other segments.
  const std::shared_ptr<const std::string>& encoded() const { return encoded_; }

  size_t size() const { return time_.size(); }
  int64_t min_time() const { return min_time_; }
  int64_t max_time() const { return max_time_; }
  const std::vector<ActorId>& actor() const { return actor_; }
  const std::vector<int64_t>& time() const { return time_; }
  const std::vector<EventTypeId>& type() const { return type_; }

  // The optional columns, decoded (from memory, or from the part file each call).
  Result<std::shared_ptr<const SegmentExtras>> Extras() const;
  // Only sessions (if asked) and the property columns of `keys` (sorted), which is all a
  // scan needs; from memory this shares the decoded columns.
  Result<std::shared_ptr<const SegmentExtras>> Extras(bool sessions,
                                                      const std::vector<DictId>& keys) const;
  // Bytes this segment holds decoded in memory.
  size_t MemoryBytes() const;

 private:
  Segment() = default;
  // Builds a segment of `events`, already sorted by (actor, time).
  static std::shared_ptr<Segment> BuildSorted(std::span<const EncodedEvent> events,
                                              const std::vector<EncodedProperty>& properties);
  // Encode(level), and where in it the optional columns start.
  std::string EncodeWithExtrasAt(int level, size_t* extras_at) const;
  // The file or memory the optional columns are decoded from, for errors.
  std::string_view SourceName() const;
  static std::vector<RowRef> MergeOrder(const std::vector<std::shared_ptr<const Segment>>& inputs);
  // One merge order of all `inputs`, then its partitions in waves of consecutive
  // partitions of at most `wave_rows` rows (or one partition), each handed to `each`.
  static Status MergeInWaves(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                             size_t wave_rows, const std::function<Status(std::shared_ptr<const Segment>)>& each);
  // Rows of `inputs` in `order` (sorted by actor and time), sent to group group_of[i]
  // (all to group 0 when group_of is empty): one segment per group.
  static std::vector<std::shared_ptr<const Segment>> FromRows(
      const std::vector<std::shared_ptr<const Segment>>& inputs, const std::vector<RowRef>& order,
      const std::vector<uint32_t>& group_of, uint32_t groups);
  std::vector<ActorId> actor_;
  std::vector<int64_t> time_;
  std::vector<EventTypeId> type_;
  int64_t min_time_ = INT64_MAX, max_time_ = INT64_MIN;
  // Either decoded extras (in-memory segments) or the encoded bytes to decode them from,
  // held by a part file (file_) or an encoding in memory (encoded_).
  std::shared_ptr<const SegmentExtras> extras_;
  std::shared_ptr<const MappedFile> file_;
  std::shared_ptr<const std::string> encoded_;
  std::string_view encoded_extras_;
  int format_ = 2;  // of encoded_extras_ (the session column's coding changed in 2)
};

}  // namespace sibyl
