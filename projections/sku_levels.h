// One location's stock levels per sku, for the stock projection (projections/stock.h keeps one per
// location): found by sku in one hash probe, listed in sku order, in about the memory of an
// ordered tree.
//
// Why not a map. Applying a scan-out updates one (location, sku)'s levels, at random among a few
// hundred thousand of them: an ordered tree (the btree_map this replaced) costs a cache miss per
// level of it and cannot be prefetched, ~14 % of the apply row; a flat hash map of the levels is one
// prefetchable miss but doubles the memory (32-byte slots at 7/16 to 7/8 load, plus a sorted list of
// its keys for paging), against the ≤ 150 MB per million keys of issue 4. This is CPython's compact
// dict layout instead:
//
//   items_  Item{sku, levels} (32 bytes, 32-aligned: never across two cache lines), in the order
//           the skus first arrived. Skus are never removed, so an item keeps its position.
//   index_  open addressing with linear probing over 2^k slots (at least kIndexSlotsMin), at most
//           half full; a slot holds 0 (empty) or 1 + an item's position. The slot of a sku is its
//           Fibonacci hash (deterministic: nothing here depends on a process's hash seed).
//   order_  the items' positions by ascending sku: listings and pages read it.
//
// Positions are 2 bytes wide while a location has at most kNarrowItemsMax skus, 4 after (both
// arrays are widened at once), so a location with 1,000 skus costs ~39 bytes per sku (32.8 items,
// 4.1 index, 2 order) against ~40 for the btree_map.
//
// Lookups read only; add() inserts. Not thread-safe: the projection's lock guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "events/types.h"

namespace qudao {

// on_hand is physical stock at the location; reserved is the part of it held for proxy orders;
// available = on_hand - reserved.
struct StockLevels {
  Quantity on_hand;
  Quantity reserved;
  Quantity in_transit;

  Quantity available() const { return Quantity{on_hand.value - reserved.value}; }
  StockLevels& operator+=(const StockLevels& o) {
    on_hand.value += o.on_hand.value, reserved.value += o.reserved.value, in_transit.value += o.in_transit.value;
    return *this;
  }
};

class SkuLevels {
 public:
  struct alignas(32) Item {
    SkuId sku;
    StockLevels levels;
  };

  std::size_t size() const { return items_.size(); }

  // The sku's levels, or nullptr if the location never held it.
  const StockLevels* find(SkuId sku) const {
    const std::uint32_t p = position_of(sku);
    return p == 0 ? nullptr : &items_[p - 1].levels;
  }
  // The sku's levels, added at zero if it is new here.
  StockLevels& add(SkuId sku) {
    const std::uint32_t p = position_of(sku);
    return p != 0 ? items_[p - 1].levels : insert(sku);
  }

  // Every item, in the order its sku arrived: for sums, where order does not matter.
  std::span<const Item> items() const { return items_; }
  // The k-th item by ascending sku (k < size()), and the rank of the first sku at or after `sku`
  // (size() if none).
  const Item& by_rank(std::size_t k) const { return items_[order_.get(k) - 1]; }
  std::size_t rank_of_first_at_or_after(SkuId sku) const;

 private:
  // An array of item positions (1 + position; 0 = none), 2 or 4 bytes each.
  class Positions {
   public:
    bool empty() const { return bytes_.empty(); }
    std::size_t size() const { return bytes_.size() / width(); }
    std::uint32_t get(std::size_t i) const {
      if (wide_) {
        std::uint32_t v;
        std::memcpy(&v, bytes_.data() + i * 4, 4);
        return v;
      }
      std::uint16_t v;
      std::memcpy(&v, bytes_.data() + i * 2, 2);
      return v;
    }
    void set(std::size_t i, std::uint32_t v);
    void assign(std::size_t n) { bytes_.assign(n * width(), 0); }
    void insert(std::size_t i, std::uint32_t v);
    void widen();  // 2 → 4 bytes, keeping the values

   private:
    std::size_t width() const { return wide_ ? 4 : 2; }
    std::vector<std::uint8_t> bytes_;
    bool wide_ = false;
  };

  static constexpr std::size_t kIndexSlotsMin = 8;
  static constexpr std::size_t kNarrowItemsMax = 0xFFFF;  // 1 + position must fit 2 bytes

  std::size_t slot_of(SkuId sku) const {
    return static_cast<std::size_t>((sku.value * 0x9E3779B97F4A7C15ull) >> index_shift_);
  }
  // 1 + the sku's position in items_, or 0 if absent.
  std::uint32_t position_of(SkuId sku) const {
    if (index_.empty()) return 0;
    const std::size_t mask = index_.size() - 1;
    for (std::size_t i = slot_of(sku);; i = (i + 1) & mask) {
      const std::uint32_t p = index_.get(i);
      if (p == 0 || items_[p - 1].sku == sku) return p;
    }
  }
  StockLevels& insert(SkuId sku);
  void place(std::size_t position);  // puts items_[position] into index_
  void rehash(std::size_t slots);

  std::vector<Item> items_;
  Positions index_;
  Positions order_;
  int index_shift_ = 64;  // 64 - log2(index slots)
};

}  // namespace qudao
