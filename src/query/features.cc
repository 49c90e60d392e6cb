#include "query/features.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/memory.h"
#include "common/time.h"
#include "query/feature_layout.h"
#include "query/outcome_features.h"
#include "query/scan_util.h"

namespace sibyl {
namespace {

using query_internal::BlockActorWalk;
using query_internal::FeatureLayout;
using query_internal::kNoRow;
using query_internal::PerThread;

// One actor's partial row, in L1: cells start at their column's fill value (0, or the
// recency cap) and are added into or set, each change marked in a bitmap, so emitting the
// row visits only the changed cells in column order, and a cell left at its fill value
// costs nothing. Cells add in double and round to float once, when the row is emitted:
// an actor's events are visited part by part, so the order of a sum follows how the
// store happened to be checkpointed, and float sums of prices would differ in their last
// bits between two stores of the same events (an embedded store and a cluster's slice,
// or one ingest and the same events ingested in several). Sums of floats in double are
// exact for any realistic range of values, so the order does not matter.
class ActorRow {
 public:
  explicit ActorRow(const FeatureLayout& l)
      : cells_(l.cols), fill_(l.cols), touched_((l.cols + 63) / 64, 0), last_of_slot_(l.n_slots, INT64_MIN) {
    for (size_t c = 0; c < l.cols; ++c) cells_[c] = fill_[c] = l.EmptyValue(c);
  }

  void Add(size_t col, float v) {
    cells_[col] += static_cast<double>(v);
    touched_[col >> 6] |= uint64_t{1} << (col & 63);
  }
  void Set(size_t col, float v) {
    cells_[col] = v;
    touched_[col >> 6] |= uint64_t{1} << (col & 63);
  }
  // The row's first `cols` cells as floats (cells not touched hold their fill value).
  void CopyTo(float* out, size_t cols) const {
    for (size_t c = 0; c < cols; ++c) out[c] = static_cast<float>(cells_[c]);
  }

  // The actor's (week, session id) pairs, repeats included: a session counts once per
  // week however its events interleave with other sessions' or spread over storage
  // parts, so the pairs are only counted when the actor's row is done (CountSessions).
  // Few per actor; the vector keeps its capacity from actor to actor.
  struct SessionInWeek {
    int64_t session;
    int week;
    // By session, then latest week first: the order an actor's events give when session
    // ids grow with time (Amplitude's are the session's start time), so that sorting is
    // usually not needed.
    bool operator<(const SessionInWeek& o) const { return session != o.session ? session < o.session : week > o.week; }
    bool operator==(const SessionInWeek& o) const = default;
  };
  void AddSession(int week, int64_t session) { sessions_.push_back({session, week}); }
  std::vector<SessionInWeek>& sessions() { return sessions_; }

  // visit(col, value) for every touched cell, ascending.
  template <typename Visit>
  void ForEachTouched(Visit&& visit) const {
    for (size_t w = 0; w < touched_.size(); ++w)
      for (uint64_t bits = touched_[w]; bits != 0; bits &= bits - 1) {
        size_t col = w * 64 + static_cast<size_t>(std::countr_zero(bits));
        visit(col, static_cast<float>(cells_[col]));
      }
  }

  void Clear() {
    for (size_t w = 0; w < touched_.size(); ++w) {
      for (uint64_t bits = touched_[w]; bits != 0; bits &= bits - 1) {
        size_t col = w * 64 + static_cast<size_t>(std::countr_zero(bits));
        cells_[col] = fill_[col];
      }
      touched_[w] = 0;
    }
    if (has_events) std::fill(last_of_slot_.begin(), last_of_slot_.end(), INT64_MIN);
    sessions_.clear();
    first_time = INT64_MAX;
    last_time = INT64_MIN;
    has_events = false;
  }

  int64_t first_time = INT64_MAX, last_time = INT64_MIN;  // over all history before T
  bool has_events = false;
  int64_t* last_of_slot() { return last_of_slot_.data(); }

