#include "query/features.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/time.h"
#include "query/scan_util.h"

namespace sibyl {
namespace {

using query_internal::ForEachActorRun;
using query_internal::kNoRow;
using query_internal::StripedLocks;

// Where each family of columns starts, and how event types, properties and values of
// the spec map to this reader's dictionary ids.
struct Layout {
  size_t cols = 0;
  int event_weeks = 0, property_weeks = 0, session_weeks = 0;
  size_t counts = 0;             // + slot * event_weeks + week
  std::vector<int32_t> slot_of_type;  // by event type id; -1: not a top type
  size_t n_slots = 0;

  struct EventProperty {
    DictId key = kNoDictId;
    bool numeric = false;
    std::vector<DictId> values;  // top values (kNoDictId: unknown to this store)
    size_t base = 0;             // numeric: base + week; string: base + value * weeks + week
  };
  std::vector<EventProperty> properties;

  struct UserProperty {
    std::vector<StoredValue> values;  // kind kNull: a value this store has never seen
    size_t first_base = 0, last_base = 0;  // + value slot; the last slot is "other"
  };
  std::vector<UserProperty> user_properties;
  std::vector<int32_t> user_property_of_key;  // by key id; -1: not in the spec

  bool recency = false;
  size_t recency_any = 0;    // hours since last event
  size_t recency_types = 0;  // + slot
  size_t tenure = 0;
  size_t sessions = 0;       // + week
  float recency_cap = 0;
};

Layout MakeLayout(const EventReader& reader, const FeatureSpec& spec) {
  Layout l;
  const Taxonomy& t = spec.taxonomy;
  l.event_weeks = spec.event_weeks;
  l.property_weeks = spec.property_weeks;
  l.session_weeks = spec.session_weeks;
  l.recency_cap = spec.recency_cap_hours;
  l.n_slots = t.event_types.size();
  l.slot_of_type.assign(reader.event_types().size(), -1);
  for (size_t s = 0; s < t.event_types.size(); ++s)
    if (auto id = reader.event_types().Find(t.event_types[s])) l.slot_of_type[*id] = static_cast<int32_t>(s);
  size_t col = 0;
  if (spec.families.event_counts) {
    l.counts = col;
    col += l.n_slots * l.event_weeks;
  } else {
    l.event_weeks = 0;  // nothing to count
  }
  if (spec.families.event_properties) {
    for (const EventPropertySpec& p : t.event_properties) {
      Layout::EventProperty lp;
      lp.key = reader.property_keys().Find(p.name).value_or(kNoDictId);
      lp.numeric = p.numeric;
      lp.base = col;
      for (const std::string& v : p.values)
        lp.values.push_back(reader.string_values().Find(v).value_or(kNoDictId));
      col += p.numeric ? l.property_weeks : (p.values.size() + 1) * l.property_weeks;
      l.properties.push_back(std::move(lp));
    }
  }
  if (spec.families.user_properties) {
    l.user_property_of_key.assign(reader.property_keys().size(), -1);
    l.user_properties.resize(t.user_properties.size());
    size_t total_slots = 0;
    for (size_t i = 0; i < t.user_properties.size(); ++i) {
      const UserPropertySpec& p = t.user_properties[i];
      if (auto key = reader.property_keys().Find(p.name)) l.user_property_of_key[*key] = static_cast<int32_t>(i);
      for (const nlohmann::json& v : p.values) {
        StoredValue sv;
        if (v.is_string()) {
          if (auto id = reader.string_values().Find(v.get<std::string>())) sv = {ValueKind::kString, 0, *id};
        } else if (v.is_boolean()) {
          sv = {ValueKind::kBool, v.get<bool>() ? 1.0 : 0.0, kNoDictId};
        } else if (v.is_number()) {
          sv = {ValueKind::kNumber, v.get<double>(), kNoDictId};
        }
        l.user_properties[i].values.push_back(sv);
      }
      l.user_properties[i].first_base = col + total_slots;
      total_slots += p.values.size() + 1;
    }
    for (size_t i = 0; i < t.user_properties.size(); ++i)
      l.user_properties[i].last_base = l.user_properties[i].first_base + total_slots;
    col += 2 * total_slots;
  }
  if (spec.families.recency) {
    l.recency = true;
    l.recency_any = col;
    l.recency_types = col + 1;
    l.tenure = col + 1 + l.n_slots;
    col += 2 + l.n_slots;
  }
  if (spec.families.sessions) {
    l.sessions = col;
    col += l.session_weeks;
  } else {
    l.session_weeks = 0;
  }
  l.cols = col;
  return l;
}

// The slot of a user property value among the spec's top values; values.size() is "other".
size_t UserValueSlot(const Layout::UserProperty& p, const StoredValue& v) {
  for (size_t i = 0; i < p.values.size(); ++i) {
    const StoredValue& want = p.values[i];
    bool text = v.kind == ValueKind::kString || v.kind == ValueKind::kArray;
    if (want.kind == ValueKind::kString ? text && v.string == want.string
                                        : want.kind == v.kind && want.kind != ValueKind::kNull &&
                                              v.number == want.number)
      return i;
  }
  return p.values.size();
}

// One thread's partial row: the run of one actor is accumulated here, then folded into
// its matrix row under the row's stripe lock. Recency columns hold "freshness"
// (cap - hours, so larger is more recent) and fold with max, everything else with +.
struct RowScratch {
  std::vector<float> values;
  std::vector<uint8_t> touched_mark;
  std::vector<uint32_t> touched;

