#include "ml/split.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "common/mix.h"

namespace sibyl::ml {
namespace {

// Distinct salts so that the sampling order and the split order are independent.
constexpr uint64_t kSampleSalt = 0x5a17'9e3d'0000'0001ULL;
constexpr uint64_t kSplitSalt = 0x5a17'9e3d'0000'0002ULL;

struct UserEntry {
  uint64_t key;
  uint64_t hash;
  bool positive;
};

enum class Slice : uint8_t { kDropped, kFit, kValidation, kTest };

}  // namespace

uint64_t MixHash(uint64_t key, uint64_t salt) { return SplitMix64(key ^ (salt * kGoldenGamma)); }

Result<Split> SplitByUser(const Dataset& data, const SplitOptions& options) {
  RETURN_IF_ERROR(data.Validate());
  if (!(options.test_fraction > 0 && options.test_fraction < 1) ||
      !(options.validation_fraction > 0 && options.validation_fraction < 1)) {
    return InvalidArgument("split fractions must lie strictly between 0 and 1");
  }
  if (options.max_users == 0) return InvalidArgument("max_users must be positive");

  // One entry per distinct user; a user is positive if any of its rows is.
  std::unordered_map<uint64_t, uint32_t> user_index;
  std::vector<UserEntry> users;
  user_index.reserve(data.num_rows());
  std::vector<uint32_t> row_user(data.num_rows());
  for (size_t r = 0; r < data.num_rows(); ++r) {
    uint64_t key = data.user_key(r);
    auto [it, inserted] = user_index.try_emplace(key, static_cast<uint32_t>(users.size()));
    if (inserted) users.push_back({key, 0, false});
    row_user[r] = it->second;
    if (data.labels[r] > 0) users[it->second].positive = true;
  }

  Split split;
  split.num_users = users.size();
  std::vector<Slice> user_slice(users.size(), Slice::kDropped);

  // The cap: keep the max_users users with the smallest sampling hash.
  std::vector<uint32_t> kept(users.size());
  for (uint32_t u = 0; u < users.size(); ++u) kept[u] = u;
  if (users.size() > options.max_users) {
    for (auto& user : users) user.hash = MixHash(user.key, kSampleSalt + options.seed);
    std::nth_element(kept.begin(), kept.begin() + options.max_users, kept.end(),
                     [&](uint32_t a, uint32_t b) {
                       return std::tie(users[a].hash, users[a].key) <
                              std::tie(users[b].hash, users[b].key);
                     });
    kept.resize(options.max_users);
    split.num_users_sampled_out = users.size() - kept.size();
  }

  for (auto& user : users) user.hash = MixHash(user.key, kSplitSalt + options.seed);
  for (bool stratum : {false, true}) {
    std::vector<uint32_t> members;
    for (uint32_t u : kept) {
      if (users[u].positive == stratum) members.push_back(u);
    }
    std::sort(members.begin(), members.end(), [&](uint32_t a, uint32_t b) {
      return std::tie(users[a].hash, users[a].key) < std::tie(users[b].hash, users[b].key);
    });
    const size_t n = members.size();
    const size_t num_test = static_cast<size_t>(std::llround(options.test_fraction * n));
    const size_t num_validation =
        static_cast<size_t>(std::llround(options.validation_fraction * (n - num_test)));
    for (size_t i = 0; i < n; ++i) {
      user_slice[members[i]] = i < num_test                    ? Slice::kTest
                               : i < num_test + num_validation ? Slice::kValidation
                                                               : Slice::kFit;
    }
  }

  for (uint32_t r = 0; r < data.num_rows(); ++r) {
    switch (user_slice[row_user[r]]) {
      case Slice::kFit: split.fit_rows.push_back(r); break;
      case Slice::kValidation: split.validation_rows.push_back(r); break;
      case Slice::kTest: split.test_rows.push_back(r); break;
      case Slice::kDropped: break;
    }
  }
  return split;
}

}  // namespace sibyl::ml
