// RegionScope: the regions one reader may see. Every projection lookup that serves a reader takes a
// scope and treats an object outside it exactly as one that does not exist. The scope is part of
// the lookup, never a filter over a full result afterwards, so no endpoint can forget to apply it
// and no out-of-scope row is ever copied out of a projection.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qudao {

class RegionScope {
 public:
  // Every region (HQ).
  static RegionScope all() { return RegionScope(Kind::all, {}); }
  // Only these regions; none at all if `regions` is empty.
  static RegionScope only(std::vector<std::string> regions) {
    std::sort(regions.begin(), regions.end());
    regions.erase(std::unique(regions.begin(), regions.end()), regions.end());
    return RegionScope(Kind::only, std::move(regions));
  }

  bool contains(std::string_view region) const {
    return kind_ == Kind::all || std::binary_search(regions_.begin(), regions_.end(), region);
  }
  bool is_all() const { return kind_ == Kind::all; }
  // The regions of an only() scope, sorted and unique; empty for all().
  const std::vector<std::string>& regions() const { return regions_; }

 private:
  enum class Kind : std::uint8_t { all, only };
  RegionScope(Kind kind, std::vector<std::string> regions) : kind_(kind), regions_(std::move(regions)) {}

  Kind kind_;
  std::vector<std::string> regions_;
};

}  // namespace qudao
