// The channel ledger (engine/channel.h) through decode + apply: tiers, a late event that crosses a
// tier posting only the difference with its history row, adjustments, conflicts, ratings, training,
// agent roll-ups, money conservation over a simulated stream, and a restart from the store.
#include "engine/channel.h"

#include <doctest/doctest.h>

#include <map>

#include "engine/apply.h"
#include "engine/codec.h"
#include "engine/store.h"
#include "tests/support.h"
#include "tools/simulate.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr std::uint64_t kWarehouse = 1, kStore = 2, kOtherStore = 3;
constexpr std::uint64_t kAgent = 100, kDistributor = 101, kRival = 102;
constexpr std::int64_t kDayMs = 86'400'000;
const Period kJan = Period::month(2026, 1), kFeb = Period::month(2026, 2), kQ1 = Period::quarter(2026, 1);

// One East shard with a warehouse, two stores, an agent and two distributors; store 2 is 101's.
struct Channel {
  Shard shard{PartitionId{0}};
  Applier applier;
  EventWriter w;
  std::uint64_t seq = 0;
  std::int64_t offset = 0;
  TimeMs now{kT0};  // event time of the next event (tests move it, and send late events)

  Channel() {
    REQUIRE(feed(w.location_defined(h(), LocationId{kWarehouse}, fb::LocationKind::SubWarehouse, "w", "c", "East")));
    for (std::uint64_t s : {kStore, kOtherStore}) {
      REQUIRE(feed(w.location_defined(h(), LocationId{s}, fb::LocationKind::Store, "s", "c", "East")));
    }
    REQUIRE(feed(w.party_registered(h(), kAgent, fb::PartyKind::Agent, 0, "agent", "East", "", LocationId{0})));
    for (std::uint64_t d : {kDistributor, kRival}) {
      REQUIRE(feed(w.party_registered(h(), d, fb::PartyKind::Distributor, kAgent, "d", "East", "", LocationId{0})));
    }
    REQUIRE(feed(w.store_assigned(h(), LocationId{kStore}, kDistributor)));
    REQUIRE(feed(w.store_assigned(h(), LocationId{kOtherStore}, kRival)));
  }

  Header h(std::optional<TimeMs> at = std::nullopt) { return Header{EventId{9, ++seq}, at.value_or(now), "test"}; }

  // True if applied; checks money conservation after every event.
  bool feed(std::span<const std::uint8_t> b) {
    const Ingested r = applier.ingest(shard, Offset{offset++}, b);
    CHECK(shard.channel().money_sum().value == 0);
    return r.outcome == RecordOutcome::applied;
  }

  // An order of `fen` for `store`, placed by the store itself, and paid in full at `at`.
  void buy(std::uint64_t store, std::int64_t fen, std::optional<TimeMs> at = std::nullopt) {
    const std::uint64_t order = 1000 + seq;
    const PricedLine l{SkuId{1}, Quantity{1}, Fen{fen}};
    REQUIRE(feed(w.order_placed(h(at), OrderId{order}, LocationId{store}, store, LocationId{0}, TimeMs{kT0}, {&l, 1})));
    REQUIRE(feed(w.order_paid(h(at), OrderId{order}, store, Fen{fen})));
  }

  const PeriodStats& stats(std::uint64_t party, Period p) const {
    const PeriodStats* s = shard.channel().stats(PartyPeriod{PartyId{party}, p});
    REQUIRE(s != nullptr);
    return *s;
  }
  std::int64_t money(std::uint64_t party, Period p, MoneyBucket b) const {
    return shard.channel().balance(MoneyAccount{PartyId{party}, p, b}).value;
  }
  const std::vector<RebateHistoryRow>& history(std::uint64_t party, Period p) const {
    const auto* rows = shard.channel().history(PartyPeriod{PartyId{party}, p});
    REQUIRE(rows != nullptr);
    return *rows;
  }
};

