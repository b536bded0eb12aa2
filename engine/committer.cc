#include "engine/committer.h"

#include <pthread.h>

#include <cassert>

#include "engine/thread_priority.h"

namespace qudao {

Committer::Committer(Store& store) : store_(store), thread_([this] { run(); }) {}

Committer::~Committer() {
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return !pending_; });
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Committer::submit(PreparedCommit commit) {
  {
    std::lock_guard lock(mutex_);
    assert(!in_flight_ && "wait() for the previous commit before submitting the next");
    pending_.emplace(std::move(commit));
    submitted_at_ = std::chrono::steady_clock::now();
    in_flight_ = true;
  }
  cv_.notify_all();
}

Result<std::optional<WrittenCommit>> Committer::wait() {
  std::unique_lock lock(mutex_);
  if (!in_flight_) return std::optional<WrittenCommit>{};
  cv_.wait(lock, [&] { return done_.has_value(); });
  Result<WrittenCommit> r = std::move(*done_);
  done_.reset();
  in_flight_ = false;
  if (!r.is_ok()) return r.status();
  return std::optional<WrittenCommit>(r.take());
}

bool Committer::busy() {
  std::lock_guard lock(mutex_);
  return in_flight_ && !done_.has_value();
}

void Committer::run() {
  pthread_setname_np(pthread_self(), "qudao-commit");
  lower_this_thread_priority();  // if the operator asked for it: engine/thread_priority.h
  std::unique_lock lock(mutex_);
  for (;;) {
    cv_.wait(lock, [&] { return pending_.has_value() || stopping_; });
    if (!pending_) return;  // stopping, nothing left to write
    PreparedCommit commit = std::move(*pending_);
    const auto submitted_at = submitted_at_;
    lock.unlock();
    Status s = store_.write(commit);
    WrittenCommit written{commit.stats, std::move(commit.next_offsets), std::move(commit.outbox),
                          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                                submitted_at)};
    lock.lock();
    pending_.reset();
    if (s.is_ok()) {
      done_.emplace(std::move(written));
    } else {
      done_.emplace(std::move(s));
    }
    cv_.notify_all();
  }
}

}  // namespace qudao
