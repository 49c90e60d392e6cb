// Merges of segments: the memtable's tiers, and a checkpoint's partitions (segment.h).
#include <algorithm>
#include <atomic>
#include <map>
#include <queue>
#include <thread>
#include <tuple>

#include "common/memory.h"
#include "store/segment.h"

namespace sibyl {

std::vector<std::shared_ptr<const Segment>> Segment::FromRows(
    const std::vector<std::shared_ptr<const Segment>>& inputs, const std::vector<RowRef>& order,
    const std::vector<uint32_t>& group_of, uint32_t groups) {
  std::vector<std::shared_ptr<const SegmentExtras>> extras;
  for (const auto& s : inputs) {
    auto x = s->Extras();
    // A part's extras passed their checksum at open; decoding them again cannot fail
    // unless the file changed underneath, which the format does not allow.
    extras.push_back(x.ok() ? *x : std::make_shared<const SegmentExtras>());
    if (extras.back()->session.size() != s->size()) {
      auto filled = std::make_shared<SegmentExtras>(*extras.back());
      filled->session.assign(s->size(), -1);
      extras.back() = filled;
    }
  }
  std::vector<std::shared_ptr<Segment>> out(groups);
  std::vector<std::shared_ptr<SegmentExtras>> out_extras(groups);
  std::vector<uint32_t> group_size(groups, 0);
  for (size_t i = 0; i < order.size(); ++i) ++group_size[group_of.empty() ? 0 : group_of[i]];
  for (uint32_t g = 0; g < groups; ++g) {
    out[g] = std::shared_ptr<Segment>(new Segment());
    out_extras[g] = std::make_shared<SegmentExtras>();
    ReservePrefaulted(out[g]->actor_, group_size[g]);
    ReservePrefaulted(out[g]->time_, group_size[g]);
    ReservePrefaulted(out[g]->type_, group_size[g]);
    ReservePrefaulted(out_extras[g]->session, group_size[g]);
  }
  // Where each input row goes: its index in `order` (UINT32_MAX: not in this merge), and
  // for each index its row in its group. Four bytes an input row and an output row, where a
  // group and a row for every input row took eight.
  std::vector<std::vector<uint32_t>> new_index(inputs.size());
  size_t input_rows = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    ResizePrefaulted(new_index[k], inputs[k]->size());
    std::fill(new_index[k].begin(), new_index[k].end(), UINT32_MAX);
    input_rows += inputs[k]->size();
  }
  const bool grouped = !group_of.empty() && groups > 1;
  std::vector<uint32_t> row_in_group;
  if (grouped) ResizePrefaulted(row_in_group, order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const RowRef& ref = order[i];
    const Segment& s = *inputs[ref.input];
    uint32_t g = group_of.empty() ? 0 : group_of[i];
    Segment& o = *out[g];
    new_index[ref.input][ref.row] = static_cast<uint32_t>(i);
    if (grouped) row_in_group[i] = static_cast<uint32_t>(o.time_.size());
    o.actor_.push_back(s.actor_[ref.row]);
    o.time_.push_back(s.time_[ref.row]);
    o.type_.push_back(s.type_[ref.row]);
    o.min_time_ = std::min(o.min_time_, s.time_[ref.row]);
    o.max_time_ = std::max(o.max_time_, s.time_[ref.row]);
    out_extras[g]->session.push_back(extras[ref.input]->session[ref.row]);
  }
  // The group and row of output index i.
  auto group_at = [&](uint32_t i) -> uint32_t { return group_of.empty() ? 0 : group_of[i]; };
  auto row_at = [&](uint32_t i) -> uint32_t { return grouped ? row_in_group[i] : i; };
  // Every row goes to the one group (a plain merge), or some rows are left out (a
  // partition or a wave of MergeEachPartition) and columns are counted row by row.
  const bool every_row_to_one = groups == 1 && order.size() == input_rows;
  // Property columns, key by key, through the row maps: no per-row allocation.
  std::vector<DictId> keys;
  for (const auto& x : extras)
    for (const auto& column : x->properties) keys.push_back(column.key);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  // A gathered cell: its output row and where its value is (input, index in the input's
  // column). Twelve bytes, where the row and a copy of the value took 24: half the
  // scratch memory (fresh pages are dear on VMs) and half the bytes the merges move.
  struct Entry {
    uint32_t row;
    uint32_t input;
    uint32_t at;
  };
  auto by_row = [](const Entry& a, const Entry& b) { return a.row < b.row; };
  // Keys are independent: two threads take them in turns (a checkpoint otherwise spends
  // most of its merge on one core while the other waits), each with its own scratch.
  // columns_of[key index][group] collects the results, appended in key order below.
  std::vector<std::vector<SegmentExtras::Column>> columns_of(keys.size());
  struct Scratch {
    std::vector<std::vector<Entry>> gathered;
    std::vector<size_t> run_start, merge_work, group_count;
    std::vector<char> needs_sort;
    std::vector<const SegmentExtras::Column*> columns;
  };
  auto merge_key = [&](size_t key_index, Scratch& x) {
    DictId key = keys[key_index];
    x.gathered.resize(groups);
    x.run_start.assign(groups, 0);
    x.merge_work.assign(groups, 0);
    x.group_count.assign(groups, 0);
    x.needs_sort.assign(groups, 0);
    for (uint32_t g = 0; g < groups; ++g) x.gathered[g].clear();
    // The inputs' columns of this key, and how many values each group gets: fresh pages
    // fault in one by one at great cost on VMs, so each list is reserved prefaulted once.
    x.columns.assign(extras.size(), nullptr);
    for (size_t k = 0; k < extras.size(); ++k) {
      auto it = std::lower_bound(extras[k]->properties.begin(), extras[k]->properties.end(), key,
                                 [](const SegmentExtras::Column& c, DictId d) { return c.key < d; });
      if (it == extras[k]->properties.end() || it->key != key) continue;
      x.columns[k] = &*it;
      if (every_row_to_one) {
        x.group_count[0] += it->rows.size();
      } else {
        for (uint32_t row : it->rows)
          if (uint32_t i = new_index[k][row]; i != UINT32_MAX) ++x.group_count[group_at(i)];
      }
    }
    for (uint32_t g = 0; g < groups; ++g) ReservePrefaulted(x.gathered[g], x.group_count[g]);
    // Each input's rows arrive in ascending output order (the merge keeps an input's
    // order), so a group's list is a sequence of ascending runs. Inputs usually hold
    // disjoint actor ranges (a file is cut into chunks), so each run is merged into place
    // over just the part it overlaps; when runs interleave a lot, one sort at the end is
    // cheaper.
    for (size_t k = 0; k < extras.size(); ++k) {
      const SegmentExtras::Column* it = x.columns[k];
      if (it == nullptr) continue;
      for (uint32_t g = 0; g < groups; ++g) x.run_start[g] = x.gathered[g].size();
      for (size_t j = 0; j < it->rows.size(); ++j) {
        uint32_t i = new_index[k][it->rows[j]];
        if (i == UINT32_MAX) continue;
        x.gathered[group_at(i)].push_back({row_at(i), static_cast<uint32_t>(k), static_cast<uint32_t>(j)});
      }
      for (uint32_t g = 0; g < groups; ++g) {
        auto& list = x.gathered[g];
        size_t start = x.run_start[g];
        if (x.needs_sort[g] || start == 0 || start == list.size() ||
            list[start - 1].row < list[start].row)
          continue;
        auto from = std::upper_bound(list.begin(), list.begin() + static_cast<ptrdiff_t>(start),
                                     list[start], by_row);
        x.merge_work[g] += static_cast<size_t>(list.end() - from);
        if (x.merge_work[g] > 4 * list.size() + 4096) {
          x.needs_sort[g] = 1;  // runs interleave: sort once instead
          continue;
        }
        std::inplace_merge(from, list.begin() + static_cast<ptrdiff_t>(start), list.end(), by_row);
      }
    }
    columns_of[key_index].resize(groups);
    for (uint32_t g = 0; g < groups; ++g) {
      auto& list = x.gathered[g];
      if (list.empty()) continue;
      // Ties (an event with a key twice) keep input order, as the merges above do.
      if (x.needs_sort[g])
        std::sort(list.begin(), list.end(), [](const Entry& a, const Entry& b) {
          return std::tie(a.row, a.input, a.at) < std::tie(b.row, b.input, b.at);
        });
      SegmentExtras::Column& column = columns_of[key_index][g];
      column.key = key;
      ResizePrefaulted(column.rows, list.size());
      ResizePrefaulted(column.values, list.size());
      for (size_t e = 0; e < list.size(); ++e) {
        column.rows[e] = list[e].row;
        column.values[e] = x.columns[list[e].input]->values[list[e].at];
      }
    }
  };
  std::atomic<size_t> next_key{0};
  auto merge_keys = [&] {
    Scratch scratch;
    for (size_t i; (i = next_key.fetch_add(1)) < keys.size();) merge_key(i, scratch);
  };
  {
    // Small merges (a few HTTP batches) are not worth a thread.
    std::jthread helper;
    if (order.size() >= (1u << 16) && keys.size() > 1) helper = std::jthread(merge_keys);
    merge_keys();
  }
  for (auto& per_group : columns_of)
    for (uint32_t g = 0; g < groups; ++g)
      if (!per_group[g].rows.empty()) out_extras[g]->properties.push_back(std::move(per_group[g]));
  std::vector<std::shared_ptr<const Segment>> result;
  for (uint32_t g = 0; g < groups; ++g) {
    out_extras[g]->session_marks = SessionMarks(out_extras[g]->session);
    out[g]->extras_ = std::move(out_extras[g]);
    result.push_back(std::move(out[g]));
  }
  return result;
}