const std::array<RebateTierBp, 2> kTiers{{{8'000, 100}, {10'000, 200}}};  // 80 % → 1 %, 100 % → 2 %

}  // namespace

TEST_CASE("channel: periods are months and quarters of the event's own UTC time") {
  CHECK(month_of(TimeMs{kT0}) == kJan);
  CHECK(month_of(TimeMs{kT0 + 31 * kDayMs}) == kFeb);
  CHECK(month_of(TimeMs{kT0 - 1}) == Period::month(2025, 12));
  CHECK(kFeb.quarter() == kQ1);
  CHECK(kJan.text() == "2026-01");
  CHECK(kQ1.text() == "2026-Q1");
  CHECK(parse_period("2026-Q4") == Period::quarter(2026, 4));
  CHECK(parse_period("2026-12") == Period::month(2026, 12));
  CHECK_FALSE(parse_period("2026-13").has_value());
  CHECK_FALSE(parse_period("2026-Q5").has_value());
}

TEST_CASE("channel: reaching a tier accrues rate × sell-in, posted against the brand's expense, in fen") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  c.buy(kStore, 70'000);
  CHECK(c.stats(kDistributor, kJan).attainment_bp == 7'000);
  CHECK(c.stats(kDistributor, kJan).tier == 0);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 0);
  c.buy(kStore, 15'000);
  CHECK(c.stats(kDistributor, kJan).tier == 1);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 850);
  CHECK(c.money(0, kJan, MoneyBucket::rebate_expense) == -850);
  // Within a tier, more sell-in accrues only the rate on the difference.
  c.buy(kStore, 5'000);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 900);
  CHECK(c.history(kDistributor, kJan).size() == 1);
}

TEST_CASE("channel: a late payment that crosses a tier posts only the difference, with the event that caused it") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  c.buy(kStore, 85'000);  // tier 1: 850
  c.now = TimeMs{kT0 + 40 * kDayMs};  // February
  c.buy(kStore, 30'000);  // counts for February, not January
  CHECK(c.stats(kDistributor, kJan).sell_in.value == 85'000);
  CHECK(c.stats(kDistributor, kFeb).sell_in.value == 30'000);
  const std::int64_t expense_before = c.money(0, kJan, MoneyBucket::rebate_expense);

  // A January payment arrives in February: January reaches 105 %, tier 2.
  const TimeMs january{kT0 + 20 * kDayMs};
  c.buy(kStore, 20'000, january);
  CHECK(c.stats(kDistributor, kJan).sell_in.value == 105'000);
  CHECK(c.stats(kDistributor, kJan).tier == 2);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 2'100);  // 2 % of 105,000
  // Only the difference was posted: 2,100 - 850.
  CHECK(c.money(0, kJan, MoneyBucket::rebate_expense) - expense_before == -1'250);
  const auto& rows = c.history(kDistributor, kJan);
  REQUIRE(rows.size() == 2);
  const RebateHistoryRow& late = rows.back();
  CHECK(late.seq == 2);
  CHECK(late.cause == fb::Payload::OrderPaid);
  CHECK(late.event == EventId{9, c.seq});
  CHECK(late.occurred_at == january);
  CHECK(late.old_tier == 1);
  CHECK(late.new_tier == 2);
  CHECK(late.old_rebate_bp == 100);
  CHECK(late.new_rebate_bp == 200);
  CHECK(late.delta.value == 1'250);
  CHECK(late.sell_in.value == 105'000);  // what the new tier was reached with
}

TEST_CASE("channel: a cancelled paid order gives its sell-in back and the accrual falls a tier") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  c.buy(kStore, 60'000);
  c.buy(kStore, 40'000);  // 100 %: tier 2, 2,000
  REQUIRE(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 2'000);
  REQUIRE(c.feed(c.w.order_cancelled(c.h(), OrderId{1000 + c.seq - 2}, "store closed")));
  CHECK(c.stats(kDistributor, kJan).sell_in.value == 60'000);
  CHECK(c.stats(kDistributor, kJan).tier == 0);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 0);
  CHECK(c.history(kDistributor, kJan).back().new_tier == 0);
}

TEST_CASE("channel: a quarter without a target of its own is measured against its months' targets") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{50'000})));
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-02", Fen{50'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-Q1", kTiers)));
  c.buy(kStore, 90'000);
  CHECK(c.stats(kDistributor, kQ1).target.value == 100'000);
  CHECK(c.stats(kDistributor, kQ1).tier == 1);
  CHECK(c.money(kDistributor, kQ1, MoneyBucket::rebate_accrued) == 900);
  // A target for the quarter itself replaces the sum.
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-Q1", Fen{80'000})));
  CHECK(c.stats(kDistributor, kQ1).tier == 2);
  CHECK(c.money(kDistributor, kQ1, MoneyBucket::rebate_accrued) == 1'800);
  CHECK(c.history(kDistributor, kQ1).back().cause == fb::Payload::TargetSet);
}

TEST_CASE("channel: a rebate adjustment posts to the adjustments account with its reason") {
  Channel c;
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-01", Fen{-3'000}, "late payment penalty")));
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_adjusted) == -3'000);
  CHECK(c.money(0, kJan, MoneyBucket::adjustment_expense) == 3'000);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 0);
  REQUIRE(c.history(kDistributor, kJan).size() == 1);
  CHECK(c.history(kDistributor, kJan)[0].reason == "late payment penalty");
  CHECK(c.history(kDistributor, kJan)[0].cause == fb::Payload::RebateAdjusted);
  // For a party nobody registered: rejected, naming the field.
  CHECK_FALSE(c.feed(c.w.rebate_adjusted(c.h(), 999, "2026-01", Fen{5}, "x")));
  CHECK(c.shard.counts().rejected == 1);
}

TEST_CASE("channel: a settlement moves what is owed to the brand's paid-out account, with its payment reference") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  c.buy(kStore, 100'000);  // tier 2: 2,000 accrued
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-01", Fen{500}, "display fee")));
  const PartyPeriod jan{PartyId{kDistributor}, kJan};
  REQUIRE(c.shard.channel().outstanding(jan).value == 2'500);
  const std::uint64_t digest = c.shard.digest();

  REQUIRE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{1'500}, "FIN-0001")));
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_settled) == -1'500);
  CHECK(c.money(0, kJan, MoneyBucket::rebate_paid) == 1'500);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 2'000);  // accrual and adjustment untouched
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_adjusted) == 500);
  CHECK(c.shard.channel().outstanding(jan).value == 1'000);
  CHECK(c.shard.digest() != digest);
  const RebateHistoryRow& row = c.history(kDistributor, kJan).back();
  CHECK(row.cause == fb::Payload::RebateSettled);
  CHECK(row.event == EventId{9, c.seq});
  CHECK(row.delta.value == -1'500);
  CHECK(row.reason == "FIN-0001");
  CHECK(row.old_tier == 2);
  CHECK(row.new_tier == 2);
  CHECK(c.stats(kDistributor, kJan).history_rows == c.history(kDistributor, kJan).size());

  // The rest, exactly: nothing is outstanding then.
  REQUIRE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{1'000}, "FIN-0002")));
  CHECK(c.shard.channel().outstanding(jan).value == 0);
  CHECK(c.money(0, kJan, MoneyBucket::rebate_paid) == 2'500);
}

TEST_CASE("channel: settling more than is outstanding is rejected as exceeds_outstanding, naming amount_fen and both "
          "figures, and changes nothing") {
  Channel c;
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-Q1", Fen{1'000}, "display fee")));
  REQUIRE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-Q1", Fen{600}, "FIN-1")));
  const std::uint64_t digest = c.shard.digest();
  const std::size_t rows = c.history(kDistributor, kQ1).size();
  const Ingested r = c.applier.ingest(c.shard, Offset{c.offset++},
                                      c.w.rebate_settled(c.h(), kDistributor, "2026-Q1", Fen{401}, "FIN-2"));
  CHECK(r.outcome == RecordOutcome::rejected);
  const DeadLetter& dl = c.shard.dead_letters().back();
  CHECK(dl.rejection.reason == RejectReason::exceeds_outstanding);
  CHECK(dl.rejection.field == "payload.amount_fen");
  CHECK(dl.rejection.to_string() ==
        "payload.amount_fen: must be at most the 400 fen outstanding to party 101 for 2026-Q1 (accrued 0 + adjusted "
        "1000 - settled 600), got 401 (exceeds_outstanding)");
  CHECK(c.money(kDistributor, kQ1, MoneyBucket::rebate_settled) == -600);
  CHECK(c.history(kDistributor, kQ1).size() == rows);
  CHECK(c.shard.digest() == digest);
  CHECK(c.shard.channel().money_sum().value == 0);
  // Another period's money is not this one's: nothing is owed for February.
  CHECK_FALSE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-02", Fen{1}, "FIN-3")));
  CHECK(c.shard.dead_letters().back().rejection.reason == RejectReason::exceeds_outstanding);
  // A party nobody registered is rejected as for the other rebate events.
  CHECK_FALSE(c.feed(c.w.rebate_settled(c.h(), 999, "2026-Q1", Fen{1}, "FIN-4")));
  CHECK(c.shard.dead_letters().back().rejection.to_string() ==
        "payload.party: party 999 is not registered on this shard (invalid_value)");
  CHECK(c.shard.counts().rejected == 3);
}

TEST_CASE("channel: a late cancellation after a settlement leaves the outstanding negative (a claw-back), applied "
          "and kept") {
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  c.buy(kStore, 60'000);
  const TimeMs january{kT0 + 10 * kDayMs};
  c.now = january;
  c.buy(kStore, 40'000);  // 100 %: tier 2, 2,000
  const std::uint64_t big_order = 1000 + c.seq - 2;
  c.now = TimeMs{kT0 + 35 * kDayMs};  // February: January is paid out in full
  REQUIRE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{2'000}, "FIN-JAN")));
  // A January cancellation arrives late: January falls below every tier.
  REQUIRE(c.feed(c.w.order_cancelled(c.h(january), OrderId{big_order}, "store closed")));
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_accrued) == 0);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_settled) == -2'000);
  CHECK(c.shard.channel().outstanding(PartyPeriod{PartyId{kDistributor}, kJan}).value == -2'000);
  CHECK(c.shard.channel().money_sum().value == 0);
  // Nothing more can be settled while the party owes the brand.
  CHECK_FALSE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{1}, "FIN-JAN-2")));
  // An adjustment that books the claw-back brings it to zero.
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-01", Fen{2'000}, "claw-back offset")));
  CHECK(c.shard.channel().outstanding(PartyPeriod{PartyId{kDistributor}, kJan}).value == 0);
}

TEST_CASE("channel: the same settlement sent twice is a duplicate, paid once") {
  Channel c;
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-01", Fen{1'000}, "display fee")));
  const Bytes settle = copy(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{700}, "FIN-7"));
  REQUIRE(c.feed(settle));
  const std::uint64_t digest = c.shard.digest();
  const Ingested again = c.applier.ingest(c.shard, Offset{c.offset++}, settle);
  CHECK(again.outcome == RecordOutcome::duplicate);
  CHECK(c.money(kDistributor, kJan, MoneyBucket::rebate_settled) == -700);
  CHECK(c.money(0, kJan, MoneyBucket::rebate_paid) == 700);
  CHECK(c.history(kDistributor, kJan).size() == 2);
  CHECK(c.shard.digest() == digest);
  CHECK(c.shard.counts().duplicates == 1);
}

TEST_CASE("channel: a store claimed by a second distributor is a conflict, and stays with the first") {
  Channel c;
  REQUIRE(c.feed(c.w.store_assigned(c.h(), LocationId{kStore}, kRival)));
  REQUIRE(c.feed(c.w.store_assigned(c.h(), LocationId{kStore}, kRival)));
  REQUIRE(c.feed(c.w.store_assigned(c.h(), LocationId{kStore}, kDistributor)));  // the holder again: nothing
  CHECK(c.shard.channel().distributor_of(LocationId{kStore}) == PartyId{kDistributor});
  std::vector<StoreConflict> conflicts;
  c.shard.channel().for_each_conflict([&](const StoreConflict& s) { conflicts.push_back(s); });
  REQUIRE(conflicts.size() == 1);
  CHECK(conflicts[0].store == LocationId{kStore});
  CHECK(conflicts[0].assigned == PartyId{kDistributor});
  CHECK(conflicts[0].claimant == PartyId{kRival});
  CHECK(conflicts[0].claims == 2);
  c.buy(kStore, 1'000);
  CHECK(c.stats(kDistributor, kJan).sell_in.value == 1'000);
  CHECK(c.shard.channel().stats(PartyPeriod{PartyId{kRival}, kJan}) == nullptr);
  // Claims by a party that is no distributor, or of a location that is no store, are rejected.
  CHECK_FALSE(c.feed(c.w.store_assigned(c.h(), LocationId{kStore}, kAgent)));
  CHECK_FALSE(c.feed(c.w.store_assigned(c.h(), LocationId{kWarehouse}, kRival)));
}

TEST_CASE("channel: ratings average per distributor, training counts, and agents roll up their distributors") {
  Channel c;
  for (std::uint8_t r : {5, 4, 2}) REQUIRE(c.feed(c.w.feedback_recorded(c.h(), LocationId{kStore}, kDistributor, r, "")));
  REQUIRE(c.feed(c.w.training_completed(c.h(), kDistributor, "food safety", 90)));
  const PeriodStats& s = c.stats(kDistributor, kJan);
  CHECK(s.ratings == 3);
  CHECK(s.rating_sum == 11);
  CHECK(s.trainings == 1);
  c.buy(kStore, 7'000);
  c.buy(kOtherStore, 3'000);
  const PartyInfo* agent = c.shard.channel().party(PartyId{kAgent});
  REQUIRE(agent != nullptr);
  CHECK(c.stats(kAgent, kJan).sell_in.value == 10'000);
  CHECK(c.stats(kAgent, kQ1).sell_in.value == 10'000);
  CHECK(c.stats(kAgent, kJan).orders_store == 2);
  CHECK(c.stats(kAgent, kJan).ratings == 3);
  // Sell-through: units, value at the order's price (no SkuDefined here), distinct stores that sold.
  REQUIRE(c.feed(c.w.scan_out(c.h(), LocationId{kStore}, SkuId{1}, Quantity{2}, "")));
  REQUIRE(c.feed(c.w.scan_out(c.h(), LocationId{kStore}, SkuId{1}, Quantity{1}, "")));
  REQUIRE(c.feed(c.w.scan_out(c.h(), LocationId{kOtherStore}, SkuId{1}, Quantity{1}, "")));
  CHECK(c.stats(kDistributor, kJan).sell_through.value == 3);
  CHECK(c.stats(kDistributor, kJan).sell_through_value.value == 3 * 3'000);
  CHECK(c.stats(kDistributor, kJan).active_stores == 1);
  CHECK(c.stats(kAgent, kJan).active_stores == 2);
  CHECK(c.stats(kAgent, kJan).sell_through.value == 4);
  // With the catalogue on the shard, the list price wins.
  REQUIRE(c.feed(c.w.sku_defined(c.h(), SkuId{1}, "SKU1", "n", "tea", "box", Fen{4'000}, 10)));
  REQUIRE(c.feed(c.w.scan_out(c.h(), LocationId{kStore}, SkuId{1}, Quantity{1}, "")));
  CHECK(c.stats(kDistributor, kJan).sell_through_value.value == 3 * 3'000 + 4'000);
}

TEST_CASE("channel: proxy orders count for the distributor that placed them") {
  Channel c;
  const PricedLine l{SkuId{1}, Quantity{1}, Fen{100}};
  REQUIRE(c.feed(c.w.order_placed(c.h(), OrderId{1}, LocationId{kStore}, kDistributor, LocationId{0}, TimeMs{kT0 + kDayMs}, {&l, 1})));
  CHECK(c.stats(kDistributor, kJan).orders_proxy == 1);
  CHECK(c.stats(kDistributor, kJan).orders_store == 0);
}

TEST_CASE("channel: state survives a restart from the store, with an equal digest") {
  TempDir dir;
  Channel c;
  REQUIRE(c.feed(c.w.target_set(c.h(), kDistributor, "2026-01", Fen{100'000})));
  REQUIRE(c.feed(c.w.rebate_policy_set(c.h(), kDistributor, "2026-01", kTiers)));
  REQUIRE(c.feed(c.w.store_assigned(c.h(), LocationId{kStore}, kRival)));
  c.buy(kStore, 90'000);
  REQUIRE(c.feed(c.w.rebate_adjusted(c.h(), kDistributor, "2026-01", Fen{500}, "display fee")));
  REQUIRE(c.feed(c.w.rebate_settled(c.h(), kDistributor, "2026-01", Fen{300}, "FIN-0300")));
  REQUIRE(c.feed(c.w.scan_out(c.h(), LocationId{kStore}, SkuId{1}, Quantity{1}, "")));
  const std::uint64_t digest = c.shard.digest();
  {
    auto store = Store::open(StoreOptions{dir.path(), "t"});
    REQUIRE(store.is_ok());
    Shard* shards[] = {&c.shard};
    REQUIRE(store.value()->commit(shards).is_ok());
    // Later events change entries committed before: the next commit rewrites them.
    c.now = TimeMs{kT0 + 40 * kDayMs};
    c.buy(kStore, 15'000, TimeMs{kT0 + 3 * kDayMs});
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  CHECK(c.shard.digest() != digest);
  auto store = Store::open(StoreOptions{dir.path(), "t"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  CHECK(loaded.value().at(0).digest() == c.shard.digest());
  const ChannelLedger& a = c.shard.channel();
  const ChannelLedger& b = loaded.value().at(0).channel();
  CHECK(b.money_sum().value == 0);
  for (Period p : {kJan, kQ1}) {
    for (std::uint64_t party : {kAgent, kDistributor}) {
      const PartyPeriod k{PartyId{party}, p};
      REQUIRE(b.stats(k) != nullptr);
      CHECK(*b.stats(k) == *a.stats(k));
    }
  }
  for (MoneyBucket m : {MoneyBucket::rebate_accrued, MoneyBucket::rebate_adjusted, MoneyBucket::rebate_settled}) {
    CHECK(b.balance(MoneyAccount{PartyId{kDistributor}, kJan, m}) == a.balance(MoneyAccount{PartyId{kDistributor}, kJan, m}));
  }
  CHECK(b.balance(MoneyAccount{kHqParty, kJan, MoneyBucket::rebate_paid}).value == 300);
  std::vector<std::string> references;
  for (const RebateHistoryRow& row : *b.history(PartyPeriod{PartyId{kDistributor}, kJan})) {
    if (row.cause == fb::Payload::RebateSettled) references.push_back(row.reason);
  }
  CHECK(references == std::vector<std::string>{"FIN-0300"});
  REQUIRE(b.history(PartyPeriod{PartyId{kDistributor}, kJan}) != nullptr);
  CHECK(b.history(PartyPeriod{PartyId{kDistributor}, kJan})->size() == a.history(PartyPeriod{PartyId{kDistributor}, kJan})->size());
  CHECK(b.distributor_of(LocationId{kStore}) == PartyId{kDistributor});
  std::size_t conflicts = 0;
  b.for_each_conflict([&](const StoreConflict&) { ++conflicts; });
  CHECK(conflicts == 1);
  // The restored ledger goes on as the original: the same event leaves the same digest.
  Shard restored = std::move(loaded.value().at(0));
  const Bytes more = copy(c.w.rebate_adjusted(Header{EventId{9, 999}, TimeMs{kT0 + 41 * kDayMs}, "t"}, kDistributor,
                                               "2026-02", Fen{70}, "promotion support"));
  Applier applier;
  CHECK(applier.ingest(restored, Offset{c.offset}, more).outcome == RecordOutcome::applied);
  REQUIRE(c.feed(more));
  CHECK(restored.digest() == c.shard.digest());
}

TEST_CASE("channel: a sku's reorder point is kept from SkuDefined, stored only when set (a store written "
          "before it existed loads as it is) and restored with an equal digest") {
  TempDir dir;
  Channel c;
  // sku 1 without a reorder point: the price row is what it was before the field (20 bytes).
  REQUIRE(c.feed(c.w.sku_defined(c.h(), SkuId{1}, "SKU1", "n", "tea", "box", Fen{4'000}, 10)));
  REQUIRE(c.feed(c.w.sku_defined(c.h(), SkuId{2}, "SKU2", "n", "tea", "box", Fen{5'000}, 10, 30)));
  REQUIRE(c.feed(c.w.sku_defined(c.h(), SkuId{3}, "SKU3", "n", "tea", "box", Fen{6'000}, 10, 21)));
  REQUIRE(c.feed(c.w.sku_defined(c.h(), SkuId{3}, "SKU3", "n", "tea", "box", Fen{6'000}, 10)));  // cleared
  auto points = [](const ChannelLedger& l) {
    std::map<std::uint64_t, std::int32_t> out;
    l.for_each_reorder_point([&](SkuId sku, std::int32_t days) { out[sku.value] = days; });
    return out;
  };
  CHECK(points(c.shard.channel()) == std::map<std::uint64_t, std::int32_t>{{2, 30}});
  {
    auto store = Store::open(StoreOptions{dir.path(), "t"});
    REQUIRE(store.is_ok());
    Shard* shards[] = {&c.shard};
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  {
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir.path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::map<std::uint64_t, std::size_t> sizes;  // sku -> price row bytes
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("G"); it->Valid() && it->key()[0] == 'G'; it->Next()) {
      const std::string_view k = it->key().ToStringView();
      if (k.size() == 1 + 4 + 1 + 8 && k[5] == 0x03) sizes[codec::Reader(k.substr(6)).be<std::uint64_t>()] = it->value().size();
    }
    CHECK(sizes == std::map<std::uint64_t, std::size_t>{{1, 20}, {2, 24}, {3, 20}});
  }
  auto store = Store::open(StoreOptions{dir.path(), "t"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  CHECK(loaded.value().at(0).digest() == c.shard.digest());
  CHECK(points(loaded.value().at(0).channel()) == points(c.shard.channel()));
}

}  // namespace qudao

namespace qudao {
using namespace qudao::test;

TEST_CASE("channel: over a simulated stream with faults, money sums to zero after every event, agents roll up, "
          "and a store committed at other boundaries loads the same state") {
  SimulateOptions o;
  o.seed = 11;
  o.regions = 3;
  o.cities_per_region = 3;
  o.stores_per_city = 8;
  o.skus = 20;
  o.days = 75;  // crosses a quarter: targets, policies and adjustments of two quarters
  o.duplicate_rate = 0.01;
  o.late_rate = 0.03;
  o.malformed_rate = 0.005;
  std::map<std::string, Shard> shards;
  std::map<std::string, std::int64_t> offsets;
  Applier applier;
  std::vector<std::uint8_t> aligned;
  std::uint64_t events = 0, unbalanced_after = 0;
  simulate(o, [&](std::string_view key, std::span<const std::uint8_t> value) {
    auto [it, inserted] = shards.try_emplace(std::string(key), PartitionId{static_cast<std::int32_t>(shards.size())});
    aligned.assign(value.begin(), value.end());
    (void)applier.ingest(it->second, Offset{offsets[std::string(key)]++}, aligned);
    ++events;
    if (it->second.channel().money_sum().value != 0 && unbalanced_after == 0) unbalanced_after = events;
  });
  CHECK(unbalanced_after == 0);
  std::int64_t accrued = 0, adjusted = 0, conflicts = 0, tier_rows = 0, rolled_up_periods = 0;
  for (auto& [region, shard] : shards) {
    INFO("region " << region);
    const ChannelLedger& ch = shard.channel();
    std::int64_t sum = 0;
    ch.for_each_money([&](const MoneyAccount& a, Fen f) {
      sum += f.value;
      if (a.bucket == MoneyBucket::rebate_accrued) accrued += f.value;
      if (a.bucket == MoneyBucket::rebate_adjusted) adjusted += f.value != 0;
    });
    CHECK(sum == 0);
    ch.for_each_conflict([&](const StoreConflict&) { ++conflicts; });
    // Every agent's sell-in per period is the sum of its distributors'.
    std::map<PartyPeriod, std::int64_t> from_distributors;
    ch.for_each_stats([&](PartyPeriod k, const PeriodStats& s) {
      const PartyInfo* p = ch.party(k.party);
      REQUIRE(p != nullptr);
      if (p->kind == fb::PartyKind::Distributor && p->parent.value != 0) {
        from_distributors[PartyPeriod{p->parent, k.period}] += s.sell_in.value;
      }
      tier_rows += s.tier > 0;
    });
    for (const auto& [k, sell_in] : from_distributors) {
      const PeriodStats* agent = ch.stats(k);
      REQUIRE(agent != nullptr);
      CHECK(agent->sell_in.value == sell_in);
      ++rolled_up_periods;
    }
  }
  // The same stream again, committed to RocksDB every 5,000 records, then loaded back: the same
  // state (digests include the channel ledger), whatever the commit boundaries.
  TempDir dir;
  {
    auto store = Store::open(StoreOptions{dir.path(), "t"});
    REQUIRE(store.is_ok());
    std::map<std::string, Shard> again;
    std::map<std::string, std::int64_t> again_offsets;
    std::uint64_t n = 0;
    auto commit = [&] {
      std::vector<Shard*> list;
      for (auto& [region, shard] : again) list.push_back(&shard);
      REQUIRE(store.value()->commit(list).is_ok());
    };
    simulate(o, [&](std::string_view key, std::span<const std::uint8_t> value) {
      auto [it, inserted] = again.try_emplace(std::string(key), PartitionId{static_cast<std::int32_t>(again.size())});
      aligned.assign(value.begin(), value.end());
      (void)applier.ingest(it->second, Offset{again_offsets[std::string(key)]++}, aligned);
      if (++n % 5'000 == 0) commit();
    });
    commit();
  }
  auto store = Store::open(StoreOptions{dir.path(), "t"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  for (auto& [region, shard] : shards) {
    INFO("region " << region);
    REQUIRE(loaded.value().contains(shard.partition().value));
    CHECK(loaded.value().at(shard.partition().value).digest() == shard.digest());
    CHECK(loaded.value().at(shard.partition().value).channel().money_sum().value == 0);
  }
  CHECK(accrued > 0);
  CHECK(adjusted > 0);
  CHECK(conflicts > 0);
  CHECK(tier_rows > 0);
  CHECK(rolled_up_periods > 0);
}

}  // namespace qudao
