// EmbeddedStore: opening and recovery, applying commits, checkpoints, stats.
#include "store/embedded_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <condition_variable>
#include <deque>
#include <map>
#include <set>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/codec.h"
#include "store/number_columns.h"

namespace sibyl {
namespace {

constexpr std::string_view kManifest = "MANIFEST";
constexpr int kFormatVersion = 1;
constexpr int kPartZstdLevel = 3;
constexpr std::string_view kUsersMagic = "SIBYLUSER2\n";
constexpr std::string_view kDedupMagic = "SIBYLDDUP1\n";
// The most ids a de-dup file takes by merging (~11 MB, 0.1-0.2 s to write): the most a
// checkpoint rewrites besides its own ids (docs/FORMAT.md, "De-duplication files").
constexpr uint64_t kDedupFileIds = uint64_t{2} << 20;
constexpr std::string_view kUsersMagicV1 = "SIBYLUSER1\n";


// Files other than parts: a magic line, one compressed block, and nothing else.
Result<std::string> ReadBlobFile(const std::string& path, std::string_view magic) {
  ASSIGN_OR_RETURN(std::string data, ReadFile(path));
  if (data.substr(0, magic.size()) != magic) return Corruption("{}: bad magic", path);
  ByteReader r(std::string_view(data).substr(magic.size()));
  ASSIGN_OR_RETURN(std::string raw, ReadCompressedBlock(r, path));
  if (!r.done()) return Corruption("{}: trailing bytes", path);
  return raw;
}

// Format 1 (older stores): every field of every value.
StoredValue GetStored(ByteReader& r) {
  StoredValue v;
  v.kind = static_cast<ValueKind>(r.U8());
  v.number = r.F64();
  v.string = static_cast<DictId>(r.Varint());
  return v;
}

uint64_t NextStoreSerial() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

// The user property history in users file format 2: one stream per field (deltas of
// actors and times, keys, kinds, then only the value field each kind uses), each
// length-prefixed, so that zstd sees like next to like.
void PutHistory(const AppendOnlyVector<UserPropertyRecord>& history, size_t n, ByteWriter& out) {
  std::string actors, times, keys, kinds, values;
  ByteWriter a(&actors), t(&times), k(&keys), c(&kinds), v(&values);
  int64_t previous_actor = 0, previous_time = 0;
  for (size_t i = 0; i < n; ++i) {
    const UserPropertyRecord& rec = history[i];
    a.SignedVarint(static_cast<int64_t>(rec.actor) - previous_actor);
    t.SignedVarint(rec.time_ms - previous_time);
    previous_actor = rec.actor;
    previous_time = rec.time_ms;
    k.Varint(rec.key);
    c.U8(static_cast<uint8_t>(rec.value.kind));
    if (rec.value.kind == ValueKind::kNumber || rec.value.kind == ValueKind::kBool)
      v.F64(rec.value.number);
    if (rec.value.kind == ValueKind::kString || rec.value.kind == ValueKind::kArray)
      v.Varint(rec.value.string);
  }
  out.Varint(n);
  for (const std::string* stream : {&actors, &times, &keys, &kinds, &values}) out.Bytes(*stream);
}

bool GetHistory(ByteReader& in, std::vector<UserPropertyRecord>& out) {
  uint64_t n = in.Varint();
  ByteReader a(in.Bytes()), t(in.Bytes()), k(in.Bytes()), c(in.Bytes()), v(in.Bytes());
  if (!in.ok() || n > c.remaining()) return false;
  out.resize(n);
  int64_t actor = 0, time = 0;
  for (UserPropertyRecord& rec : out) {
    rec.actor = static_cast<ActorId>(actor += a.SignedVarint());
    rec.time_ms = time += t.SignedVarint();
    rec.key = static_cast<DictId>(k.Varint());
    rec.value = {};
    rec.value.kind = static_cast<ValueKind>(c.U8());
    if (rec.value.kind == ValueKind::kNumber || rec.value.kind == ValueKind::kBool)
      rec.value.number = v.F64();
    if (rec.value.kind == ValueKind::kString || rec.value.kind == ValueKind::kArray)
      rec.value.string = static_cast<DictId>(v.Varint());
  }
  return a.ok() && t.ok() && k.ok() && c.ok() && v.ok() && v.done();
}

}  // namespace

EmbeddedStore::EmbeddedStore(const StoreOptions& options)
    : options_(options), serial_(NextStoreSerial()), dir_(options.data_dir), catalog_(std::make_shared<Catalog>()),
      version_(std::make_shared<Version>()) {}

EmbeddedStore::~EmbeddedStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Result<std::unique_ptr<EventStore>> EventStore::Open(const StoreOptions& options) {
  return EmbeddedStore::Open(options);
}

Result<std::unique_ptr<EventStore>> EmbeddedStore::Open(const StoreOptions& options) {
  // A read-only open can race a writer's checkpoint deleting the files it was about to
  // read; the manifest then names newer files, so reading again converges.
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::unique_ptr<EmbeddedStore> store(new EmbeddedStore(options));
    last = store->Load();
    if (last.ok()) return std::unique_ptr<EventStore>(std::move(store));
    if (!options.read_only || last.code() != StatusCode::kIoError) break;
  }
  return last;
}

