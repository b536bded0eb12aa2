#include "connectors/consume_rate.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <thread>

namespace qudao {

namespace {
double seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

ConsumeRateLimit::ConsumeRateLimit(double events_per_s)
    : events_per_s_(std::max(events_per_s, 0.0)),
      // At least one record: a limit below 1 event/s still lets one through now and then.
      burst_events_(std::max(1.0, events_per_s_ * seconds(kConsumeBurst))) {}

std::size_t ConsumeRateLimit::slice(std::size_t records_max) const {
  const auto per_slice = static_cast<std::size_t>(std::max(1.0, std::floor(events_per_s_ * seconds(kConsumePollSlice))));
  return std::max<std::size_t>(1, std::min(records_max, per_slice));
}

void ConsumeRateLimit::accrue(Clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  tokens_ = std::min(burst_events_, tokens_ + events_per_s_ * seconds(now - last_));
  last_ = now;
}

std::size_t ConsumeRateLimit::allowance(Clock::time_point now, std::size_t records_max) {
  if (!limited()) return records_max;
  accrue(now);
  if (tokens_ < static_cast<double>(slice(records_max))) return 0;
  return std::min(records_max, static_cast<std::size_t>(std::floor(tokens_)));
}

ConsumeRateLimit::Clock::time_point ConsumeRateLimit::ready_at(std::size_t records_max) const {
  if (!limited() || !started_) return Clock::time_point::min();
  const double missing = static_cast<double>(slice(records_max)) - tokens_;
  if (missing <= 0) return last_;
  return last_ + std::chrono::ceil<Clock::duration>(std::chrono::duration<double>(missing / events_per_s_));
}

void ConsumeRateLimit::took(std::size_t records) {
  if (!limited()) return;
  assert(static_cast<double>(records) <= std::floor(tokens_) && "a poll takes at most its allowance");
  tokens_ = std::max(0.0, tokens_ - static_cast<double>(records));
}

std::size_t ConsumeRateLimit::wait_for_allowance(std::size_t records_max, std::chrono::milliseconds wait_max) {
  const auto now = Clock::now();
  if (const std::size_t n = allowance(now, records_max); n > 0 || !limited()) return n;
  std::this_thread::sleep_until(std::min(ready_at(records_max), now + wait_max));
  return allowance(Clock::now(), records_max);
}

}  // namespace qudao
