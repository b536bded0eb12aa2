#include <doctest/doctest.h>

#include <map>

#include "engine/apply.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr std::uint64_t kWarehouse = 1, kStore = 2, kDistributor = 500;

struct Ledger {
  Shard shard{PartitionId{0}};
  Applier applier;
  Events ev;
  std::int64_t offset = 0;
  Rejection last_rejection;

  Ledger() {
    REQUIRE(feed(ev.location(kWarehouse, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
    REQUIRE(feed(ev.location(kStore, fb::LocationKind::Store, "East")) == RecordOutcome::applied);
    REQUIRE(feed(ev.production(kWarehouse, {line(1, 10), line(2, 10)})) == RecordOutcome::applied);
  }
  RecordOutcome feed(const Bytes& b) {
    const std::size_t letters = shard.dead_letters().size();
    const RecordOutcome o = applier.ingest(shard, Offset{offset++}, b).outcome;
    if (shard.dead_letters().size() > letters) last_rejection = shard.dead_letters().back().rejection;
    return o;
  }
  std::int64_t qty(std::uint64_t location, std::uint64_t sku, Bucket b = Bucket::on_hand) const {
    return shard.balance(Account{SkuId{sku}, LocationId{location}, b}).value;
  }
  OrderState state(std::uint64_t order) const { return shard.order(OrderId{order})->state; }
  void check_conserved() const {
    std::map<std::uint64_t, std::int64_t> sums;
    shard.for_each_balance([&](const Account& a, Quantity q) { sums[a.sku.value] += q.value; });
    for (const auto& [sku, sum] : sums) CHECK_MESSAGE(sum == 0, "sku " << sku);
  }
};

const std::vector<PricedLine> kSixOfOne{PricedLine{SkuId{1}, Quantity{6}, Fen{100}}};

}  // namespace

TEST_CASE("orders: a proxy order reserves at its warehouse, is paid, shipped from the reservation, received") {
  Ledger l;
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(100), kSixOfOne)) == RecordOutcome::applied);
  CHECK(l.qty(kWarehouse, 1) == 4);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 6);
  CHECK(l.state(7) == OrderState::placed);
  l.check_conserved();

  REQUIRE(l.feed(l.ev.paid(7, 600)) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::paid);

  REQUIRE(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 2)}, 7)) == RecordOutcome::applied);  // a first part
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 4);
  CHECK(l.qty(kWarehouse, 1) == 4);
  CHECK(l.state(7) == OrderState::paid);
  REQUIRE(l.feed(l.ev.receive(kStore, {line(1, 2)})) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 4)}, 7)) == RecordOutcome::applied);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);
  CHECK(l.state(7) == OrderState::dispatched);
  REQUIRE(l.feed(l.ev.receive(kStore, {line(1, 4)})) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::received);
  CHECK(l.qty(kStore, 1) == 6);
  l.check_conserved();
}

TEST_CASE("orders: an unpaid proxy order expires when event time passes its deadline, and its stock is freed") {
  Ledger l;
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(2), kSixOfOne)) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.scan_out(kStore, 2, 1)) == RecordOutcome::applied);  // time = deadline: not yet past
  CHECK(l.state(7) == OrderState::placed);
  REQUIRE(l.feed(l.ev.scan_out(kStore, 2, 1)) == RecordOutcome::applied);  // past the deadline
  CHECK(l.state(7) == OrderState::expired);
  CHECK(l.qty(kWarehouse, 1) == 10);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);
  CHECK(l.applier.postings().size() == 2 + 2);  // the release, then the scan-out
  l.check_conserved();
  CHECK(l.feed(l.ev.paid(7, 600)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.to_string() == "payload.order: order 7 is expired; only a placed order can be paid (illegal_transition)");
}

TEST_CASE("orders: a late payment finds the order already expired by its own event time") {
  Ledger l;
  // Due at the order's own event time; the payment, a second later, is past it.
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(1), kSixOfOne)) == RecordOutcome::applied);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 6);
  CHECK(l.feed(l.ev.paid(7, 600)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.reason == RejectReason::illegal_transition);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);  // the expiry stands although the payment did not
}

