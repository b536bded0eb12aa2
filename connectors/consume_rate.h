// A limit on how fast the pipeline takes records from its source (`qudao serve --max-events-per-s`):
// a token bucket that the pipeline asks before each poll how many records the poll may take.
//
// Allowance accrues at events_per_s from the first call to allowance(), starting empty, and is held
// up to kConsumeBurst's worth: a consumer that fell behind (a slow commit, a stall for a core)
// catches up by that much at its own speed, as it would behind producers writing at that rate, and
// one that is slower than the limit for longer loses the rest (the limit is an upper bound, never a
// debt). A poll is allowed only once a slice (kConsumePollSlice's worth of events, or records_max if
// smaller) has accrued, so that a limited pipeline polls a few hundred times a second, not once per
// record. While it is not polling, librdkafka's bounded prefetch queue fills and the consumer stops
// fetching (connectors/kafka.cc): nothing is skipped, the records wait on the broker.
//
// Used to measure queries at a fixed share of the maximum ingest rate (tools/bench_query.h), and by
// an operator who wants a catch-up after downtime to leave CPU to the queries. events_per_s 0: no
// limit. Not thread-safe: the pipeline's thread owns it.
#pragma once

#include <chrono>
#include <cstddef>

namespace qudao {

inline constexpr std::chrono::milliseconds kConsumeBurst{1'000};
inline constexpr std::chrono::milliseconds kConsumePollSlice{5};

class ConsumeRateLimit {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ConsumeRateLimit(double events_per_s = 0);

  bool limited() const { return events_per_s_ > 0; }
  double events_per_s() const { return events_per_s_; }

  // How many records a poll at `now` may take, at most records_max: records_max without a limit; 0
  // until a slice has accrued (then ask again at ready_at()).
  std::size_t allowance(Clock::time_point now, std::size_t records_max);
  // When a poll of up to records_max records will be allowed (now or earlier if it already is).
  Clock::time_point ready_at(std::size_t records_max) const;
  // The records the poll took, at most what allowance() gave.
  void took(std::size_t records);

  // allowance() on the steady clock, sleeping until a slice has accrued but at most wait_max (the
  // caller's poll timeout, so that a stop and a due commit are still seen): 0 if none had by then.
  std::size_t wait_for_allowance(std::size_t records_max, std::chrono::milliseconds wait_max);

 private:
  std::size_t slice(std::size_t records_max) const;
  void accrue(Clock::time_point now);

  double events_per_s_;
  double burst_events_;
  double tokens_ = 0;
  bool started_ = false;
  Clock::time_point last_{};
};

}  // namespace qudao