Status EmbeddedStore::Load() {
  if (options_.read_only) {
    if (!FileExists(dir_ + "/" + std::string(kManifest)) && !FileExists(dir_ + "/wal"))
      return NotFound("no sibyl data in {} (ingest some events first, or pass --data)", dir_);
  } else {
    RETURN_IF_ERROR(CreateDirs(dir_ + "/wal"));
    RETURN_IF_ERROR(CreateDirs(dir_ + "/parts"));
    RETURN_IF_ERROR(CreateDirs(dir_ + "/columns"));
    std::string lock_path = dir_ + "/LOCK";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) return IoError("cannot open {}", lock_path);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
      return FailedPrecondition("{} is in use by another sibyl process (ingest or serve)", dir_);
  }
  RETURN_IF_ERROR(LoadCheckpoint());
  replaying_ = true;
  RETURN_IF_ERROR(ReplayLog());
  replaying_ = false;
  if (!options_.read_only) {
    RETURN_IF_ERROR(CleanUnreferencedFiles());
    ASSIGN_OR_RETURN(wal_, WalWriter::Open(dir_ + "/wal/" + WalName(wal_sequence_)));
    RETURN_IF_ERROR(SyncDir(dir_ + "/wal"));
  }
  return Status::Ok();
}

Status EmbeddedStore::LoadCheckpoint() {
  std::string manifest_path = dir_ + "/" + std::string(kManifest);
  if (!FileExists(manifest_path)) return Status::Ok();
  ASSIGN_OR_RETURN(std::string text, ReadFile(manifest_path));
  nlohmann::json m = nlohmann::json::parse(text, nullptr, false);
  if (m.is_discarded() || !m.is_object() || m.value("format", 0) != kFormatVersion)
    return Corruption("{}: not a sibyl manifest of format {}", manifest_path, kFormatVersion);
  // The checksum covers everything else (manifests from before it have none). Without it
  // a flipped digit of wal_start hid acknowledged events, and the next open deleted the
  // log files below it; a part listed twice or left out duplicated or lost its events.
  if (m.contains("checksum")) {
    const nlohmann::json stored = m["checksum"];
    m.erase("checksum");
    const std::string actual = Crc32cHex(m.dump());
    if (!stored.is_string() || stored.get<std::string>() != actual)
      return Corruption("{}: checksum mismatch (CRC-32C {} where the file says {}): the manifest is damaged; "
                        "nothing was changed (restore it from a backup)",
                        manifest_path, actual, stored.dump());
  }
  generation_ = m.value("generation", 0ull);
  wal_start_ = m.value("wal_start", 1ull);
  next_txn_ = m.value("next_txn", 1ull);
  auto version = std::make_shared<Version>();
  version->duplicates_dropped = m.value("duplicates_dropped", 0ull);

  ASSIGN_OR_RETURN(std::string dicts, ReadBlobFile(dir_ + "/" + m.value("dictionaries", ""), "SIBYLDICT1\n"));
  ByteReader d(dicts);
  for (int i = 0; i < Catalog::kDictionaries; ++i) {
    uint64_t n = d.Varint();
    for (uint64_t k = 0; k < n && d.ok(); ++k) catalog_->dictionary(i)->Intern(d.Bytes());
    logged_dictionary_sizes_[i] = catalog_->dictionary(i)->size();
  }
  if (!d.ok()) return Corruption("{}: truncated dictionaries", m.value("dictionaries", ""));

  // Users file: format 2 keeps the de-dup index in its own section after the block;
  // format 1 (older stores) kept it inside the block, as hash and time per id.
  std::string users_path = dir_ + "/" + m.value("users", "");
  ASSIGN_OR_RETURN(std::string users_file, ReadFile(users_path));
  bool users_v1 = users_file.starts_with(kUsersMagicV1);
  if (!users_v1 && !users_file.starts_with(kUsersMagic)) return Corruption("{}: bad magic", users_path);
  ByteReader users_reader(std::string_view(users_file).substr(kUsersMagic.size()));
  ASSIGN_OR_RETURN(std::string users, ReadCompressedBlock(users_reader, users_path));
  ByteReader u(users);
  std::vector<UserPropertyRecord> history;
  if (users_v1) {
    uint64_t n = u.Varint();
    for (uint64_t k = 0; k < n && u.ok(); ++k) {
      UserPropertyRecord rec;
      rec.actor = static_cast<ActorId>(u.Varint());
      rec.time_ms = u.SignedVarint();
      rec.key = static_cast<DictId>(u.Varint());
      rec.value = GetStored(u);
      history.push_back(rec);
    }
  } else if (!GetHistory(u, history)) {
    return Corruption("{}: bad user property history", users_path);
  }
  catalog_->history.append(history);
  ApplyToUserValues(history);
  uint64_t n = u.Varint();
  for (uint64_t k = 0; k < n && u.ok(); ++k) {
    IdentityLink link;
    link.device = static_cast<ActorId>(u.Varint());
    link.user = static_cast<ActorId>(u.Varint());
    link.time_ms = u.SignedVarint();
    catalog_->links.push_back(link);
    NoteLink(link);
  }
  if (users_v1) {
    n = u.Varint();
    for (uint64_t k = 0; k < n && u.ok(); ++k) {
      uint64_t hash = u.U64();
      int64_t at = u.SignedVarint();
      if (!options_.read_only) dedup_.Insert(hash, at);
    }
  }
  if (!u.ok()) return Corruption("{}: truncated user state", users_path);
  if (users_v1) {
    if (!users_reader.done()) return Corruption("{}: trailing bytes", users_path);
  } else {
    uint32_t crc = users_reader.U32();
    std::string_view section = users_reader.Bytes();
    if (!users_reader.ok() || !users_reader.done())
      return Corruption("{}: truncated de-duplication index", users_path);
    // Read-only opens never de-duplicate: they skip the index.
    if (!options_.read_only) {
      if (Crc32c(section) != crc) return Corruption("{}: checksum mismatch", users_path);
      RETURN_IF_ERROR(dedup_.DecodeFrom(section, users_path));
    }
  }
  // Since the de-dup files, the users file's section is empty and the manifest lists them;
  // older stores keep the index in the section, written to files at the next checkpoint.
  dedup_rewrite_ = !m.contains("dedup");
  for (const auto& entry : m.value("dedup", nlohmann::json::array())) {
    DedupFile file{entry.value("file", ""), entry.value("ids", 0ull)};
    if (!options_.read_only) {
      const std::string path = dir_ + "/" + file.name;
      ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
      ByteReader r(std::string_view(bytes).substr(std::min(bytes.size(), kDedupMagic.size())));
      const uint32_t crc = r.U32();
      std::string_view section = r.Bytes();
      if (!bytes.starts_with(kDedupMagic)) return Corruption("{}: bad magic", path);
      if (!r.ok() || !r.done()) return Corruption("{}: truncated de-duplication index", path);
      if (Crc32c(section) != crc) return Corruption("{}: checksum mismatch", path);
      const size_t before = dedup_.size();
      RETURN_IF_ERROR(dedup_.DecodeFrom(section, path));
      if (dedup_.size() - before != file.ids)
        return Corruption("{}: {} de-duplication ids where the manifest says {}", path, dedup_.size() - before, file.ids);
    }
    dedup_files_.push_back(std::move(file));
  }

  std::set<std::string> listed_parts;
  for (const auto& part : m.value("parts", nlohmann::json::array())) {
    std::string name = part.value("file", "");
    if (!listed_parts.insert(name).second)
      return Corruption("{}: part {} is listed twice", manifest_path, name);
    std::string path = dir_ + "/parts/" + name;
    ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
    ASSIGN_OR_RETURN(auto segment, Segment::Decode(std::shared_ptr<const MappedFile>(std::move(file))));
    if (part.contains("events") && part["events"] != segment->size())
      return Corruption("{}: part {} holds {} events where the manifest says {}", manifest_path, name,
                        segment->size(), part["events"].dump());
    version->parts.push_back(segment);
    version->events += segment->size();
    part_files_.push_back(name);
  }
  for (const auto& entry : m.value("number_columns", nlohmann::json::array())) {
    std::string name = entry.value("file", "");
    std::string path = dir_ + "/columns/" + name;
    ASSIGN_OR_RETURN(std::string file, ReadFile(path));
    ASSIGN_OR_RETURN(auto batch, DecodeNumberColumnFile(file, path));
    version->number_columns.push_back(std::move(batch));
    number_column_files_.push_back(name);
  }
  for (int i = 0; i < Catalog::kDictionaries; ++i)
    version->dictionary_sizes[i] = catalog_->dictionary(i)->size();
  version->history_size = catalog_->history.size();
  version->links_size = catalog_->links.size();
  version_ = std::move(version);
  return Status::Ok();
}

