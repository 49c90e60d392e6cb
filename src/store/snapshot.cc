#include "store/snapshot.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace sibyl {

StoreSnapshot::StoreSnapshot(std::shared_ptr<const Catalog> catalog,
                             std::shared_ptr<const Version> version)
    : catalog_(std::move(catalog)), version_(std::move(version)),
      actors_(&catalog_->actors, version_->dictionary_sizes[0]),
      event_types_(&catalog_->event_types, version_->dictionary_sizes[1]),
      property_keys_(&catalog_->property_keys, version_->dictionary_sizes[2]),
      string_values_(&catalog_->string_values, version_->dictionary_sizes[3]) {
  for (const Segment* s : Segments()) {
    if (s->size() == 0) continue;
    min_time_ = std::min(min_time_, s->min_time());
    max_time_ = std::max(max_time_, s->max_time());
  }
}

std::vector<const Segment*> StoreSnapshot::Segments() const {
  std::vector<const Segment*> out;
  for (const auto& s : version_->parts) out.push_back(s.get());
  for (const auto& s : version_->memtable) out.push_back(s.get());
  return out;
}

namespace {

// Runs task(i) for i in [0, n) on up to the machine's cores; stops at the first error.
Status ParallelFor(size_t n, bool parallel, const std::function<Status(size_t)>& task) {
  unsigned threads = parallel ? std::max(1u, std::thread::hardware_concurrency()) : 1;
  if (threads <= 1 || n <= 1) {
    for (size_t i = 0; i < n; ++i) RETURN_IF_ERROR(task(i));
    return Status::Ok();
  }
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  Status first_error;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < n;) {
      Status st = task(i);
      if (!st.ok()) {
        std::lock_guard lock(error_mutex);
        if (first_error.ok()) first_error = st;
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<size_t>(threads, n); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return first_error;
}

}  // namespace

Result<std::vector<StoreSnapshot::Selected>> StoreSnapshot::Select(const ScanSpec& spec,
                                                                   bool parallel) const {
  std::vector<Selected> selected;
  for (const Segment* s : Segments())
    if (s->size() > 0 && s->max_time() >= spec.begin_ms && s->min_time() < spec.end_ms)
      selected.push_back({s, nullptr});
  if (spec.with_sessions || !spec.property_keys.empty()) {
    std::vector<DictId> keys = spec.property_keys;
    std::sort(keys.begin(), keys.end());
    const std::vector<DictId> no_keys;
    RETURN_IF_ERROR(ParallelFor(selected.size(), parallel, [&](size_t i) -> Status {
      const Segment& s = *selected[i].segment;
      bool sessions = spec.with_sessions && s.max_time() >= spec.sessions_begin_ms;
      bool properties = s.max_time() >= spec.properties_begin_ms;
      if (!sessions && !(properties && !keys.empty())) return Status::Ok();
      ASSIGN_OR_RETURN(selected[i].extras, s.Extras(sessions, properties ? keys : no_keys));
      return Status::Ok();
    }));
  }
  return selected;
}

EventChunk StoreSnapshot::MakeChunk(const ScanSpec& spec, const Selected& selected,
                                    uint32_t begin, uint32_t end) {
  const Segment& s = *selected.segment;
  EventChunk chunk;
  chunk.size = end - begin;
  chunk.first_row = begin;
  chunk.actor = std::span(s.actor()).subspan(begin, end - begin);
  chunk.time = std::span(s.time()).subspan(begin, end - begin);
  chunk.event_type = std::span(s.type()).subspan(begin, end - begin);
  if (!selected.extras) return chunk;
  const SegmentExtras& x = *selected.extras;
  if (spec.with_sessions && x.session.size() == s.size())
    chunk.session_id = std::span(x.session).subspan(begin, end - begin);
  for (DictId key : spec.property_keys) {
    PropertyColumn column;
    column.key = key;
    auto it = std::lower_bound(x.properties.begin(), x.properties.end(), key,
                               [](const SegmentExtras::Column& c, DictId k) { return c.key < k; });
    if (it != x.properties.end() && it->key == key) {
      auto lo = std::lower_bound(it->rows.begin(), it->rows.end(), begin);
      auto hi = std::lower_bound(lo, it->rows.end(), end);
      size_t from = static_cast<size_t>(lo - it->rows.begin());
      size_t count = static_cast<size_t>(hi - lo);
      column.rows = std::span(it->rows).subspan(from, count);
      column.values = std::span(it->values).subspan(from, count);
    }
    chunk.properties.push_back(column);
  }
  return chunk;
}

Status StoreSnapshot::Scan(const ScanSpec& spec,
                           const std::function<Status(const EventChunk&)>& visit,
                           bool parallel) const {
  ASSIGN_OR_RETURN(auto selected, Select(spec, parallel));
  // Largest segments first, handed out dynamically, so two cores finish together.
  std::sort(selected.begin(), selected.end(), [](const Selected& a, const Selected& b) {
    return a.segment->size() > b.segment->size();
  });
  return ParallelFor(selected.size(), parallel, [&](size_t i) {
    return visit(MakeChunk(spec, selected[i], 0, static_cast<uint32_t>(selected[i].segment->size())));
  });
}

Status StoreSnapshot::ScanActorBlocks(const ScanSpec& spec, uint32_t actors_per_block,
                                      const std::function<Status(const ActorBlock&)>& visit,
                                      bool parallel) const {
  if (actors_per_block == 0) return InvalidArgument("actors_per_block must be positive");
  ASSIGN_OR_RETURN(auto selected, Select(spec, parallel));
  size_t actors = actors_.size();
  size_t blocks = (actors + actors_per_block - 1) / actors_per_block;
  // Row boundaries of every block in every segment, by one pass over each actor column.
  std::vector<std::vector<uint32_t>> bounds(selected.size());
  RETURN_IF_ERROR(ParallelFor(selected.size(), parallel, [&](size_t k) -> Status {
    const auto& a = selected[k].segment->actor();
    auto& b = bounds[k];
    b.resize(blocks + 1);
    size_t row = 0;
    for (size_t block = 0; block <= blocks; ++block) {
      uint64_t first = static_cast<uint64_t>(block) * actors_per_block;
      while (row < a.size() && a[row] < first) ++row;
      b[block] = static_cast<uint32_t>(row);
    }
    b[blocks] = static_cast<uint32_t>(a.size());
    return Status::Ok();
  }));
  return ParallelFor(blocks, parallel, [&](size_t block) -> Status {
    ActorBlock ab;
    ab.first_actor = static_cast<ActorId>(block * actors_per_block);
    ab.end_actor = static_cast<ActorId>(std::min<uint64_t>(actors, (block + 1) * uint64_t{actors_per_block}));
    for (size_t k = 0; k < selected.size(); ++k) {
      uint32_t begin = bounds[k][block], end = bounds[k][block + 1];
      if (begin < end) ab.chunks.push_back(MakeChunk(spec, selected[k], begin, end));
    }
    return visit(ab);
  });
}

Status StoreSnapshot::ScanActor(ActorId actor, int64_t begin_ms, int64_t end_ms,
                                const std::function<void(int64_t, DictId)>& visit) const {
  std::vector<std::pair<int64_t, DictId>> events;
  for (const Segment* s : Segments()) {
    if (s->size() == 0 || s->max_time() < begin_ms || s->min_time() >= end_ms) continue;
    const auto& actors = s->actor();
    auto [lo, hi] = std::equal_range(actors.begin(), actors.end(), actor);
    for (auto i = static_cast<size_t>(lo - actors.begin()); i < static_cast<size_t>(hi - actors.begin()); ++i) {
      int64_t t = s->time()[i];
      if (t >= begin_ms && t < end_ms) events.emplace_back(t, s->type()[i]);
    }
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [t, type] : events) visit(t, type);
  return Status::Ok();
}

std::span<const UserPropertyRecord> StoreSnapshot::user_property_history() const {
  std::call_once(history_once_, [&] {
    history_.reserve(version_->history_size);
    for (size_t i = 0; i < version_->history_size; ++i) history_.push_back(catalog_->history[i]);
    std::stable_sort(history_.begin(), history_.end(), [](const auto& a, const auto& b) {
      return a.actor != b.actor ? a.actor < b.actor : a.time_ms < b.time_ms;
    });
  });
  return history_;
}

std::span<const IdentityLink> StoreSnapshot::identity_links() const {
  std::call_once(links_once_, [&] {
    for (size_t i = 0; i < version_->links_size; ++i) links_.push_back(catalog_->links[i]);
    std::stable_sort(links_.begin(), links_.end(),
                     [](const auto& a, const auto& b) { return a.device < b.device; });
  });
  return links_;
}

std::shared_ptr<const EventReader> EmbeddedStoreSnapshot(std::shared_ptr<const Catalog> catalog,
                                                         std::shared_ptr<const Version> version) {
  return std::make_shared<StoreSnapshot>(std::move(catalog), std::move(version));
}

}  // namespace sibyl
