#pragma once
// The value distribution of a measure bucket: every value while the bucket holds at most
// kExactCap of them, a mergeable relative-error sketch (DDSketch, 1% relative accuracy)
// beyond that (SEMANTICS.md §6.3). Percentiles by nearest rank (§6.4).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace drainmet::bucket {

/// A strict total order on doubles used wherever a bucket picks one value among equals, so
/// that merge results never depend on order: -0 sorts before +0, and NaN after everything
/// (all NaNs equivalent). Otherwise the same as `a < b`. Pure.
/// Inline: buckets call it for every point.
inline bool TotalLess(double a, double b) {
  if (std::isnan(a)) return false;
  if (std::isnan(b)) return true;
  if (a < b) return true;
  if (b < a) return false;
  return std::signbit(a) && !std::signbit(b);
}

/// DDSketch (Masson, Rim, Lee, VLDB 2019) with relative accuracy alpha = 0.01:
/// gamma = (1 + alpha) / (1 - alpha); a positive value v goes to bucket ceil(log_gamma(v)),
/// a negative one to the mirrored negative store, |v| < kMinIndexable (and NaN) to the zero
/// count; infinities go to the bucket of the largest finite double. Bucket i represents
/// 2 * gamma^i / (gamma + 1). Merge adds counts: exact, associative and commutative (a
/// sketch depends only on the multiset of values added). Not thread-safe.
class DDSketch {
 public:
  static constexpr double kRelativeAccuracy = 0.01;
  static constexpr double kMinIndexable = 1e-300;

  void Add(double value, std::uint64_t n = 1);
  void Merge(const DDSketch& other);
  std::uint64_t count() const { return count_; }

  /// The value of 0-based rank `rank` (< count()) in sorted order, within 1% relative
  /// error (0 for values in the zero bucket). Negative buckets come first (most negative
  /// upward), then the zero count, then positive buckets. A rank >= count() gives the
  /// greatest value held (0 for an empty sketch).
  double ValueAtRank(std::uint64_t rank) const;

  /// Stored buckets, for serialisation and tests.
  const std::map<int, std::uint64_t>& positive() const { return positive_; }
  const std::map<int, std::uint64_t>& negative() const { return negative_; }
  std::uint64_t zero_count() const { return zero_count_; }

  /// Smallest and greatest bucket index any value can have: those of the magnitudes
  /// kMinIndexable and DBL_MAX (-34537 and 35488). Pure.
  static int MinIndex();
  static int MaxIndex();

  /// Rebuilds a sketch from its stored buckets (the inverse of positive(), negative() and
  /// zero_count()), for decoding partial buckets (common/bucket/codec.h). The result equals
  /// the sketch the buckets were read from. InvalidArgument, naming the culprit, when an
  /// index lies outside [MinIndex(), MaxIndex()], a bucket count is 0 (Add never stores
  /// one), or the total count overflows uint64.
  static absl::StatusOr<DDSketch> FromStores(std::map<int, std::uint64_t> positive,
                                             std::map<int, std::uint64_t> negative, std::uint64_t zero_count);

  bool operator==(const DDSketch& other) const = default;

 private:
  std::map<int, std::uint64_t> positive_;
  std::map<int, std::uint64_t> negative_;
  std::uint64_t zero_count_ = 0;
  std::uint64_t count_ = 0;
};

/// Exact values up to kExactCap, then a DDSketch (the switch happens when the count would
/// pass the cap, whatever the order of Add and Merge, so a bucket of n <= kExactCap values
/// is always exact). Layout, for the tables holding one per bucket: a single exact value
/// (most buckets of a request at high cardinality) is held inline without allocating; from
/// the second value on the exact values live in a vector; the sketch is allocated only
/// when the distribution switches to it. Copies are deep; a moved-from distribution is
/// empty and exact. Not thread-safe.
class Distribution {
 public:
  static constexpr std::size_t kExactCap = 4096;

  Distribution() = default;
  Distribution(const Distribution& other);
  Distribution(Distribution&& other) noexcept;
  Distribution& operator=(const Distribution& other);
  Distribution& operator=(Distribution&& other) noexcept;
  ~Distribution() = default;

  void Add(double value);
  void Merge(const Distribution& other);
  std::uint64_t count() const {
    return sketch_ != nullptr ? sketch_->count() : values_.size() + (has_first_ ? 1 : 0);
  }
  bool exact() const { return sketch_ == nullptr; }

  /// Nearest-rank percentile (SEMANTICS §6.4): v[(P*n + 99)/100 - 1] of the sorted values
  /// for P in 1..100 (P outside is clamped to 1..100); for a sketch the value at that rank
  /// within 1%, clamped to [min, max] by the caller. Requires count() > 0 (returns 0
  /// otherwise). Sorts the exact values in place (once; Add and Merge unsort them), in
  /// TotalLess order.
  double Percentile(int p);

  /// An exact distribution holding `values` in the given order (values() returns them so
  /// until Percentile sorts them), for decoding partial buckets; a single value is held
  /// inline (the vector is freed). InvalidArgument when there are more than kExactCap
  /// values; the values themselves are not checked (the codec does).
  static absl::StatusOr<Distribution> FromExact(std::vector<double> values);
  /// A sketched distribution holding `sketch`, for decoding partial buckets.
  /// InvalidArgument when sketch.count() <= kExactCap: such a distribution is always exact.
  static absl::StatusOr<Distribution> FromSketch(DDSketch sketch);

  /// Exact values (in no particular order) while exact(): count() doubles, empty when
  /// sketched. Valid until the next non-const call.
  std::span<const double> values() const {
    if (has_first_) return {&first_, 1};
    return values_;
  }

  /// Storage recycling for tables reused request after request (BucketMap::clear): moves
  /// the exact values' vector out, emptied with its capacity kept (none when the
  /// distribution held at most one value), and leaves this distribution empty. Empty
  /// vector, and this distribution untouched, when sketched.
  std::vector<double> TakeStorage();
  /// Gives a distribution with no values yet an emptied vector to fill from its second
  /// value on (from TakeStorage); ignored when it already has values or storage.
  void AdoptStorage(std::vector<double>&& storage);
  /// The sketch while !exact(); an empty sketch otherwise.
  const DDSketch& sketch() const { return sketch_ != nullptr ? *sketch_ : EmptySketch(); }

 private:
  static const DDSketch& EmptySketch();
  void SwitchToSketch();

  // Exact: the only value in first_ (has_first_, values_ empty, perhaps with capacity), or
  // every value (two or more) in values_. Sketched: sketch_ set, values_ empty.
  std::vector<double> values_;
  std::unique_ptr<DDSketch> sketch_;
  double first_ = 0;
  bool has_first_ = false;
  bool sorted_ = false;  // values_ is in TotalLess order
};

}  // namespace drainmet::bucket