void EmbeddedStore::ApplyToUserValues(std::span<const UserPropertyRecord> records) {
  // The map is far bigger than the caches: fetching the slots of later records while this
  // one is applied lets their memory loads overlap.
  constexpr size_t kAhead = 16;
  for (size_t i = 0; i < records.size(); ++i) {
    if (i + kAhead < records.size())
      user_values_.prefetch(UserKey(records[i + kAhead].actor, records[i + kAhead].key));
    const UserPropertyRecord& rec = records[i];
    auto [it, fresh] = user_values_.try_emplace(UserKey(rec.actor, rec.key));
    AdvanceUserState(it->second, !fresh, rec);
  }
}

void EmbeddedStore::NoteLink(const IdentityLink& link) {
  DeviceOwner& owner = device_owner_[link.device];
  if (LinkOverrules(link.user, link.time_ms, owner.user, owner.time_ms, catalog_->actors))
    owner = {link.user, link.time_ms};
}

void EmbeddedStore::ApplyCommitted(std::vector<StagedBatch>& batches, bool merge_memtable) {
  auto version = std::make_shared<Version>(*current());
  for (StagedBatch& s : batches) {
    catalog_->history.append(s.records);
    ApplyToUserValues(s.records);
    for (const auto& link : s.links) {
      catalog_->links.push_back(link);
      NoteLink(link);
    }
    // Live transactions inserted their ids while encoding; replayed ones insert here.
    if (!options_.read_only && replaying_)
      for (uint64_t h : s.dedup_hashes) dedup_.Insert(h, s.ingested_ms);
    version->duplicates_dropped += s.counts.duplicates_dropped;
    if (s.number_columns) version->number_columns.push_back(s.number_columns);
    for (auto& segment : s.segments) {
      version->events += segment->size();
      version->memtable.push_back(std::move(segment));
      // Many small commits (HTTP batches) would leave thousands of segments. Past 64,
      // segments of similar size (same power of 16) and of the same week are merged 16 at
      // a time, so each event is re-sorted O(log n) times and the checkpoint builds each
      // part from the segments of its week only; the checkpoint merges the rest.
      auto& m = version->memtable;
      auto tier = [](const Segment& s) {
        const int64_t week = PartitionOf(s.min_time(), kPartitionMs);
        const bool one_week = s.size() > 0 && week == PartitionOf(s.max_time(), kPartitionMs);
        return std::pair<int64_t, int>(one_week ? week : INT64_MIN, std::bit_width(s.size()) / 4);
      };
      for (bool merged = merge_memtable && m.size() > 64; merged;) {
        merged = false;
        std::map<std::pair<int64_t, int>, std::vector<size_t>> by_tier;
        for (size_t i = 0; i < m.size(); ++i) by_tier[tier(*m[i])].push_back(i);
        for (const auto& [t, members] : by_tier) {
          if (members.size() < 16) continue;
          std::vector<std::shared_ptr<const Segment>> group, rest;
          for (size_t i = 0, j = 0; i < m.size(); ++i) {
            if (j < members.size() && members[j] == i) {
              group.push_back(m[i]);
              ++j;
            } else {
              rest.push_back(m[i]);
            }
          }
          rest.push_back(Segment::Merge(group));
          m = std::move(rest);
          merged = true;
          break;
        }
      }
    }
  }
  for (int i = 0; i < Catalog::kDictionaries; ++i)
    version->dictionary_sizes[i] = catalog_->dictionary(i)->size();
  version->history_size = catalog_->history.size();
  version->links_size = catalog_->links.size();
  std::lock_guard lock(version_mutex_);
  version_ = std::move(version);
}

