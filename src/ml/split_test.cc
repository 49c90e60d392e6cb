#include "ml/split.h"

#include <map>
#include <set>

#include <gtest/gtest.h>

#include "ml/synthetic.h"

namespace sibyl::ml {
namespace {

Dataset StackedUsers() {
  SyntheticOptions o;
  o.num_rows = 6000;
  o.num_columns = 4;
  o.rows_per_user = 3;
  return MakeSynthetic(o).data;
}

TEST(SplitTest, UserNeverOnTwoSides) {
  Dataset data = StackedUsers();
  auto split = SplitByUser(data, SplitOptions{});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  std::map<uint64_t, int> side;
  auto visit = [&](const std::vector<uint32_t>& rows, int s) {
    for (uint32_t r : rows) {
      auto [it, inserted] = side.emplace(data.user_key(r), s);
      EXPECT_EQ(it->second, s) << "user " << data.user_key(r);
    }
  };
  visit(split->fit_rows, 0);
  visit(split->validation_rows, 1);
  visit(split->test_rows, 2);
  EXPECT_EQ(split->fit_rows.size() + split->validation_rows.size() + split->test_rows.size(),
            data.num_rows());
  EXPECT_EQ(split->num_users, 2000u);
}

TEST(SplitTest, StratifiedByUserOutcome) {
  SyntheticOptions o;
  o.num_rows = 10000;
  o.num_columns = 4;
  o.intercept = -3;  // rare positives
  Dataset data = MakeSynthetic(o).data;
  auto split = SplitByUser(data, SplitOptions{});
  ASSERT_TRUE(split.ok());
  auto positives = [&](const std::vector<uint32_t>& rows) {
    size_t n = 0;
    for (uint32_t r : rows) n += data.labels[r] > 0;
    return n;
  };
  size_t total = positives(split->fit_rows) + positives(split->validation_rows) +
                 positives(split->test_rows);
  ASSERT_GT(total, 100u);
  // Exact stratification: within one rounding of 20% of positives and of all rows.
  EXPECT_NEAR(static_cast<double>(positives(split->test_rows)), 0.2 * total, 1.0);
  EXPECT_NEAR(static_cast<double>(split->test_rows.size()), 0.2 * data.num_rows(), 2.0);
  EXPECT_NEAR(static_cast<double>(positives(split->validation_rows)), 0.16 * total, 1.5);
}

TEST(SplitTest, DeterministicAndSeedDependent) {
  Dataset data = StackedUsers();
  auto a = SplitByUser(data, SplitOptions{});
  auto b = SplitByUser(data, SplitOptions{});
  SplitOptions other;
  other.seed = 43;
  auto c = SplitByUser(data, other);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->test_rows, b->test_rows);
  EXPECT_EQ(a->fit_rows, b->fit_rows);
  EXPECT_NE(a->test_rows, c->test_rows);
}

TEST(SplitTest, CapKeepsAtMostMaxUsers) {
  Dataset data = StackedUsers();
  SplitOptions o;
  o.max_users = 500;
  auto split = SplitByUser(data, o);
  ASSERT_TRUE(split.ok());
  std::set<uint64_t> users;
  for (const auto* rows : {&split->fit_rows, &split->validation_rows, &split->test_rows}) {
    for (uint32_t r : *rows) users.insert(data.user_key(r));
  }
  EXPECT_EQ(users.size(), 500u);
  EXPECT_EQ(split->num_users_sampled_out, 1500u);
  auto again = SplitByUser(data, o);
  EXPECT_EQ(again->test_rows, split->test_rows);
}

TEST(SplitTest, RejectsBadFractions) {
  Dataset data = StackedUsers();
  SplitOptions o;
  o.test_fraction = 1.0;
  EXPECT_FALSE(SplitByUser(data, o).ok());
}

}  // namespace
}  // namespace sibyl::ml