 private:
  std::vector<double> cells_, fill_;
  std::vector<uint64_t> touched_;
  std::vector<int64_t> last_of_slot_;
  std::vector<SessionInWeek> sessions_;
};

// A contribution to a row from a linked device (whose actor id may sit in another block
// than its user's), merged once every block is done.
struct DeferredCell {
  uint32_t row;
  uint32_t col;
  float value;
  ActorId actor;  // the device: merges go in (row, col, device) order, whatever the threads did
};

// Where finished rows go: a dense matrix, written row by row.
// Rows are `stride` floats apart: the outcome family's columns follow the scan's.
class DenseSink {
 public:
  DenseSink(float* matrix, size_t cols, size_t stride) : matrix_(matrix), cols_(cols), stride_(stride) {}
  DenseSink& writer() { return *this; }
  void EmitRow(DenseSink&, uint32_t row, const ActorRow& cells) {
    // No scanned columns (a spec of the outcome family alone) leaves nothing to copy.
    if (cols_ > 0) cells.CopyTo(matrix_ + static_cast<size_t>(row) * stride_, cols_);
  }
  float* matrix() const { return matrix_; }

 private:
  float* matrix_;
  size_t cols_, stride_;
};

// ... or compressed rows: only cells that differ from their column's fill value.
class SparseSink {
 public:
  SparseSink(SparseMatrixBuilder& builder, const std::vector<float>& fill)
      : builder_(builder), fill_(fill) {}
  // The calling thread's writer: fetched once per block, not per row (it takes a lock).
  SparseMatrixBuilder::Writer& writer() {
    return writers_.Get([&] { return SparseMatrixBuilder::Writer(builder_); });
  }
  void EmitRow(SparseMatrixBuilder::Writer& writer, uint32_t row, const ActorRow& cells) {
    SparseCell* out = writer.BeginRow(fill_.size());
    size_t n = 0;
    // Write every touched cell and keep it only if it differs from the fill: no branch to
    // mispredict on data (recency often equals the cap, counts rarely equal 0).
    cells.ForEachTouched([&](size_t col, float v) {
      out[n] = {static_cast<uint32_t>(col), v};
      n += v != fill_[col];
    });
    writer.CommitRow(row, n);
  }

 private:
  SparseMatrixBuilder& builder_;
  const std::vector<float>& fill_;
  PerThread<SparseMatrixBuilder::Writer> writers_;
};

class FeatureComputer {
 public:
  FeatureComputer(const EventReader& reader, const FeatureSpec& spec, int64_t cutoff,
                  std::span<const ActorId> rows, FeaturePath path)
      : reader_(reader), layout_(query_internal::MakeFeatureLayout(reader, spec)), cutoff_(cutoff),
        rows_(rows), path_(path) {
    window_begin_ = cutoff_ - layout_.MaxWeeks() * kMsPerWeek;
  }

  const FeatureLayout& layout() const { return layout_; }

  // `stride` >= the layout's columns: room for columns that follow (the outcome family).
  Result<FeatureMatrix> Dense(bool parallel, size_t stride) {
    Trace trace;
    FeatureMatrix m;
    m.cutoff_ms = cutoff_;
    m.actors.assign(rows_.begin(), rows_.end());
    size_t cols = layout_.cols;
    m.values = FloatBuffer(rows_.size() * stride);
    PrefaultOnTwoThreads(m.values.data(), m.values.size() * sizeof(float));
    trace.Lap("dense matrix allocated and prefaulted");
    DenseSink sink(m.values.data(), cols, stride);
    std::vector<uint8_t> emitted(rows_.size(), 0);
    RETURN_IF_ERROR(Scan(sink, emitted, parallel));
    trace.Lap("block scan");
    for (size_t r = 0; r < rows_.size(); ++r) {
      if (emitted[r]) continue;  // a row with no actor in the store, or a repeated one
      for (size_t c = 0; c < cols; ++c) m.values.data()[r * stride + c] = layout_.EmptyValue(c);
    }
    SortDeferred();
    for (const DeferredCell& d : deferred_) {
      float& cell = m.values.data()[static_cast<size_t>(d.row) * stride + d.col];
      cell = Merge(d.col, cell, d.value);
    }
    trace.Lap("linked devices merged");
    return m;
  }

