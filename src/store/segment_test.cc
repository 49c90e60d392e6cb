#include "store/segment.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>

#include "store/codec.h"

namespace sibyl {
namespace {

TEST(SegmentTest, EncodeDecodeRoundTripsEveryColumn) {
  std::mt19937_64 rng(7);
  std::vector<EncodedEvent> events;
  std::vector<EncodedProperty> props;
  for (int i = 0; i < 5000; ++i) {
    uint32_t begin = static_cast<uint32_t>(props.size());
    if (rng() % 2) props.push_back({1, {ValueKind::kNumber, static_cast<double>(rng() % 10000) / 100, kNoDictId}});
    if (rng() % 3 == 0) props.push_back({2, {ValueKind::kNumber, 1.0 / 3, kNoDictId}});
    if (rng() % 4 == 0) props.push_back({3, {ValueKind::kString, 0, static_cast<DictId>(rng() % 50)}});
    if (rng() % 5 == 0) props.push_back({4, {ValueKind::kBool, static_cast<double>(rng() % 2), kNoDictId}});
    events.push_back({static_cast<ActorId>(rng() % 300), static_cast<EventTypeId>(rng() % 60),
                      static_cast<int64_t>(1'700'000'000'000 + rng() % 1'000'000'000),
                      rng() % 7 == 0 ? -1 : static_cast<int64_t>(1'700'000'000'000 + rng() % 1000), begin,
                      static_cast<uint32_t>(props.size())});
  }
  auto segment = Segment::Build(events, props);
  std::string bytes = segment->Encode(3);
  auto decoded = Segment::DecodeBytes(bytes, "test");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ((*decoded)->actor(), segment->actor());
  EXPECT_EQ((*decoded)->time(), segment->time());
  EXPECT_EQ((*decoded)->type(), segment->type());
  auto a = *segment->Extras();
  auto b = *(*decoded)->Extras();
  EXPECT_EQ(a->session, b->session);
  ASSERT_EQ(a->properties.size(), b->properties.size());
  for (size_t k = 0; k < a->properties.size(); ++k) {
    EXPECT_EQ(a->properties[k].rows, b->properties[k].rows);
    for (size_t j = 0; j < a->properties[k].values.size(); ++j) {
      EXPECT_EQ(a->properties[k].values[j].kind, b->properties[k].values[j].kind);
      EXPECT_EQ(a->properties[k].values[j].number, b->properties[k].values[j].number);
      EXPECT_EQ(a->properties[k].values[j].string, b->properties[k].values[j].string);
    }
  }
  // Sorted by (actor, time).
  for (size_t i = 1; i < segment->size(); ++i) {
    auto prev = std::make_pair(segment->actor()[i - 1], segment->time()[i - 1]);
    EXPECT_LE(prev, std::make_pair(segment->actor()[i], segment->time()[i]));
  }
}

TEST(SegmentTest, MergeByPartitionKeepsEveryEventOnce) {
  std::vector<EncodedEvent> events;
  for (int i = 0; i < 100; ++i) events.push_back({static_cast<ActorId>(i % 3), 0, i * 1000LL, -1, 0, 0});
  auto segment = Segment::Build(events, {});
  auto parts = Segment::MergeByPartition({segment, segment}, 10'000);
  EXPECT_EQ(parts.size(), 10u);
  size_t total = 0;
  for (const auto& p : parts) {
    total += p->size();
    EXPECT_EQ(p->min_time() / 10'000, p->max_time() / 10'000);
  }
  EXPECT_EQ(total, 200u);
}

// Property values must follow their rows through a merge, whether the inputs hold
// disjoint actor ranges (runs merged into place) or interleave (one sort).
// Inputs of `rows_each` events whose times start at `first_time(k)` and step by `step`:
// random actors, two property keys on some events, sessions.
std::vector<std::shared_ptr<const Segment>> RandomInputs(int inputs, int rows_each, int64_t step,
                                                         const std::function<int64_t(int)>& first_time) {
  std::mt19937_64 rng(5);
  std::vector<std::shared_ptr<const Segment>> out;
  for (int k = 0; k < inputs; ++k) {
    std::vector<EncodedEvent> events;
    std::vector<EncodedProperty> props;
    for (int i = 0; i < rows_each; ++i) {
      const int64_t time = first_time(k) + i * step;
      const uint32_t begin = static_cast<uint32_t>(props.size());
      if (rng() % 3 != 0) props.push_back({1, {ValueKind::kNumber, static_cast<double>(rng() % 1000), kNoDictId}});
      if (rng() % 5 == 0) props.push_back({4, {ValueKind::kString, 0, static_cast<DictId>(rng() % 7)}});
      const int64_t session = rng() % 4 == 0 ? -1 : static_cast<int64_t>(rng() % 3);
      events.push_back({static_cast<ActorId>(rng() % 300), static_cast<EventTypeId>(rng() % 5), time, session, begin,
                        static_cast<uint32_t>(props.size())});
    }
    out.push_back(Segment::Build(events, props));
  }
  return out;
}

TEST(SegmentTest, MergeEachPartitionBuildsMergeByPartitionsPartitions) {
  constexpr int64_t kWeek = 7 * 86'400'000LL;
  // Time-ordered inputs (a file in time order: each touches one or two weeks), built
  // partition by partition; and inputs that each span every week, merged at once.
  const auto in_order = RandomInputs(30, 500, 600'000, [](int k) { return k * 500 * 600'000LL; });
  const auto spanning = RandomInputs(40, 2'000, 3'000'000, [](int k) { return k * 1'000LL; });
  for (const auto* inputs : {&in_order, &spanning}) {
    const auto expected = Segment::MergeByPartition(*inputs, kWeek);
    ASSERT_GT(expected.size(), 3u);
    std::vector<std::shared_ptr<const Segment>> got;
    ASSERT_TRUE(Segment::MergeEachPartition(*inputs, kWeek, [&](std::shared_ptr<const Segment> p) {
                  got.push_back(std::move(p));
                  return Status::Ok();
                }).ok());
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i]->EncodePart(1), expected[i]->EncodePart(1)) << i;
  }
  // The first error from `each` ends the merge.
  int calls = 0;
  Status st = Segment::MergeEachPartition(in_order, kWeek, [&](std::shared_ptr<const Segment>) {
    return ++calls == 2 ? InvalidArgument("stop here") : Status::Ok();
  });
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 2);
}