  void Reset(size_t cols) {
    if (values.size() != cols) {
      values.assign(cols, 0);
      touched_mark.assign(cols, 0);
      touched.clear();
    }
  }
  void Add(size_t col, float v) {
    if (!touched_mark[col]) {
      touched_mark[col] = 1;
      touched.push_back(static_cast<uint32_t>(col));
    }
    values[col] += v;
  }
  void Max(size_t col, float v) {
    if (!touched_mark[col]) {
      touched_mark[col] = 1;
      touched.push_back(static_cast<uint32_t>(col));
      values[col] = v;
    } else if (v > values[col]) {
      values[col] = v;
    }
  }
};

class FeatureComputer {
 public:
  FeatureComputer(const EventReader& reader, const FeatureSpec& spec, int64_t cutoff,
                  std::span<const ActorId> rows)
      : reader_(reader), layout_(MakeLayout(reader, spec)), cutoff_(cutoff), rows_(rows) {}

  Result<FeatureMatrix> Run(bool parallel) {
    auto t0 = std::chrono::steady_clock::now();
    auto lap = [&](const char* what) {
      if (std::getenv("SIBYL_QUERY_TRACE") == nullptr) return;
      auto now = std::chrono::steady_clock::now();
      std::fprintf(stderr, "features: %s %.3f s\n", what, std::chrono::duration<double>(now - t0).count());
      t0 = now;
    };
    std::vector<ActorId> resolved = reader_.ResolveIdentities(cutoff_);
    row_of_actor_ = query_internal::MakeRowMap(resolved, rows_).row_of_actor;
    FeatureMatrix m;
    m.cutoff_ms = cutoff_;
    m.actors.assign(rows_.begin(), rows_.end());
    m.values = FloatBuffer(rows_.size() * layout_.cols);
    matrix_ = m.values.data();
    // Fault the pages in now, on both cores, rather than inside the row locks of the scan
    // (a first touch there stalls the other thread on the lock for the whole fault).
    Prefault(m.values.data(), m.values.size());
    lap("setup and page faults");

    int max_weeks = std::max({layout_.event_weeks, layout_.property_weeks, layout_.session_weeks});
    window_begin_ = cutoff_ - max_weeks * kMsPerWeek;
    if (layout_.recency) {
      // Recency and tenure need all history; only the feature window needs properties
      // and sessions decoded.
      ScanSpec old;
      old.end_ms = window_begin_;
      RETURN_IF_ERROR(reader_.Scan(old, [&](const EventChunk& c) { return Visit(c, INT64_MIN, window_begin_); },
                                   parallel));
      lap("history scan");
    }
    if (max_weeks > 0 || layout_.recency) {
      ScanSpec window;
      window.begin_ms = window_begin_;
      window.end_ms = cutoff_;
      window.with_sessions = layout_.session_weeks > 0;
      for (const auto& p : layout_.properties)
        if (p.key != kNoDictId) window.property_keys.push_back(p.key);
      RETURN_IF_ERROR(reader_.Scan(window, [&](const EventChunk& c) { return Visit(c, window_begin_, cutoff_); },
                                   parallel));
    }
    lap("window scan");
    if (!layout_.user_properties.empty()) UserProperties(resolved);
    if (layout_.recency) FinishRecency();
    lap("user properties and recency");
    return m;
  }

  const Layout& layout() const { return layout_; }