TEST_CASE("orders: a proxy order placed when event time is already past its deadline expires at once and holds nothing") {
  // Found by the simulation (seeds 2 and 5): such an order stayed placed, holding stock, until the
  // next record on the shard, so a commit or a query in between saw a reservation that had expired.
  Ledger l;
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(0), kSixOfOne)) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::expired);
  CHECK(l.qty(kWarehouse, 1) == 10);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);
  // A late order event: its own time is old, but the shard's event time has passed its deadline.
  const Bytes late = copy(l.ev.writer().order_placed(Header{EventId{7, 100}, TimeMs{kT0}, "test"}, OrderId{8}, LocationId{kStore},
                                                     kDistributor, LocationId{kWarehouse}, TimeMs{kT0 + 500}, kSixOfOne));
  REQUIRE(l.feed(late) == RecordOutcome::applied);
  CHECK(l.state(8) == OrderState::expired);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);
  CHECK(l.shard.orders_due(l.shard.watermark()).empty());
  l.check_conserved();
}

TEST_CASE("orders: shipping part of a proxy order from another warehouse frees the reservation it no longer needs") {
  // Found by the simulation (seeds 108, 141, 153): the reservation stayed whole until the order was
  // fully shipped, holding more than was left to ship (and for good, if the rest never shipped).
  Ledger l;
  constexpr std::uint64_t kOtherWarehouse = 3;
  REQUIRE(l.feed(l.ev.location(kOtherWarehouse, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.production(kOtherWarehouse, {line(1, 10)})) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(100), kSixOfOne)) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.paid(7, 600)) == RecordOutcome::applied);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 6);

  REQUIRE(l.feed(l.ev.dispatch(kOtherWarehouse, kStore, {line(1, 4)}, 7)) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::paid);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 2);  // what is left to ship
  CHECK(l.qty(kWarehouse, 1) == 8);
  CHECK(l.qty(kOtherWarehouse, 1) == 6);
  CHECK(l.shard.order(OrderId{7})->lines[0].reserved == 2);

  REQUIRE(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 2)}, 7)) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::dispatched);
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);
  CHECK(l.qty(kWarehouse, 1) == 8);
  l.check_conserved();
}

TEST_CASE("orders: cancelling releases the reservation; a cancelled order cannot be paid or shipped") {
  Ledger l;
  REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kWarehouse, l.ev.time_after(100), kSixOfOne)) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.cancelled(7)) == RecordOutcome::applied);
  CHECK(l.state(7) == OrderState::cancelled);
  CHECK(l.qty(kWarehouse, 1) == 10);
  CHECK(l.feed(l.ev.paid(7, 600)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.reason == RejectReason::illegal_transition);
  CHECK(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 1)}, 7)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.to_string() == "payload.order: order 7 is cancelled; only a paid order is shipped (illegal_transition)");
  l.check_conserved();
}

TEST_CASE("orders: illegal shipments are rejected with the reason") {
  Ledger l;
  REQUIRE(l.feed(l.ev.order(8, kStore, kSixOfOne)) == RecordOutcome::applied);  // the store's own order
  CHECK(l.qty(kWarehouse, 1, Bucket::reserved) == 0);                          // reserves nothing
  CHECK(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 1)}, 8)) == RecordOutcome::rejected);  // unpaid
  CHECK(l.last_rejection.reason == RejectReason::illegal_transition);
  REQUIRE(l.feed(l.ev.paid(8, 600)) == RecordOutcome::applied);
  CHECK(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 7)}, 8)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.to_string() ==
        "payload.lines: order 8 has 6 of sku 1 left to ship, the shipment carries 7 (exceeds_order)");
  CHECK(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(2, 1)}, 8)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.reason == RejectReason::exceeds_order);
  CHECK(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 1)}, 99)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.reason == RejectReason::unknown_order);
  CHECK(l.feed(l.ev.order(8, kStore, kSixOfOne)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.to_string() == "payload.order: order 8 already exists (already_exists)");
  REQUIRE(l.feed(l.ev.dispatch(kWarehouse, kStore, {line(1, 6)}, 8)) == RecordOutcome::applied);
  CHECK(l.feed(l.ev.cancelled(8)) == RecordOutcome::rejected);
  CHECK(l.last_rejection.reason == RejectReason::illegal_transition);
  CHECK(l.feed(l.ev.receive(99, {line(1, 6)})) == RecordOutcome::rejected);  // not where it goes
  const auto& c = l.shard.counts();
  CHECK(c.consumed == c.applied + c.duplicates + c.rejected);
  l.check_conserved();
}

TEST_CASE("orders: a receipt for an unknown shipment is rejected") {
  Ledger l;
  const Bytes receipt = copy(l.ev.writer().shipment_received(l.ev.next(), ShipmentId{404}, LocationId{kStore},
                                                             std::vector{line(1, 1)}));
  CHECK(l.feed(receipt) == RecordOutcome::rejected);
  CHECK(l.last_rejection.to_string() == "payload.shipment: shipment 404 is not known (unknown_shipment)");
}

}  // namespace qudao