std::shared_ptr<const Version> EmbeddedStore::current() const {
  std::lock_guard lock(version_mutex_);
  return version_;
}

Status EmbeddedStore::Checkpoint() {
  if (options_.read_only) return FailedPrecondition("store {} is open read-only", dir_);
  std::lock_guard lock(write_mutex_);
  return CheckpointLocked();
}

Status EmbeddedStore::CheckpointLocked() {
  auto old = current();
  // Logs from before the open still to be retired (after a repair: damaged ones) make a
  // checkpoint worth writing even when they hold no events.
  if (old->memtable.empty() && wal_->size() == 0 && wal_start_ == wal_sequence_) return Status::Ok();
  uint64_t generation = generation_ + 1;
  auto version = std::make_shared<Version>(*old);
  std::vector<std::string> part_files = part_files_;

  std::string dicts;
  for (int i = 0; i < Catalog::kDictionaries; ++i)
    catalog_->dictionary(i)->EncodeFrom(0, &dicts);
  std::string dict_name = fmt::format("dictionaries-g{}.bin", generation);

  // Expiry rebuilds the index, and the files must then be rewritten whole: done once a
  // quarter of the ids are past the window, not at every checkpoint (an id is remembered
  // at least the window, at most about a third longer).
  const int64_t oldest_remembered = options_.clock->NowMs() - options_.dedup_window_ms;
  if (size_t expired = dedup_.ExpiredCount(oldest_remembered); expired > 0 && expired * 4 >= dedup_.size()) {
    dedup_.Expire(oldest_remembered);
    dedup_rewrite_ = true;
  }
  std::vector<DedupFile> dedup_files;
  RETURN_IF_ERROR(WriteDedupFiles(generation, dedup_files));
  std::string users_name = fmt::format("users-g{}.bin", generation);

  // The user state, the de-dup index and the dictionaries do not depend on the events:
  // a helper thread encodes and compresses them while this thread merges the memtable
  // (whose first steps run on one thread), then both compress the parts. Nothing else
  // writes while the checkpoint holds the write lock.
  std::string users_file(kUsersMagic), dicts_file("SIBYLDICT1\n"), dedup_section;
  auto encode_state = [&] {
    std::string users;
    ByteWriter u(&users);
    PutHistory(catalog_->history, catalog_->history.size(), u);
    size_t links = catalog_->links.size();
    u.Varint(links);
    for (size_t i = 0; i < links; ++i) {
      const auto& link = catalog_->links[i];
      u.Varint(link.device);
      u.Varint(link.user);
      u.SignedVarint(link.time_ms);
    }
    AppendCompressedBlock(users, kPartZstdLevel, &users_file);
    // The index is in its own files (WriteDedupFiles): an empty section.
    ByteWriter(&dedup_section).Varint(0);
    AppendCompressedBlock(dicts, kPartZstdLevel, &dicts_file);
  };
  // Partitions are built one at a time and compressed as they come, on whichever thread
  // is free: only a few are in memory at once beside the memtable (which readers may still
  // hold), instead of a second copy of every event (a 10M-event file peaked at 2.8 GB that
  // way, and fresh pages are dear on VMs).
  // Each is written to its part file as soon as it is compressed, by the thread that
  // compressed it, so the writes overlap the merge; files the MANIFEST does not name yet
  // are deleted at the next open if the checkpoint does not finish.
  struct Built {
    std::shared_ptr<const Segment> segment;  // dropped once written
    int64_t min_time = 0;
    std::string name;
    std::shared_ptr<const Segment> part;  // the written part
    Status written;
  };
  std::deque<Built> built;  // in time order; stable addresses
  std::mutex queue_mutex;
  std::condition_variable queue_changed;
  size_t next_to_encode = 0, waiting = 0;
  bool merge_done = false;
  constexpr size_t kMaxWaiting = 2;
  // Compresses waiting partitions until none is left (and, when `until_done`, until the
  // merge has handed over its last one).
  auto encode_parts = [&](bool until_done) {
    std::unique_lock lock(queue_mutex);
    for (;;) {
      queue_changed.wait(lock, [&] { return next_to_encode < built.size() || merge_done || !until_done; });
      if (next_to_encode == built.size()) {
        if (merge_done || !until_done) return;
        continue;
      }
      const size_t k = next_to_encode++;
      Built& b = built[k];
      lock.unlock();
      b.name = fmt::format("p{}-g{}-{}.seg", b.min_time / kPartitionMs, generation, k);
      b.written = WritePart(std::move(b.segment), dir_ + "/parts/" + b.name, b.part);
      lock.lock();
      --waiting;
      queue_changed.notify_all();
    }
  };
  Status merged = Status::Ok();
  {
    std::jthread helper([&] {
      encode_state();
      encode_parts(/*until_done=*/true);
    });
    if (!version->memtable.empty()) {
      merged = Segment::MergeEachPartition(
          version->memtable, kPartitionMs, [&](std::shared_ptr<const Segment> partition) -> Status {
            std::unique_lock lock(queue_mutex);
            const int64_t min_time = partition->min_time();
            built.push_back(Built{std::move(partition), min_time, {}});
            ++waiting;
            queue_changed.notify_all();
            // Bounded: wait for the helper (or compress one here) before building more.
            while (waiting > kMaxWaiting) {
              lock.unlock();
              encode_parts(/*until_done=*/false);
              lock.lock();
            }
            return Status::Ok();
          });
    }
    {
      std::lock_guard lock(queue_mutex);
      merge_done = true;
    }
    queue_changed.notify_all();
    encode_parts(/*until_done=*/true);
  }
  RETURN_IF_ERROR(merged);
  for (Built& b : built) {
    RETURN_IF_ERROR(b.written);
    version->parts.push_back(std::move(b.part));
    part_files.push_back(b.name);
  }
  version->memtable.clear();
  {
    // Grown once: the section is most of the file (~5.5 bytes an id), and doubling up to it
    // faulted in and copied every intermediate size.
    users_file.reserve(users_file.size() + dedup_section.size() + 16);
    ByteWriter w(&users_file);
    w.U32(Crc32c(dedup_section));
    w.Bytes(dedup_section);
    std::string().swap(dedup_section);
  }
  // Number column batches are written once, by the first checkpoint after their commit.
  std::vector<std::string> column_files = number_column_files_;
  for (size_t k = column_files.size(); k < version->number_columns.size(); ++k) {
    std::string name = fmt::format("c{}-g{}.col", k, generation);
    RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/columns/" + name, EncodeNumberColumnFile(*version->number_columns[k])));
    column_files.push_back(name);
  }
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + dict_name, dicts_file));
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + users_name, users_file));

  // The manifest switch is the commit point of the checkpoint: before it, recovery
  // replays the old log; after it, the new files hold everything.
  uint64_t next_wal = wal_sequence_ + 1;
  nlohmann::json m;
  m["format"] = kFormatVersion;
  m["generation"] = generation;
  m["wal_start"] = next_wal;
  m["next_txn"] = next_txn_;
  m["duplicates_dropped"] = version->duplicates_dropped;
  m["dictionaries"] = dict_name;
  m["users"] = users_name;
  m["dedup"] = nlohmann::json::array();
  for (const DedupFile& file : dedup_files) m["dedup"].push_back({{"file", file.name}, {"ids", file.ids}});
  m["parts"] = nlohmann::json::array();
  for (size_t i = 0; i < part_files.size(); ++i)
    m["parts"].push_back({{"file", part_files[i]}, {"events", version->parts[i]->size()},
                          {"min_time", version->parts[i]->min_time()},
                          {"max_time", version->parts[i]->max_time()}});
  m["number_columns"] = nlohmann::json::array();
  for (size_t i = 0; i < column_files.size(); ++i)
    m["number_columns"].push_back({{"file", column_files[i]},
                                   {"time_ms", version->number_columns[i]->time_ms},
                                   {"actors", version->number_columns[i]->actors.size()}});
  m["checksum"] = Crc32cHex(m.dump());
  RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + std::string(kManifest), m.dump(1)));

  generation_ = generation;
  wal_start_ = next_wal;
  wal_sequence_ = next_wal;
  part_files_ = std::move(part_files);
  number_column_files_ = std::move(column_files);
  dedup_files_ = std::move(dedup_files);
  dedup_rewrite_ = false;
  ASSIGN_OR_RETURN(wal_, WalWriter::Open(dir_ + "/wal/" + WalName(wal_sequence_)));
  {
    std::lock_guard lock(version_mutex_);
    version_ = std::move(version);
  }
  return CleanUnreferencedFiles();
}