  Result<SparseFeatureMatrix> Sparse(bool parallel) {
    Trace trace;
    SparseMatrixBuilder builder(rows_.size());
    SparseFeatureMatrix& m = builder.matrix();
    m.cutoff_ms = cutoff_;
    m.actors.assign(rows_.begin(), rows_.end());
    for (size_t c = 0; c < layout_.cols; ++c) m.fill.push_back(layout_.EmptyValue(c));
    trace.Lap("sparse matrix set up");
    {
      SparseSink sink(builder, m.fill);
      std::vector<uint8_t> emitted(rows_.size(), 0);  // rows never emitted stay all fill
      RETURN_IF_ERROR(Scan(sink, emitted, parallel));
    }
    trace.Lap("block scan");
    MergeDeferredSparse(builder);
    trace.Lap("linked devices merged");
    return builder.Finish();
  }

 private:
  // Times the phases on stderr when SIBYL_QUERY_TRACE is set.
  class Trace {
   public:
    void Lap(const char* what) {
      if (std::getenv("SIBYL_QUERY_TRACE") == nullptr) return;
      auto now = std::chrono::steady_clock::now();
      std::fprintf(stderr, "features: %s %.3f s\n", what, std::chrono::duration<double>(now - start_).count());
      start_ = now;
    }

   private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  };

  float Merge(size_t col, float a, float b) const {
    switch (layout_.MergeOf(col)) {
      case FeatureLayout::Merge::kMin: return std::min(a, b);
      case FeatureLayout::Merge::kMax: return std::max(a, b);
      case FeatureLayout::Merge::kAdd: break;
    }
    return a + b;
  }

  // Recency in hours, rounded through "freshness" (cap - hours) as the folding code has
  // always done, so that results stay bit-identical.
  float Recency(int64_t t) const {
    float hours = static_cast<float>(static_cast<double>(cutoff_ - t) / kMsPerHour);
    float freshness = layout_.recency_cap - std::min(hours, layout_.recency_cap);
    return layout_.recency_cap - freshness;
  }

  // Few rows out of many actors: gather their actors' events by binary search
  // (EventReader::GatherActors) instead of walking every actor of the store. Both paths
  // fold the same rows in the same order, so they give identical numbers.
  static constexpr size_t kGatherShare = 16;  // gather when rows <= actors / kGatherShare
  bool UseGather() const {
    if (path_ != FeaturePath::kAuto) return path_ == FeaturePath::kGather;
    return rows_.size() * kGatherShare <= reader_.actors().size();
  }

  // Gather mode: the actors whose events count for a row (the row's own actor when it is
  // canonical at the cutoff, and the devices linked to it before then), by actor.
  struct Target {
    ActorId actor;
    uint32_t row;
    bool own;
  };
  void BuildTargets() {
    const size_t actors = reader_.actors().size();
    // As MakeRowMap: a repeated row id counts for its last row.
    std::vector<std::pair<ActorId, uint32_t>> row_of;
    row_of.reserve(rows_.size());
    for (uint32_t r = 0; r < rows_.size(); ++r)
      if (rows_[r] < actors) row_of.emplace_back(rows_[r], r);
    std::stable_sort(row_of.begin(), row_of.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < row_of.size(); ++i) {
      if (i + 1 < row_of.size() && row_of[i + 1].first == row_of[i].first) continue;
      auto [actor, r] = row_of[i];
      if (reader_.ResolveIdentity(actor, cutoff_) == actor) targets_.push_back({actor, r, true});
      for (ActorId device : reader_.LinkedDevices(actor, cutoff_)) targets_.push_back({device, r, false});
    }
    std::sort(targets_.begin(), targets_.end(), [](const Target& a, const Target& b) { return a.actor < b.actor; });
  }

