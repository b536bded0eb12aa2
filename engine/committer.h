// Committer: writes prepared commits (engine/store.h) on a thread of its own, one at a time, so the
// applying thread goes on with the next events while RocksDB writes and fsyncs the last batch.
//
// At most one commit is in flight: submit() requires the previous one to have been waited for, so
// memory stays bounded and the stored offsets only ever move forward. A kill -9 while a write is in
// flight leaves the store at the previous commit, which is a consistent state like any other.
//
// The writer thread takes the bulk threads' CPU priority (engine/thread_priority.h; unchanged by default).
//
// Thread-safety: submit(), wait() and busy() are called from one thread (the pipeline's).
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/store.h"

namespace qudao {

struct WrittenCommit {
  CommitStats stats;
  std::vector<std::pair<PartitionId, Offset>> next_offsets;  // now durable
  std::vector<std::pair<PartitionId, OutboxRow>> outbox;      // now durable: the relay may send them
  std::chrono::microseconds latency{0};                     // submit to durable
};

class Committer {
 public:
  explicit Committer(Store& store);
  // Waits for the write in flight.
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  // Hands `commit` to the writer thread. Call wait() first if a commit was submitted before.
  void submit(PreparedCommit commit);

  // Waits until the submitted commit is durable; what it wrote, or nullopt if none was in flight.
  // An error is a failed RocksDB write: the engine must stop (its memory is ahead of the store).
  [[nodiscard]] Result<std::optional<WrittenCommit>> wait();

  // Whether a submitted commit is still being written (wait() would block).
  bool busy();

 private:
  void run();

  Store& store_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<PreparedCommit> pending_;  // submitted, not yet written
  std::chrono::steady_clock::time_point submitted_at_;
  std::optional<Result<WrittenCommit>> done_;  // written (or failed), not yet waited for
  bool in_flight_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace qudao
