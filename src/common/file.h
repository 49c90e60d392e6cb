// Small, explicit file-system helpers with the durability contracts the store relies on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sibyl {

// Reads a whole file into memory.
Result<std::string> ReadFile(const std::string& path);

// Reads a whole file, transparently gunzipping it when its name ends in ".gz" or its
// first bytes are the gzip magic.
Result<std::string> ReadFileMaybeGzip(const std::string& path);

// Writes `data` to `path` so that a crash leaves either the old file or the new one:
// write to `path.tmp`, fsync, rename over `path`, fsync the directory.
Status WriteFileAtomic(const std::string& path, std::string_view data);

// fsyncs a directory, making renames and creations inside it durable.
Status SyncDir(const std::string& dir);

// Creates `dir` and its parents if missing.
Status CreateDirs(const std::string& dir);

bool FileExists(const std::string& path);
Result<uint64_t> FileSize(const std::string& path);
Status RemoveFile(const std::string& path);
Result<std::vector<std::string>> ListDir(const std::string& dir);  // names, sorted

// An append-only file. Append buffers in the OS; Sync makes everything appended durable.
class AppendFile {
 public:
  static Result<std::unique_ptr<AppendFile>> Open(const std::string& path);
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;

  // Appends, and every `writeback_bytes` appended starts writing them to disk without
  // waiting (sync_file_range), so that a Sync after a long run of appends (a bulk load's
  // commit) waits for the tail only, not for hundreds of megabytes. Durability is still
  // Sync's alone.
  Status Append(std::string_view data);
  Status Sync();  // fdatasync
  Status Truncate(uint64_t size);
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  AppendFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size), written_back_(size) {}
  static constexpr uint64_t kWritebackBytes = 16 << 20;
  std::string path_;
  int fd_;
  uint64_t size_;
  uint64_t written_back_;  // bytes before this offset were handed to writeback
};

// A read-only memory map of a whole file. Empty files map to an empty view.
class MappedFile {
 public:
  static Result<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  std::string_view data() const { return {static_cast<const char*>(addr_), size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, void* addr, size_t size) : path_(std::move(path)), addr_(addr), size_(size) {}
  std::string path_;
  void* addr_;
  size_t size_;
};

// CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);
// The same checksum without the CPU's crc32 instruction (Crc32c uses it when present);
// tests compare the two.
uint32_t Crc32cPortable(std::string_view data, uint32_t crc = 0);
// Crc32c as 8 lowercase hex digits: the form checksums take inside JSON files (the
// store's MANIFEST, a model bundle's manifest).
std::string Crc32cHex(std::string_view data);

// Before a log's damaged tail is truncated: copies `data` from `offset` on to
// `path`.cut-at-OFFSET. A torn write and damage to a synced last record look alike, so
// the bytes are kept aside rather than destroyed (docs/FORMAT.md).
Status KeepCutTail(const std::string& path, std::string_view data, uint64_t offset);

// Whether `data[from, to)` holds a stretch that a power loss leaves where written but
// unsynced bytes never reached the disk: zeros from `from` or from a 512-byte sector
// boundary to the end of that sector (or of `data`), at least 16 bytes long, or zeros
// from `from` to the end of `data`. A flipped bit never makes such a stretch, and the
// logs' compressed records never hold one, so damage to synced bytes does not pass for
// an unwritten tail (docs/FORMAT.md, "Torn tail or damage").
bool HasUnwrittenSector(std::string_view data, size_t from, size_t to);

}  // namespace sibyl