Status EmbeddedStore::WriteDedupFiles(uint64_t generation, std::vector<DedupFile>& files) {
  // Files cover consecutive ranges of the index's entries in insertion order. The ids
  // added since the last checkpoint go to a new file, which first takes in the files
  // before it while they are no bigger than twice what it holds and the sum fits
  // kDedupFileIds (a binary counter: an id is rewritten a few times, while its file is
  // small, then never). After an expiry the order changed: every file is rewritten.
  files = dedup_rewrite_ ? std::vector<DedupFile>() : dedup_files_;
  uint64_t begin = 0;
  for (const DedupFile& f : files) begin += f.ids;
  const uint64_t end = dedup_.size();
  if (begin > end) return Internal("the de-dup files hold {} ids, the index {}", begin, end);
  if (begin == end) return Status::Ok();
  while (!files.empty() && files.back().ids + (end - begin) <= kDedupFileIds && files.back().ids <= 2 * (end - begin)) {
    begin -= files.back().ids;
    files.pop_back();
  }
  // The index's hashes are random: compressing them gains nothing, Elias-Fano does.
  for (uint64_t from = begin, k = 0; from < end; ++k) {
    const uint64_t to = end - from <= kDedupFileIds ? end : from + kDedupFileIds;
    std::string section;
    dedup_.EncodeTo(&section, from, to);
    std::string bytes(kDedupMagic);
    bytes.reserve(bytes.size() + section.size() + 16);
    ByteWriter w(&bytes);
    w.U32(Crc32c(section));
    w.Bytes(section);
    std::string().swap(section);
    DedupFile file{fmt::format("dedup-g{}-{}.bin", generation, k), to - from};
    RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + file.name, bytes));
    files.push_back(std::move(file));
    from = to;
  }
  return Status::Ok();
}