 private:
  float Freshness(int64_t t) const {
    float hours = static_cast<float>(static_cast<double>(cutoff_ - t) / kMsPerHour);
    return layout_.recency_cap - std::min(hours, layout_.recency_cap);
  }

  // Folds events of `chunk` with time in [begin, end) into their rows.
  Status Visit(const EventChunk& chunk, int64_t begin, int64_t end) {
    thread_local RowScratch scratch;
    scratch.Reset(layout_.cols);
    const Layout& l = layout_;
    const int64_t* times = chunk.time.data();
    const EventTypeId* types = chunk.event_type.data();
    bool sessions = l.session_weeks > 0 && !chunk.session_id.empty();
    // Property columns of this chunk, matched to the layout, each with a cursor that
    // moves forward with the actor runs.
    std::vector<std::pair<const PropertyColumn*, const Layout::EventProperty*>> columns;
    for (const PropertyColumn& c : chunk.properties)
      for (const auto& p : l.properties)
        if (p.key == c.key && !c.rows.empty()) columns.emplace_back(&c, &p);
    std::vector<size_t> cursor(columns.size(), 0);

    size_t previous_end = 0;
    ForEachActorRun(chunk, [&](ActorId actor, size_t run_begin, size_t run_end) {
      if (run_begin < previous_end || (previous_end == 0 && run_begin > 0)) {
        // The walk (re)starts here: put each property cursor at the run's first row.
        for (size_t c = 0; c < columns.size(); ++c) {
          auto rows = columns[c].first->rows;
          cursor[c] = std::lower_bound(rows.begin(), rows.end(), static_cast<uint32_t>(run_begin)) - rows.begin();
        }
      }
      previous_end = run_end;
      uint32_t row = actor < row_of_actor_.size() ? row_of_actor_[actor] : kNoRow;
      if (row == kNoRow) {
        for (size_t c = 0; c < columns.size(); ++c)
          while (cursor[c] < columns[c].first->rows.size() && columns[c].first->rows[cursor[c]] < run_end)
            ++cursor[c];
        return;
      }
      int64_t previous_session = -1;
      int64_t first_time = INT64_MAX, last_time = INT64_MIN;
      for (size_t i = run_begin; i < run_end; ++i) {
        int64_t t = times[i];
        if (t < begin || t >= end) continue;
        if (first_time == INT64_MAX) first_time = t;
        last_time = t;
        int32_t slot = l.slot_of_type[types[i]];
        if (slot >= 0 && l.recency) scratch.Max(l.recency_types + slot, Freshness(t));
        if (t < window_begin_) continue;
        int week = static_cast<int>((cutoff_ - 1 - t) / kMsPerWeek);
        if (slot >= 0 && week < l.event_weeks) scratch.Add(l.counts + slot * l.event_weeks + week, 1);
        if (sessions && week < l.session_weeks) {
          int64_t s = chunk.session_id[i];
          if (s != -1 && s != previous_session) scratch.Add(l.sessions + week, 1);
          previous_session = s;
        }
      }
      if (l.recency && first_time != INT64_MAX) {
        scratch.Max(l.recency_any, Freshness(last_time));
        scratch.Max(l.tenure, static_cast<float>(static_cast<double>(cutoff_ - first_time) / kMsPerHour));
      }
      for (size_t c = 0; c < columns.size(); ++c) {
        const PropertyColumn& column = *columns[c].first;
        const Layout::EventProperty& p = *columns[c].second;
        size_t& k = cursor[c];
        for (; k < column.rows.size() && column.rows[k] < run_end; ++k) {
          uint32_t r = column.rows[k];
          if (r < run_begin) continue;
          int64_t t = times[r];
          if (t < begin || t >= end || t < window_begin_) continue;
          int week = static_cast<int>((cutoff_ - 1 - t) / kMsPerWeek);
          if (week >= l.property_weeks) continue;
          const StoredValue& v = column.values[k];
          if (p.numeric) {
            if (v.kind == ValueKind::kNumber || v.kind == ValueKind::kBool)
              scratch.Add(p.base + week, static_cast<float>(v.number));
            continue;
          }
          if (v.kind == ValueKind::kNull) continue;
          size_t value_slot = p.values.size();  // other
          if (v.kind == ValueKind::kString)
            for (size_t j = 0; j < p.values.size(); ++j)
              if (p.values[j] == v.string) value_slot = j;
          scratch.Add(p.base + value_slot * l.property_weeks + week, 1);
        }
      }
      Fold(row, scratch);
    });
    return Status::Ok();
  }

