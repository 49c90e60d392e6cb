#include "query/feature_matrix.h"


#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <thread>

#include "common/memory.h"

namespace sibyl {

FloatBuffer::FloatBuffer(size_t count) : pages_(count * sizeof(float), /*prefault=*/false) {}

namespace {

// Cells per slab (8 MB): large enough that slab bookkeeping is negligible, small enough
// that the unused tail of each thread's last slab is.
constexpr size_t kSlabCells = size_t{1} << 20;

// Full-size slabs of matrices that are gone, kept for the next matrix: fresh memory costs
// the kernel's zeroing and the page faults (about a fifth of a whole-matrix query at a
// million users), and a resident process (the server, a daily and an hourly run) builds
// matrices of the same size again and again. Bounded: beyond 1 GB they are unmapped.
class SlabPool {
 public:
  static SlabPool& Get() {
    static SlabPool* pool = new SlabPool();  // never destroyed: matrices may outlive main
    return *pool;
  }
  bool Take(PageBuffer& slab) {
    std::lock_guard lock(mutex_);
    if (free_.empty()) return false;
    slab = std::move(free_.back());
    free_.pop_back();
    return true;
  }
  void Give(PageBuffer slab) noexcept {
    std::lock_guard lock(mutex_);
    if (free_.size() < kMaxSlabs) free_.push_back(std::move(slab));  // reserved: no throw
  }

 private:
  static constexpr size_t kMaxSlabs = (size_t{1} << 30) / (kSlabCells * sizeof(SparseCell));
  SlabPool() { free_.reserve(kMaxSlabs); }
  std::mutex mutex_;
  std::vector<PageBuffer> free_;
};

// Runs work(from, to) over [0, n) split between two threads when n is large.
template <typename Work>
void OnTwoThreads(size_t n, size_t threshold, Work&& work) {
  if (n < threshold) {
    work(size_t{0}, n);
    return;
  }
  std::thread helper([&] { work(size_t{0}, n / 2); });
  work(n / 2, n);
  helper.join();
}

}  // namespace

void CellSlab::Release() noexcept {
  if (pages_.size() == kSlabCells * sizeof(SparseCell)) SlabPool::Get().Give(std::move(pages_));
  pages_ = PageBuffer();
}

CellSlab::~CellSlab() { Release(); }

CellSlab& CellSlab::operator=(CellSlab&& other) noexcept {
  if (this != &other) {
    Release();
    pages_ = std::move(other.pages_);
  }
  return *this;
}

float SparseFeatureMatrix::at(size_t r, size_t c) const {
  std::span<const SparseCell> cells = row(r);
  auto it = std::lower_bound(cells.begin(), cells.end(), c,
                             [](const SparseCell& cell, size_t col) { return cell.col < col; });
  return it != cells.end() && it->col == c ? it->value : fill[c];
}

uint64_t SparseFeatureMatrix::stored_cells() const {
  uint64_t n = 0;
  for (uint32_t size : row_size_) n += size;
  return n;
}

size_t SparseFeatureMatrix::MemoryBytes() const {
  size_t bytes = row_start_.size() * sizeof(uint64_t) + row_size_.size() * sizeof(uint32_t) +
                 actors.size() * sizeof(ActorId);
  for (size_t s : slab_sizes_) bytes += s * sizeof(SparseCell);
  return bytes;
}

FeatureMatrix SparseFeatureMatrix::ToDense() const {
  FeatureMatrix m;
  m.cutoff_ms = cutoff_ms;
  m.actors = actors;
  m.columns = columns;
  size_t n = cols();
  m.values = FloatBuffer(rows() * n);
  float* out = m.values.data();
  OnTwoThreads(rows(), 50'000, [&](size_t from, size_t to) {
    Prefault(out + from * n, (to - from) * n * sizeof(float));
    for (size_t r = from; r < to; ++r) {
      float* dst = out + r * n;
      std::copy(fill.begin(), fill.end(), dst);
      for (const SparseCell& cell : row(r)) dst[cell.col] = cell.value;
    }
  });
  return m;
}

SparseMatrixBuilder::SparseMatrixBuilder(size_t rows) {
  ResizePrefaulted(matrix_.row_start_, rows);
  ResizePrefaulted(matrix_.row_size_, rows);
  // Rows never written point at the start of slab 0 with size 0: a one-cell slab that
  // always exists.
  matrix_.slabs_.emplace_back(PageBuffer(sizeof(SparseCell), /*prefault=*/false));
  matrix_.slab_sizes_.push_back(1);
}

std::pair<SparseCell*, uint32_t> SparseMatrixBuilder::NewSlab(size_t min_cells, size_t& capacity) {
  // No bigger than the whole matrix could need: a one-row matrix (a real-time score) must
  // not allocate and prefault 8 MB.
  size_t rows = matrix_.row_size_.size();
  capacity = std::max(min_cells, std::min(kSlabCells, std::max<size_t>(1, rows) * min_cells));
  PageBuffer pages;
  if (capacity != kSlabCells || !SlabPool::Get().Take(pages))
    pages = PageBuffer(capacity * sizeof(SparseCell), /*prefault=*/true);
  CellSlab slab(std::move(pages));
  std::lock_guard lock(mutex_);
  SparseCell* data = slab.data();
  matrix_.slabs_.push_back(std::move(slab));
  matrix_.slab_sizes_.push_back(capacity);
  return {data, static_cast<uint32_t>(matrix_.slabs_.size() - 1)};
}