std::vector<RowRef> Segment::MergeOrder(const std::vector<std::shared_ptr<const Segment>>& inputs) {
  // k-way merge of inputs already sorted by (actor, time); ties keep input order.
  size_t total = 0;
  for (const auto& s : inputs) total += s->size();
  std::vector<RowRef> order;
  order.reserve(total);
  using Head = std::tuple<ActorId, int64_t, uint32_t, uint32_t>;  // actor, time, input, row
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  for (uint32_t k = 0; k < inputs.size(); ++k)
    if (inputs[k]->size() > 0) heap.emplace(inputs[k]->actor_[0], inputs[k]->time_[0], k, 0);
  while (!heap.empty()) {
    auto [a, t, k, row] = heap.top();
    heap.pop();
    const Segment& s = *inputs[k];
    // Take the run of this input that stays below the next head, without heap work.
    uint32_t end = row + 1;
    if (heap.empty()) {
      end = static_cast<uint32_t>(s.size());
    } else {
      const Head& next = heap.top();
      while (end < s.size() && Head(s.actor_[end], s.time_[end], k, end) < next) ++end;
    }
    for (uint32_t r = row; r < end; ++r) order.push_back({k, r});
    if (end < s.size()) heap.emplace(s.actor_[end], s.time_[end], k, end);
  }
  return order;
}