Status EmbeddedStore::WritePart(std::shared_ptr<const Segment> segment, const std::string& path,
                                std::shared_ptr<const Segment>& part) const {
  size_t extras_at = 0;
  std::string bytes = segment->EncodePart(kPartZstdLevel, &extras_at);
  RETURN_IF_ERROR(WriteFileAtomic(path, bytes));
  std::string().swap(bytes);
  // The part reads its optional columns from the file, not held decoded in memory; its
  // core columns are the segment's (decoding them again from the bytes just written
  // would only repeat work).
  ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  ASSIGN_OR_RETURN(part, Segment::OfWrittenPart(std::move(segment), std::shared_ptr<const MappedFile>(std::move(file)),
                                               extras_at));
  return Status::Ok();
}

namespace {

// The checkpoint generation in a part or column file's name ("p2810-g4-0.seg",
// "c0-g3.col"); nullopt when the name is not one the store writes.
std::optional<uint64_t> GenerationOfName(std::string_view name) {
  const size_t at = name.find("-g");
  if (at == std::string_view::npos || at + 2 >= name.size() || !std::isdigit(static_cast<unsigned char>(name[at + 2])))
    return std::nullopt;
  return std::strtoull(std::string(name.substr(at + 2)).c_str(), nullptr, 10);
}

}  // namespace

