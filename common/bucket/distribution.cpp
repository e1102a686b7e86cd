#include "common/bucket/distribution.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace drainmet::bucket {
namespace {

constexpr double kGamma = (1 + DDSketch::kRelativeAccuracy) / (1 - DDSketch::kRelativeAccuracy);

double LogGamma() {
  static const double log_gamma = std::log(kGamma);
  return log_gamma;
}

// Bucket index of a magnitude >= kMinIndexable: ceil(log_gamma(m)). Infinity is indexed
// like the largest finite double, so the index always fits an int (|index| < 36000).
int IndexOf(double magnitude) {
  if (!std::isfinite(magnitude)) magnitude = std::numeric_limits<double>::max();
  return static_cast<int>(std::ceil(std::log(magnitude) / LogGamma()));
}

// The value bucket i stands for: within alpha of every magnitude in (gamma^(i-1), gamma^i].
// The top bucket (that of the largest double) would round to infinity; clamp it.
double RepresentativeOf(int index) {
  return std::min(2 * std::pow(kGamma, index) / (kGamma + 1), std::numeric_limits<double>::max());
}

}  // namespace

void DDSketch::Add(double value, std::uint64_t n) {
  if (n == 0) return;
  count_ += n;
  const double magnitude = std::fabs(value);
  // `!(m >= min)` also sends NaN to the zero count.
  if (!(magnitude >= kMinIndexable)) {
    zero_count_ += n;
  } else if (value > 0) {
    positive_[IndexOf(magnitude)] += n;
  } else {
    negative_[IndexOf(magnitude)] += n;
  }
}

void DDSketch::Merge(const DDSketch& other) {
  for (const auto& [index, n] : other.positive_) positive_[index] += n;
  for (const auto& [index, n] : other.negative_) negative_[index] += n;
  zero_count_ += other.zero_count_;
  count_ += other.count_;
}

int DDSketch::MinIndex() {
  static const int min_index = IndexOf(kMinIndexable);
  return min_index;
}

int DDSketch::MaxIndex() {
  static const int max_index = IndexOf(std::numeric_limits<double>::max());
  return max_index;
}

absl::StatusOr<DDSketch> DDSketch::FromStores(std::map<int, std::uint64_t> positive,
                                              std::map<int, std::uint64_t> negative,
                                              std::uint64_t zero_count) {
  std::uint64_t total = zero_count;
  for (const auto* store : {&positive, &negative}) {
    const char* side = store == &positive ? "positive" : "negative";
    for (const auto& [index, n] : *store) {
      if (index < MinIndex() || index > MaxIndex()) {
        return absl::InvalidArgumentError(std::string("sketch: ") + side + " bucket index " +
                                          std::to_string(index) + " outside [" + std::to_string(MinIndex()) +
                                          ", " + std::to_string(MaxIndex()) + "]");
      }
      if (n == 0) {
        return absl::InvalidArgumentError(std::string("sketch: ") + side + " bucket " +
                                          std::to_string(index) + " has count 0");
      }
      if (n > std::numeric_limits<std::uint64_t>::max() - total) {
        return absl::InvalidArgumentError("sketch: total count overflows uint64");
      }
      total += n;
    }
  }
  DDSketch sketch;
  sketch.positive_ = std::move(positive);
  sketch.negative_ = std::move(negative);
  sketch.zero_count_ = zero_count;
  sketch.count_ = total;
  return sketch;
}

double DDSketch::ValueAtRank(std::uint64_t rank) const {
  if (count_ == 0) return 0;
  if (rank >= count_) rank = count_ - 1;
  std::uint64_t seen = 0;
  // Most negative first: the negative store's greatest index holds the smallest values.
  for (auto it = negative_.rbegin(); it != negative_.rend(); ++it) {
    seen += it->second;
    if (rank < seen) return -RepresentativeOf(it->first);
  }
  seen += zero_count_;
  if (rank < seen) return 0;
  for (const auto& [index, n] : positive_) {
    seen += n;
    if (rank < seen) return RepresentativeOf(index);
  }
  return 0;  // Unreachable while count_ is the sum of the stores.
}

Distribution::Distribution(const Distribution& other)
    : values_(other.values_),
      sketch_(other.sketch_ != nullptr ? std::make_unique<DDSketch>(*other.sketch_) : nullptr),
      first_(other.first_),
      has_first_(other.has_first_),
      sorted_(other.sorted_) {}

Distribution::Distribution(Distribution&& other) noexcept
    : values_(std::move(other.values_)),
      sketch_(std::move(other.sketch_)),
      first_(other.first_),
      has_first_(other.has_first_),
      sorted_(other.sorted_) {
  other.values_.clear();
  other.has_first_ = false;
  other.sorted_ = false;
}