std::shared_ptr<const Segment> Segment::Merge(
    const std::vector<std::shared_ptr<const Segment>>& inputs) {
  return FromRows(inputs, MergeOrder(inputs), {}, 1)[0];
}

std::vector<std::shared_ptr<const Segment>> Segment::MergeByPartition(
    const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms) {
  std::vector<std::shared_ptr<const Segment>> out;
  (void)MergeInWaves(inputs, partition_ms, SIZE_MAX, [&](std::shared_ptr<const Segment> partition) {
    out.push_back(std::move(partition));
    return Status::Ok();
  });
  return out;
}

Status Segment::MergeInWaves(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                             size_t wave_rows, const std::function<Status(std::shared_ptr<const Segment>)>& each) {
  std::vector<RowRef> order = MergeOrder(inputs);
  // The partitions present, in time order, and each row's index among them (four bytes
  // a row: this runs over every row of a checkpoint, once per wave, where an 8-byte
  // partition per row and a std::map lookup per row and wave were a tenth of the merge).
  std::vector<int64_t> partitions;
  // Inputs spanning very many partitions (years of sparse data) make the list from the
  // partitions rows fall in instead.
  const size_t limit = inputs.size() * 4 + 1024;
  bool listed_all = true;
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    const int64_t lo = PartitionOf(s->min_time_, partition_ms), hi = PartitionOf(s->max_time_, partition_ms);
    if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) >= limit) listed_all = false;
    for (int64_t p = lo; listed_all && p <= hi; ++p) partitions.push_back(p);
    if (partitions.size() > 4 * limit) {
      std::sort(partitions.begin(), partitions.end());
      partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
      listed_all = listed_all && partitions.size() <= limit;
    }
    if (!listed_all) break;
  }
  if (!listed_all) {
    partitions.clear();
    for (const RowRef& ref : order) partitions.push_back(PartitionOf(inputs[ref.input]->time_[ref.row], partition_ms));
  }
  std::sort(partitions.begin(), partitions.end());
  partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
  // Consecutive partitions (the usual case) are found by subtraction, others by search.
  const bool consecutive = partitions.empty() ||
                           static_cast<uint64_t>(partitions.back()) - static_cast<uint64_t>(partitions.front()) + 1 ==
                               partitions.size();
  std::vector<uint32_t> partition_index(order.size());
  std::vector<size_t> rows_of(partitions.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t p = PartitionOf(inputs[order[i].input]->time_[order[i].row], partition_ms);
    const auto at = static_cast<uint32_t>(
        consecutive ? p - partitions.front()
                    : std::lower_bound(partitions.begin(), partitions.end(), p) - partitions.begin());
    partition_index[i] = at;
    ++rows_of[at];
  }
  for (size_t first = 0; first < partitions.size();) {
    while (first < partitions.size() && rows_of[first] == 0) ++first;  // no row falls in it
    if (first == partitions.size()) break;
    // The wave: consecutive partitions up to `wave_rows` rows (at least one partition).
    size_t in_wave = 0, last = first;
    for (; last < partitions.size() && (in_wave == 0 || in_wave + rows_of[last] <= wave_rows); ++last)
      in_wave += rows_of[last];
    // Group numbers of the wave's partitions that hold rows, in time order.
    std::vector<uint32_t> group_of_partition(last - first, UINT32_MAX);
    uint32_t groups = 0;
    for (size_t p = first; p < last; ++p)
      if (rows_of[p] > 0) group_of_partition[p - first] = groups++;
    std::vector<RowRef> wave;
    std::vector<uint32_t> group_of;
    if (in_wave == order.size()) {
      wave = std::move(order);  // everything in one wave: no copy
      group_of.resize(wave.size());
      for (size_t i = 0; i < wave.size(); ++i) group_of[i] = group_of_partition[partition_index[i] - first];
    } else {
      wave.reserve(in_wave);
      group_of.reserve(in_wave);
      for (size_t i = 0; i < order.size(); ++i) {
        const uint32_t at = partition_index[i];
        if (at < first || at >= last) continue;
        wave.push_back(order[i]);
        group_of.push_back(group_of_partition[at - first]);
      }
    }
    for (auto& partition : FromRows(inputs, wave, group_of, groups)) RETURN_IF_ERROR(each(std::move(partition)));
    first = last;
  }
  return Status::Ok();
}