  // The row `actor`'s events count for, and whether it is the row's own actor.
  bool RowOf(ActorId actor, uint32_t& row, bool& own) const {
    if (gather_) {
      auto it = std::lower_bound(targets_.begin(), targets_.end(), actor,
                                 [](const Target& t, ActorId a) { return t.actor < a; });
      if (it == targets_.end() || it->actor != actor) return false;
      row = it->row;
      own = it->own;
      return true;
    }
    row = actor < row_of_actor_.size() ? row_of_actor_[actor] : kNoRow;
    own = row != kNoRow && resolved_[actor] == actor;
    return row != kNoRow;
  }

  template <typename Sink>
  Status Scan(Sink& sink, std::vector<uint8_t>& emitted, bool parallel) {
    Trace trace;
    gather_ = UseGather();
    if (gather_) {
      BuildTargets();
      trace.Lap("gather targets");
    } else {
      resolved_ = reader_.ResolveIdentities(cutoff_);
      row_of_actor_ = query_internal::MakeRowMap(resolved_, rows_).row_of_actor;
      trace.Lap("identities resolved, rows mapped");
      // The gather path reads each row's own records (EventReader::UserPropertyHistoryOf).
      if (!layout_.user_properties.empty()) history_ = reader_.user_property_history();
      trace.Lap("user property history");
    }
    ScanSpec spec;
    // Recency and tenure look at all history; everything else at the window only.
    spec.begin_ms = layout_.recency ? INT64_MIN : window_begin_;
    spec.end_ms = cutoff_;
    spec.with_sessions = layout_.session_weeks > 0;
    spec.sessions_begin_ms = cutoff_ - layout_.session_weeks * kMsPerWeek;
    spec.properties_begin_ms = cutoff_ - layout_.property_weeks * kMsPerWeek;
    for (const auto& p : layout_.properties)
      if (p.key != kNoDictId) spec.property_keys.push_back(p.key);
    if (!gather_) {
      // Only the blocks from the first to the last actor that counts for a row (linked
      // devices included): a scoring run's block of users is a slice of the actors.
      auto counts = [](uint32_t row) { return row != kNoRow; };
      auto first = std::find_if(row_of_actor_.begin(), row_of_actor_.end(), counts);
      auto last = std::find_if(row_of_actor_.rbegin(), row_of_actor_.rend(), counts);
      spec.first_actor = static_cast<ActorId>(first - row_of_actor_.begin());
      spec.end_actor = static_cast<ActorId>(row_of_actor_.rend() - last);
    }
    std::mutex deferred_mutex;
    auto visit = [&](const EventReader::ActorBlock& block) {
      std::vector<DeferredCell> deferred;
      VisitBlock(block, sink, emitted, deferred);
      if (!deferred.empty()) {
        std::lock_guard lock(deferred_mutex);
        deferred_.insert(deferred_.end(), deferred.begin(), deferred.end());
      }
      return Status::Ok();
    };
    if (gather_) {
      std::vector<ActorId> actors;
      actors.reserve(targets_.size());
      for (const Target& t : targets_) actors.push_back(t.actor);
      return reader_.GatherActors(actors, spec, visit, parallel);
    }
    return reader_.ScanActorBlocks(spec, query_internal::kActorsPerBlock, visit, parallel);
  }

  // A property column of a chunk matched to the layout, with a cursor that moves forward
  // with the actors.
  struct PropertyCursor {
    const PropertyColumn* column;
    const FeatureLayout::EventProperty* property;
    size_t next = 0;
  };

