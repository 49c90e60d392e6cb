// EventStore: the embedded, durable, columnar event store in a data directory.
// See docs/FORMAT.md for the files and docs/ARCHITECTURE.md for how it fits.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "event/event.h"
#include "store/reader.h"

namespace sibyl {

struct StoreOptions {
  std::string data_dir = "sibyl-data";
  // A repeated insert_id within this long (by ingestion time) is dropped and counted.
  int64_t dedup_window_ms = 7 * kMsPerDay;
  // Open read-only: no lock, no writes; sees what writers had acknowledged at open time.
  bool read_only = false;
  // Acknowledged events kept in the write-ahead log before they are written out as parts.
  uint64_t checkpoint_events = 8'000'000;
  // Source of ingestion time (dedup window, events without a time). Not owned.
  const Clock* clock = &SystemClock::Instance();
  // Told, in one line, what opening did that the user should know of (a file the MANIFEST
  // does not list moved to lost+found/). Unset: written to stderr as "sibyl: ...".
  std::function<void(std::string_view)> on_notice;
};

// What one Append did.
struct AppendResult {
  uint64_t events_written = 0;
  uint64_t duplicates_dropped = 0;
  uint64_t identify_calls = 0;
  uint64_t user_property_changes = 0;
  uint64_t identity_links = 0;
};

struct StoreStats {
  uint64_t events = 0;
  uint64_t actors = 0;
  uint64_t users = 0;
  uint64_t devices = 0;           // every device id seen
  uint64_t anonymous_devices = 0;  // devices never linked to a user
  uint64_t duplicates_dropped = 0;  // over the store's lifetime
  int64_t min_time_ms = INT64_MAX;
  int64_t max_time_ms = INT64_MIN;
  uint64_t bytes_on_disk = 0;
  uint64_t event_bytes_on_disk = 0;  // parts and write-ahead log only
  uint64_t parts = 0;
};

// Numbers set as user properties of actors the store already knows, all at one time:
// scoring's write-back of a million scores. Stored as one NumberColumnBatch (reader.h):
// a value counts as set at `time_ms` (every value, even one equal to the actor's current
// value), without the ids' round trip through strings and the event path, and without a
// history record per value.
struct NumberPropertyUpdates {
  int64_t time_ms = 0;
  std::span<const ActorId> actors;  // ascending, distinct
  // Property name and one value per actor.
  std::vector<std::pair<std::string, std::span<const double>>> columns;
};

// A multi-batch, all-or-nothing append (one `sibyl ingest` of several files, say). Batches
// added are staged in the write-ahead log but invisible until Commit; destroying an
// uncommitted transaction, or a crash before Commit returns, discards all of it.
class Transaction {
 public:
  virtual ~Transaction() = default;
  // Stages `batch` (already validated). De-duplication sees earlier batches of the same
  // transaction. The returned counts are final once Commit succeeds.
  virtual Result<AppendResult> Add(const EventBatch& batch) = 0;
  // Stages `updates` like Add. Refused whole (nothing staged) when an actor is unknown or
  // out of order, a column's length differs from the actors', a name is empty, too long or
  // repeated, or a value is not finite.
  virtual Result<AppendResult> SetNumbers(const NumberPropertyUpdates& updates) = 0;
  // A hint: about `events` more events will be added (a bulk load of a file). The store
  // sizes its de-duplication index for them once instead of doubling it during the load.
  virtual void ExpectEvents(uint64_t events) { (void)events; }
  // Makes every staged batch durable and visible at once.
  virtual Status Commit() = 0;
};

class EventStore {
 public:
  // Opens (creating if needed) the store in options.data_dir, recovering from the
  // write-ahead log. A second writer on the same directory is refused.
  static Result<std::unique_ptr<EventStore>> Open(const StoreOptions& options);
  virtual ~EventStore() = default;

  // Appends a batch of events that already passed validation. All or nothing: when this
  // returns OK, every event of the batch is durable (fsynced) and visible to readers
  // opened afterwards; on error nothing of it is visible, now or after a restart.
  // Thread-safe; appends are serialised.
  virtual Result<AppendResult> Append(const EventBatch& batch) = 0;

  // Starts a transaction. Only one runs at a time; Append waits for it.
  virtual Result<std::unique_ptr<Transaction>> Begin() = 0;

  // A consistent snapshot of everything acknowledged so far.
  virtual std::shared_ptr<const EventReader> Snapshot() const = 0;

  // Writes write-ahead-log contents out as columnar parts (also done automatically).
  virtual Status Checkpoint() = 0;

  virtual Result<StoreStats> Stats() const = 0;

  // Optional work on a parsed batch before it is appended, on any thread (parsers call it
  // on their own threads): resolves the batch's names that the store's dictionaries
  // already hold into batch.resolved, so the single writer mostly copies ids. Appending
  // gives the same result with or without it.
  virtual void Prepare(EventBatch& batch) const { (void)batch; }
};

}  // namespace sibyl
