// GET /v1/orders over real HTTP, served from a store in a temp dir (no broker,
// tests/connectors/api_fixture.h) holding the order story of tests/projections/order_story.h: every
// role × region, another region's order, store, region or placer answering as an unknown one, each
// state's answer, shipments, a proxy order expired by event time, store, region and placer
// listings by state and cursor, and bad parameters.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/connectors/api_fixture.h"
#include "tests/projections/order_story.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

// The fixture's own orders are 1 (East store 2) and 2 (West store 4), both paid.
constexpr std::uint64_t kEastOrder = 31, kWestOrder = 34, kNoSuchOrder = 999;

struct OrderApi : ApiFixture {
  explicit OrderApi(std::vector<Bytes> events = order_story().events) : ApiFixture(HttpOptions{}, std::move(events)) {}
  json get(const std::string& target, const char* token = kTestHqToken) const {
    const HttpReply r = http_get(port(), target, token);
    INFO("GET " << target << ": " << r.body);
    REQUIRE(r.status == 200);
    return r.json();
  }
};

std::string order(std::uint64_t id) { return fmt::format("/v1/orders?id={}", id); }
std::string store(std::uint64_t id, const std::string& more = "") { return fmt::format("/v1/orders?store={}{}", id, more); }
std::string region(const std::string& name, const std::string& more = "") {
  return fmt::format("/v1/orders?region={}{}", name, more);
}
std::string placed_by(std::uint64_t party, const std::string& more = "") {
  return fmt::format("/v1/orders?placed_by={}{}", party, more);
}

// The order story and order 41: distributor 101 (East's) places an order for West store 4 too.
std::vector<Bytes> story_with_cross_region_order() {
  std::vector<Bytes> events = order_story().events;
  EventWriter w;
  const Header h{EventId{9, 1}, TimeMs{kT0 + 3 * kDayLengthMs}, "test"};
  events.push_back(copy(w.order_placed(h, OrderId{41}, LocationId{kWestStore}, kStoryDistributor, LocationId{0},
                                       TimeMs{kT0 + 10 * kDayLengthMs}, std::vector{PricedLine{SkuId{1}, Quantity{1}, Fen{500}}})));
  return events;
}

// Every page of a listing, `limit` at a time, following next_cursor: the order ids listed.
std::vector<std::uint64_t> all_pages(const OrderApi& api, const std::string& target, std::size_t limit, const char* token) {
  std::vector<std::uint64_t> out;
  std::string cursor;
  for (int pages = 0; pages < 100; ++pages) {
    const json page = api.get(fmt::format("{}&limit={}{}", target, limit, cursor), token);
    CHECK(page["orders"].size() <= limit);
    for (const json& o : page["orders"]) out.push_back(o["order"]);
    if (page["next_cursor"].is_null()) return out;
    cursor = "&cursor=" + page["next_cursor"].get<std::string>();
  }
  FAIL("a listing that does not end");
  return out;
}

std::string distributor(std::uint64_t party, const std::string& more = "") {
  return fmt::format("/v1/orders?distributor={}{}", party, more);
}