  template <typename Sink>
  void VisitBlock(const EventReader::ActorBlock& block, Sink& sink, std::vector<uint8_t>& emitted,
                  std::vector<DeferredCell>& deferred) {
    const FeatureLayout& l = layout_;
    ActorRow row(l);
    auto& writer = sink.writer();
    BlockActorWalk walk(block);
    std::vector<std::vector<PropertyCursor>> cursors(block.chunks.size());
    for (size_t c = 0; c < block.chunks.size(); ++c)
      for (const PropertyColumn& column : block.chunks[c].properties)
        for (const auto& p : l.properties)
          if (p.key == column.key && !column.rows.empty()) cursors[c].push_back({&column, &p});
    size_t history = static_cast<size_t>(
        std::lower_bound(history_.begin(), history_.end(), block.first_actor,
                         [](const UserPropertyRecord& r, ActorId a) { return r.actor < a; }) -
        history_.begin());

    for (ActorId actor = block.first_actor; actor < block.end_actor; ++actor) {
      std::span<const BlockActorWalk::Run> runs = walk.Runs(actor);
      uint32_t r = kNoRow;
      bool own = false;
      if (!RowOf(actor, r, own)) continue;
      for (const BlockActorWalk::Run& run : runs) AddRun(block.chunks[run.chunk], run, cursors[run.chunk], row);
      if (own && !l.user_properties.empty()) {
        if (gather_) {
          std::vector<UserPropertyRecord> records = reader_.UserPropertyHistoryOf(actor);
          AddUserProperties(records, row);
        } else {
          while (history < history_.size() && history_[history].actor < actor) ++history;
          size_t end = history;
          while (end < history_.size() && history_[end].actor == actor) ++end;
          AddUserProperties(history_.subspan(history, end - history), row);
        }
      }
      CountSessions(row);
      FinishRecency(row);
      if (own) {
        sink.EmitRow(writer, r, row);
        emitted[r] = 1;
      } else {
        row.ForEachTouched([&](size_t col, float v) { deferred.push_back({r, static_cast<uint32_t>(col), v, actor}); });
      }
      row.Clear();
    }
  }

  void AddRun(const EventChunk& chunk, const BlockActorWalk::Run& run, std::vector<PropertyCursor>& cursors,
              ActorRow& row) {
    const FeatureLayout& l = layout_;
    const int64_t* times = chunk.time.data();
    const EventTypeId* types = chunk.event_type.data();
    size_t begin = run.begin, end = run.end;
    // A run is sorted by time: drop its tail at or after the cutoff.
    while (end > begin && times[end - 1] >= cutoff_) --end;
    if (begin < end) {
      const int32_t* slot_of_type = l.slot_of_type.data();
      int64_t* last_of_slot = row.last_of_slot();
      size_t first_in_window = begin;
      while (first_in_window < end && times[first_in_window] < window_begin_) ++first_in_window;
      if (l.recency) {
        row.has_events = true;
        row.first_time = std::min(row.first_time, times[begin]);
        row.last_time = std::max(row.last_time, times[end - 1]);
        // Events before the window only matter for recency (the window loop does the rest).
        for (size_t i = begin; i < first_in_window; ++i) {
          int32_t slot = slot_of_type[types[i]];
          if (slot >= 0) last_of_slot[slot] = std::max(last_of_slot[slot], times[i]);
        }
      }
      bool sessions = l.session_weeks > 0 && !chunk.session_ids.empty();
      // Each event's (week, session) pair, minus repeats of the pair just recorded: an
      // event marked kSameSession has the session of the event before it (in this run
      // once past its first event), so its id is read only when the week changed.
      const uint8_t* marks = chunk.session_marks.data();
      const int64_t* session_ids = chunk.session_ids.data();
      int session_week = -1;  // of the pair recorded last in this run; -1: none yet
      int64_t last_session = -1;
      // Times ascend within a run, so the week index only steps down: track the next week
      // boundary instead of dividing for every event.
      int week = 0;
      int64_t next_boundary = INT64_MIN;  // events at or after it are in a later week
      if (first_in_window < end) {
        week = static_cast<int>((cutoff_ - 1 - times[first_in_window]) / kMsPerWeek);
        next_boundary = cutoff_ - static_cast<int64_t>(week) * kMsPerWeek;
      }
      for (size_t i = first_in_window; i < end; ++i) {
        while (times[i] >= next_boundary) {
          --week;
          next_boundary += kMsPerWeek;
        }
        int32_t slot = slot_of_type[types[i]];
        if (slot >= 0) {
          if (l.recency) last_of_slot[slot] = std::max(last_of_slot[slot], times[i]);
          if (week < l.event_weeks) row.Add(l.counts + slot * l.event_weeks + week, 1);
        }
        if (sessions && week < l.session_weeks && marks[i] != kNoSession &&
            (marks[i] == kNewSession || week != session_week)) {
          int64_t id = session_ids[i];
          if (id != last_session || week != session_week) {
            row.AddSession(week, id);
            last_session = id;
            session_week = week;
          }
        }
      }
    }
    for (PropertyCursor& cursor : cursors) AddProperty(chunk, run, cursor, row);
  }