Status Segment::MergeEachPartition(const std::vector<std::shared_ptr<const Segment>>& inputs, int64_t partition_ms,
                                   const std::function<Status(std::shared_ptr<const Segment>)>& each) {
  // Merging partition by partition merges each input once for every partition its time
  // range touches; past twice the rows (inputs that each span many weeks), merge all
  // inputs once instead and build the partitions in waves of about a quarter of the rows:
  // each wave scans the inputs' property cells once more, but only a quarter of the
  // merged copy is in memory at a time.
  size_t rows = 0, work = 0;
  bool spread = false;
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    rows += s->size();
    const uint64_t span = static_cast<uint64_t>(PartitionOf(s->max_time_, partition_ms) -
                                                PartitionOf(s->min_time_, partition_ms)) + 1;
    if (span > 2 * inputs.size() + 2) spread = true;  // also bounds the loop below
    work += s->size() * std::min<uint64_t>(span, 2 * inputs.size() + 2);
  }
  if (spread || work > 2 * rows + (size_t{1} << 16))
    return MergeInWaves(inputs, partition_ms, std::max<size_t>(1, rows / 4), each);
  std::map<int64_t, std::vector<std::shared_ptr<const Segment>>> inputs_of;  // in input order
  for (const auto& s : inputs) {
    if (s->size() == 0) continue;
    for (int64_t p = PartitionOf(s->min_time_, partition_ms); p <= PartitionOf(s->max_time_, partition_ms); ++p)
      inputs_of[p].push_back(s);
  }
  for (const auto& [partition, members] : inputs_of) {
    // A subset of the inputs in their original order merges its rows in the same order
    // as the whole (the merge order is by actor, time, input, row), so the partition is
    // the one MergeByPartition builds.
    std::vector<RowRef> order = MergeOrder(members);
    std::erase_if(order, [&, p = partition](const RowRef& ref) {
      return PartitionOf(members[ref.input]->time_[ref.row], partition_ms) != p;
    });
    if (order.empty()) continue;
    RETURN_IF_ERROR(each(std::move(FromRows(members, order, {}, 1)[0])));
  }
  return Status::Ok();
}

}  // namespace sibyl
