#include "store/snapshot.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <mutex>
#include <thread>

#include "common/memory.h"

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

// Decoded optional columns of part files, shared by every snapshot of the process: a
// real-time request reads a few rows of each part and cannot afford to decode its columns
// each time, a scoring run scans the same parts once per block of users, and the daily run
// of a resident server decoded the same immutable parts its hourly runs had. One entry
// per segment, grown when a scan or gather asks for more keys, dropped with the segment
// (a checkpoint's new parts replace it); views are never changed once published, so
// readers need no lock. Decoding runs outside the cache's lock, so the segments of one
// scan decode in parallel.
struct ExtrasCacheEntry {
  std::weak_ptr<const Segment> segment;
  const Segment* key = nullptr;
  bool sessions = false;
  std::vector<DictId> keys;  // decoded (or absent from the segment), sorted
  std::shared_ptr<const ExtrasView> view;
};

std::mutex extras_cache_mutex;
std::vector<ExtrasCacheEntry> extras_cache;

ExtrasCacheEntry& CacheEntryLocked(const std::shared_ptr<const Segment>& segment) {
  for (ExtrasCacheEntry& e : extras_cache)
    if (e.key == segment.get() && !e.segment.expired()) return e;
  std::erase_if(extras_cache, [](const ExtrasCacheEntry& e) { return e.segment.expired(); });
  extras_cache.push_back(ExtrasCacheEntry{segment, segment.get()});
  return extras_cache.back();
}

Result<std::shared_ptr<const ExtrasView>> CachedExtras(const std::shared_ptr<const Segment>& segment,
                                                       bool sessions, const std::vector<DictId>& keys) {
  std::vector<DictId> missing;
  bool need_sessions = false;
  {
    std::lock_guard lock(extras_cache_mutex);
    ExtrasCacheEntry& entry = CacheEntryLocked(segment);
    std::set_difference(keys.begin(), keys.end(), entry.keys.begin(), entry.keys.end(), std::back_inserter(missing));
    need_sessions = sessions && !entry.sessions;
    if (entry.view && missing.empty() && !need_sessions) return entry.view;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const SegmentExtras> piece, segment->Extras(need_sessions, missing));
  std::lock_guard lock(extras_cache_mutex);
  // Another thread may have published columns meanwhile: merge into the latest view.
  ExtrasCacheEntry& entry = CacheEntryLocked(segment);
  auto view = entry.view ? std::make_shared<ExtrasView>(*entry.view) : std::make_shared<ExtrasView>();
  view->hold.push_back(piece);
  if (piece->session_marks.size() == segment->size() && piece->session.size() == segment->size() &&
      (need_sessions || view->session_marks == nullptr)) {
    view->session_marks = &piece->session_marks;
    view->session_ids = &piece->session;
  }
  for (const SegmentExtras::Column& column : piece->properties) {
    auto at = std::lower_bound(view->columns.begin(), view->columns.end(), column.key,
                               [](const auto& c, DictId k) { return c.first < k; });
    if (at == view->columns.end() || at->first != column.key) view->columns.insert(at, {column.key, &column});
  }
  entry.sessions = entry.sessions || need_sessions;
  std::vector<DictId> all;
  std::set_union(entry.keys.begin(), entry.keys.end(), missing.begin(), missing.end(), std::back_inserter(all));
  entry.keys = std::move(all);
  entry.view = view;
  return entry.view;
}

}  // namespace