  void AddProperty(const EventChunk& chunk, const BlockActorWalk::Run& run, PropertyCursor& cursor,
                   ActorRow& row) {
    const FeatureLayout& l = layout_;
    const FeatureLayout::EventProperty& p = *cursor.property;
    std::span<const uint32_t> rows = cursor.column->rows;  // segment-relative
    uint32_t begin = chunk.first_row + run.begin, end = chunk.first_row + run.end;
    size_t k = cursor.next;
    while (k < rows.size() && rows[k] < begin) ++k;
    for (; k < rows.size() && rows[k] < end; ++k) {
      int64_t t = chunk.time[rows[k] - chunk.first_row];
      if (t < window_begin_ || t >= cutoff_) continue;
      int week = static_cast<int>((cutoff_ - 1 - t) / kMsPerWeek);
      if (week >= l.property_weeks) continue;
      const StoredValue& v = cursor.column->values[k];
      if (p.numeric) {
        if (v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool)
          row.Add(p.base + week, static_cast<float>(v.number));
        continue;
      }
      if (v.kind == ValueKind::kNull) continue;
      size_t value_slot = p.values.size();  // other
      if (v.kind == ValueKind::kString)
        for (size_t j = 0; j < p.values.size(); ++j)
          if (p.values[j] == v.string) {
            value_slot = j;
            break;
          }
      row.Add(p.base + value_slot * l.property_weeks + week, 1);
    }
    cursor.next = k;
  }

  // First and last value of each spec'd user property as of the cutoff, of the row's own
  // actor (a device's anonymous properties do not carry over to its user). `records` are
  // the actor's history records, by time.
  void AddUserProperties(std::span<const UserPropertyRecord> records, ActorRow& row) {
    const FeatureLayout& l = layout_;
    first_slot_.assign(l.user_properties.size(), -1);
    last_slot_.assign(l.user_properties.size(), -1);
    for (const UserPropertyRecord& record : records) {
      if (record.time_ms >= cutoff_) break;
      int32_t p = record.key < l.user_property_of_key.size() ? l.user_property_of_key[record.key] : -1;
      if (p < 0) continue;
      if (record.value.kind == ValueKind::kNull) {
        last_slot_[p] = -1;  // unset: no last value
        continue;
      }
      int32_t slot = static_cast<int32_t>(query_internal::UserValueSlot(l.user_properties[p], record.value));
      if (first_slot_[p] < 0) first_slot_[p] = slot;
      last_slot_[p] = slot;
    }
    for (size_t p = 0; p < l.user_properties.size(); ++p) {
      if (first_slot_[p] >= 0) row.Set(l.user_properties[p].first_base + first_slot_[p], 1);
      if (last_slot_[p] >= 0) row.Set(l.user_properties[p].last_base + last_slot_[p], 1);
    }
  }

  // Distinct sessions per week of the actor's events, from the pairs its runs recorded
  // (all chunks and parts of the actor's events). A linked device's sessions are counted
  // on its own and add to its user's (DeferredCell): a session with events under both
  // ids (the sign-up session) counts once for each.
  void CountSessions(ActorRow& row) {
    std::vector<ActorRow::SessionInWeek>& pairs = row.sessions();
    if (pairs.empty()) return;
    // Strictly ascending as recorded: all distinct, no sort (the common case; sorting every
    // actor's pairs made the whole matrix ~35% slower in CPU on features_bench's log).
    bool ascending = true;
    for (size_t i = 1; i < pairs.size() && ascending; ++i) ascending = pairs[i - 1] < pairs[i];
    if (!ascending) std::sort(pairs.begin(), pairs.end());
    for (size_t i = 0; i < pairs.size(); ++i)
      if (i == 0 || !(pairs[i] == pairs[i - 1])) row.Add(layout_.sessions + pairs[i].week, 1);
  }

