// MemoryStore: de-duplication (DESIGN rule 3), late points (SEMANTICS §6.5), the
// open-bucket bound, and closing windows in order.

#include "common/store/memory_store.h"

#include "gtest/gtest.h"

namespace drainmet::store {
namespace {

constexpr std::int64_t kSec = base::kNanosPerSecond;
constexpr std::int64_t kT0 = 1709633700;  // 2024-03-05T10:15:00Z, a window start

bucket::BucketMap OnePoint(std::string_view name, std::int64_t unix_seconds, double value = 1,
                           extract::Kind kind = extract::Kind::kCount, std::int32_t resolution = 60) {
  bucket::BucketMap map;
  extract::Point p;
  p.kind = kind;
  p.name = name;
  p.value = value;
  p.time_unix_nanos = unix_seconds * kSec;
  map.Add("t", resolution, p);
  return map;
}

class MemoryStoreTest : public ::testing::Test {
 protected:
  base::FakeClock clock_{(kT0 + 30) * kSec};
  MemoryStoreOptions options_;
  std::unique_ptr<MemoryStore> store_ = std::make_unique<MemoryStore>(clock_, options_);
};

TEST_F(MemoryStoreTest, MergesPartialsOfOneSeries) {
  auto a = OnePoint("x", kT0 + 1, 2);
  auto b = OnePoint("x", kT0 + 2, 3);
  EXPECT_EQ(store_->Ingest("t", "", a)->applied_points, 1u);
  EXPECT_EQ(store_->Ingest("t", "", b)->applied_points, 1u);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(store_->OpenBuckets(), 1u);
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  auto closed = store_->TakeClosed(false);
  ASSERT_TRUE(closed.ok());
  ASSERT_EQ(closed->size(), 1u);
  EXPECT_EQ((*closed)[0].bucket.count, 2u);
  EXPECT_EQ((*closed)[0].bucket.sum, 5);
  EXPECT_EQ((*closed)[0].key.window_unix_seconds, kT0);
}

TEST_F(MemoryStoreTest, SameFrameIdIsDuplicateOnlyForSameTenant) {
  auto a = OnePoint("x", kT0 + 1);
  auto b = OnePoint("x", kT0 + 1);
  auto c = OnePoint("x", kT0 + 1);
  EXPECT_FALSE(store_->Ingest("t", "F1", a)->duplicate);
  EXPECT_TRUE(*store_->SeenFrame("t", "F1"));
  EXPECT_FALSE(*store_->SeenFrame("other", "F1"));
  auto dup = store_->Ingest("t", "F1", b);
  EXPECT_TRUE(dup->duplicate);
  EXPECT_EQ(dup->applied_points, 0u);
  EXPECT_FALSE(store_->Ingest("other", "F1", c)->duplicate);
}

TEST_F(MemoryStoreTest, EmptyFrameIdIsNeverDeduplicated) {
  for (int i = 0; i < 3; ++i) {
    auto a = OnePoint("x", kT0 + 1);
    EXPECT_FALSE(store_->Ingest("t", "", a)->duplicate);
  }
  EXPECT_FALSE(*store_->SeenFrame("t", ""));
}

TEST_F(MemoryStoreTest, FrameIdIsForgottenAfterTheWindow) {
  auto a = OnePoint("x", kT0 + 1);
  ASSERT_FALSE(store_->Ingest("t", "F1", a)->duplicate);
  clock_.AdvanceNanos(599 * kSec);
  EXPECT_TRUE(*store_->SeenFrame("t", "F1"));
  clock_.AdvanceNanos(2 * kSec);
  EXPECT_FALSE(*store_->SeenFrame("t", "F1"));
}

// SEMANTICS §6.5: closed at window + resolution + grace; a point for it is late.
TEST_F(MemoryStoreTest, PointForClosedWindowIsLate) {
  clock_.SetUnixNanos((kT0 + 60 + 5) * kSec - 1);
  auto open = OnePoint("x", kT0 + 59);
  EXPECT_EQ(store_->Ingest("t", "", open)->applied_points, 1u);
  clock_.SetUnixNanos((kT0 + 60 + 5) * kSec);
  auto late = OnePoint("x", kT0 + 59);
  auto r = store_->Ingest("t", "", late);
  EXPECT_EQ(r->late_points, 1u);
  EXPECT_EQ(r->applied_points, 0u);
}

TEST_F(MemoryStoreTest, TakenWindowStaysClosedWhenClockMovesBack) {
  auto a = OnePoint("x", kT0 + 1);
  ASSERT_TRUE(store_->Ingest("t", "", a).ok());
  clock_.SetUnixNanos((kT0 + 70) * kSec);
  ASSERT_EQ(store_->TakeClosed(false)->size(), 1u);
  clock_.SetUnixNanos((kT0 + 30) * kSec);  // NTP step back
  auto b = OnePoint("x", kT0 + 1);
  EXPECT_EQ(store_->Ingest("t", "", b)->late_points, 1u);
}

TEST_F(MemoryStoreTest, TakeClosedReturnsOnlyClosedWindowsSorted) {
  auto a = OnePoint("b", kT0 + 1);
  auto b = OnePoint("a", kT0 + 1);
  auto c = OnePoint("a", kT0 + 61);
  auto d = OnePoint("h", kT0 + 1, 1, extract::Kind::kCount, 3600);
  ASSERT_TRUE(store_->Ingest("t", "", a).ok());
  ASSERT_TRUE(store_->Ingest("t", "", b).ok());
  clock_.SetUnixNanos((kT0 + 62) * kSec);
  ASSERT_TRUE(store_->Ingest("t", "", c).ok());
  ASSERT_TRUE(store_->Ingest("t", "", d).ok());
  clock_.SetUnixNanos((kT0 + 65) * kSec);
  auto closed = store_->TakeClosed(false);
  ASSERT_EQ(closed->size(), 2u);
  EXPECT_EQ((*closed)[0].key.name, "a");
  EXPECT_EQ((*closed)[1].key.name, "b");
  EXPECT_EQ(store_->OpenBuckets(), 2u);
  auto rest = store_->TakeClosed(true);
  ASSERT_EQ(rest->size(), 2u);
  EXPECT_EQ(store_->OpenBuckets(), 0u);
}

TEST(MemoryStoreLimitTest, NewSeriesOverBoundAreDroppedExistingKeepGoing) {
  base::FakeClock clock((kT0 + 30) * kSec);
  MemoryStoreOptions options;
  options.max_open_buckets = 2;
  MemoryStore store(clock, options);
  auto a = OnePoint("a", kT0);
  auto b = OnePoint("b", kT0);
  auto c = OnePoint("c", kT0);
  auto a2 = OnePoint("a", kT0);
  ASSERT_TRUE(store.Ingest("t", "", a).ok());
  ASSERT_TRUE(store.Ingest("t", "", b).ok());
  auto r = store.Ingest("t", "", c);
  EXPECT_EQ(r->series_limit_points, 1u);
  EXPECT_EQ(store.Ingest("t", "", a2)->applied_points, 1u);
  EXPECT_EQ(store.OpenBuckets(), 2u);
}

TEST(MemoryStoreLimitTest, DedupeEntriesAreBounded) {
  base::FakeClock clock((kT0 + 30) * kSec);
  MemoryStoreOptions options;
  options.dedupe_max_entries = 2;
  MemoryStore store(clock, options);
  for (const char* id : {"F1", "F2", "F3"}) {
    auto a = OnePoint("a", kT0);
    ASSERT_TRUE(store.Ingest("t", id, a).ok());
  }
  EXPECT_FALSE(*store.SeenFrame("t", "F1"));  // the oldest is forgotten first
  EXPECT_TRUE(*store.SeenFrame("t", "F2"));
  EXPECT_TRUE(*store.SeenFrame("t", "F3"));
}

// Issue 5 "Limits": limits.max_series_per_tenant bounds one tenant's series in one window;
// over it only points of NEW series are dropped (series_limit), existing ones keep theirs,
// other tenants and other windows are not affected, and closing the window frees the room.
TEST(MemoryStoreSeriesLimit, DropsNewSeriesOnlyPerTenantAndWindow) {
  base::FakeClock clock{(kT0 + 30) * kSec};
  MemoryStoreOptions options;
  options.max_series_per_tenant = 2;
  MemoryStore store(clock, options);
  auto ingest = [&](std::string_view tenant, std::string_view name, std::int64_t t) {
    bucket::BucketMap map;
    extract::Point p;
    p.kind = extract::Kind::kCount;
    p.name = name;
    p.value = 1;
    p.time_unix_nanos = t * kSec;
    map.Add(tenant, 60, p);
    return *store.Ingest(tenant, "", map);
  };
  EXPECT_EQ(ingest("a", "x", kT0 + 1).applied_points, 1u);
  EXPECT_EQ(ingest("a", "y", kT0 + 1).applied_points, 1u);
  const IngestResult over = ingest("a", "z", kT0 + 1);  // a third series in the window
  EXPECT_EQ(over.applied_points, 0u);
  EXPECT_EQ(over.series_limit_points, 1u);
  EXPECT_EQ(ingest("a", "x", kT0 + 2).applied_points, 1u);       // existing: kept
  EXPECT_EQ(ingest("b", "z", kT0 + 1).applied_points, 1u);       // another tenant
  EXPECT_EQ(ingest("a", "z", kT0 + 60 + 1).applied_points, 1u);  // the next window
  clock.SetUnixNanos((kT0 + 66) * kSec);                         // the first window closes
  ASSERT_EQ(store.TakeClosed(false)->size(), 3u);                // a/x, a/y, b/z
  clock.SetUnixNanos((kT0 + 60 + 30) * kSec);
  EXPECT_EQ(ingest("a", "w", kT0 + 60 + 2).applied_points, 1u);  // 2 in the second window
  EXPECT_EQ(ingest("a", "v", kT0 + 60 + 2).series_limit_points, 1u);
}

}  // namespace
}  // namespace drainmet::store