Result<std::vector<StoreSnapshot::Selected>> StoreSnapshot::Select(const ScanSpec& spec,
                                                                   bool parallel) const {
  std::vector<std::pair<Selected, const std::shared_ptr<const Segment>*>> candidates;
  for (const auto* list : {&version_->parts, &version_->memtable})
    for (const std::shared_ptr<const Segment>& s : *list)
      if (s->size() > 0 && s->max_time() >= spec.begin_ms && s->min_time() < spec.end_ms)
        candidates.push_back({Selected{s.get(), nullptr}, &s});
  if (spec.with_sessions || !spec.property_keys.empty()) {
    std::vector<DictId> keys = spec.property_keys;
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    const std::vector<DictId> no_keys;
    RETURN_IF_ERROR(ParallelFor(candidates.size(), parallel, [&](size_t i) -> Status {
      const std::shared_ptr<const Segment>& s = *candidates[i].second;
      bool sessions = spec.with_sessions && s->max_time() >= spec.sessions_begin_ms;
      bool properties = s->max_time() >= spec.properties_begin_ms;
      if (!sessions && !(properties && !keys.empty())) return Status::Ok();
      ASSIGN_OR_RETURN(candidates[i].first.extras, CachedExtras(s, sessions, properties ? keys : no_keys));
      return Status::Ok();
    }));
  }
  std::vector<Selected> selected;
  selected.reserve(candidates.size());
  for (auto& [one, segment] : candidates) selected.push_back(std::move(one));
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
  const ExtrasView& x = *selected.extras;
  // The shared cache may hold more than this spec asked of the segment: only what it asked.
  if (spec.with_sessions && s.max_time() >= spec.sessions_begin_ms && x.session_marks != nullptr) {
    chunk.session_marks = std::span(*x.session_marks).subspan(begin, end - begin);
    chunk.session_ids = std::span(*x.session_ids).subspan(begin, end - begin);
  }
  const bool properties = s.max_time() >= spec.properties_begin_ms;
  for (DictId key : spec.property_keys) {
    PropertyColumn column;
    column.key = key;
    auto it = std::lower_bound(x.columns.begin(), x.columns.end(), key,
                               [](const auto& c, DictId k) { return c.first < k; });
    if (properties && it != x.columns.end() && it->first == key) {
      const SegmentExtras::Column& c = *it->second;
      auto lo = std::lower_bound(c.rows.begin(), c.rows.end(), begin);
      auto hi = std::lower_bound(lo, c.rows.end(), end);
      size_t from = static_cast<size_t>(lo - c.rows.begin());
      size_t count = static_cast<size_t>(hi - lo);
      column.rows = std::span(c.rows).subspan(from, count);
      column.values = std::span(c.values).subspan(from, count);
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
  // The blocks that hold the wanted actor range (all of them by default): a scoring run
  // in blocks of users must not walk the whole store for each block.
  uint64_t range_end = std::min<uint64_t>(actors, spec.end_actor);
  size_t first_block = spec.first_actor / actors_per_block;
  size_t blocks = range_end > spec.first_actor ? (range_end + actors_per_block - 1) / actors_per_block : first_block;
  // Row boundaries of every block in every segment, by one pass over each actor column
  // (sorted by actor), from the range's first row on.
  std::vector<std::vector<uint32_t>> bounds(selected.size());
  RETURN_IF_ERROR(ParallelFor(selected.size(), parallel, [&](size_t k) -> Status {
    const auto& a = selected[k].segment->actor();
    auto& b = bounds[k];
    b.assign(blocks + 1, 0);
    uint64_t range_first = static_cast<uint64_t>(first_block) * actors_per_block;
    size_t row = static_cast<size_t>(std::lower_bound(a.begin(), a.end(), range_first) - a.begin());
    for (size_t block = first_block; block <= blocks; ++block) {
      uint64_t first = static_cast<uint64_t>(block) * actors_per_block;
      while (row < a.size() && a[row] < first) ++row;
      b[block] = static_cast<uint32_t>(row);
    }
    if (blocks * uint64_t{actors_per_block} >= actors) b[blocks] = static_cast<uint32_t>(a.size());
    return Status::Ok();
  }));
  return ParallelFor(blocks - first_block, parallel, [&](size_t index) -> Status {
    const size_t block = first_block + index;
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

namespace {

// Sorted copies of a catalog's logs, shared by the snapshots of one store (see
// StoreSnapshot::Parts). A later snapshot sees a longer prefix: only its new records are
// sorted, and merged into the small delta (std::merge keeps the older records first
// among equal keys, as a stable sort of the whole prefix would).
template <typename T>
struct SortedLog {
  size_t size = 0;  // records covered by base + delta
  std::shared_ptr<const std::vector<T>> base = std::make_shared<const std::vector<T>>();
  std::shared_ptr<const std::vector<T>> delta = std::make_shared<const std::vector<T>>();
};

struct LogCache {
  std::weak_ptr<const Catalog> catalog;
  const Catalog* key = nullptr;
  SortedLog<UserPropertyRecord> history;
  SortedLog<IdentityLink> links, links_by_user;
};

std::mutex log_cache_mutex;
std::vector<LogCache> log_caches;  // one per open store; a handful at most

// The cache entry of `catalog` (log_cache_mutex held); forgets closed stores.
LogCache& LogCacheFor(const std::shared_ptr<const Catalog>& catalog) {
  std::erase_if(log_caches, [](const LogCache& c) { return c.catalog.expired(); });
  for (LogCache& c : log_caches)
    if (c.key == catalog.get()) return c;
  log_caches.push_back(LogCache{catalog, catalog.get(), {}, {}, {}});
  return log_caches.back();
}

bool HistoryBefore(const UserPropertyRecord& a, const UserPropertyRecord& b) {
  return a.actor != b.actor ? a.actor < b.actor : a.time_ms < b.time_ms;
}
bool LinkBefore(const IdentityLink& a, const IdentityLink& b) { return a.device < b.device; }
bool LinkByUserBefore(const IdentityLink& a, const IdentityLink& b) { return a.user < b.user; }

template <typename T, typename Before>
std::shared_ptr<const std::vector<T>> Merged(const std::vector<T>& older, const std::vector<T>& newer, Before before) {
  auto out = std::make_shared<std::vector<T>>();
  ReservePrefaulted(*out, older.size() + newer.size());
  std::merge(older.begin(), older.end(), newer.begin(), newer.end(), std::back_inserter(*out), before);
  return out;
}

// How each log is ordered: by a dense key (an actor id), then, for history, by time;
// records equal in both stay in arrival order (a stable sort).
struct HistoryOrder {
  static ActorId Key(const UserPropertyRecord& r) { return r.actor; }
  static bool Before(const UserPropertyRecord& a, const UserPropertyRecord& b) { return HistoryBefore(a, b); }
  static constexpr bool kByTime = true;
};
struct LinkOrder {
  static ActorId Key(const IdentityLink& l) { return l.device; }
  static bool Before(const IdentityLink& a, const IdentityLink& b) { return LinkBefore(a, b); }
  static constexpr bool kByTime = false;
};
struct LinkByUserOrder {
  static ActorId Key(const IdentityLink& l) { return l.user; }
  static bool Before(const IdentityLink& a, const IdentityLink& b) { return LinkByUserBefore(a, b); }
  static constexpr bool kByTime = false;
};

// Below this many records a comparison sort is cheaper than a counting array over every
// actor id.
constexpr size_t kCountingSortMin = 1 << 16;

// records[from, to) in `Order`, stably. Large ranges (the whole history of a store opened
// a moment ago: millions of records) are counting-sorted by actor into one prefaulted
// array, then each actor's few records by time (usually already in order): linear, and
// no vector growth, temporary buffer or merge copies, whose first touches of fresh pages
// cost more than the sorting itself on a VM.
template <typename Order, typename T, typename Records>
std::vector<T> SortedRange(const Records& records, size_t from, size_t to) {
  std::vector<T> out;
  const size_t n = to - from;
  if (n < kCountingSortMin) {
    out.reserve(n);
    for (size_t i = from; i < to; ++i) out.push_back(records[i]);
    std::stable_sort(out.begin(), out.end(), Order::Before);
    return out;
  }
  ActorId max_key = 0;
  for (size_t i = from; i < to; ++i) max_key = std::max(max_key, Order::Key(records[i]));
  // start[k]: where key k's records begin in `out` (then: where its next record goes).
  std::vector<size_t> start;
  ResizePrefaulted(start, size_t{max_key} + 2);
  for (size_t i = from; i < to; ++i) ++start[size_t{Order::Key(records[i])} + 1];
  for (size_t k = 1; k < start.size(); ++k) start[k] += start[k - 1];
  ResizePrefaulted(out, n);
  std::vector<size_t> next(start.begin(), start.end() - 1);
  for (size_t i = from; i < to; ++i) {
    const T& r = records[i];
    out[next[Order::Key(r)]++] = r;
  }
  if constexpr (Order::kByTime) {
    for (size_t k = 0; k + 1 < start.size(); ++k) {
      auto lo = out.begin() + static_cast<std::ptrdiff_t>(start[k]);
      auto hi = out.begin() + static_cast<std::ptrdiff_t>(start[k + 1]);
      if (hi - lo > 1 && !std::is_sorted(lo, hi, Order::Before)) std::stable_sort(lo, hi, Order::Before);
    }
  }
  return out;
}

// Brings `log` to the first `n` records of `records` (sorted stably in `Order`) and
// returns base and delta for a snapshot of that prefix. An older prefix than the cached
// one (a snapshot taken before the newest commit) is sorted on its own, not cached.
template <typename Order, typename T, typename Records>
std::pair<std::shared_ptr<const std::vector<T>>, std::shared_ptr<const std::vector<T>>> Advance(
    SortedLog<T>& log, const Records& records, size_t n) {
  auto sorted = [&](size_t from, size_t to) {
    return std::make_shared<const std::vector<T>>(SortedRange<Order, T>(records, from, to));
  };
  if (n < log.size) return {sorted(0, n), std::make_shared<const std::vector<T>>()};
  if (n > log.size) {
    // Re-sort the whole prefix into a new base once the delta would pass an eighth of the
    // base (a sort of the whole prefix is linear, like a merge, and has no delta to
    // copy): each record is sorted O(log) times, and per-actor lookups stay two binary
    // searches. A fresh process sorts everything once, straight into the base.
    if (log.delta->size() + (n - log.size) > std::max<size_t>(4096, log.base->size() / 8)) {
      log.base = sorted(0, n);
      log.delta = std::make_shared<const std::vector<T>>();
    } else {
      log.delta = Merged(*log.delta, SortedRange<Order, T>(records, log.size, n), Order::Before);
    }
    log.size = n;
  }
  return {log.base, log.delta};
}

// The records of `parts` equal to `probe` under `before`, base first (older arrivals).
template <typename T, typename Before>
std::vector<T> EqualIn(const std::shared_ptr<const std::vector<T>>& base, const std::shared_ptr<const std::vector<T>>& delta,
                       const T& probe, Before before) {
  std::vector<T> out;
  for (const auto* part : {base.get(), delta.get()}) {
    auto [lo, hi] = std::equal_range(part->begin(), part->end(), probe, before);
    out.insert(out.end(), lo, hi);
  }
  return out;
}

// The first row at or after `from` whose actor is >= `actor` (`actors` sorted): a
// galloping search, cheap when consecutive calls ask for nearby actors.
size_t Gallop(const std::vector<ActorId>& actors, size_t from, ActorId actor) {
  size_t n = actors.size();
  if (from >= n || actors[from] >= actor) return from;
  size_t lo = from, step = 1;  // actors[lo] < actor
  while (lo + step < n && actors[lo + step] < actor) {
    lo += step;
    step *= 2;
  }
  size_t hi = std::min(n, lo + step);
  return static_cast<size_t>(std::lower_bound(actors.begin() + static_cast<std::ptrdiff_t>(lo) + 1,
                                              actors.begin() + static_cast<std::ptrdiff_t>(hi), actor) -
                             actors.begin());
}

// Rows [begin, end) of a chunk, as a chunk (property rows stay segment-relative).
EventChunk SubChunk(const EventChunk& chunk, size_t begin, size_t end) {
  EventChunk out;
  out.size = end - begin;
  out.first_row = chunk.first_row + static_cast<uint32_t>(begin);
  out.actor = chunk.actor.subspan(begin, end - begin);
  out.time = chunk.time.subspan(begin, end - begin);
  out.event_type = chunk.event_type.subspan(begin, end - begin);
  if (!chunk.session_marks.empty()) {
    out.session_marks = chunk.session_marks.subspan(begin, end - begin);
    out.session_ids = chunk.session_ids.subspan(begin, end - begin);
  }
  uint32_t first = out.first_row, last = out.first_row + static_cast<uint32_t>(out.size);
  for (const PropertyColumn& column : chunk.properties) {
    PropertyColumn sub;
    sub.key = column.key;
    auto lo = std::lower_bound(column.rows.begin(), column.rows.end(), first);
    auto hi = std::lower_bound(lo, column.rows.end(), last);
    size_t from = static_cast<size_t>(lo - column.rows.begin());
    sub.rows = column.rows.subspan(from, static_cast<size_t>(hi - lo));
    sub.values = column.values.subspan(from, static_cast<size_t>(hi - lo));
    out.properties.push_back(sub);
  }
  return out;
}

}  // namespace

// The defaults of the gather helpers, for readers without an index: a full block scan
// that hands on only the asked-for actors.
Status EventReader::GatherActors(std::span<const ActorId> actors, const ScanSpec& spec,
                                 const std::function<Status(const ActorBlock&)>& visit, bool parallel) const {
  return ScanActorBlocks(
      spec, 4096,
      [&](const ActorBlock& block) -> Status {
        auto lo = std::lower_bound(actors.begin(), actors.end(), block.first_actor);
        auto hi = std::lower_bound(lo, actors.end(), block.end_actor);
        for (auto it = lo; it != hi; ++it) {
          ActorBlock one;
          one.first_actor = *it;
          one.end_actor = *it + 1;
          for (const EventChunk& chunk : block.chunks) {
            auto [b, e] = std::equal_range(chunk.actor.begin(), chunk.actor.end(), *it);
            if (b != e)
              one.chunks.push_back(SubChunk(chunk, static_cast<size_t>(b - chunk.actor.begin()),
                                            static_cast<size_t>(e - chunk.actor.begin())));
          }
          RETURN_IF_ERROR(visit(one));
        }
        return Status::Ok();
      },
      parallel);
}

ActorId EventReader::ResolveIdentity(ActorId actor, int64_t as_of_ms) const {
  ActorId owner = actor;
  int64_t decided_at = INT64_MAX;
  // As ResolveIdentities: the deciding link, if it was made before as_of.
  for (const IdentityLink& link : LinksOfDevice(actor)) {
    if (link.time_ms >= as_of_ms) continue;
    if (LinkOverrules(link.user, link.time_ms, owner, decided_at, actors())) {
      decided_at = link.time_ms;
      owner = link.user;
    }
  }
  return owner;
}

std::vector<IdentityLink> EventReader::LinksOfDevice(ActorId device) const {
  std::span<const IdentityLink> links = identity_links();
  auto [lo, hi] = std::equal_range(links.begin(), links.end(), IdentityLink{device, 0, 0}, LinkBefore);
  return {lo, hi};
}

std::vector<UserPropertyRecord> EventReader::UserPropertyHistoryOf(ActorId actor) const {
  std::span<const UserPropertyRecord> history = user_property_history();
  auto [lo, hi] = std::equal_range(history.begin(), history.end(), UserPropertyRecord{actor, 0, 0, {}},
                                   [](const UserPropertyRecord& a, const UserPropertyRecord& b) { return a.actor < b.actor; });
  return {lo, hi};
}

std::vector<ActorId> EventReader::LinkedDevices(ActorId user, int64_t as_of_ms) const {
  std::vector<ActorId> out;
  for (const IdentityLink& link : identity_links())
    if (link.user == user && link.time_ms < as_of_ms && ResolveIdentity(link.device, as_of_ms) == user)
      out.push_back(link.device);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void StoreSnapshot::LoadParts() const {
  std::call_once(parts_once_, [&] {
    std::lock_guard lock(log_cache_mutex);
    LogCache& cache = LogCacheFor(catalog_);
    auto history = [&] {
      std::tie(history_parts_.base, history_parts_.delta) =
          Advance<HistoryOrder>(cache.history, catalog_->history, version_->history_size);
    };
    // The first snapshot of a store sorts millions of history records: on a second
    // thread, beside the links (the three logs share nothing but the lock held here).
    const bool big = version_->history_size > cache.history.size + kCountingSortMin;
    std::thread helper;
    if (big && std::thread::hardware_concurrency() > 1) helper = std::thread(history);
    else history();
    std::tie(links_parts_.base, links_parts_.delta) = Advance<LinkOrder>(cache.links, catalog_->links, version_->links_size);
    std::tie(links_by_user_parts_.base, links_by_user_parts_.delta) =
        Advance<LinkByUserOrder>(cache.links_by_user, catalog_->links, version_->links_size);
    if (helper.joinable()) helper.join();
  });
}

std::vector<IdentityLink> StoreSnapshot::LinksOfDevice(ActorId device) const {
  LoadParts();
  return EqualIn(links_parts_.base, links_parts_.delta, IdentityLink{device, 0, 0}, LinkBefore);
}

std::vector<UserPropertyRecord> StoreSnapshot::UserPropertyHistoryOf(ActorId actor) const {
  LoadParts();
  auto by_actor = [](const UserPropertyRecord& a, const UserPropertyRecord& b) { return a.actor < b.actor; };
  std::vector<UserPropertyRecord> out =
      EqualIn(history_parts_.base, history_parts_.delta, UserPropertyRecord{actor, 0, 0, {}}, by_actor);
  // Base records arrived before delta records: a stable sort by time keeps that order.
  std::stable_sort(out.begin(), out.end(), HistoryBefore);
  return out;
}

std::vector<ActorId> StoreSnapshot::LinkedDevices(ActorId user, int64_t as_of_ms) const {
  LoadParts();
  std::vector<ActorId> out;
  for (const IdentityLink& link :
       EqualIn(links_by_user_parts_.base, links_by_user_parts_.delta, IdentityLink{0, user, 0}, LinkByUserBefore))
    if (link.time_ms < as_of_ms) out.push_back(link.device);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  std::erase_if(out, [&](ActorId device) { return ResolveIdentity(device, as_of_ms) != user; });
  return out;
}

Status StoreSnapshot::GatherActors(std::span<const ActorId> actors, const ScanSpec& spec,
                                   const std::function<Status(const ActorBlock&)>& visit, bool parallel) const {
  std::vector<DictId> keys = spec.property_keys;
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  const std::vector<DictId> no_keys;
  std::vector<Selected> sources;
  for (const auto* list : {&version_->parts, &version_->memtable})
    for (const std::shared_ptr<const Segment>& s : *list) {
      if (s->size() == 0 || s->max_time() < spec.begin_ms || s->min_time() >= spec.end_ms) continue;
      Selected source{s.get(), nullptr};
      bool sessions = spec.with_sessions && s->max_time() >= spec.sessions_begin_ms;
      bool properties = !keys.empty() && s->max_time() >= spec.properties_begin_ms;
      if (sessions || properties) {
        ASSIGN_OR_RETURN(source.extras, CachedExtras(s, sessions, properties ? keys : no_keys));
      }
      sources.push_back(std::move(source));
    }
  auto gather = [&](size_t from, size_t to) -> Status {
    std::vector<size_t> next(sources.size(), 0);
    ActorBlock block;
    for (size_t i = from; i < to; ++i) {
      ActorId actor = actors[i];
      block.first_actor = actor;
      block.end_actor = actor + 1;
      block.chunks.clear();
      for (size_t k = 0; k < sources.size(); ++k) {
        const std::vector<ActorId>& column = sources[k].segment->actor();
        size_t begin = Gallop(column, next[k], actor), end = begin;
        while (end < column.size() && column[end] == actor) ++end;
        next[k] = end;
        if (begin < end) block.chunks.push_back(MakeChunk(spec, sources[k], static_cast<uint32_t>(begin), static_cast<uint32_t>(end)));
      }
      RETURN_IF_ERROR(visit(block));
    }
    return Status::Ok();
  };
  // Two halves on two threads only when there is enough work to pay for a thread.
  if (!parallel || actors.size() < 4096 || std::thread::hardware_concurrency() < 2) return gather(0, actors.size());
  Status first_half;
  std::thread helper([&] { first_half = gather(0, actors.size() / 2); });
  Status second_half = gather(actors.size() / 2, actors.size());
  helper.join();
  RETURN_IF_ERROR(first_half);
  return second_half;
}

std::span<const UserPropertyRecord> StoreSnapshot::user_property_history() const {
  std::call_once(history_once_, [&] {
    LoadParts();
    history_ = history_parts_.delta->empty() ? history_parts_.base
                                             : Merged(*history_parts_.base, *history_parts_.delta, HistoryBefore);
  });
  return *history_;
}

std::span<const IdentityLink> StoreSnapshot::identity_links() const {
  std::call_once(links_once_, [&] {
    LoadParts();
    links_ = links_parts_.delta->empty() ? links_parts_.base
                                         : Merged(*links_parts_.base, *links_parts_.delta, LinkBefore);
  });
  return *links_;
}

namespace store_internal {
std::vector<UserPropertyRecord> SortedHistory(std::span<const UserPropertyRecord> records) {
  return SortedRange<HistoryOrder, UserPropertyRecord>(records, 0, records.size());
}
std::vector<IdentityLink> SortedLinksByDevice(std::span<const IdentityLink> links) {
  return SortedRange<LinkOrder, IdentityLink>(links, 0, links.size());
}
std::vector<IdentityLink> SortedLinksByUser(std::span<const IdentityLink> links) {
  return SortedRange<LinkByUserOrder, IdentityLink>(links, 0, links.size());
}
}  // namespace store_internal

std::shared_ptr<const EventReader> EmbeddedStoreSnapshot(std::shared_ptr<const Catalog> catalog,
                                                         std::shared_ptr<const Version> version) {
  return std::make_shared<StoreSnapshot>(std::move(catalog), std::move(version));
}

}  // namespace sibyl
