#include "tools/simulate.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <vector>

#include "engine/apply.h"
#include "events/encode.h"
#include "tools/simulate_random.h"

namespace qudao {
namespace {

using sim::AliasTable;
using sim::kOne;
using sim::Poisson;
using sim::Rng;
using Bytes = EventWriter::Bytes;

constexpr std::int64_t kStartMs = 1'767'225'600'000;  // 2026-01-01T00:00:00Z, a Thursday
constexpr std::int64_t kStartEpochDay = kStartMs / 86'400'000;
constexpr std::int64_t kDayMs = 86'400'000;
constexpr std::int64_t kHourMs = 3'600'000;
constexpr std::string_view kHq = "HQ";
constexpr std::array<std::string_view, 8> kRegionNames = {"East", "North", "South", "West",
                                                          "Central", "Northeast", "Northwest", "Southwest"};

// ---- the catalogue ----

enum class ItemCodes : std::uint8_t { none, per_item };  // 一物一码: every item scanned alone, with its code

struct Category {
  std::string_view name, unit;
  std::int64_t price_min_fen, price_max_fen;
  int case_pack;
  int lead_min_days, lead_max_days;  // production lead time
  ItemCodes codes;
  int share;  // of skus, out of 100
};

constexpr std::array<Category, 8> kCategories = {{
    {"spirits", "bottle", 8'000, 150'000, 6, 20, 45, ItemCodes::per_item, 10},
    {"wine", "bottle", 5'000, 40'000, 6, 15, 30, ItemCodes::per_item, 8},
    {"beer", "can", 400, 1'500, 24, 5, 12, ItemCodes::none, 14},
    {"soft drinks", "bottle", 300, 800, 24, 3, 10, ItemCodes::none, 20},
    {"tea", "box", 2'000, 30'000, 10, 10, 25, ItemCodes::none, 10},
    {"snacks", "bag", 500, 3'000, 20, 5, 15, ItemCodes::none, 20},
    {"dairy", "carton", 400, 1'200, 12, 2, 5, ItemCodes::none, 10},
    {"personal care", "piece", 1'000, 8'000, 12, 10, 30, ItemCodes::none, 8},
}};

// ---- the demand model's constants (Q16 fixed point: kOne == 1.0) ----

// Transactions per day of the most popular sku at an average store; the sku of popularity rank r
// sells 1/r of it (Zipf), so the tail is intermittent: most store-days sell none of it.
constexpr std::uint64_t kTopRateQ16 = 3 * kOne;
// Monday .. Sunday: weekends sell about 40 % more than weekdays.
constexpr std::array<std::uint64_t, 7> kWeeklyQ16 = {58982, 57672, 60293, 62915, 70779, 85197, 79954};
// Units per transaction: 1 (75 %), 2 (15 %), 3..6 (10 %): 1.5 on average.
constexpr std::uint64_t kUnitsMeanX16 = 24;  // 1.5 × 16
// A trend of -25 %..+40 % a year, for the first two years, never below 20 % of the start.
constexpr std::int64_t kTrendDaysMax = 730;
constexpr std::int64_t kTrendFloorQ16 = kOne / 5;
// Promotions per region × sku: about one every 90 days, 3..14 days long, 1.5x..3x demand, on HQ's
// calendar kPromoNoticeDays ahead (longer than any lead time), so production and stores plan for them.
constexpr std::uint64_t kPromoStartPerMille = 11;
constexpr std::int64_t kPromoNoticeDays = 60;

// The schema version the simulated events carry: 4, the version the stream was last made with (it
// brought RebateSettled), so that a newer contract (version 5 added movements between shards) leaves
// the default stream byte for byte as it was. Only a dispatch between shards (--cross-shard) is
// version 5, the version that brought it.
constexpr std::uint16_t kSimulatedSchemaVersion = 4;
constexpr std::uint16_t kCrossShardSchemaVersion = 5;

// ---- the channel's habits ----

constexpr int kFlagshipsPerRegions = 4;    // HQ runs one flagship store per this many regions (at least one)
constexpr int kStoresPerDistributor = 6;
constexpr int kCitiesPerAgent = 3;
constexpr int kProxyManagedPercent = 35;   // stores whose distributor orders for them (代下单)
constexpr int kUnreliablePercent = 15;     // distributors that often leave proxy orders unpaid
constexpr int kNeverPaidUnreliablePercent = 20;
constexpr int kNeverPaidReliablePercent = 1;
constexpr int kCancelPercent = 2;
constexpr int kSplitPaymentPercent = 8;    // self-orders paid as a deposit now and the rest tomorrow
constexpr int kUnroutedPercent = 5;        // self-orders that leave the fulfilment location to HQ (0)
constexpr int kPaymentDeadlineDays = 3;    // proxy orders unpaid by then expire
constexpr std::size_t kOrderLinesMax = 200;
constexpr std::size_t kCountLinesMax = 20; // skus per daily cycle count
constexpr int kCoverDaysStore = 12;        // order up to: a week between reviews, the trip, a margin
constexpr int kCoverDaysWarehouse = 14;    // beyond the production lead time
constexpr std::size_t kSkuReorderPointEvery = 3;  // every third sku has SkuDefined.reorder_cover_days
constexpr int kBackorderCancelDays = 14;   // a paid order with nothing shipped by then is cancelled
constexpr int kShortPerMille = 30;         // receipts short of some units
constexpr int kLineLostPerMille = 5;       // receipts missing a whole line
constexpr int kCountOffPercent = 8;        // cycle counts that find shrinkage or a stray item

// Days are processed in order; these rings hold what a day schedules for the next few.
constexpr int kRingDays = 8;            // settlements and shipments in transit (<= 3 days ahead)
constexpr int kProductionRingDays = 64; // production orders (lead time <= 45 days)

// A fault record's event id: world events count up from 1 in `lo`, faults from 2^63, rebate
// settlements from 2^62 (their own count, so that the world's ids are what they were without them).
constexpr std::uint64_t kFaultIdBit = std::uint64_t{1} << 63;
constexpr std::uint64_t kSettlementIdBit = std::uint64_t{1} << 62;
// Rebate settlements: on the 15th, finance pays out what is owed for the periods that ended (last
// month: its corrections; in a quarter's first month, last quarter: its accrual) to some parties,
// in full or now and then in part.
constexpr int kSettlementDay = 15;
constexpr int kSettledPercent = 80;
constexpr int kSettledInFullPercent = 75;
constexpr std::uint64_t kDuplicateDelayMax = 256;  // events later (at most the end of the day)
constexpr std::uint64_t kMalformedKinds = 10;

constexpr std::array<std::string_view, 4> kCancelReasons = {
    "store changed its mind", "duplicate order", "wrong quantities", "store closed for renovation"};
constexpr std::array<std::string_view, 5> kRebateReasons = {
    "display fee", "late payment penalty", "promotion support", "returned goods", "target correction"};
constexpr std::array<std::string_view, 5> kFeedbackComments = {
    "on time", "late delivery", "short shipment", "friendly salesman", "hard to reach by phone"};
constexpr std::array<std::string_view, 6> kCourses = {
    "product knowledge", "display standards", "mini-program ordering",
    "anti-counterfeit scanning", "food safety", "rebate policy"};

struct Date {
  int year, month, day;  // month 1..12
  int weekday;           // 0 = Monday
};

// Days since 1970-01-01 → calendar date (H. Hinnant's civil_from_days).
Date date_of(std::int64_t epoch_day) {
  std::int64_t z = epoch_day + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  const int y = static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0));
  return Date{y, m, d, static_cast<int>((epoch_day % 7 + 10) % 7)};  // 1970-01-01 was a Thursday
}

// "YYYY-MM" or "YYYY-Qn", without allocating.
struct Period {
  char text[8] = {};
  std::string_view view() const { return {text, 7}; }
  static Period month(int y, int m) {
    Period p;
    fmt::format_to_n(p.text, sizeof p.text, "{:04}-{:02}", y, m);
    return p;
  }
  static Period quarter(int y, int m) {
    Period p;
    fmt::format_to_n(p.text, sizeof p.text, "{:04}-Q{}", y, (m - 1) / 3 + 1);
    return p;
  }
  // year × 16 + month (1..12) or 12 + quarter (13..16), as the engine numbers periods.
  int code() const {
    const int year = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    return year * 16 + (text[5] == 'Q' ? 12 + (text[6] - '0') : (text[5] - '0') * 10 + (text[6] - '0'));
  }
};

struct Sku {
  SkuId id;
  int category = 0;
  std::string code, name;
  Fen list_price, store_price;  // store_price: what a store pays (the distributor's price)
  int case_pack = 1;
  int lead_days = 1;
  std::uint64_t base_q16 = 0;   // transactions per day at an average store
  std::int64_t slope_q16 = 0;   // trend per year
  ItemCodes codes = ItemCodes::none;
  std::uint64_t serial = 0;     // item codes scanned so far
};

struct Store {
  LocationId id;  // also its party id, so that an order it places itself is not a proxy order
  std::string name;
  int region = 0, city = 0, warehouse = 0;
  int distributor = -1;  // index into parties_; -1 for HQ's flagship stores
  std::uint64_t mult_q16 = kOne;  // its size: demand relative to an average store
  int review_weekday = 0;
  bool proxy_managed = false;
};

struct City {
  std::string name;
  int region = 0, warehouse = 0;
  int first_store = 0, stores = 0;
  int first_distributor = 0, distributors = 0;  // indexes into parties_
};

struct Region {
  std::string name;  // the shard key
  bool hq = false;
  int first_store = 0, stores = 0;
  int cities = 0;
  // Per sku, the next or current promotion on the calendar: days [promo_start, promo_until).
  std::vector<std::int64_t> promo_start, promo_until;
  std::vector<std::uint64_t> promo_q16;   // demand factor while promoted
  std::vector<std::uint64_t> weight_q16;  // per sku, today: base × trend × promotion
  std::vector<std::uint64_t> stock_weight_q16;  // as weight_q16 with a promotion starting within a store's cover

  // Days of [from, to) promoted for sku k.
  std::int64_t promo_days(int k, std::int64_t from, std::int64_t to) const {
    return std::max<std::int64_t>(0, std::min(to, promo_until[k]) - std::max(from, promo_start[k]));
  }
  AliasTable mix;                         // today's choice of sku per transaction
  std::uint64_t count_cursor = 0;
};

struct Warehouse {
  LocationId id;
  fb::LocationKind kind = fb::LocationKind::SubWarehouse;
  std::string name, city;
  int region = 0;
  std::uint64_t demand_mult_q16 = 0;  // the stores it serves, summed
  // Per sku. free + reserved is the physical stock (the ledger's on_hand and reserved buckets).
  std::vector<std::int64_t> free, reserved, pipeline, backlog;
  std::vector<int> queue, queue_next;  // paid orders waiting to ship, oldest first
};

// An agent or a distributor.
struct Party {
  std::uint64_t id = 0;
  fb::PartyKind kind = fb::PartyKind::Agent;
  std::uint64_t parent = 0;
  std::string name;
  int region = 0;
  int quality = 3;  // 1..5: how stores rate it
  int never_paid_percent = kNeverPaidReliablePercent;
};

struct OrderLineModel {
  int sku = 0;
  std::int64_t remaining = 0;  // ordered, not dispatched
  std::int64_t reserved = 0;   // held at the fulfilment location (proxy orders)
};

struct OpenOrder {
  OrderId id;
  int store = 0, warehouse = 0;
  std::uint64_t placed_by = 0;
  LocationId fulfilment;
  Fen due, paid;
  bool shipped = false;
  int paid_day = -1;  // -1: not fully paid
  std::vector<OrderLineModel> lines;
};

enum class Settle : std::uint8_t { pay, pay_rest, cancel, expire };

// A distributor's rebate money for one period, as the ledger keeps it (engine/channel.h), so that a
// settlement never pays more than is outstanding: the period's sell-in (its payments less what
// cancellations of paid orders gave back), its target (a quarter: the sum of its months'), its
// policy, its corrections and what was settled.
struct RebateBook {
  std::int64_t sell_in_fen = 0;
  std::int64_t target_fen = 0;
  std::array<RebateTierBp, 4> tiers{};
  bool policy = false;
  std::int64_t adjusted_fen = 0;
  std::int64_t settled_fen = 0;

  // The ledger's rule: the highest tier the attainment reaches, its rate on sell-in (floor).
  std::int64_t accrued_fen() const {
    if (!policy) return 0;
    __extension__ typedef __int128 Wide;
    const std::int64_t base = std::max<std::int64_t>(0, sell_in_fen);
    const std::int64_t attainment =
        target_fen > 0 ? static_cast<std::int64_t>(static_cast<Wide>(base) * 10'000 / target_fen) : 0;
    std::int32_t rate = 0;
    for (const RebateTierBp& t : tiers) {
      if (attainment >= t.attainment_bp) rate = t.rebate_bp;
    }
    return static_cast<std::int64_t>(static_cast<Wide>(base) * rate / 10'000);
  }
  std::int64_t outstanding_fen() const { return accrued_fen() + adjusted_fen - settled_fen; }
};

struct Settlement {
  int order = 0;
  Settle what = Settle::pay;
};

struct ShipLine {
  int sku = 0;
  std::int64_t qty = 0;
};

struct InTransit {
  ShipmentId id;
  int store = 0;
  std::uint32_t first_line = 0, lines = 0;
};

struct TransitDay {
  std::vector<InTransit> shipments;
  std::vector<ShipLine> lines;
};

// A shipment between shards (--cross-shard): HQ's warehouse to a sub-warehouse, received on its day.
struct Transfer {
  ShipmentId id;
  int warehouse = 0;
  std::vector<Line> lines;
};

struct ProductionDue {
  int warehouse = 0, sku = 0;
  std::int64_t qty = 0;
  friend bool operator<(const ProductionDue& a, const ProductionDue& b) {
    return a.warehouse != b.warehouse ? a.warehouse < b.warehouse : a.sku < b.sku;
  }
};

// A valid event to send again later the same day (a producer's retry).
struct PendingDuplicate {
  std::uint64_t due = 0, seq = 0;  // world event count to send at; tie-break
  std::string_view key;
  std::size_t at = 0, size = 0;     // in duplicate_bytes_
  friend bool operator>(const PendingDuplicate& a, const PendingDuplicate& b) {
    return a.due != b.due ? a.due > b.due : a.seq > b.seq;
  }
};

// What the fault stream decided for one valid event (drawn whether the event is emitted or not).
struct FaultPlan {
  bool duplicate = false;
  std::uint64_t delay = 0;
  bool malformed = false;
  std::uint64_t kind = 0, salt = 0, id = 0;
};

class World {
 public:
  World(const SimulateOptions& o, const EventSink& sink)
      : o_(o), sink_(sink), rng_(o.seed), faults_(o.seed ^ 0x6a09e667f3bcc909ULL),
        settlements_rng_(o.seed ^ 0xbb67ae8584caa73bULL),
        duplicate_threshold_(sim::threshold_of(o.duplicate_rate)), late_threshold_(sim::threshold_of(o.late_rate)),
        malformed_threshold_(sim::threshold_of(o.malformed_rate)) {}

  SimulationSummary run() {
    build();
    for (day_ = 0; day_ < o_.days; ++day_) {
      start_day();
      if (day_ == 0) define_world();
      period_events();
      settle_rebates();
      settle();
      if (o_.cross_shard == SimulateOptions::CrossShard::on) receive_transfers();
      receive();
      count_stock();
      sell();
      review_and_order();
      plan_production();  // after the stores' orders: on day 0 the opening stock covers them
      production_arrives();
      dispatch();
      relations();
      end_day();
    }
    summarize();
    return summary_;
  }

 private:
  int skus() const { return o_.skus; }
  bool live() const { return day_ >= o_.from_day; }
  std::size_t at(int store, int sku) const { return static_cast<std::size_t>(store) * o_.skus + sku; }
  TimeMs midnight(int day) const { return TimeMs{kStartMs + day * kDayMs}; }

  // ---- the world's shape, drawn once ----

  void build() {
    build_catalogue();
    std::uint64_t next_location = 1;
    const int r_count = o_.regions + 1;  // the last is HQ's own shard
    regions_.resize(r_count);
    for (int r = 0; r < r_count; ++r) {
      Region& region = regions_[r];
      region.hq = r == o_.regions;
      region.name = region.hq ? std::string(kHq)
                    : r < static_cast<int>(kRegionNames.size()) ? std::string(kRegionNames[r])
                                                                 : fmt::format("Region{}", r + 1);
      region.promo_start.assign(skus(), 0);
      region.promo_until.assign(skus(), 0);
      region.promo_q16.assign(skus(), kOne);
      region.stock_weight_q16.assign(skus(), 0);
      region.weight_q16.assign(skus(), 0);
      region.cities = region.hq ? 1 : o_.cities_per_region;
      region.first_store = static_cast<int>(stores_.size());
      const int first_agent = static_cast<int>(parties_.size());
      const int agents = region.hq ? 0 : std::max(1, o_.cities_per_region / kCitiesPerAgent);
      for (int a = 0; a < agents; ++a) {
        Party p;
        p.id = 1'000'000'000 + parties_.size() + 1;
        p.kind = fb::PartyKind::Agent;
        p.name = fmt::format("{} agent {}", region.name, a + 1);
        p.region = r;
        parties_.push_back(std::move(p));
      }
      for (int c = 0; c < region.cities; ++c) {
        City city;
        city.name = region.hq ? std::string(kHq) : fmt::format("{}-City{}", region.name, c + 1);
        city.region = r;
        city.warehouse = static_cast<int>(warehouses_.size());
        Warehouse w;
        w.id = LocationId{next_location++};
        w.kind = region.hq ? fb::LocationKind::Warehouse : fb::LocationKind::SubWarehouse;
        if (region.hq) hq_warehouse_ = static_cast<int>(warehouses_.size());
        w.name = region.hq ? "HQ warehouse" : city.name + " sub-warehouse";
        w.city = city.name;
        w.region = r;
        for (auto* v : {&w.free, &w.reserved, &w.pipeline, &w.backlog}) v->assign(skus(), 0);
        warehouses_.push_back(std::move(w));
        city.first_distributor = static_cast<int>(parties_.size());
        city.distributors =
            region.hq ? 0 : std::max(1, (o_.stores_per_city + kStoresPerDistributor - 1) / kStoresPerDistributor);
        for (int d = 0; d < city.distributors; ++d) {
          Party p;
          p.id = 2'000'000'000 + parties_.size() + 1;
          p.kind = fb::PartyKind::Distributor;
          p.parent = parties_[first_agent + c % agents].id;
          p.name = fmt::format("{} distributor {}", city.name, d + 1);
          p.region = r;
          const bool unreliable = rng_.percent(kUnreliablePercent);
          p.never_paid_percent = unreliable ? kNeverPaidUnreliablePercent : kNeverPaidReliablePercent;
          p.quality = unreliable ? static_cast<int>(rng_.between(1, 3)) : static_cast<int>(rng_.between(3, 5));
          parties_.push_back(std::move(p));
        }
        city.first_store = static_cast<int>(stores_.size());
        city.stores = region.hq ? std::max(1, o_.regions / kFlagshipsPerRegions) : o_.stores_per_city;
        for (int s = 0; s < city.stores; ++s) {
          Store store;
          store.id = LocationId{next_location++};
          store.name = region.hq ? fmt::format("HQ flagship store {}", s + 1)
                                 : fmt::format("{} store {}", city.name, s + 1);
          store.region = r;
          store.city = static_cast<int>(cities_.size());
          store.warehouse = city.warehouse;
          if (!region.hq) store.distributor = city.first_distributor + s % city.distributors;
          // Store sizes: 0.4x .. 2.5x an average store, most of them small; flagships are big.
          const std::uint64_t u = rng_.below(1000);
          store.mult_q16 = region.hq ? 3 * kOne : 26'214 + 137'626 * u * u / 1'000'000;
          store.review_weekday = static_cast<int>(rng_.below(7));
          store.proxy_managed = !region.hq && rng_.percent(kProxyManagedPercent);
          warehouses_[city.warehouse].demand_mult_q16 += store.mult_q16;
          stores_.push_back(std::move(store));
        }
        region.stores += city.stores;
        cities_.push_back(std::move(city));
      }
    }
    const std::size_t n = static_cast<std::size_t>(stores_.size()) * skus();
    store_on_hand_.assign(n, 0);
    store_in_transit_.assign(n, 0);
    store_on_order_.assign(n, 0);
    production_ring_.resize(kProductionRingDays);
    trend_q16_.assign(skus(), kOne);
  }

  void build_catalogue() {
    // Popularity ranks are shuffled over sku ids, so sku 1 is not always the best seller.
    std::vector<std::uint64_t> rank(skus());
    for (int k = 0; k < skus(); ++k) rank[k] = static_cast<std::uint64_t>(k) + 1;
    for (int k = skus() - 1; k > 0; --k) std::swap(rank[k], rank[rng_.below(static_cast<std::uint64_t>(k) + 1)]);
    skus_.resize(skus());
    for (int k = 0; k < skus(); ++k) {
      Sku& s = skus_[k];
      s.id = SkuId{static_cast<std::uint64_t>(k) + 1};
      std::uint64_t pick = rng_.below(100);
      int c = 0;
      while (pick >= static_cast<std::uint64_t>(kCategories[c].share)) pick -= kCategories[c++].share;
      const Category& cat = kCategories[c];
      s.category = c;
      s.code = fmt::format("SKU{:05}", k + 1);
      s.name = fmt::format("{} {}", cat.name, k + 1);
      s.list_price = Fen{rng_.between(cat.price_min_fen, cat.price_max_fen)};
      s.store_price = Fen{std::max<std::int64_t>(1, s.list_price.value * 3 / 4)};
      s.case_pack = cat.case_pack;
      s.lead_days = static_cast<int>(rng_.between(cat.lead_min_days, cat.lead_max_days));
      s.codes = cat.codes;
      s.base_q16 = std::max<std::uint64_t>(1, kTopRateQ16 / rank[k]);
      s.slope_q16 = rng_.between(-16'384, 26'214);  // -25 % .. +40 % a year
      sku_value_q16_ += s.base_q16 * static_cast<std::uint64_t>(s.store_price.value);
    }
  }

  // ---- events ----

  // Every event gets the next id and a time within the current day, whether it is emitted or not,
  // so that a continued run (--from-day) sees exactly the same world.
  Header header() {
    ++event_seq_;
    ++events_today_;
    intra_day_ms_ = std::min<std::int64_t>(intra_day_ms_ + 1 + static_cast<std::int64_t>(rng_.below(step_ms_)), kDayMs - 1);
    return Header{EventId{o_.seed, event_seq_}, TimeMs{kStartMs + day_ * kDayMs + intra_day_ms_}, o_.source,
                  kSimulatedSchemaVersion};
  }

  FaultPlan plan_faults() {
    FaultPlan f;
    if (duplicate_threshold_ != 0 && faults_.chance(duplicate_threshold_)) {
      f.duplicate = true;
      f.delay = 1 + faults_.below(kDuplicateDelayMax);
    }
    if (malformed_threshold_ != 0 && faults_.chance(malformed_threshold_)) {
      f.malformed = true;
      f.kind = faults_.below(kMalformedKinds);
      f.salt = faults_.next();
      f.id = kFaultIdBit | ++fault_seq_;
    }
    return f;
  }

  void send(std::string_view key, Bytes bytes) {
    sink_(key, bytes);
    ++summary_.events;
  }

  // One valid event: encoded and sent only on emitted days; its faults drawn on every day.
  template <class Encode>
  void emit(std::string_view key, fb::Payload type, const Header& h, Encode&& encode) {
    const FaultPlan f = plan_faults();
    if (!live()) return;
    const Bytes bytes = encode(h);
    send(key, bytes);
    ++by_type_[static_cast<std::size_t>(type)];
    if (f.duplicate) stash_duplicate(key, bytes, event_seq_ + f.delay);
    if (f.malformed) send_malformed(key, h, bytes, f);
    send_due_duplicates(event_seq_);
  }

  void stash_duplicate(std::string_view key, Bytes bytes, std::uint64_t due) {
    const std::size_t at = duplicate_bytes_.size();
    duplicate_bytes_.insert(duplicate_bytes_.end(), bytes.begin(), bytes.end());
    pending_.push_back(PendingDuplicate{due, ++duplicate_seq_, key, at, bytes.size()});
    std::push_heap(pending_.begin(), pending_.end(), std::greater<>());
  }

  void send_due_duplicates(std::uint64_t now) {
    while (!pending_.empty() && pending_.front().due <= now) {
      std::pop_heap(pending_.begin(), pending_.end(), std::greater<>());
      const PendingDuplicate& d = pending_.back();
      send(d.key, Bytes(duplicate_bytes_.data() + d.at, d.size));
      ++summary_.duplicates;
      pending_.pop_back();
    }
    if (pending_.empty()) duplicate_bytes_.clear();
  }

  // A record that decode() rejects, of one of kMalformedKinds kinds, next to the valid event `bytes`.
  void send_malformed(std::string_view key, const Header& h, Bytes bytes, const FaultPlan& f) {
    Header bad{EventId{o_.seed, f.id}, h.occurred_at, o_.source, kSimulatedSchemaVersion};
    const LocationId store{1};
    const SkuId sku{1};
    Bytes out;
    switch (f.kind) {
      case 0:  // another file identifier
        scratch_.assign(bytes.begin(), bytes.end());
        scratch_[4] = 'X';
        out = scratch_;
        break;
      case 1: {  // truncated; a few bytes if half of it still verified
        scratch_.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2));
        aligned_.assign((scratch_.size() + 7) / 8, 0);
        std::memcpy(aligned_.data(), scratch_.data(), scratch_.size());
        if (std::holds_alternative<Event>(decode({reinterpret_cast<const std::uint8_t*>(aligned_.data()), scratch_.size()}))) {
          scratch_.resize(7);
        }
        out = scratch_;
        break;
      }
      case 2: out = writer_.scan_out(bad, store, sku, Quantity{-static_cast<std::int64_t>(1 + f.salt % 5)}, ""); break;
      case 3: out = writer_.scan_out(Header{EventId{0, 0}, h.occurred_at, o_.source, kSimulatedSchemaVersion}, store, sku, Quantity{1}, ""); break;
      case 4:  // seconds instead of milliseconds
        out = writer_.scan_out(Header{bad.id, TimeMs{h.occurred_at.value / 1000}, o_.source, kSimulatedSchemaVersion}, store, sku, Quantity{1}, "");
        break;
      case 5:  // a schema version from the future
        out = writer_.scan_out(Header{bad.id, h.occurred_at, o_.source, kSchemaVersion + 1}, store, sku, Quantity{1}, "");
        break;
      case 6: {  // one sku on two lines
        const PricedLine lines[] = {{sku, Quantity{1}, Fen{100}}, {sku, Quantity{2}, Fen{100}}};
        out = writer_.order_placed(bad, OrderId{1}, store, store.value, LocationId{0}, h.occurred_at, lines);
        break;
      }
      case 7: out = writer_.feedback_recorded(bad, store, 1, 0, ""); break;  // rating 0
      case 8: {  // a negative count
        const Line line{sku, Quantity{-1}};
        out = writer_.stock_counted(bad, store, std::span(&line, 1));
        break;
      }
      default: {  // noise that is not a qudao event
        Rng noise(f.salt);
        scratch_.resize(16 + noise.below(48));
        for (std::uint8_t& b : scratch_) b = static_cast<std::uint8_t>(noise.next());
        std::memcpy(scratch_.data() + 4, "JUNK", 4);
        out = scratch_;
        break;
      }
    }
    send(key, out);
    ++summary_.malformed;
  }

  // ---- the day's phases ----

  void start_day() {
    const Date date = date_of(kStartEpochDay + day_);
    date_ = date;
    intra_day_ms_ = 0;
    // Spread the day's events over about three quarters of it, by yesterday's count.
    const std::uint64_t expected = day_ == 0 ? stores_.size() * 20 + static_cast<std::uint64_t>(skus()) : events_today_;
    step_ms_ = std::clamp<std::uint64_t>(kDayMs * 3 / 2 / (expected + 1), 1, 120'000);
    events_today_ = 0;
    const std::int64_t trend_days = std::min<std::int64_t>(day_, kTrendDaysMax);
    for (int k = 0; k < skus(); ++k) {
      trend_q16_[k] = static_cast<std::uint64_t>(std::max<std::int64_t>(
          kTrendFloorQ16, static_cast<std::int64_t>(kOne) + skus_[k].slope_q16 * trend_days / 365));
    }
    for (Region& r : regions_) {
      for (int k = 0; k < skus(); ++k) {
        // The calendar is scheduled kPromoNoticeDays ahead; on day 0 its first weeks are drawn at once.
        const bool scheduled = r.promo_until[k] > day_;
        if (!scheduled && (day_ == 0 ? rng_.below(1000) < kPromoStartPerMille * kPromoNoticeDays / 2
                                     : rng_.below(1000) < kPromoStartPerMille)) {
          r.promo_start[k] = day_ + (day_ == 0 ? static_cast<std::int64_t>(rng_.below(kPromoNoticeDays)) : kPromoNoticeDays);
          r.promo_until[k] = r.promo_start[k] + rng_.between(3, 14);
          r.promo_q16[k] = static_cast<std::uint64_t>(rng_.between(3 * kOne / 2, 3 * kOne));
        }
        const std::uint64_t base_q16 = (skus_[k].base_q16 * trend_q16_[k]) >> 16;
        const std::uint64_t promo_q16 = r.promo_days(k, day_, day_ + 1) > 0 ? r.promo_q16[k] : kOne;
        const std::uint64_t ahead_q16 = r.promo_days(k, day_, day_ + kCoverDaysStore) > 0 ? r.promo_q16[k] : kOne;
        r.weight_q16[k] = std::max<std::uint64_t>(1, (base_q16 * promo_q16) >> 16);
        r.stock_weight_q16[k] = std::max<std::uint64_t>(1, (base_q16 * ahead_q16) >> 16);
      }
      r.mix.build(r.weight_q16);
    }
  }

  void define_world() {
    for (std::size_t k = 0; k < skus_.size(); ++k) {
      const Sku& s = skus_[k];
      const Category& c = kCategories[s.category];
      // Every third sku has a reorder point of its own: its lead time plus a week of cover (a
      // function of the sku, not a draw, so the rest of the stream is what it was).
      const std::int32_t reorder_cover_days = k % kSkuReorderPointEvery == 0 ? s.lead_days + 7 : 0;
      emit(kHq, fb::Payload::SkuDefined, header(), [&](const Header& h) {
        return writer_.sku_defined(h, s.id, s.code, s.name, c.name, c.unit, s.list_price, s.lead_days,
                                   reorder_cover_days);
      });
    }
    // Locations in id order: each city's sub-warehouse and stores, then HQ's warehouse and flagships.
    for (const City& c : cities_) {
      const Warehouse& w = warehouses_[c.warehouse];
      const std::string& key = regions_[c.region].name;
      emit(key, fb::Payload::LocationDefined, header(), [&](const Header& h) {
        return writer_.location_defined(h, w.id, w.kind, w.name, w.city, key);
      });
      for (int s = c.first_store; s < c.first_store + c.stores; ++s) {
        emit(key, fb::Payload::LocationDefined, header(), [&](const Header& h) {
          return writer_.location_defined(h, stores_[s].id, fb::LocationKind::Store, stores_[s].name, c.name, key);
        });
      }
    }
    constexpr std::string_view kIndustry = "food and beverage distribution";
    for (const Party& p : parties_) {
      const std::string& key = regions_[p.region].name;
      emit(key, fb::Payload::PartyRegistered, header(), [&](const Header& h) {
        return writer_.party_registered(h, p.id, p.kind, p.parent, p.name, key, kIndustry, LocationId{0});
      });
    }
    for (const Store& s : stores_) {
      const std::string& key = regions_[s.region].name;
      const std::uint64_t parent = s.distributor < 0 ? 0 : parties_[s.distributor].id;
      emit(key, fb::Payload::PartyRegistered, header(), [&](const Header& h) {
        return writer_.party_registered(h, s.id.value, fb::PartyKind::Store, parent, s.name, key, "", s.id);
      });
      if (s.distributor >= 0) {
        emit(key, fb::Payload::StoreAssigned, header(),
             [&](const Header& h) { return writer_.store_assigned(h, s.id, parent); });
      }
    }
  }

  // Monthly targets on the 1st, quarterly targets and rebate policies on a quarter's first day,
  // rebate corrections for last month on the 10th.
  void period_events() {
    if (date_.day == 1 || day_ == 0) {
      const Period month = Period::month(date_.year, date_.month);
      const Period quarter = Period::quarter(date_.year, date_.month);
      const bool quarter_starts = (date_.month - 1) % 3 == 0 || day_ == 0;
      for (std::size_t p = 0; p < parties_.size(); ++p) {
        const Party& party = parties_[p];
        const std::string& key = regions_[party.region].name;
        const Fen monthly{std::max<std::int64_t>(1, monthly_sell_in_fen(static_cast<int>(p)) * rng_.between(90, 120) / 100)};
        if (party.kind == fb::PartyKind::Distributor) {
          emit(key, fb::Payload::TargetSet, header(),
               [&](const Header& h) { return writer_.target_set(h, party.id, month.view(), monthly); });
          book(static_cast<int>(p), quarter).target_fen += monthly.value;
        } else if (quarter_starts) {
          emit(key, fb::Payload::TargetSet, header(), [&](const Header& h) {
            return writer_.target_set(h, party.id, quarter.view(), Fen{monthly.value * 3});
          });
        }
        if (party.kind == fb::PartyKind::Distributor && quarter_starts) {
          std::array<RebateTierBp, 4> tiers;
          std::int32_t attainment = static_cast<std::int32_t>(rng_.between(80, 90)) * 100;
          std::int32_t rebate = static_cast<std::int32_t>(rng_.between(50, 150));
          for (RebateTierBp& t : tiers) {
            t = {attainment, rebate};
            attainment += static_cast<std::int32_t>(rng_.between(5, 15)) * 100;
            rebate += static_cast<std::int32_t>(rng_.between(50, 150));
          }
          emit(key, fb::Payload::RebatePolicySet, header(),
               [&](const Header& h) { return writer_.rebate_policy_set(h, party.id, quarter.view(), tiers); });
          RebateBook& b = book(static_cast<int>(p), quarter);
          b.tiers = tiers;
          b.policy = true;
        }
      }
    }
    if (date_.day == 10) {
      const Period last = date_.month == 1 ? Period::month(date_.year - 1, 12) : Period::month(date_.year, date_.month - 1);
      for (std::size_t p = 0; p < parties_.size(); ++p) {
        const Party& party = parties_[p];
        if (party.kind != fb::PartyKind::Distributor || !rng_.percent(15)) continue;
        const std::int64_t amount = rng_.between(500, 200'000) * (rng_.percent(70) ? 1 : -1);
        const std::string_view reason = kRebateReasons[rng_.below(kRebateReasons.size())];
        emit(regions_[party.region].name, fb::Payload::RebateAdjusted, header(), [&](const Header& h) {
          return writer_.rebate_adjusted(h, party.id, last.view(), Fen{amount}, reason);
        });
        book(static_cast<int>(p), last).adjusted_fen += amount;
      }
    }
  }

  RebateBook& book(int party, const Period& period) { return books_[{party, period.code()}]; }

  // A store's payment (or, negative, a cancellation's refund) is its distributor's sell-in in the
  // quarter of the event (agents have no rebate policy: nothing accrues for them).
  void count_sell_in(int store, std::int64_t fen) {
    const int distributor = stores_[store].distributor;
    if (distributor < 0 || fen == 0) return;
    book(distributor, Period::quarter(date_.year, date_.month)).sell_in_fen += fen;
  }

  // On the 15th: settlements of what is owed for the periods that ended, from a random stream of
  // their own and with ids and times that take nothing from the world's, so that a seed's other
  // events are what they were without them. They pay no more than is outstanding: none is rejected.
  void settle_rebates() {
    if (date_.day != kSettlementDay) return;
    const int last_year = date_.month == 1 ? date_.year - 1 : date_.year;
    const int last_month = date_.month == 1 ? 12 : date_.month - 1;
    const bool quarter_ended = (date_.month - 1) % 3 == 0;
    const std::array<Period, 2> ended = {Period::month(last_year, last_month), Period::quarter(last_year, last_month)};
    for (std::size_t p = 0; p < parties_.size(); ++p) {
      const Party& party = parties_[p];
      if (party.kind != fb::PartyKind::Distributor) continue;
      for (std::size_t i = 0; i < (quarter_ended ? 2u : 1u); ++i) {
        const Period& period = ended[i];
        auto it = books_.find({static_cast<int>(p), period.code()});
        if (it == books_.end()) continue;
        RebateBook& b = it->second;
        const std::int64_t owed = b.outstanding_fen();
        if (owed <= 0 || !settlements_rng_.percent(kSettledPercent)) continue;
        const std::int64_t amount = settlements_rng_.percent(kSettledInFullPercent)
                                        ? owed
                                        : std::max<std::int64_t>(1, owed * settlements_rng_.between(50, 90) / 100);
        b.settled_fen += amount;
        const Header h{EventId{o_.seed, kSettlementIdBit | ++settlement_seq_},
                       TimeMs{kStartMs + day_ * kDayMs + intra_day_ms_}, o_.source, kSimulatedSchemaVersion};
        if (!live()) continue;
        char reference[48];
        const std::size_t size =
            fmt::format_to_n(reference, sizeof reference, "FIN-{}-{}-{}", period.view(), party.id, settlement_seq_).size;
        send(regions_[party.region].name,
             writer_.rebate_settled(h, party.id, period.view(), Fen{amount}, std::string_view(reference, size)));
        ++by_type_[static_cast<std::size_t>(fb::Payload::RebateSettled)];
      }
    }
  }

  // What a party's stores buy in a month at store prices, by the demand model's expectation.
  std::int64_t monthly_sell_in_fen(int party) const {
    std::uint64_t mult = 0;
    for (const Store& s : stores_) {
      if (s.distributor == party || (s.distributor >= 0 && parties_[s.distributor].parent == parties_[party].id)) {
        mult += s.mult_q16;
      }
    }
    return static_cast<std::int64_t>(((mult * (sku_value_q16_ >> 16)) >> 16) * kUnitsMeanX16 / 16 * 30);
  }

  // Orders whose payment, cancellation or expiry falls due today. Expiry comes first and posts no
  // event: the ledger expires an unpaid proxy order at the first event past its deadline (midnight),
  // and every region has an event every day (its cycle count).
  void settle() {
    std::vector<Settlement>& due = settlements_[day_ % kRingDays];
    for (const Settlement& s : due) {
      if (s.what == Settle::expire) close_order(s.order);
    }
    for (const Settlement& s : due) {
      switch (s.what) {
        case Settle::pay: pay(s.order, orders_[s.order].due); break;
        case Settle::pay_rest: pay(s.order, Fen{orders_[s.order].due.value - orders_[s.order].paid.value}); break;
        case Settle::cancel: cancel(s.order, kCancelReasons[rng_.below(kCancelReasons.size())]); break;
        case Settle::expire: break;
      }
    }
    due.clear();
  }

  // Weekly (Mondays) and on day 0 (the opening stock), each warehouse orders production of what
  // would leave it short within the lead time and two weeks; it arrives after the sku's lead time.
  void plan_production() {
    if (day_ != 0 && date_.weekday != 0) return;
    for (std::size_t w = 0; w < warehouses_.size(); ++w) {
      Warehouse& wh = warehouses_[w];
      for (int k = 0; k < skus(); ++k) {
        const Sku& sku = skus_[k];
        // Expected demand over the lead time and the cover, promotions on the calendar included.
        const Region& r = regions_[wh.region];
        const std::uint64_t tx_q16 = (wh.demand_mult_q16 * ((sku.base_q16 * trend_q16_[k]) >> 16)) >> 16;
        const std::int64_t horizon = sku.lead_days + kCoverDaysWarehouse;
        const std::uint64_t promo_extra_days_q16 =
            static_cast<std::uint64_t>(r.promo_days(k, day_, day_ + horizon)) * (r.promo_q16[k] - kOne);
        const std::uint64_t days = static_cast<std::uint64_t>(horizon) + (promo_extra_days_q16 >> 16);
        const auto target = static_cast<std::int64_t>((tx_q16 * kUnitsMeanX16 / 16 * days + kOne - 1) >> 16);
        const std::int64_t position = wh.free[k] + wh.reserved[k] + wh.pipeline[k] - wh.backlog[k];
        if (position >= target) continue;
        const std::int64_t qty = (target - position + sku.case_pack - 1) / sku.case_pack * sku.case_pack;
        wh.pipeline[k] += qty;
        const int arrives = day_ == 0 ? 0 : day_ + sku.lead_days;
        production_ring_[arrives % kProductionRingDays].push_back(ProductionDue{static_cast<int>(w), k, qty});
      }
    }
  }

  void production_arrives() {
    std::vector<ProductionDue>& due = production_ring_[day_ % kProductionRingDays];
    std::sort(due.begin(), due.end());
    for (std::size_t i = 0; i < due.size();) {
      const int w = due[i].warehouse;
      Warehouse& wh = warehouses_[w];
      // --cross-shard: after the opening stock, a region's batches arrive at HQ's warehouse, which
      // ships them on to the sub-warehouse; they count as the sub-warehouse's pipeline until received.
      const bool via_hq = o_.cross_shard == SimulateOptions::CrossShard::on && day_ > 0 && !regions_[wh.region].hq;
      lines_.clear();
      for (; i < due.size() && due[i].warehouse == w; ++i) {
        std::int64_t qty = due[i].qty;
        for (; i + 1 < due.size() && due[i + 1].warehouse == w && due[i + 1].sku == due[i].sku; ++i) qty += due[i + 1].qty;
        const int k = due[i].sku;
        if (!via_hq) {
          wh.pipeline[k] -= qty;
          wh.free[k] += qty;
        }
        lines_.push_back(Line{skus_[k].id, Quantity{qty}});
      }
      for (std::size_t from = 0; from < lines_.size(); from += kLinesMax) {
        const std::span<const Line> batch(lines_.data() + from, std::min<std::size_t>(kLinesMax, lines_.size() - from));
        const std::uint64_t id = ++batch_seq_;
        const Warehouse& at = via_hq ? warehouses_[hq_warehouse_] : wh;
        emit(regions_[at.region].name, fb::Payload::ProductionCompleted, header(),
             [&](const Header& h) { return writer_.production_completed(h, id, at.id, batch); });
        if (via_hq) transfer(w, batch);
      }
    }
    due.clear();
  }

  // HQ's warehouse ships `lines` (just produced there) to warehouse `w` on another shard: the
  // dispatch keyed HQ names the region, its arrival leg follows as qudao's relay writes it, and the
  // sub-warehouse receives it one or two days later (in full: shortages are the stores' here).
  void transfer(int w, std::span<const Line> lines) {
    const Warehouse& hq = warehouses_[hq_warehouse_];
    const Warehouse& wh = warehouses_[w];
    const std::string& region = regions_[wh.region].name;
    const ShipmentId id{++shipment_seq_};
    const int transit_days = rng_.percent(70) ? 1 : 2;
    transfers_[(day_ + transit_days) % kRingDays].push_back(Transfer{id, w, {lines.begin(), lines.end()}});
    ++summary_.transfers;
    Header dispatched{};
    emit(kHq, fb::Payload::ShipmentDispatched, header(), [&](const Header& h) {
      dispatched = h;
      return writer_.shipment_dispatched(Header{h.id, h.occurred_at, h.source, kCrossShardSchemaVersion}, id, hq.id,
                                         wh.id, OrderId{0}, lines, region);
    });
    if (!live()) return;
    const Header arrival{Applier::arrival_event_id(dispatched.id), dispatched.occurred_at, "qudao",
                         kCrossShardSchemaVersion};
    send(region, writer_.shipment_transferred(arrival, id, hq.id, kHq, wh.id, lines, dispatched.id));
    ++by_type_[static_cast<std::size_t>(fb::Payload::ShipmentTransferred)];
  }

  // Shipments between shards due today arrive at their sub-warehouse.
  void receive_transfers() {
    std::vector<Transfer>& today = transfers_[day_ % kRingDays];
    for (const Transfer& t : today) {
      Warehouse& wh = warehouses_[t.warehouse];
      for (const Line& l : t.lines) {
        const int k = static_cast<int>(l.sku.value - 1);
        wh.pipeline[k] -= l.qty.value;
        wh.free[k] += l.qty.value;
      }
      emit(regions_[wh.region].name, fb::Payload::ShipmentReceived, header(),
           [&](const Header& h) { return writer_.shipment_received(h, t.id, wh.id, t.lines); });
    }
    today.clear();
  }

  // Shipments due today arrive; now and then short of some units, or of a whole line.
  void receive() {
    TransitDay& today = transit_[day_ % kRingDays];
    for (const InTransit& sh : today.shipments) {
      Store& store = stores_[sh.store];
      ShipLine* lines = today.lines.data() + sh.first_line;
      lines_.clear();
      for (std::uint32_t i = 0; i < sh.lines; ++i) lines_.push_back(Line{skus_[lines[i].sku].id, Quantity{lines[i].qty}});
      if (rng_.below(1000) < kShortPerMille) {
        const std::size_t start = rng_.below(lines_.size());
        for (std::size_t j = 0; j < lines_.size(); ++j) {
          Line& l = lines_[(start + j) % lines_.size()];
          if (l.qty.value < 2) continue;
          l.qty.value -= rng_.between(1, l.qty.value / 2);
          break;
        }
      }
      if (lines_.size() >= 2 && rng_.below(1000) < kLineLostPerMille) {
        lines_.erase(lines_.begin() + static_cast<std::ptrdiff_t>(rng_.below(lines_.size())));
      }
      for (std::uint32_t i = 0; i < sh.lines; ++i) store_in_transit_[at(sh.store, lines[i].sku)] -= lines[i].qty;
      for (const Line& l : lines_) store_on_hand_[at(sh.store, static_cast<int>(l.sku.value - 1))] += l.qty.value;
      emit(regions_[store.region].name, fb::Payload::ShipmentReceived, header(),
           [&](const Header& h) { return writer_.shipment_received(h, sh.id, store.id, lines_); });
    }
    today.shipments.clear();
    today.lines.clear();
  }

  // Every region counts a few skus at one of its stores each day (cycle counting): the books are
  // set to what is found. This is also the region's event that every day is sure to have.
  void count_stock() {
    for (Region& r : regions_) {
      const int s = r.first_store + static_cast<int>(r.count_cursor % static_cast<std::uint64_t>(r.stores));
      const std::size_t n = std::min<std::size_t>(kCountLinesMax, static_cast<std::size_t>(skus()));
      const std::size_t rounds = r.count_cursor / static_cast<std::uint64_t>(r.stores);
      const std::size_t first = rounds * n % static_cast<std::size_t>(skus());
      ++r.count_cursor;
      const std::size_t off = rng_.percent(kCountOffPercent) ? rng_.below(n) : n;
      lines_.clear();
      for (std::size_t j = 0; j < n; ++j) {
        const int k = static_cast<int>((first + j) % static_cast<std::size_t>(skus()));
        std::int32_t& on_hand = store_on_hand_[at(s, k)];
        if (j == off) {  // shrinkage, or a stray item found
          on_hand = on_hand > 0 && rng_.percent(80)
                        ? on_hand - static_cast<std::int32_t>(rng_.between(1, std::min(3, on_hand)))
                        : on_hand + 1;
        }
        lines_.push_back(Line{skus_[k].id, Quantity{on_hand}});
      }
      emit(r.name, fb::Payload::StockCounted, header(),
           [&](const Header& h) { return writer_.stock_counted(h, stores_[s].id, lines_); });
    }
  }

  // Consumers buy: per store a Poisson number of transactions (its size × the weekday × the sum of
  // today's sku weights), each of one sku chosen by weight. That is the same as an independent
  // Poisson demand per store × sku with mean size × weekday × base × trend × promotion. A store
  // sells what it has; the rest of the demand is lost.
  void sell() {
    for (Region& r : regions_) {
      if (r.mix.total() == 0) continue;
      for (int s = r.first_store; s < r.first_store + r.stores; ++s) {
        const std::uint64_t size_q16 = (stores_[s].mult_q16 * kWeeklyQ16[date_.weekday]) >> 16;
        for (std::int64_t n = poisson_.sample(rng_, (size_q16 * r.mix.total()) >> 16); n > 0; --n) {
          sell_one(r, s, static_cast<int>(r.mix.sample(rng_)));
        }
      }
    }
  }

  void sell_one(const Region& r, int s, int k) {
    const std::uint64_t u = rng_.below(100);
    const std::int32_t units = u < 75 ? 1 : u < 90 ? 2 : static_cast<std::int32_t>(rng_.between(3, 6));
    std::int32_t& on_hand = store_on_hand_[at(s, k)];
    const std::int32_t sold = std::min(units, on_hand);
    if (sold <= 0) return;
    on_hand -= sold;
    Sku& sku = skus_[k];
    const int events = sku.codes == ItemCodes::per_item ? sold : 1;
    for (int e = 0; e < events; ++e) {
      Header h = header();
      // A late event: the store's scanner was offline and uploads it hours or days later.
      if (late_threshold_ != 0 && faults_.chance(late_threshold_)) {
        h.occurred_at.value -= kHourMs + static_cast<std::int64_t>(faults_.below(3 * kDayMs - kHourMs));
        if (live()) ++summary_.late;
      }
      char code[32];
      std::size_t code_size = 0;
      if (sku.codes == ItemCodes::per_item) {
        code_size = fmt::format_to_n(code, sizeof code, "{}{:010}", sku.code, ++sku.serial).size;
      }
      const Quantity qty{events == 1 ? sold : 1};
      emit(r.name, fb::Payload::ScanOut, h, [&](const Header& hh) {
        return writer_.scan_out(hh, stores_[s].id, sku.id, qty, std::string_view(code, code_size));
      });
    }
  }

  // Once a week (every store on its own weekday; all of them on day 0) a store orders up to its
  // level every sku whose stock, in transit and on order is below it — by itself or, for stores its
  // distributor manages, through the distributor (代下单). The level: the expected demand of
  // kCoverDaysStore days (a promotion on the calendar within them included), plus one, at least two.
  void review_and_order() {
    for (int s = 0; s < static_cast<int>(stores_.size()); ++s) {
      const Store& store = stores_[s];
      if (day_ != 0 && store.review_weekday != date_.weekday) continue;
      const Region& r = regions_[store.region];
      wanted_.clear();
      for (int k = 0; k < skus(); ++k) {
        const std::size_t i = at(s, k);
        const std::int64_t position = store_on_hand_[i] + store_in_transit_[i] + store_on_order_[i];
        const std::uint64_t tx_q16 = (store.mult_q16 * r.stock_weight_q16[k]) >> 16;
        const auto up_to = std::max<std::int64_t>(
            2, 1 + static_cast<std::int64_t>((tx_q16 * kUnitsMeanX16 / 16 * kCoverDaysStore + kOne - 1) >> 16));
        if (position < up_to) wanted_.push_back(ShipLine{k, up_to - position});
      }
      for (std::size_t from = 0; from < wanted_.size(); from += kOrderLinesMax) {
        place_order(s, std::span(wanted_.data() + from, std::min(kOrderLinesMax, wanted_.size() - from)));
      }
    }
  }

  int new_order() {
    if (free_orders_.empty()) {
      orders_.emplace_back();
      return static_cast<int>(orders_.size() - 1);
    }
    const int slot = free_orders_.back();
    free_orders_.pop_back();
    return slot;
  }

  void place_order(int s, std::span<const ShipLine> wanted) {
    const Store& store = stores_[s];
    Warehouse& wh = warehouses_[store.warehouse];
    const bool proxy = store.proxy_managed;
    const Party* distributor = store.distributor >= 0 ? &parties_[store.distributor] : nullptr;
    const int slot = new_order();
    OpenOrder& o = orders_[slot];
    o.id = OrderId{++order_seq_};
    o.store = s;
    o.warehouse = store.warehouse;
    o.placed_by = proxy ? distributor->id : store.id.value;
    o.fulfilment = !proxy && rng_.percent(kUnroutedPercent) ? LocationId{0} : wh.id;
    o.due = Fen{0};
    o.paid = Fen{0};
    o.shipped = false;
    o.paid_day = -1;
    o.lines.clear();
    priced_.clear();
    for (const ShipLine& w : wanted) {
      const Sku& sku = skus_[w.sku];
      // A proxy order holds what its fulfilment location has, up to the quantity (the ledger's rule).
      const std::int64_t held = proxy ? std::min(w.qty, wh.free[w.sku]) : 0;
      wh.free[w.sku] -= held;
      wh.reserved[w.sku] += held;
      wh.backlog[w.sku] += w.qty;
      store_on_order_[at(s, w.sku)] += static_cast<std::int32_t>(w.qty);
      o.lines.push_back(OrderLineModel{w.sku, w.qty, held});
      o.due.value += w.qty * sku.store_price.value;
      priced_.push_back(PricedLine{sku.id, Quantity{w.qty}, sku.store_price});
    }
    const std::string& key = regions_[store.region].name;
    const TimeMs deadline = midnight(day_ + kPaymentDeadlineDays);
    emit(key, fb::Payload::OrderPlaced, header(), [&](const Header& h) {
      return writer_.order_placed(h, o.id, store.id, o.placed_by, o.fulfilment, deadline, priced_);
    });
    const std::uint64_t fate = rng_.below(100);
    if (fate < kCancelPercent) {
      schedule(day_ + 1, slot, Settle::cancel);
    } else if (proxy) {
      if (rng_.percent(static_cast<std::uint64_t>(distributor->never_paid_percent))) {
        schedule(day_ + kPaymentDeadlineDays, slot, Settle::expire);
      } else {
        const std::uint64_t after = rng_.below(10);
        const int days = after < 4 ? 0 : after < 8 ? 1 : 2;
        if (days == 0) pay(slot, o.due);
        else schedule(day_ + days, slot, Settle::pay);
      }
    } else if (fate < kCancelPercent + kSplitPaymentPercent && o.due.value >= 2) {
      pay(slot, Fen{std::max<std::int64_t>(1, o.due.value * rng_.between(30, 70) / 100)});
      schedule(day_ + 1, slot, Settle::pay_rest);
    } else {
      pay(slot, o.due);
    }
  }

  void schedule(int day, int slot, Settle what) {
    assert(day - day_ < kRingDays);
    settlements_[day % kRingDays].push_back(Settlement{slot, what});
  }

  void pay(int slot, Fen amount) {
    OpenOrder& o = orders_[slot];
    const Store& store = stores_[o.store];
    emit(regions_[store.region].name, fb::Payload::OrderPaid, header(),
         [&](const Header& h) { return writer_.order_paid(h, o.id, o.placed_by, amount); });
    o.paid.value += amount.value;
    count_sell_in(o.store, amount.value);
    if (o.paid.value >= o.due.value) {
      o.paid_day = day_;
      warehouses_[o.warehouse].queue.push_back(slot);
    }
  }

  void cancel(int slot, std::string_view reason) {
    const OpenOrder& o = orders_[slot];
    emit(regions_[stores_[o.store].region].name, fb::Payload::OrderCancelled, header(),
         [&](const Header& h) { return writer_.order_cancelled(h, o.id, reason); });
    count_sell_in(o.store, -o.paid.value);  // the ledger gives a paid order's money back
    close_order(slot);
  }

  // The order takes nothing more: what it holds goes back, what it still wanted is no longer on order.
  void close_order(int slot) {
    OpenOrder& o = orders_[slot];
    Warehouse& wh = warehouses_[o.warehouse];
    for (OrderLineModel& l : o.lines) {
      wh.reserved[l.sku] -= l.reserved;
      wh.free[l.sku] += l.reserved;
      wh.backlog[l.sku] -= l.remaining;
      store_on_order_[at(o.store, l.sku)] -= static_cast<std::int32_t>(l.remaining);
      l.reserved = 0;
      l.remaining = 0;
    }
    free_orders_.push_back(slot);
  }

  // Each warehouse ships its paid orders oldest first: what it has of each line (an order's own
  // reservation first), the rest later (a backorder). A paid order that has waited two weeks with
  // nothing shipped is cancelled.
  void dispatch() {
    for (Warehouse& wh : warehouses_) {
      wh.queue_next.clear();
      for (const int slot : wh.queue) {
        OpenOrder& o = orders_[slot];
        const bool from_fulfilment = o.fulfilment == wh.id;
        shipping_.clear();
        bool open = false;
        for (OrderLineModel& l : o.lines) {
          const std::int64_t held = from_fulfilment ? l.reserved : 0;
          const std::int64_t qty = std::min(l.remaining, wh.free[l.sku] + held);
          if (qty > 0) {
            wh.reserved[l.sku] -= held;
            wh.free[l.sku] -= qty - held;
            l.reserved -= held;
            l.remaining -= qty;
            wh.backlog[l.sku] -= qty;
            shipping_.push_back(ShipLine{l.sku, qty});
          }
          open |= l.remaining > 0;
        }
        if (!shipping_.empty()) ship(o);
        if (!open) {
          close_order(slot);
        } else if (!o.shipped && day_ - o.paid_day >= kBackorderCancelDays) {
          cancel(slot, "out of stock");
        } else {
          wh.queue_next.push_back(slot);
        }
      }
      std::swap(wh.queue, wh.queue_next);
    }
  }

  void ship(OpenOrder& o) {
    const Store& store = stores_[o.store];
    const Warehouse& wh = warehouses_[o.warehouse];
    const int transit_days = regions_[store.region].hq ? static_cast<int>(rng_.between(1, 3)) : rng_.percent(80) ? 1 : 2;
    TransitDay& arrival = transit_[(day_ + transit_days) % kRingDays];
    const ShipmentId id{++shipment_seq_};
    arrival.shipments.push_back(InTransit{id, o.store, static_cast<std::uint32_t>(arrival.lines.size()),
                                          static_cast<std::uint32_t>(shipping_.size())});
    lines_.clear();
    for (const ShipLine& l : shipping_) {
      const std::size_t i = at(o.store, l.sku);
      store_on_order_[i] -= static_cast<std::int32_t>(l.qty);
      store_in_transit_[i] += static_cast<std::int32_t>(l.qty);
      arrival.lines.push_back(l);
      lines_.push_back(Line{skus_[l.sku].id, Quantity{l.qty}});
    }
    o.shipped = true;
    emit(regions_[store.region].name, fb::Payload::ShipmentDispatched, header(),
         [&](const Header& h) { return writer_.shipment_dispatched(h, id, wh.id, store.id, o.id, lines_); });
  }

  // Stores rate their distributor about monthly; staff take courses; now and then a distributor
  // claims a store another one already has (客户报备 conflict: the ledger records it, the
  // assignment does not change).
  void relations() {
    for (const Store& s : stores_) {
      if (s.distributor < 0) continue;
      const std::string& key = regions_[s.region].name;
      const Party& d = parties_[s.distributor];
      if (rng_.below(30) == 0) {
        const auto rating = static_cast<std::uint8_t>(std::clamp<std::int64_t>(d.quality + rng_.between(-1, 1), 1, 5));
        const std::string_view comment = rng_.percent(30) ? kFeedbackComments[rng_.below(kFeedbackComments.size())] : "";
        emit(key, fb::Payload::FeedbackRecorded, header(),
             [&](const Header& h) { return writer_.feedback_recorded(h, s.id, d.id, rating, comment); });
      }
      if (rng_.below(150) == 0) training(key, s.id.value);
    }
    for (const Party& p : parties_) {
      if (p.kind == fb::PartyKind::Distributor && rng_.below(25) == 0) training(regions_[p.region].name, p.id);
    }
    for (const Region& r : regions_) {
      if (r.hq || rng_.below(40) != 0) continue;
      const Store& s = stores_[r.first_store + static_cast<int>(rng_.below(static_cast<std::uint64_t>(r.stores)))];
      const City& c = cities_[s.city];
      if (c.distributors < 2) continue;
      const int other = c.first_distributor + (s.distributor - c.first_distributor + 1) % c.distributors;
      emit(r.name, fb::Payload::StoreAssigned, header(),
           [&](const Header& h) { return writer_.store_assigned(h, s.id, parties_[other].id); });
    }
  }

  void training(std::string_view key, std::uint64_t party) {
    const std::string_view course = kCourses[rng_.below(kCourses.size())];
    const auto score = static_cast<std::uint8_t>(rng_.between(55, 100));
    emit(key, fb::Payload::TrainingCompleted, header(),
         [&](const Header& h) { return writer_.training_completed(h, party, course, score); });
  }

  void end_day() { send_due_duplicates(UINT64_MAX); }

  void summarize() {
    for (std::size_t t = 0; t < by_type_.size(); ++t) {
      if (by_type_[t] != 0) summary_.events_by_type[fb::EnumNamePayload(static_cast<fb::Payload>(t))] = by_type_[t];
    }
    for (const Warehouse& w : warehouses_) {
      RegionExpectation& r = summary_.regions[regions_[w.region].name];
      ++r.locations;
      for (int k = 0; k < skus(); ++k) r.on_hand += w.free[k] + w.reserved[k];
    }
    for (int s = 0; s < static_cast<int>(stores_.size()); ++s) {
      RegionExpectation& r = summary_.regions[regions_[stores_[s].region].name];
      ++r.locations;
      for (int k = 0; k < skus(); ++k) r.on_hand += store_on_hand_[at(s, k)], r.in_transit += store_in_transit_[at(s, k)];
    }
    for (const std::vector<Transfer>& day : transfers_) {
      for (const Transfer& t : day) {
        RegionExpectation& r = summary_.regions[regions_[warehouses_[t.warehouse].region].name];
        for (const Line& l : t.lines) r.in_transit += l.qty.value;
      }
    }
  }

  const SimulateOptions& o_;
  const EventSink& sink_;
  Rng rng_;     // the world
  Rng faults_;  // duplicates, late and malformed records: apart, so they do not change the world
  Rng settlements_rng_;  // which rebates are settled, and how much: apart too
  const std::uint64_t duplicate_threshold_, late_threshold_, malformed_threshold_;
  Poisson poisson_;
  EventWriter writer_;
  SimulationSummary summary_;
  std::array<std::uint64_t, static_cast<std::size_t>(fb::Payload::MAX) + 1> by_type_{};

  std::vector<Sku> skus_;
  std::vector<Region> regions_;
  std::vector<City> cities_;
  std::vector<Warehouse> warehouses_;
  std::vector<Store> stores_;
  std::vector<Party> parties_;
  // Per store × sku (at()): physical stock, on the way, ordered and not yet dispatched.
  std::vector<std::int32_t> store_on_hand_, store_in_transit_, store_on_order_;
  std::vector<std::uint64_t> trend_q16_;  // per sku, today
  std::uint64_t sku_value_q16_ = 0;  // Σ base × store price: an average store's daily purchases, in fen

  std::vector<OpenOrder> orders_;
  std::vector<int> free_orders_;
  std::array<std::vector<Settlement>, kRingDays> settlements_;
  std::array<TransitDay, kRingDays> transit_;
  std::array<std::vector<Transfer>, kRingDays> transfers_;  // --cross-shard, by the day they arrive
  int hq_warehouse_ = 0;  // index into warehouses_ of HQ's
  std::vector<std::vector<ProductionDue>> production_ring_;

  // Scratch, reused: no allocation per event once grown.
  std::vector<Line> lines_;
  std::vector<PricedLine> priced_;
  std::vector<ShipLine> wanted_, shipping_;
  std::vector<std::uint8_t> scratch_, duplicate_bytes_;
  std::vector<std::uint64_t> aligned_;
  std::vector<PendingDuplicate> pending_;

  int day_ = 0;
  Date date_{};
  std::int64_t intra_day_ms_ = 0;
  std::uint64_t step_ms_ = 1000, events_today_ = 0;
  std::uint64_t event_seq_ = 0, fault_seq_ = 0, duplicate_seq_ = 0;
  std::uint64_t batch_seq_ = 0, order_seq_ = 0, shipment_seq_ = 0;
  std::uint64_t settlement_seq_ = 0;
  std::map<std::pair<int, int>, RebateBook> books_;  // (party index, Period::code())
};

}  // namespace

SimulateOptions SimulateOptions::preset(std::string_view name) {
  assert(std::find(kSimulatePresets.begin(), kSimulatePresets.end(), name) != kSimulatePresets.end());
  SimulateOptions o;
  if (name == "large") {
    o.regions = 32, o.cities_per_region = 6, o.stores_per_city = 30, o.skus = 500, o.days = 150;
  } else if (name == "medium") {
    o.regions = 16, o.cities_per_region = 4, o.stores_per_city = 20, o.skus = 300, o.days = 120;
  } else {
    o.regions = 8, o.cities_per_region = 3, o.stores_per_city = 16, o.skus = 150, o.days = 90;
  }
  return o;
}

SimulationSummary simulate(const SimulateOptions& options, const EventSink& sink) {
  return World(options, sink).run();
}

}  // namespace qudao