Status EmbeddedStore::MoveAside(const std::string& folder, const std::string& name) {
  const std::string aside = dir_ + "/lost+found";
  std::error_code ec;
  std::filesystem::create_directories(aside, ec);
  if (ec) return IoError("cannot create {}: {}", aside, ec.message());
  const std::string from = dir_ + "/" + folder + "/" + name, to = aside + "/" + folder + "-" + name;
  if (::rename(from.c_str(), to.c_str()) != 0) return IoError("cannot move {} to {}: {}", from, to, std::strerror(errno));
  const std::string notice =
      fmt::format("moved {} aside to {}: the MANIFEST does not list it and no checkpoint was writing it", from, to);
  if (options_.on_notice) {
    options_.on_notice(notice);
  } else {
    fmt::print(stderr, "sibyl: {}\n", notice);
  }
  return SyncDir(aside);
}

Status EmbeddedStore::CleanUnreferencedFiles() {
  ASSIGN_OR_RETURN(auto wal_names, ListDir(dir_ + "/wal"));
  for (const auto& name : wal_names) {
    bool old_log = name.size() == 10 && name.substr(6) == ".log" &&
                   std::stoull(name.substr(0, 6)) < wal_start_;
    if (old_log) RETURN_IF_ERROR(RemoveFile(dir_ + "/wal/" + name));
  }
  // A part or column file the MANIFEST does not list was written by a checkpoint that did
  // not finish (a later generation than the manifest's): deleted. Any other (an earlier
  // generation, whose manifest would list it, or a name the store never writes) is not
  // the store's to delete: it is moved aside and named (issue 18: a part entry lost from
  // the manifest made the next open delete its 22,326 events).
  for (const auto& [folder, listed] : {std::pair{"parts", &part_files_}, std::pair{"columns", &number_column_files_}}) {
    ASSIGN_OR_RETURN(auto names, ListDir(dir_ + "/" + folder));
    for (const auto& name : names) {
      if (std::find(listed->begin(), listed->end(), name) != listed->end()) continue;
      const std::optional<uint64_t> generation = GenerationOfName(name);
      const bool leftover = name.ends_with(".tmp") || (generation && *generation > generation_);
      if (leftover) {
        RETURN_IF_ERROR(RemoveFile(dir_ + "/" + folder + "/" + name));
      } else {
        RETURN_IF_ERROR(MoveAside(folder, name));
      }
    }
  }
  ASSIGN_OR_RETURN(auto top, ListDir(dir_));
  std::string keep_dict = fmt::format("dictionaries-g{}.bin", generation_);
  std::string keep_users = fmt::format("users-g{}.bin", generation_);
  auto listed_dedup = [&](const std::string& name) {
    return std::any_of(dedup_files_.begin(), dedup_files_.end(), [&](const DedupFile& f) { return f.name == name; });
  };
  for (const auto& name : top) {
    bool generational = name.starts_with("dictionaries-g") || name.starts_with("users-g");
    bool dedup = name.starts_with("dedup-g") && name.ends_with(".bin");
    if ((generational && name != keep_dict && name != keep_users) || (dedup && !listed_dedup(name)) ||
        name.ends_with(".tmp"))
      RETURN_IF_ERROR(RemoveFile(dir_ + "/" + name));
  }
  return SyncDir(dir_);
}

