// The output of the feature query: a dense row-major float matrix, one row per cohort
// user, with the column names of its spec. Written as CSV or as the compact binary form
// of docs/FORMAT.md ("Feature matrix").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/reader.h"

namespace sibyl {

// Zero-filled float storage straight from the kernel (huge pages where possible): a
// million users by 600 columns is 2.4 GB, and memset-ing it up front would cost as much as
// computing it.
class FloatBuffer {
 public:
  FloatBuffer() = default;
  explicit FloatBuffer(size_t count);
  ~FloatBuffer();
  FloatBuffer(FloatBuffer&& other) noexcept;
  FloatBuffer& operator=(FloatBuffer&& other) noexcept;
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;
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