Distribution& Distribution::operator=(const Distribution& other) {
  if (this == &other) return *this;
  values_ = other.values_;  // reuses this vector's capacity
  if (other.sketch_ == nullptr) {
    sketch_.reset();
  } else if (sketch_ != nullptr) {
    *sketch_ = *other.sketch_;
  } else {
    sketch_ = std::make_unique<DDSketch>(*other.sketch_);
  }
  first_ = other.first_;
  has_first_ = other.has_first_;
  sorted_ = other.sorted_;
  return *this;
}

Distribution& Distribution::operator=(Distribution&& other) noexcept {
  if (this == &other) return *this;
  values_ = std::move(other.values_);
  sketch_ = std::move(other.sketch_);
  first_ = other.first_;
  has_first_ = other.has_first_;
  sorted_ = other.sorted_;
  other.values_.clear();
  other.has_first_ = false;
  other.sorted_ = false;
  return *this;
}

const DDSketch& Distribution::EmptySketch() {
  static const DDSketch* const empty = new DDSketch();
  return *empty;
}

void Distribution::Add(double value) {
  if (sketch_ == nullptr) {
    if (!has_first_ && values_.empty()) {
      // The first value: inline, whatever storage the vector has (it takes the second).
      first_ = value;
      has_first_ = true;
      return;
    }
    if (has_first_) {
      // The second value: both go to the vector. Most buckets of a request hold a few
      // values: one allocation for the first eight instead of a reallocation at 2 and 4.
      if (values_.capacity() == 0) values_.reserve(8);
      values_.push_back(first_);
      values_.push_back(value);
      has_first_ = false;
      sorted_ = false;
      return;
    }
    if (values_.size() + 1 <= kExactCap) {
      values_.push_back(value);
      sorted_ = false;
      return;
    }
    SwitchToSketch();
  }
  sketch_->Add(value);
}

std::vector<double> Distribution::TakeStorage() {
  if (sketch_ != nullptr) return {};
  std::vector<double> storage = std::move(values_);
  storage.clear();
  values_ = {};
  has_first_ = false;
  sorted_ = false;
  return storage;
}

void Distribution::AdoptStorage(std::vector<double>&& storage) {
  if (sketch_ != nullptr || has_first_ || values_.capacity() != 0) return;
  values_ = std::move(storage);
  values_.clear();
}

void Distribution::Merge(const Distribution& other) {
  if (other.count() == 0) return;
  if (this == &other) {
    const Distribution copy(other);
    Merge(copy);
    return;
  }
  if (sketch_ == nullptr && other.sketch_ == nullptr && count() + other.count() <= kExactCap) {
    const std::span<const double> more = other.values();
    if (count() == 0 && more.size() == 1) {
      first_ = more[0];
      has_first_ = true;
      return;
    }
    if (has_first_) {
      if (values_.capacity() == 0) values_.reserve(std::max<std::size_t>(8, 1 + more.size()));
      values_.push_back(first_);
      has_first_ = false;
    }
    values_.insert(values_.end(), more.begin(), more.end());
    sorted_ = false;
    return;
  }
  if (sketch_ == nullptr) SwitchToSketch();
  if (other.sketch_ != nullptr) {
    sketch_->Merge(*other.sketch_);
  } else {
    for (double v : other.values()) sketch_->Add(v);
  }
}

absl::StatusOr<Distribution> Distribution::FromExact(std::vector<double> values) {
  if (values.size() > kExactCap) {
    return absl::InvalidArgumentError("distribution: " + std::to_string(values.size()) +
                                      " exact values, more than " + std::to_string(kExactCap));
  }
  Distribution distribution;
  if (values.size() == 1) {
    distribution.first_ = values[0];
    distribution.has_first_ = true;
  } else {
    distribution.values_ = std::move(values);
  }
  return distribution;
}

absl::StatusOr<Distribution> Distribution::FromSketch(DDSketch sketch) {
  if (sketch.count() <= kExactCap) {
    return absl::InvalidArgumentError("distribution: sketch of " + std::to_string(sketch.count()) +
                                      " values; at most " + std::to_string(kExactCap) + " are kept exact");
  }
  Distribution distribution;
  distribution.sketch_ = std::make_unique<DDSketch>(std::move(sketch));
  return distribution;
}

double Distribution::Percentile(int p) {
  const std::uint64_t n = count();
  if (n == 0) return 0;
  const std::uint64_t percent = static_cast<std::uint64_t>(std::clamp(p, 1, 100));
  // Nearest rank, in integers (SEMANTICS §6.4): ceil(P * n / 100) - 1.
  const std::uint64_t index = (percent * n + 99) / 100 - 1;
  if (sketch_ != nullptr) return sketch_->ValueAtRank(index);
  if (has_first_) return first_;  // n == 1: index 0, nothing to sort
  if (!sorted_) {
    std::sort(values_.begin(), values_.end(), TotalLess);
    sorted_ = true;
  }
  return values_[index];
}

void Distribution::SwitchToSketch() {
  sketch_ = std::make_unique<DDSketch>();
  for (double v : values()) sketch_->Add(v);
  values_.clear();
  values_.shrink_to_fit();
  has_first_ = false;
  sorted_ = false;
}

}  // namespace drainmet::bucket