Result<StoreStats> EmbeddedStore::Stats() const {
  auto v = current();
  StoreStats s;
  s.events = v->events;
  s.duplicates_dropped = v->duplicates_dropped;
  s.actors = v->dictionary_sizes[0];
  for (size_t i = 0; i < s.actors; ++i) {
    if (catalog_->actors.name(static_cast<DictId>(i))[0] == 'u') ++s.users; else ++s.devices;
  }
  s.anonymous_devices = s.devices - v->links_size;
  for (const auto* list : {&v->parts, &v->memtable})
    for (const auto& seg : *list) {
      if (seg->size() == 0) continue;
      s.min_time_ms = std::min(s.min_time_ms, seg->min_time());
      s.max_time_ms = std::max(s.max_time_ms, seg->max_time());
    }
  s.parts = v->parts.size();
  std::function<void(const std::string&, bool)> add = [&](const std::string& dir, bool events) {
    auto names = ListDir(dir);
    if (!names.ok()) return;
    for (const auto& name : *names) {
      auto size = FileSize(dir + "/" + name);
      if (!size.ok()) continue;
      s.bytes_on_disk += *size;
      if (events) s.event_bytes_on_disk += *size;
    }
  };
  add(dir_ + "/parts", true);
  add(dir_ + "/wal", true);
  add(dir_ + "/columns", false);
  auto top = ListDir(dir_);
  if (top.ok())
    for (const auto& name : *top) {
      auto size = FileSize(dir_ + "/" + name);
      if (size.ok() && name != "parts" && name != "wal" && name != "columns") s.bytes_on_disk += *size;
    }
  return s;
}

}  // namespace sibyl

namespace sibyl {
std::shared_ptr<const EventReader> EmbeddedStoreSnapshot(std::shared_ptr<const Catalog> catalog,
                                                         std::shared_ptr<const Version> version);

std::shared_ptr<const EventReader> EmbeddedStore::Snapshot() const {
  return EmbeddedStoreSnapshot(catalog_, current());
}
}  // namespace sibyl