  // Turns the actor's event times into recency and tenure cells. Only cells with a time
  // are set: the others hold the cap already (a complete row's "never"), and a linked
  // device's partial row must not contribute them (its merge takes the minimum).
  void FinishRecency(ActorRow& row) {
    const FeatureLayout& l = layout_;
    if (!l.recency) return;
    if (row.last_time != INT64_MIN) row.Set(l.recency_any, Recency(row.last_time));
    const int64_t* last_of_slot = row.last_of_slot();
    for (size_t s = 0; s < l.n_slots; ++s)
      if (last_of_slot[s] != INT64_MIN) row.Set(l.recency_types + s, Recency(last_of_slot[s]));
    if (row.first_time != INT64_MAX)
      row.Set(l.tenure, static_cast<float>(static_cast<double>(cutoff_ - row.first_time) / kMsPerHour));
  }

  // Device contributions merge in (row, column, device) order: float sums of several
  // devices then do not depend on which thread finished first, or on the scan mode.
  void SortDeferred() {
    std::sort(deferred_.begin(), deferred_.end(), [](const DeferredCell& a, const DeferredCell& b) {
      if (a.row != b.row) return a.row < b.row;
      return a.col != b.col ? a.col < b.col : a.actor < b.actor;
    });
  }

  // Rewrites each row with linked-device contributions as the merge of its cells and
  // theirs (few rows: only users with a device linked before T that has events).
  void MergeDeferredSparse(SparseMatrixBuilder& builder) {
    if (deferred_.empty()) return;
    SortDeferred();
    SparseFeatureMatrix& m = builder.matrix();
    SparseMatrixBuilder::Writer writer(builder);
    std::vector<SparseCell> merged;
    for (size_t i = 0; i < deferred_.size();) {
      uint32_t r = deferred_[i].row;
      merged.clear();
      std::span<const SparseCell> base = m.row(r);
      size_t b = 0;
      for (; i < deferred_.size() && deferred_[i].row == r;) {
        uint32_t col = deferred_[i].col;
        while (b < base.size() && base[b].col < col) merged.push_back(base[b++]);
        float v = b < base.size() && base[b].col == col ? base[b++].value : m.fill[col];
        for (; i < deferred_.size() && deferred_[i].row == r && deferred_[i].col == col; ++i)
          v = Merge(col, v, deferred_[i].value);
        if (v != m.fill[col]) merged.push_back({col, v});
      }
      merged.insert(merged.end(), base.begin() + static_cast<std::ptrdiff_t>(b), base.end());
      SparseCell* out = writer.BeginRow(merged.size());
      std::copy(merged.begin(), merged.end(), out);
      writer.CommitRow(r, merged.size());
    }
  }