  void Fold(uint32_t row, RowScratch& scratch) {
    if (scratch.touched.empty()) return;
    float* out = matrix_ + static_cast<size_t>(row) * layout_.cols;
    size_t max_begin = layout_.recency ? layout_.recency_any : SIZE_MAX;
    size_t max_end = layout_.recency ? layout_.tenure + 1 : 0;
    locks_.Lock(row);
    for (uint32_t c : scratch.touched) {
      if (c >= max_begin && c < max_end) out[c] = std::max(out[c], scratch.values[c]);
      else out[c] += scratch.values[c];
      scratch.values[c] = 0;
      scratch.touched_mark[c] = 0;
    }
    locks_.Unlock(row);
    scratch.touched.clear();
  }

  // First and last value of each spec'd user property as of the cutoff, of the row's own
  // actor (a device's anonymous properties do not carry over to its user).
  void UserProperties(const std::vector<ActorId>& resolved) {
    const Layout& l = layout_;
    auto history = reader_.user_property_history();
    std::vector<int32_t> first(l.user_properties.size(), -1), last(l.user_properties.size(), -1);
    size_t i = 0;
    while (i < history.size()) {
      ActorId actor = history[i].actor;
      size_t end = i;
      while (end < history.size() && history[end].actor == actor) ++end;
      bool own_row = actor < resolved.size() && resolved[actor] == actor && row_of_actor_[actor] != kNoRow;
      if (own_row) {
        std::fill(first.begin(), first.end(), -1);
        std::fill(last.begin(), last.end(), -1);
        for (size_t k = i; k < end && history[k].time_ms < cutoff_; ++k) {
          const UserPropertyRecord& r = history[k];
          int32_t p = r.key < l.user_property_of_key.size() ? l.user_property_of_key[r.key] : -1;
          if (p < 0) continue;
          if (r.value.kind == ValueKind::kNull) {
            last[p] = -1;  // unset: no last value
            continue;
          }
          int32_t slot = static_cast<int32_t>(UserValueSlot(l.user_properties[p], r.value));
          if (first[p] < 0) first[p] = slot;
          last[p] = slot;
        }
        float* out = matrix_ + static_cast<size_t>(row_of_actor_[actor]) * l.cols;
        for (size_t p = 0; p < l.user_properties.size(); ++p) {
          if (first[p] >= 0) out[l.user_properties[p].first_base + first[p]] = 1;
          if (last[p] >= 0) out[l.user_properties[p].last_base + last[p]] = 1;
        }
      }
      i = end;
    }
  }

  static void Prefault(float* data, size_t count) {
    auto touch = [data](size_t from, size_t to) {
      constexpr size_t kPage = 4096 / sizeof(float);
      for (size_t i = from; i < to; i += kPage) data[i] = 0;
    };
    if (count < (size_t{1} << 22)) {
      touch(0, count);
      return;
    }
    size_t half = count / 2;
    std::thread helper(touch, 0, half);
    touch(half, count);
    helper.join();
  }

  // Freshness back to hours since; untouched cells (never seen) become the cap.
  void FinishRecency() {
    const Layout& l = layout_;
    size_t n = rows_.size();
    auto work = [&](size_t from, size_t to) {
      for (size_t r = from; r < to; ++r) {
        float* out = matrix_ + r * l.cols;
        for (size_t c = l.recency_any; c < l.tenure; ++c) out[c] = l.recency_cap - out[c];
      }
    };
    if (n < 100000) {
      work(0, n);
      return;
    }
    std::thread helper(work, 0, n / 2);
    work(n / 2, n);
    helper.join();
  }

  const EventReader& reader_;
  Layout layout_;
  int64_t cutoff_;
  std::span<const ActorId> rows_;
  std::vector<uint32_t> row_of_actor_;
  int64_t window_begin_ = 0;
  float* matrix_ = nullptr;
  StripedLocks locks_;
};

}  // namespace

Result<FeatureMatrix> ComputeFeatures(const EventReader& reader, const FeatureSpec& spec,
                                      int64_t cutoff_ms, std::span<const ActorId> rows,
                                      bool parallel) {
  FeatureComputer computer(reader, spec, FloorHour(cutoff_ms), rows);
  ASSIGN_OR_RETURN(FeatureMatrix m, computer.Run(parallel));
  m.columns = spec.ColumnNames();
  if (m.columns.size() != computer.layout().cols)
    return Internal("feature layout has {} columns, spec names {}", computer.layout().cols, m.columns.size());
  return m;
}

}  // namespace sibyl