// MergeByPartition's partitions are Merge's rows split by partition, whatever the
// partitions' layout: consecutive weeks, weeks far apart, or an input spanning so many
// partitions that they are listed from the rows; and an event with one key twice.
TEST(SegmentTest, MergeByPartitionSplitsMergesRows) {
  constexpr int64_t kWeek = 7 * 86'400'000LL;
  auto spread = [](std::vector<int64_t> weeks) {
    return RandomInputs(12, 300, 1'000, [weeks](int k) { return weeks[k % weeks.size()] * kWeek + k; });
  };
  std::vector<std::vector<std::shared_ptr<const Segment>>> cases = {
      spread({0, 1, 2}), spread({0, 5, 6, 40}), spread({3, 1'000'000'000})};
  // A key twice in one event, in two inputs with the same actor and time.
  for (int k = 0; k < 2; ++k) {
    std::vector<EncodedProperty> props = {{1, {ValueKind::kNumber, 1.0 + k, kNoDictId}},
                                          {1, {ValueKind::kNumber, 3.0 + k, kNoDictId}}};
    cases.back().push_back(Segment::Build({{7, 0, 5 * kWeek, -1, 0, 2}}, props));
  }
  // One input spanning a billion weeks: the partitions are listed from the rows.
  cases.back().push_back(Segment::Build({{3, 1, 3 * kWeek + 5, 9, 0, 0}, {3, 1, 1'000'000'000 * kWeek, 9, 0, 0}}, {}));
  for (const auto& inputs : cases) {
    auto merged = Segment::Merge(inputs);
    auto extras = *merged->Extras();
    // The reference: the merged rows of each partition, rebuilt in their order.
    std::map<int64_t, std::pair<std::vector<EncodedEvent>, std::vector<EncodedProperty>>> expected_rows;
    for (size_t i = 0; i < merged->size(); ++i) {
      auto& [events, props] = expected_rows[merged->time()[i] / kWeek];
      const uint32_t begin = static_cast<uint32_t>(props.size());
      for (const auto& column : extras->properties)
        for (size_t j = 0; j < column.rows.size(); ++j)
          if (column.rows[j] == i) props.push_back({column.key, column.values[j]});
      events.push_back({merged->actor()[i], merged->type()[i], merged->time()[i], extras->session[i], begin,
                        static_cast<uint32_t>(props.size())});
    }
    const auto got = Segment::MergeByPartition(inputs, kWeek);
    ASSERT_EQ(got.size(), expected_rows.size());
    size_t p = 0;
    for (const auto& [partition, rows] : expected_rows) {
      EXPECT_EQ(got[p]->EncodePart(1), Segment::Build(rows.first, rows.second)->EncodePart(1)) << partition;
      ++p;
    }
  }
}

// BuildEncoded's segments are Build's segment cut by week (negative times and a week far
// away included), each holding its encoding and decoding its optional columns from it;
// DecodeEncoded of those bytes gives the same segment again.
TEST(SegmentTest, BuildEncodedSplitsByWeekAndKeepsItsEncoding) {
  constexpr int64_t kWeek = 7 * 86'400'000LL;
  std::mt19937_64 rng(11);
  const std::vector<int64_t> weeks = {-2, 0, 1, 3, 50'000};
  for (size_t used : {size_t{1}, weeks.size()}) {
    std::vector<EncodedEvent> events;
    std::vector<EncodedProperty> props;
    for (int i = 0; i < 3000; ++i) {
      const uint32_t begin = static_cast<uint32_t>(props.size());
      // Keys 5 and 6 only ever occur in the first week used: other weeks must not get
      // empty columns of them.
      const int64_t week = weeks[rng() % used];
      if (rng() % 2) props.push_back({week == weeks[0] ? DictId{5} : DictId{1}, {ValueKind::kNumber, static_cast<double>(rng() % 100), kNoDictId}});
      if (rng() % 3 == 0) props.push_back({week == weeks[0] ? DictId{6} : DictId{2}, {ValueKind::kString, 0, static_cast<DictId>(rng() % 9)}});
      events.push_back({static_cast<ActorId>(rng() % 40), static_cast<EventTypeId>(rng() % 5),
                        week * kWeek + static_cast<int64_t>(rng() % kWeek), rng() % 4 == 0 ? -1 : static_cast<int64_t>(rng() % 1000), begin,
                        static_cast<uint32_t>(props.size())});
    }
    // The reference: Build's rows, in order, split by week.
    auto whole = Segment::Build(events, props);
    auto whole_extras = *whole->Extras();
    std::map<int64_t, std::pair<std::vector<EncodedEvent>, std::vector<EncodedProperty>>> expected_rows;
    for (size_t i = 0; i < whole->size(); ++i) {
      const int64_t t = whole->time()[i];
      auto& [rows, row_props] = expected_rows[t >= 0 ? t / kWeek : -((-t + kWeek - 1) / kWeek)];
      const uint32_t begin = static_cast<uint32_t>(row_props.size());
      for (const auto& column : whole_extras->properties)
        for (size_t j = 0; j < column.rows.size(); ++j)
          if (column.rows[j] == i) row_props.push_back({column.key, column.values[j]});
      rows.push_back({whole->actor()[i], whole->type()[i], t, whole_extras->session[i], begin,
                      static_cast<uint32_t>(row_props.size())});
    }
    const auto got = Segment::BuildEncoded(events, props, kWeek, 1);
    ASSERT_EQ(got.size(), expected_rows.size());
    ASSERT_EQ(got.size(), used);
    size_t p = 0;
    for (const auto& [week, rows] : expected_rows) {
      const auto& segment = got[p++];
      ASSERT_NE(segment->encoded(), nullptr);
      const std::string expected = Segment::Build(rows.first, rows.second)->Encode(1);
      EXPECT_EQ(*segment->encoded(), expected) << week;
      // Re-encoding decodes the optional columns from the kept bytes.
      EXPECT_EQ(segment->Encode(1), expected) << week;
      auto again = Segment::DecodeEncoded(segment->encoded(), "test");
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      EXPECT_EQ((*again)->actor(), segment->actor());
      EXPECT_EQ((*again)->time(), segment->time());
      EXPECT_EQ((*again)->Encode(1), expected) << week;
      auto extras = *segment->Extras();
      for (const auto& column : extras->properties) EXPECT_FALSE(column.rows.empty()) << week << " key " << column.key;
      EXPECT_EQ(segment->min_time(), std::min_element(rows.first.begin(), rows.first.end(), [](const auto& a, const auto& b) {
                                       return a.time < b.time;
                                     })->time);
    }
  }
  EXPECT_TRUE(Segment::BuildEncoded({}, {}, kWeek, 1).empty());
  // Damaged bytes are an error naming the source, not a crash.
  auto bytes = std::make_shared<const std::string>("SIBYLSG2 not really");
  auto bad = Segment::DecodeEncoded(bytes, "log record 3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("log record 3"), std::string::npos);
}

// A checkpoint opens the parts it wrote with OfWrittenPart (the core columns it has):
// the part reads like a Decode of the file, and re-encodes to the file's bytes.
TEST(SegmentTest, AWrittenPartReadsLikeItsDecodedFile) {
  std::mt19937_64 rng(5);
  std::vector<EncodedEvent> events;
  std::vector<EncodedProperty> props;
  for (int i = 0; i < 2000; ++i) {
    const uint32_t begin = static_cast<uint32_t>(props.size());
    if (rng() % 2) props.push_back({3, {ValueKind::kNumber, static_cast<double>(rng() % 500), kNoDictId}});
    props.push_back({7, {ValueKind::kString, 0, static_cast<DictId>(rng() % 20)}});
    events.push_back({static_cast<ActorId>(rng() % 90), static_cast<EventTypeId>(rng() % 9),
                      static_cast<int64_t>(rng() % 1'000'000), rng() % 3 ? static_cast<int64_t>(rng() % 50) : -1, begin,
                      static_cast<uint32_t>(props.size())});
  }
  auto built = Segment::Build(events, props);
  size_t extras_at = 0;
  const std::string bytes = built->EncodePart(3, &extras_at);
  EXPECT_EQ(bytes, built->EncodePart(3));
  const std::string path = ::testing::TempDir() + "/written.part";
  ASSERT_TRUE(WriteFileAtomic(path, bytes).ok());
  auto open = [&]() { return std::shared_ptr<const MappedFile>(std::move(MappedFile::Open(path)).value()); };
  auto decoded = Segment::Decode(open());
  auto written = Segment::OfWrittenPart(built, open(), extras_at);  // `built` lives on: copied
  ASSERT_TRUE(decoded.ok() && written.ok());
  EXPECT_EQ((*written)->actor(), (*decoded)->actor());
  EXPECT_EQ((*written)->time(), (*decoded)->time());
  EXPECT_EQ((*written)->type(), (*decoded)->type());
  EXPECT_EQ((*written)->min_time(), (*decoded)->min_time());
  EXPECT_EQ((*written)->max_time(), (*decoded)->max_time());
  EXPECT_EQ((*written)->EncodePart(3), bytes);  // its optional columns, read from the file
  auto a = *(*written)->Extras(true, {7});
  auto b = *(*decoded)->Extras(true, {7});
  EXPECT_EQ(a->session_marks, b->session_marks);
  ASSERT_EQ(a->properties.size(), 1u);
  EXPECT_EQ(a->properties[0].rows, b->properties[0].rows);
  EXPECT_EQ(built->actor(), (*decoded)->actor());  // not moved from
  // The last reference: the columns move, and the part is the same.
  auto moved = Segment::OfWrittenPart(Segment::Build(events, props), open(), extras_at);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ((*moved)->actor(), (*decoded)->actor());
  EXPECT_EQ((*moved)->time(), (*decoded)->time());
  EXPECT_EQ((*moved)->type(), (*decoded)->type());
  EXPECT_EQ((*moved)->EncodePart(3), bytes);
  // A file shorter than the encoding is refused, not read past its end.
  ASSERT_TRUE(WriteFileAtomic(path, bytes.substr(0, extras_at)).ok());
  EXPECT_FALSE(Segment::OfWrittenPart(built, open(), extras_at).ok());
}

TEST(SegmentTest, MergeKeepsEachPropertyWithItsEvent) {
  for (bool interleaved : {false, true}) {
    std::mt19937_64 rng(11);
    std::vector<std::shared_ptr<const Segment>> inputs;
    int64_t next_time = 0;
    size_t with_property = 0;
    for (int k = 0; k < 40; ++k) {
      std::vector<EncodedEvent> events;
      std::vector<EncodedProperty> props;
      for (int i = 0; i < 200; ++i) {
        int64_t time = next_time++ * 1000;
        uint32_t begin = static_cast<uint32_t>(props.size());
        if (rng() % 3 != 0) {
          props.push_back({1, {ValueKind::kNumber, static_cast<double>(time), kNoDictId}});
          ++with_property;
        }
        // Disjoint: input k holds actors 10k..10k+10 (neighbours share one actor).
        ActorId actor = static_cast<ActorId>(interleaved ? rng() % 50 : 10 * k + rng() % 11);
        events.push_back({actor, 0, time, -1, begin, static_cast<uint32_t>(props.size())});
      }
      inputs.push_back(Segment::Build(events, props));
    }
    for (const auto& merged : {Segment::MergeByPartition(inputs, 1'000'000'000'000),
                               Segment::MergeByPartition(inputs, 50'000)}) {
      size_t checked = 0;
      for (const auto& part : merged) {
        auto extras = *part->Extras();
        ASSERT_EQ(extras->properties.size(), 1u);
        const auto& column = extras->properties[0];
        for (size_t j = 0; j < column.rows.size(); ++j) {
          if (j > 0) {
            ASSERT_LT(column.rows[j - 1], column.rows[j]);
          }
          EXPECT_EQ(column.values[j].number, static_cast<double>(part->time()[column.rows[j]]));
          ++checked;
        }
      }
      EXPECT_EQ(checked, with_property) << "interleaved " << interleaved;
    }
  }
}

TEST(SegmentTest, TruncatedBytesAreCorruptionNotACrash) {
  std::vector<EncodedEvent> events = {{1, 2, 3, 4, 0, 0}, {2, 3, 4, 5, 0, 0}};
  std::string bytes = Segment::Build(events, {})->Encode(1);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto r = Segment::DecodeBytes(std::string_view(bytes).substr(0, cut), "cut");
    EXPECT_FALSE(r.ok()) << cut;
  }
}

}  // namespace
}  // namespace sibyl

namespace sibyl {
namespace {

TEST(SegmentTest, SessionsRoundTripIncludingExtremeIds) {
  // Sessions are coded against event times; ids far from the time must wrap back exactly.
  std::vector<int64_t> sessions = {-1, INT64_MIN, INT64_MAX, 0, 1'700'000'000'000, 1'700'000'000'000,
                                   -1, 42, 42, INT64_MIN};
  std::vector<EncodedEvent> events;
  for (size_t i = 0; i < sessions.size(); ++i)
    events.push_back({1, 0, static_cast<int64_t>(1'700'000'000'500 + i * 1000), sessions[i], 0, 0});
  auto segment = Segment::Build(events, {});
  auto decoded = Segment::DecodeBytes(segment->Encode(1), "test");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ((*decoded)->Extras().value()->session, sessions);
}

TEST(SegmentTest, SessionMarksSayWhetherEachEventStartsAnotherSession) {
  // Two actors: marks compare with the row before, whoever's it is (scans reset per run).
  std::vector<int64_t> sessions = {-1, 5, 5, -1, -1, 7, 5, /* actor 2 */ 5, 5, -1, 9};
  const std::vector<uint8_t> expected = {kNoSession,  kNewSession,  kSameSession, kNoSession,
                                         kNoSession,  kNewSession,  kNewSession,  kSameSession,
                                         kSameSession, kNoSession, kNewSession};
  std::vector<EncodedEvent> events;
  for (size_t i = 0; i < sessions.size(); ++i)
    events.push_back({i < 7 ? ActorId{1} : ActorId{2}, 0, static_cast<int64_t>(1'700'000'000'000 + i * 1000),
                      sessions[i], 0, 0});
  EXPECT_EQ(SessionMarks(sessions), expected);
  auto built = Segment::Build(events, {});
  EXPECT_EQ(built->Extras().value()->session_marks, expected);  // in memory (memtable)

  // A part file: a whole decode and a scan's decode both have ids and marks (the feature
  // query counts distinct session ids).
  const std::string path = ::testing::TempDir() + "/session_marks.part";
  ASSERT_TRUE(WriteFileAtomic(path, built->EncodePart(1)).ok());
  auto file = MappedFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto part = Segment::Decode(std::shared_ptr<const MappedFile>(std::move(*file)));
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  auto whole = (*part)->Extras();
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*whole)->session, sessions);
  EXPECT_EQ((*whole)->session_marks, expected);
  auto scanned = (*part)->Extras(/*sessions=*/true, {});
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ((*scanned)->session, sessions);
  EXPECT_EQ((*scanned)->session_marks, expected);
  auto no_sessions = (*part)->Extras(/*sessions=*/false, {});
  ASSERT_TRUE(no_sessions.ok());
  EXPECT_TRUE((*no_sessions)->session.empty());
}

}  // namespace
}  // namespace sibyl

namespace sibyl {
namespace {

TEST(SegmentTest, FormatOneSegmentsAreStillRead) {
  // Two events of actor 3 and one of actor 5, laid out as format 1 wrote them: plain
  // varint time deltas and sessions as deltas between rows.
  std::string bytes("SIBYLSG1"), raw;
  ByteWriter r(&raw);
  r.Varint(3);
  r.SignedVarint(1000);
  r.SignedVarint(1500);
  AppendCompressedBlock(raw, 1, &bytes);
  raw.clear();
  r.Varint(2);  // runs
  r.Varint(3);
  r.Varint(2);
  r.Varint(2);
  r.Varint(1);
  AppendCompressedBlock(raw, 1, &bytes);
  raw.clear();
  for (uint64_t delta : {0, 200, 500}) r.Varint(delta);  // 1000, 1200 | 1500
  AppendCompressedBlock(raw, 1, &bytes);
  uint16_t types[] = {7, 8, 9};
  AppendCompressedBlock(std::string_view(reinterpret_cast<const char*>(types), sizeof(types)), 1,
                        &bytes);
  std::string extras;
  raw.clear();
  r.Varint(3);
  for (int64_t delta : {900, 0, -901}) r.SignedVarint(delta);  // 900, 900, -1
  AppendCompressedBlock(raw, 1, &extras);
  ByteWriter(&extras).Varint(0);  // no property columns
  ByteWriter(&bytes).Varint(extras.size());
  bytes += extras;

  auto decoded = Segment::DecodeBytes(bytes, "old.seg");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ((*decoded)->actor(), (std::vector<ActorId>{3, 3, 5}));
  EXPECT_EQ((*decoded)->time(), (std::vector<int64_t>{1000, 1200, 1500}));
  EXPECT_EQ((*decoded)->type(), (std::vector<EventTypeId>{7, 8, 9}));
  EXPECT_EQ((*decoded)->Extras().value()->session, (std::vector<int64_t>{900, 900, -1}));
  EXPECT_EQ((*decoded)->Extras().value()->session_marks, (std::vector<uint8_t>{kNewSession, kSameSession, kNoSession}));
}

}  // namespace
}  // namespace sibyl
