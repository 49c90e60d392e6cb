// The output of the feature query, one row per cohort user with the column names of its
// spec: a dense row-major float matrix (FeatureMatrix), or for large cohorts compressed
// rows that store only the cells that differ from their column's fill value
// (SparseFeatureMatrix). The dense form is written as CSV or as the compact binary form
// of docs/FORMAT.md ("Feature matrix").
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "common/memory.h"
#include "common/status.h"
#include "store/reader.h"

namespace sibyl {

// Zero-filled float storage straight from the kernel (huge pages where possible,
// common/memory.h): a million users by 600 columns is 2.4 GB, and memset-ing it up front
// would cost as much as computing it.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  explicit FloatBuffer(size_t count);

  float* data() { return static_cast<float*>(pages_.data()); }
  const float* data() const { return static_cast<const float*>(pages_.data()); }
  size_t size() const { return pages_.size() / sizeof(float); }

 private:
  PageBuffer pages_;
};

struct FeatureMatrix {
  int64_t cutoff_ms = 0;           // hour-aligned
  std::vector<ActorId> actors;     // row order (backend-specific ids; names via the engine)
  std::vector<std::string> columns;
  FloatBuffer values;              // actors.size() x columns.size(), row-major

  size_t rows() const { return actors.size(); }
  size_t cols() const { return columns.size(); }
  float at(size_t row, size_t col) const { return values.data()[row * cols() + col]; }
  std::span<const float> row(size_t r) const { return {values.data() + r * cols(), cols()}; }
};

// One stored cell of a sparse row. Trivially constructible on purpose: slabs of them are
// allocated uninitialised and prefaulted, never zeroed cell by cell.
struct SparseCell {
  uint32_t col;
  float value;
};

// Memory for sparse cells. A full-size slab that is dropped goes back to a bounded pool
// for the next matrix instead of to the kernel (feature_matrix.cc, SlabPool).
class CellSlab {
 public:
  CellSlab() = default;
  explicit CellSlab(PageBuffer pages) : pages_(std::move(pages)) {}
  CellSlab(CellSlab&&) noexcept = default;
  CellSlab& operator=(CellSlab&& other) noexcept;
  ~CellSlab();

  SparseCell* data() const { return static_cast<SparseCell*>(pages_.data()); }
  PageBuffer& pages() { return pages_; }

 private:
  void Release() noexcept;
  PageBuffer pages_;
};

// Compressed rows: a row stores, in column order, only its cells that differ from the
// column's fill value (0, or the recency cap for "hours since" columns). A million users
// have a few dozen such cells each out of several hundred columns, so this is a fraction
// of the dense size and cheap to fill. Rows live in prefaulted slabs of cells.
class SparseFeatureMatrix {
 public:
  int64_t cutoff_ms = 0;           // hour-aligned
  std::vector<ActorId> actors;     // row order
  std::vector<std::string> columns;
  std::vector<float> fill;         // per column: the value of every cell a row does not store

  size_t rows() const { return actors.size(); }
  size_t cols() const { return columns.size(); }
  std::span<const SparseCell> row(size_t r) const {
    uint64_t where = row_start_[r];
    return {slabs_[where >> 32].data() + (where & 0xFFFFFFFFu), row_size_[r]};
  }
  float at(size_t r, size_t c) const;
  uint64_t stored_cells() const;
  size_t MemoryBytes() const;

  // The same matrix, dense (prefaulted, filled on two threads).
  FeatureMatrix ToDense() const;

 private:
  friend class SparseMatrixBuilder;
  std::vector<uint64_t> row_start_;  // slab index << 32 | offset in the slab
  std::vector<uint32_t> row_size_;
  std::vector<CellSlab> slabs_;
  std::vector<size_t> slab_sizes_;
};

// Fills a SparseFeatureMatrix from several threads: each thread writes whole rows through
// its own Writer; a row is written once, or rewritten whole (never grown in place).
class SparseMatrixBuilder {
 public:
  // Every row starts empty (all fill). `actors`, `columns` and `fill` are set by the caller
  // on matrix() before or after.
  explicit SparseMatrixBuilder(size_t rows);

  class Writer {
   public:
    explicit Writer(SparseMatrixBuilder& builder) : builder_(builder) {}
    // Room for up to `max_cells` cells; CommitRow(r, n) then publishes the first n.
    SparseCell* BeginRow(size_t max_cells);
    void CommitRow(size_t r, size_t cells);

   private:
    SparseMatrixBuilder& builder_;
    SparseCell* slab_ = nullptr;
    uint32_t slab_index_ = 0;
    size_t used_ = 0, capacity_ = 0;
  };

  SparseFeatureMatrix& matrix() { return matrix_; }
  SparseFeatureMatrix Finish() { return std::move(matrix_); }

 private:
  // A slab of at least `min_cells` cells: a recycled one, or fresh and prefaulted.
  std::pair<SparseCell*, uint32_t> NewSlab(size_t min_cells, size_t& capacity);

  std::mutex mutex_;
  SparseFeatureMatrix matrix_;
};

// CSV: header "user_id,<column names...>" (names quoted as CSV requires), then one line
// per row; numbers in the shortest form that reads back exactly.
Status WriteFeatureCsv(const FeatureMatrix& matrix, std::span<const std::string> row_ids,
                       const std::string& path);
// The binary form: see docs/FORMAT.md.
Status WriteFeatureBinary(const FeatureMatrix& matrix, std::span<const std::string> row_ids,
                          const std::string& path);

// Reads the binary form back (tests, tools).
struct LoadedFeatureMatrix {
  int64_t cutoff_ms = 0;
  std::vector<std::string> row_ids;
  std::vector<std::string> columns;
  std::vector<float> values;
};
Result<LoadedFeatureMatrix> ReadFeatureBinary(const std::string& path);

}  // namespace sibyl
