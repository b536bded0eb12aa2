// The consumption limit's contract (connectors/consume_rate.h): over a window a consumer that polls
// as fast as it may takes the limit's rate; it waits (allowance 0) until a slice has accrued, then
// resumes; a stall is caught up by at most the burst; 0 means no limit. Time is given to the
// limiter, so these tests are exact; the last one runs on the real clock.
#include "connectors/consume_rate.h"

#include <doctest/doctest.h>

#include <chrono>

namespace qudao {
namespace {

using Clock = ConsumeRateLimit::Clock;
using std::chrono::milliseconds;

constexpr std::size_t kPollMax = 10'000;

// A consumer that polls every `period` and takes everything it is allowed, for `span`; what it took.
std::size_t take_greedily(ConsumeRateLimit& limit, Clock::time_point& now, milliseconds period, milliseconds span) {
  std::size_t taken = 0;
  for (const auto end = now + span; now < end; now += period) {
    const std::size_t n = limit.allowance(now, kPollMax);
    limit.took(n);
    taken += n;
  }
  return taken;
}

}  // namespace

TEST_CASE("consume rate: a greedy consumer takes the limit's rate over a window, within one slice") {
  for (const double rate : {1'000.0, 50'000.0, 224'000.0}) {
    INFO("rate " << rate);
    ConsumeRateLimit limit(rate);
    Clock::time_point now{};
    const std::size_t taken = take_greedily(limit, now, milliseconds(1), milliseconds(10'000));
    const double expected = rate * 10;
    CHECK(static_cast<double>(taken) <= expected);
    CHECK(static_cast<double>(taken) >= expected - rate * 0.006);  // the last slice may not have accrued yet
  }
}

TEST_CASE("consume rate: no poll until a slice has accrued; then it resumes with what has accrued") {
  ConsumeRateLimit limit(100'000);  // a 5 ms slice is 500 events
  const Clock::time_point t{};
  const auto us = [](int n) { return std::chrono::microseconds(n); };
  CHECK(limit.allowance(t, kPollMax) == 0);  // starts empty
  CHECK(limit.ready_at(kPollMax) >= t + milliseconds(5));
  CHECK(limit.ready_at(kPollMax) <= t + milliseconds(5) + us(1));
  CHECK(limit.allowance(t + milliseconds(4), kPollMax) == 0);  // 400 accrued: less than a slice, wait
  const std::size_t n = limit.allowance(t + milliseconds(5) + us(10), kPollMax);
  CHECK(n >= 500);
  CHECK(n <= 501);
  limit.took(n);
  CHECK(limit.allowance(t + milliseconds(5) + us(10), kPollMax) == 0);  // paused again
  CHECK(limit.ready_at(kPollMax) >= t + us(9'990));
  CHECK(limit.ready_at(kPollMax) <= t + milliseconds(10) + us(20));
  const std::size_t resumed = limit.allowance(t + milliseconds(12), kPollMax);  // with all that accrued
  CHECK(resumed >= 698);
  CHECK(resumed <= 700);
  limit.took(resumed);
  // A poll smaller than a slice waits only for its own size.
  CHECK(limit.allowance(t + milliseconds(13), 50) == 50);
}

TEST_CASE("consume rate: a stall is caught up by at most one burst; the rest of it is lost, not owed") {
  ConsumeRateLimit limit(10'000);
  Clock::time_point t{};
  CHECK(limit.allowance(t, kPollMax) == 0);
  // 5 s without polling: only kConsumeBurst (1 s, 10,000 events) is held.
  std::size_t caught_up = 0;
  for (int i = 0; i < 5; ++i) {
    const std::size_t n = limit.allowance(t + milliseconds(5'000), 4'000);
    limit.took(n);
    caught_up += n;
  }
  CHECK(caught_up == 10'000);
  // Then the rate again, not a larger one.
  Clock::time_point now = t + milliseconds(5'000);
  const std::size_t next_second = take_greedily(limit, now, milliseconds(1), milliseconds(1'000));
  CHECK(next_second <= 10'000);
  CHECK(next_second >= 9'900);
}

TEST_CASE("consume rate: 0 is no limit: every poll may take its whole batch, at once") {
  ConsumeRateLimit limit(0);
  CHECK_FALSE(limit.limited());
  const Clock::time_point t{};
  for (int i = 0; i < 3; ++i) {
    CHECK(limit.allowance(t, kPollMax) == kPollMax);
    limit.took(kPollMax);
  }
  CHECK(limit.wait_for_allowance(kPollMax, milliseconds(50)) == kPollMax);
}

TEST_CASE("consume rate: wait_for_allowance sleeps until a slice has accrued, at most its wait") {
  ConsumeRateLimit limit(1'000);  // a 5 ms slice is 5 events
  const auto start = Clock::now();
  std::size_t taken = 0;
  while (Clock::now() - start < milliseconds(500)) {
    const std::size_t n = limit.wait_for_allowance(kPollMax, milliseconds(50));
    limit.took(n);
    taken += n;
  }
  const double elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  // 1,000/s over the loop, less the slice that had not accrued at the end.
  CHECK(static_cast<double>(taken) <= elapsed_s * 1'000 + 1);
  CHECK(taken >= 440);
  // A wait shorter than a slice gives nothing, and returns after that wait, not at the slice.
  ConsumeRateLimit slow(0.1);  // one event per 10 s
  CHECK(slow.wait_for_allowance(kPollMax, milliseconds(0)) == 0);
  const auto before = Clock::now();
  CHECK(slow.wait_for_allowance(kPollMax, milliseconds(20)) == 0);
  CHECK(Clock::now() - before >= milliseconds(20));
  CHECK(Clock::now() - before < milliseconds(5'000));
}

}  // namespace qudao