// The order story with order 41 (above), then: East store 9 is defined, places order 42 for itself,
// and only then is assigned to distributor 102 (a rival's claim on store 2 is a conflict, so 102
// held no store before); store party 7001 is registered at store 2.
std::vector<Bytes> story_with_late_assignment() {
  std::vector<Bytes> events = story_with_cross_region_order();
  EventWriter w;
  std::uint64_t seq = 0;
  auto at = [&] {
    ++seq;
    // Before order 41's time, so that the shard's event time (order 35's deadline) does not move.
    return Header{EventId{9, 100 + seq}, TimeMs{kT0 + 2 * kDayLengthMs + static_cast<std::int64_t>(seq) * 60'000}, "test"};
  };
  events.push_back(copy(w.location_defined(at(), LocationId{9}, fb::LocationKind::Store, "store 9", "Hangzhou", "East")));
  events.push_back(copy(w.order_placed(at(), OrderId{42}, LocationId{9}, 9, LocationId{0}, TimeMs{kT0 + 10 * kDayLengthMs},
                                       std::vector{PricedLine{SkuId{1}, Quantity{2}, Fen{500}}})));
  events.push_back(copy(w.store_assigned(at(), LocationId{9}, kEastRival)));
  events.push_back(copy(w.party_registered(at(), 7001, fb::PartyKind::Store, kEastDistributor, "store party", "East", "",
                                           LocationId{kEastStore})));
  return events;
}

std::vector<std::uint64_t> ids(const json& page) {
  std::vector<std::uint64_t> out;
  for (const json& o : page["orders"]) out.push_back(o["order"]);
  return out;
}

}  // namespace

TEST_CASE("order api: every role and region answers as the access table says; another region's order is an unknown one") {
  OrderApi api;
  // Swapped ids: each regional token asks for the other region's order and store, and gets the
  // answer an id that does not exist gets (404, the same body but for the id).
  check_access(api.port(), {
      //                                      hq   east west metrics ingest none
      {order(kEastOrder),                     200, 200, 404, 403, 403, 401},
      {order(kWestOrder),                     200, 404, 200, 403, 403, 401},
      {order(kNoSuchOrder),                   404, 404, 404, 403, 403, 401},
      {store(kEastStore),                     200, 200, 404, 403, 403, 401},
      {store(kWestStore, "&state=placed"),    200, 404, 200, 403, 403, 401},
      {store(kNoSuchLocation),                404, 404, 404, 403, 403, 401},
      {store(kNorthWarehouse),                200, 404, 404, 403, 403, 401},  // a location without orders
      {region("East"),                        200, 200, 404, 403, 403, 401},
      {region("West", "&state=placed"),       200, 404, 200, 403, 403, 401},
      {region("North"),                       200, 404, 404, 403, 403, 401},  // a region without orders
      {region("Nowhere"),                     404, 404, 404, 403, 403, 401},
      {placed_by(kStoryDistributor),          200, 200, 404, 403, 403, 401},  // East's distributor
      {placed_by(kWestStore),                 200, 404, 200, 403, 403, 401},  // West store 4's own orders
      {placed_by(kWestDistributor),           404, 404, 404, 403, 403, 401},  // registered, placed nothing
      {placed_by(kNoSuchParty),               404, 404, 404, 403, 403, 401},
      {"/v1/orders",                          400, 400, 400, 403, 403, 401},
      {"/v1/orders?region=East&store=2",      400, 400, 400, 403, 403, 401},
  });
  const HttpReply other = http_get(api.port(), order(kWestOrder), kTestEastToken);
  const HttpReply unknown = http_get(api.port(), order(kNoSuchOrder), kTestEastToken);
  CHECK(other.json()["error"] == fmt::format("order {} not found", kWestOrder));
  CHECK(unknown.json()["error"] == fmt::format("order {} not found", kNoSuchOrder));
  CHECK(http_get(api.port(), store(kWestStore), kTestEastToken).json()["error"] ==
        fmt::format("store {} not found", kWestStore));
  // Another region's region and placer read as unknown ones: the same body but for the name or id.
  CHECK(http_get(api.port(), region("West"), kTestEastToken).json()["error"] == "region West not found");
  CHECK(http_get(api.port(), region("Nowhere"), kTestEastToken).json()["error"] == "region Nowhere not found");
  CHECK(http_get(api.port(), placed_by(kWestStore), kTestEastToken).json()["error"] ==
        fmt::format("placed_by {} not found: no orders placed by it", kWestStore));
  CHECK(http_get(api.port(), placed_by(kNoSuchParty), kTestEastToken).json()["error"] ==
        fmt::format("placed_by {} not found: no orders placed by it", kNoSuchParty));
}

TEST_CASE("order api: a region's orders list by id across its stores, by state, and page with next_cursor") {
  OrderApi api;
  const json all = api.get(region("East"), kTestEastToken);
  CHECK(ids(all) == std::vector<std::uint64_t>{1, 31, 32, 33, 35});
  CHECK(all["region"] == "East");
  CHECK(all["state"] == nullptr);
  CHECK(all["next_cursor"] == nullptr);
  CHECK(all["orders"][0]["region"] == "East");
  CHECK(all["orders"][1]["shipments_total"] == 2);
  CHECK_FALSE(all["orders"][1].contains("shipments"));
  // The position of each partition the page's orders come from: here partition 0 only.
  const json status = api.get("/v1/status");
  REQUIRE(all["as_of"].size() == 1);
  CHECK(all["as_of"][0]["partition"] == 0);
  CHECK(all["as_of"][0]["next_offset"] == status["partitions"][0]["next_offset"]);

  const json first = api.get(region("East", "&limit=2"));
  CHECK(ids(first) == std::vector<std::uint64_t>{1, 31});
  CHECK(first["next_cursor"] == "31.0");  // order id and partition
  CHECK(ids(api.get(region("East", "&limit=2&cursor=31.0"))) == std::vector<std::uint64_t>{32, 33});
  CHECK(ids(api.get(region("East", "&limit=2&cursor=31"))) == std::vector<std::uint64_t>{32, 33});
  for (std::size_t limit : {1, 2, 4, 5, 6}) {
    CHECK(all_pages(api, region("East"), limit, kTestHqToken) == std::vector<std::uint64_t>{1, 31, 32, 33, 35});
  }
  CHECK(ids(api.get(region("East", "&state=placed"))) == std::vector<std::uint64_t>{35});
  CHECK(ids(api.get(region("East", "&state=paid"))) == std::vector<std::uint64_t>{1});
  CHECK(api.get(region("East", "&state=expired"))["state"] == "expired");
  CHECK(ids(api.get(region("West"), kTestWestToken)) == std::vector<std::uint64_t>{2, 34});
  // A region with locations and no orders lists none; its page has no partition to show.
  const json north = api.get(region("North"));
  CHECK(north["orders"] == json::array());
  CHECK(north["as_of"] == json::array());
  CHECK(north["next_cursor"] == nullptr);
}

TEST_CASE("order api: a placer's orders list across regions, only those of the token's regions; its own orders for a store") {
  OrderApi api(story_with_cross_region_order());
  CHECK(ids(api.get(placed_by(kStoryDistributor))) == std::vector<std::uint64_t>{33, 35, 41});
  CHECK(ids(api.get(placed_by(kStoryDistributor), kTestEastToken)) == std::vector<std::uint64_t>{33, 35});
  CHECK(ids(api.get(placed_by(kStoryDistributor), kTestWestToken)) == std::vector<std::uint64_t>{41});
  const json page = api.get(placed_by(kStoryDistributor, "&limit=2"));
  CHECK(page["placed_by"] == kStoryDistributor);
  CHECK(page["next_cursor"] == "35.0");
  CHECK(ids(api.get(placed_by(kStoryDistributor, "&limit=2&cursor=35.0"))) == std::vector<std::uint64_t>{41});
  for (const json& o : page["orders"]) {
    CHECK(o["proxy"] == true);
    CHECK(o["placed_by"] == kStoryDistributor);
  }
  for (std::size_t limit : {1, 2, 3}) {
    CHECK(all_pages(api, placed_by(kStoryDistributor), limit, kTestHqToken) == std::vector<std::uint64_t>{33, 35, 41});
  }
  CHECK(ids(api.get(placed_by(kStoryDistributor, "&state=placed"))) == std::vector<std::uint64_t>{35, 41});
  CHECK(ids(api.get(placed_by(kStoryDistributor, "&state=expired"), kTestEastToken)) == std::vector<std::uint64_t>{33});
  // Known in West, none expired there: an empty page, not a 404.
  CHECK(api.get(placed_by(kStoryDistributor, "&state=expired"), kTestWestToken)["orders"] == json::array());
  // A store's own orders are placed by the store.
  CHECK(ids(api.get(placed_by(kEastStore))) == std::vector<std::uint64_t>{1, 31, 32});
}

TEST_CASE("order api: an order received in two shipments shows its lines, payments, shipments and position") {
  OrderApi api;
  const json o = api.get(order(kEastOrder), kTestEastToken);
  CHECK(o["order"] == kEastOrder);
  CHECK(o["state"] == "received");
  CHECK(o["store"] == kEastStore);
  CHECK(o["region"] == "East");
  CHECK(o["fulfilment"] == kEastWarehouse);
  CHECK(o["placed_by"] == kEastStore);
  CHECK(o["proxy"] == false);
  CHECK(o["payment_deadline_ms"] == kT0 + 2 * kDayLengthMs);
  CHECK(o["due_fen"] == 10'000);
  CHECK(o["paid_fen"] == 10'000);
  CHECK(o["shipments_open"] == 0);
  CHECK(o["lines"] == json::parse(R"([{"sku": 1, "ordered": 10, "reserved": 0, "dispatched": 10},
                                      {"sku": 2, "ordered": 5, "reserved": 0, "dispatched": 5}])"));
  CHECK(o["shipments_total"] == 2);
  CHECK(o["shipments"] == json::parse(R"([
      {"shipment": 601, "from": 1, "to": 2, "received": true, "lines": [{"sku": 1, "qty": 4}]},
      {"shipment": 602, "from": 1, "to": 2, "received": true, "lines": [{"sku": 1, "qty": 6}, {"sku": 2, "qty": 5}]}])"));
  // The position of partition 0 the answer includes: every record the store holds.
  const json status = api.get("/v1/status");
  CHECK(o["as_of"]["partition"] == 0);
  CHECK(o["as_of"]["next_offset"] == status["partitions"][0]["next_offset"]);
  CHECK(o["as_of"]["event_time_ms"].get<std::int64_t>() >= kT0 + kDayLengthMs);
}

TEST_CASE("order api: cancelled, expired and proxy orders answer their state; an unpaid proxy order shows what it holds") {
  OrderApi api;
  CHECK(api.get(order(32))["state"] == "cancelled");
  const json expired = api.get(order(33));
  CHECK(expired["state"] == "expired");  // by event time: a later event passed its deadline
  CHECK(expired["proxy"] == true);
  CHECK(expired["placed_by"] == kStoryDistributor);
  CHECK(expired["lines"][0]["reserved"] == 0);
  const json held = api.get(order(35));
  CHECK(held["state"] == "placed");
  CHECK(held["proxy"] == true);
  CHECK(held["lines"][0]["reserved"] == 3);
  CHECK(held["paid_fen"] == 0);
  CHECK(held["shipments"] == json::array());
  const json fixture_order = api.get(order(1));  // placed with no fulfilment location: null
  CHECK(fixture_order["state"] == "paid");
  CHECK(fixture_order["fulfilment"] == nullptr);
}

TEST_CASE("order api: a store's orders list by id, by state, and page with next_cursor") {
  OrderApi api;
  const json all = api.get(store(kEastStore), kTestEastToken);
  CHECK(ids(all) == std::vector<std::uint64_t>{1, 31, 32, 33, 35});
  CHECK(all["state"] == nullptr);
  CHECK(all["next_cursor"] == nullptr);
  CHECK(all["as_of"]["partition"] == 0);
  CHECK_FALSE(all["orders"][1].contains("shipments"));
  CHECK(all["orders"][1]["shipments_total"] == 2);

  const json first = api.get(store(kEastStore, "&limit=2"));
  CHECK(ids(first) == std::vector<std::uint64_t>{1, 31});
  REQUIRE(first["next_cursor"] == "31");
  const json second = api.get(store(kEastStore, "&limit=2&cursor=31"));
  CHECK(ids(second) == std::vector<std::uint64_t>{32, 33});
  const json last = api.get(store(kEastStore, "&limit=2&cursor=33"));
  CHECK(ids(last) == std::vector<std::uint64_t>{35});
  CHECK(last["next_cursor"] == nullptr);

  CHECK(ids(api.get(store(kEastStore, "&state=placed"))) == std::vector<std::uint64_t>{35});
  CHECK(ids(api.get(store(kEastStore, "&state=paid"))) == std::vector<std::uint64_t>{1});
  CHECK(api.get(store(kEastStore, "&state=paid"))["state"] == "paid");
  CHECK(ids(api.get(store(kWestStore), kTestWestToken)) == std::vector<std::uint64_t>{2, 34});
  CHECK(api.get(store(kEastWarehouse))["orders"] == json::array());
}

TEST_CASE("order api: a distributor's orders are its assigned stores', whoever placed them; an agent's are its distributors'") {
  OrderApi api(story_with_late_assignment());
  // Store 2 is 101's: its own orders and 101's proxy orders for it. Order 41, which 101 placed for
  // West store 4, is 201's (store 4's distributor), not 101's.
  const json east = api.get(distributor(kEastDistributor));
  CHECK(ids(east) == std::vector<std::uint64_t>{1, 31, 32, 33, 35});
  CHECK(east["distributor"] == kEastDistributor);
  CHECK(east["state"] == nullptr);
  CHECK(east["next_cursor"] == nullptr);
  REQUIRE(east["as_of"].size() == 1);
  CHECK(east["as_of"][0]["partition"] == 0);
  CHECK(ids(api.get(distributor(kWestDistributor))) == std::vector<std::uint64_t>{2, 34, 41});
  // 102's claim on store 2 is a conflict and gives it nothing; store 9, assigned to it after its
  // order 42 was placed, lists that order.
  CHECK(ids(api.get(distributor(kEastRival))) == std::vector<std::uint64_t>{42});
  // The agent: its distributors' stores (2 and 9), merged by order id.
  CHECK(ids(api.get(distributor(kEastAgent))) == std::vector<std::uint64_t>{1, 31, 32, 33, 35, 42});
  CHECK(ids(api.get(distributor(kEastAgent, "&state=placed"))) == std::vector<std::uint64_t>{35, 42});
  CHECK(ids(api.get(distributor(kEastDistributor, "&state=expired"))) == std::vector<std::uint64_t>{33});
  CHECK(api.get(distributor(kEastDistributor, "&state=dispatched"))["orders"] == json::array());
  const json first = api.get(distributor(kEastAgent, "&limit=2"));
  CHECK(ids(first) == std::vector<std::uint64_t>{1, 31});
  CHECK(first["next_cursor"] == "31.0");
  CHECK(ids(api.get(distributor(kEastAgent, "&limit=3&cursor=31.0"))) == std::vector<std::uint64_t>{32, 33, 35});
  for (std::size_t limit : {1, 2, 5, 6, 7}) {
    CHECK(all_pages(api, distributor(kEastAgent), limit, kTestHqToken) == std::vector<std::uint64_t>{1, 31, 32, 33, 35, 42});
  }
  // Scope: another region's distributor reads as an unknown party; a party that holds no stores is
  // an empty listing; one that is neither a distributor nor an agent is a 400 naming its kind.
  check_access(api.port(), {
      //                                      hq   east west metrics ingest none
      {distributor(kEastDistributor),         200, 200, 404, 403, 403, 401},
      {distributor(kWestDistributor),         200, 404, 200, 403, 403, 401},
      {distributor(kNoSuchParty),             404, 404, 404, 403, 403, 401},
  });
  CHECK(http_get(api.port(), distributor(kWestDistributor), kTestEastToken).json()["error"] ==
        fmt::format("distributor {} not found", kWestDistributor));
  CHECK(http_get(api.port(), distributor(kNoSuchParty), kTestEastToken).json()["error"] ==
        fmt::format("distributor {} not found", kNoSuchParty));
  const HttpReply store_party = http_get(api.port(), distributor(7001), kTestHqToken);
  CHECK(store_party.status == 400);
  CHECK(store_party.json()["error"] == "query parameter distributor: party 7001 is a Store, not a Distributor or an Agent");
}

TEST_CASE("order api: bad parameters answer 400 naming the parameter") {
  OrderApi api;
  for (const auto& [target, names] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/orders", "id, store, placed_by, region or distributor: required"},
           {"/v1/orders?id=x", "id"},
           {"/v1/orders?id=-1", "id"},
           {"/v1/orders?store=2&id=31", "id and store"},
           {"/v1/orders?id=31&state=paid", "state"},
           {"/v1/orders?id=31&limit=5", "limit"},
           {"/v1/orders?store=2&state=shipped", "state: expected one of placed"},
           {"/v1/orders?store=2&limit=0", "limit: expected 1 to 1000"},
           {"/v1/orders?store=2&limit=1001", "limit"},
           {"/v1/orders?store=2&cursor=x", "cursor"},
           {"/v1/orders?store=2&region=East", "store and region: give one"},
           {"/v1/orders?placed_by=101&region=East", "placed_by and region: give one"},
           {"/v1/orders?store=2&placed_by=101&region=East", "store, placed_by and region: give one"},
           {"/v1/orders?id=31&placed_by=101", "id and placed_by"},
           {"/v1/orders?placed_by=x", "placed_by: expected a non-negative integer"},
           {"/v1/orders?region=", "region: must not be empty"},
           {"/v1/orders?region=East&state=shipped", "state: expected one of placed"},
           {"/v1/orders?placed_by=101&state=Paid", "state: expected one of placed"},
           {"/v1/orders?region=East&limit=0", "limit: expected 1 to 1000"},
           {"/v1/orders?placed_by=101&limit=1001", "limit: expected 1 to 1000"},
           {"/v1/orders?region=East&cursor=31.x", "cursor"},
           {"/v1/orders?region=East&cursor=31.-1", "cursor"},
           {"/v1/orders?placed_by=101&cursor=.0", "cursor"},
           {"/v1/orders?distributor=x", "distributor: expected a non-negative integer"},
           {"/v1/orders?distributor=101&placed_by=101", "placed_by and distributor: give one"},
           {"/v1/orders?distributor=101&limit=0", "limit: expected 1 to 1000"},
           {"/v1/orders?distributor=101&cursor=1.x", "cursor"},
       }) {
    const HttpReply r = http_get(api.port(), target, kTestHqToken);
    INFO(target << ": " << r.body);
    CHECK(r.status == 400);
    CHECK(r.json()["error"].get<std::string>().find(names) != std::string::npos);
  }
}

}  // namespace qudao