SparseCell* SparseMatrixBuilder::Writer::BeginRow(size_t max_cells) {
  if (slab_ == nullptr || used_ + max_cells > capacity_) {
    std::tie(slab_, slab_index_) = builder_.NewSlab(max_cells, capacity_);
    used_ = 0;
  }
  return slab_ + used_;
}

void SparseMatrixBuilder::Writer::CommitRow(size_t r, size_t cells) {
  builder_.matrix_.row_start_[r] = static_cast<uint64_t>(slab_index_) << 32 | used_;
  builder_.matrix_.row_size_[r] = static_cast<uint32_t>(cells);
  used_ += cells;
}

namespace {

void AppendCsvField(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\n\r") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

}  // namespace

Status WriteFeatureCsv(const FeatureMatrix& matrix, std::span<const std::string> row_ids,
                       const std::string& path) {
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "w"));
  if (!file) return IoError("cannot write {}: {}", path, std::strerror(errno));
  std::string buffer = "user_id";
  for (const std::string& c : matrix.columns) {
    buffer += ',';
    AppendCsvField(buffer, c);
  }
  buffer += '\n';
  for (size_t r = 0; r < matrix.rows(); ++r) {
    AppendCsvField(buffer, r < row_ids.size() ? row_ids[r] : std::string());
    for (float v : matrix.row(r)) {
      buffer += ',';
      if (v == 0) {
        buffer += '0';  // the common case, without formatting
      } else {
        fmt::format_to(std::back_inserter(buffer), "{}", v);
      }
    }
    buffer += '\n';
    if (buffer.size() > (1 << 20)) {
      if (std::fwrite(buffer.data(), 1, buffer.size(), file.get()) != buffer.size())
        return IoError("write to {} failed", path);
      buffer.clear();
    }
  }
  if (std::fwrite(buffer.data(), 1, buffer.size(), file.get()) != buffer.size() ||
      std::fflush(file.get()) != 0)
    return IoError("write to {} failed", path);
  return Status::Ok();
}

namespace {

constexpr char kMagic[8] = {'S', 'I', 'B', 'Y', 'L', 'F', 'M', '1'};

void PutU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void PutU64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void PutString(std::string& out, std::string_view s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

}  // namespace

Status WriteFeatureBinary(const FeatureMatrix& matrix, std::span<const std::string> row_ids,
                          const std::string& path) {
  static_assert(std::endian::native == std::endian::little, "the format is little-endian");
  std::string header(kMagic, sizeof(kMagic));
  PutU64(header, matrix.rows());
  PutU64(header, matrix.cols());
  PutU64(header, static_cast<uint64_t>(matrix.cutoff_ms));
  for (const std::string& c : matrix.columns) PutString(header, c);
  for (size_t r = 0; r < matrix.rows(); ++r)
    PutString(header, r < row_ids.size() ? row_ids[r] : std::string());
  std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (!file) return IoError("cannot write {}: {}", path, std::strerror(errno));
  size_t cells = matrix.rows() * matrix.cols();
  if (std::fwrite(header.data(), 1, header.size(), file.get()) != header.size() ||
      (cells > 0 && std::fwrite(matrix.values.data(), sizeof(float), cells, file.get()) != cells) ||
      std::fflush(file.get()) != 0)
    return IoError("write to {} failed", path);
  return Status::Ok();
}

Result<LoadedFeatureMatrix> ReadFeatureBinary(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot read {}", path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = 0;
  auto take = [&](void* out, size_t n) {
    if (at + n > bytes.size()) return false;
    std::memcpy(out, bytes.data() + at, n);
    at += n;
    return true;
  };
  auto take_string = [&](std::string& s) {
    uint32_t n = 0;
    if (!take(&n, 4) || at + n > bytes.size()) return false;
    s.assign(bytes.data() + at, n);
    at += n;
    return true;
  };
  char magic[8];
  uint64_t rows = 0, cols = 0, cutoff = 0;
  if (!take(magic, 8) || std::memcmp(magic, kMagic, 8) != 0)
    return Corruption("{}: not a sibyl feature matrix", path);
  if (!take(&rows, 8) || !take(&cols, 8) || !take(&cutoff, 8))
    return Corruption("{}: truncated header", path);
  LoadedFeatureMatrix m;
  m.cutoff_ms = static_cast<int64_t>(cutoff);
  m.columns.resize(cols);
  m.row_ids.resize(rows);
  for (auto& c : m.columns)
    if (!take_string(c)) return Corruption("{}: truncated column names", path);
  for (auto& r : m.row_ids)
    if (!take_string(r)) return Corruption("{}: truncated row ids", path);
  if (bytes.size() - at != rows * cols * sizeof(float))
    return Corruption("{}: expected {} x {} floats", path, rows, cols);
  m.values.resize(rows * cols);
  if (!m.values.empty()) std::memcpy(m.values.data(), bytes.data() + at, m.values.size() * sizeof(float));
  return m;
}

}  // namespace sibyl