  const EventReader& reader_;
  FeatureLayout layout_;
  int64_t cutoff_;
  std::span<const ActorId> rows_;
  FeaturePath path_;
  int64_t window_begin_ = 0;
  std::vector<ActorId> resolved_;
  std::vector<uint32_t> row_of_actor_;
  std::span<const UserPropertyRecord> history_;
  std::vector<DeferredCell> deferred_;
  bool gather_ = false;
  std::vector<Target> targets_;
  static thread_local std::vector<int32_t> first_slot_, last_slot_;
};

thread_local std::vector<int32_t> FeatureComputer::first_slot_;
thread_local std::vector<int32_t> FeatureComputer::last_slot_;

// `m` with `fill.size()` more columns: row r's new values are values[r * k ...]. Every row
// is rewritten (the new cells go after its stored ones); a new cell equal to its fill
// (NaN counts as equal to NaN) is not stored.
SparseFeatureMatrix AppendSparseColumns(SparseFeatureMatrix m, const std::vector<float>& values,
                                        const std::vector<float>& fill) {
  const size_t k = fill.size(), base = m.fill.size();
  SparseMatrixBuilder builder(m.rows());
  SparseFeatureMatrix& out = builder.matrix();
  out.cutoff_ms = m.cutoff_ms;
  out.actors = std::move(m.actors);
  out.fill = std::move(m.fill);
  out.fill.insert(out.fill.end(), fill.begin(), fill.end());
  SparseMatrixBuilder::Writer writer(builder);
  for (size_t r = 0; r < out.actors.size(); ++r) {
    std::span<const SparseCell> old = m.row(r);
    SparseCell* cells = writer.BeginRow(old.size() + k);
    size_t n = std::copy(old.begin(), old.end(), cells) - cells;
    for (size_t j = 0; j < k; ++j) {
      const float v = values[r * k + j];
      const bool same = v == fill[j] || (std::isnan(v) && std::isnan(fill[j]));
      if (!same) cells[n++] = {static_cast<uint32_t>(base + j), v};
    }
    writer.CommitRow(r, n);
  }
  return builder.Finish();
}

// The outcome family's column count, after checking that the scanned columns and it make
// up the spec's column list.
Result<size_t> OutcomeWidth(const FeatureSpec& spec, size_t scanned, size_t named) {
  const size_t outcome = spec.outcome.enabled ? OutcomeColumnNames(spec.outcome).size() : 0;
  if (named != scanned + outcome)
    return Internal("feature layout has {} columns, spec names {}", scanned + outcome, named);
  return outcome;
}

}  // namespace

Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel, FeaturePath path) {
  FeatureComputer computer(reader, spec, FloorHour(cutoff_ms), rows, path);
  std::vector<std::string> columns = spec.ColumnNames();
  const size_t scanned = computer.layout().cols;
  ASSIGN_OR_RETURN(const size_t outcome, OutcomeWidth(spec, scanned, columns.size()));
  ASSIGN_OR_RETURN(FeatureMatrix m, computer.Dense(parallel, columns.size()));
  if (outcome > 0) {
    ASSIGN_OR_RETURN(std::vector<float> values, ComputeOutcomeColumns(reader, spec.outcome, cutoff_ms, rows, parallel));
    for (size_t r = 0; r < rows.size(); ++r)
      std::copy_n(values.data() + r * outcome, outcome, m.values.data() + r * columns.size() + scanned);
  }
  m.columns = std::move(columns);
  return m;
}

Result<SparseFeatureMatrix> ComputeSparseFeatures(const EventReader& reader, const FeatureSpec& spec,
                                                  int64_t cutoff_ms, std::span<const ActorId> rows,
                                                  bool parallel, FeaturePath path,
                                                  const std::vector<std::string>* known_columns) {
  FeatureComputer computer(reader, spec, FloorHour(cutoff_ms), rows, path);
  std::vector<std::string> columns = known_columns ? *known_columns : spec.ColumnNames();
  const size_t scanned = computer.layout().cols;
  ASSIGN_OR_RETURN(const size_t outcome, OutcomeWidth(spec, scanned, columns.size()));
  ASSIGN_OR_RETURN(SparseFeatureMatrix m, computer.Sparse(parallel));
  if (outcome > 0) {
    ASSIGN_OR_RETURN(std::vector<float> values, ComputeOutcomeColumns(reader, spec.outcome, cutoff_ms, rows, parallel));
    m = AppendSparseColumns(std::move(m), values, OutcomeEmptyValues(spec.outcome));
  }
  m.columns = std::move(columns);
  return m;
}

Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel) {
  return ComputeFeatures(reader, spec, cutoff_ms, rows, parallel, FeaturePath::kAuto);
}

Result<SparseFeatureMatrix> ComputeSparseFeatures(const EventReader& reader, const FeatureSpec& spec,
                                                  int64_t cutoff_ms, std::span<const ActorId> rows,
                                                  bool parallel) {
  return ComputeSparseFeatures(reader, spec, cutoff_ms, rows, parallel, FeaturePath::kAuto);
}

}  // namespace sibyl
