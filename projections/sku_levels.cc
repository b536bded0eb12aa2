#include "projections/sku_levels.h"

#include <algorithm>
#include <bit>

namespace qudao {

void SkuLevels::Positions::set(std::size_t i, std::uint32_t v) {
  if (wide_) {
    std::memcpy(bytes_.data() + i * 4, &v, 4);
  } else {
    const auto narrow = static_cast<std::uint16_t>(v);
    std::memcpy(bytes_.data() + i * 2, &narrow, 2);
  }
}

void SkuLevels::Positions::insert(std::size_t i, std::uint32_t v) {
  bytes_.insert(bytes_.begin() + static_cast<std::ptrdiff_t>(i * width()), width(), 0);
  set(i, v);
}

void SkuLevels::Positions::widen() {
  if (wide_) return;
  const std::size_t n = size();
  std::vector<std::uint8_t> narrow = std::move(bytes_);
  bytes_.assign(n * 4, 0);
  wide_ = true;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t v;
    std::memcpy(&v, narrow.data() + i * 2, 2);
    set(i, v);
  }
}

std::size_t SkuLevels::rank_of_first_at_or_after(SkuId sku) const {
  std::size_t lo = 0, hi = order_.size();
  while (lo < hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (by_rank(mid).sku < sku) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

void SkuLevels::place(std::size_t position) {
  const std::size_t mask = index_.size() - 1;
  std::size_t i = slot_of(items_[position].sku);
  while (index_.get(i) != 0) i = (i + 1) & mask;
  index_.set(i, static_cast<std::uint32_t>(position + 1));
}

void SkuLevels::rehash(std::size_t slots) {
  index_.assign(slots);
  index_shift_ = 64 - std::countr_zero(slots);
  for (std::size_t p = 0; p < items_.size(); ++p) place(p);
}

StockLevels& SkuLevels::insert(SkuId sku) {
  if (items_.size() == kNarrowItemsMax) {
    index_.widen();
    order_.widen();
  }
  const std::size_t position = items_.size();
  items_.push_back(Item{sku, {}});
  // At most half full: a probe mostly ends at its first slot, which is all that is prefetched.
  if (2 * items_.size() > index_.size()) {
    rehash(std::max(kIndexSlotsMin, std::bit_ceil(2 * items_.size())));
  } else {
    place(position);
  }
  order_.insert(rank_of_first_at_or_after(sku), static_cast<std::uint32_t>(position + 1));
  return items_.back().levels;
}

}  // namespace qudao
