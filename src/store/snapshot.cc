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

Status StoreSnapshot::Scan(const ScanSpec& spec,
                           const std::function<Status(const EventChunk&)>& visit,
                           bool parallel) const {
  std::vector<const Segment*> segments;
  for (const Segment* s : Segments())
    if (s->size() > 0 && s->max_time() >= spec.begin_ms && s->min_time() < spec.end_ms)
      segments.push_back(s);
  bool need_extras = spec.with_sessions || !spec.property_keys.empty();

  auto scan_one = [&](const Segment* s) -> Status {
    EventChunk chunk;
    chunk.size = s->size();
    chunk.actor = s->actor();
    chunk.time = s->time();
    chunk.event_type = s->type();
    std::shared_ptr<const SegmentExtras> extras;
    if (need_extras) {
      ASSIGN_OR_RETURN(extras, s->Extras());
      if (spec.with_sessions) chunk.session_id = extras->session;
      for (DictId key : spec.property_keys) {
        PropertyColumn column;
        column.key = key;
        auto it = std::lower_bound(extras->properties.begin(), extras->properties.end(), key,
                                   [](const SegmentExtras::Column& c, DictId k) { return c.key < k; });
        if (it != extras->properties.end() && it->key == key) {
          column.rows = it->rows;
          column.values = it->values;
        }
        chunk.properties.push_back(column);
      }
    }
    return visit(chunk);
  };

  unsigned threads = parallel ? std::max(1u, std::thread::hardware_concurrency()) : 1;
  if (threads <= 1 || segments.size() <= 1) {
    for (const Segment* s : segments) RETURN_IF_ERROR(scan_one(s));
    return Status::Ok();
  }
  // Largest segments first, handed out dynamically, so two cores finish together.
  std::sort(segments.begin(), segments.end(),
            [](const Segment* a, const Segment* b) { return a->size() > b->size(); });
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  Status first_error;
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < segments.size();) {
      Status st = scan_one(segments[i]);
      if (!st.ok()) {
        std::lock_guard lock(error_mutex);
        if (first_error.ok()) first_error = st;
        next = segments.size();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<size_t>(threads, segments.size()); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return first_error;
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
