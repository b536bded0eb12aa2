// CPU priority of the engine's bulk threads. Applying events, encoding and writing commits, and
// RocksDB's flushes and compactions are throughput work that can wait a few milliseconds; a query
// cannot. On a machine with fewer cores than runnable threads, the kernel shares the cores by
// weight, so these threads run at a lower priority (a higher nice value) than the HTTP I/O thread,
// which keeps the default: when a request arrives, its thread runs before them instead of queueing
// behind them. The nice value is per thread (Linux), so only the thread that calls
// lower_this_thread_priority() is affected, and threads it creates afterwards inherit it.
//
// Nice values only weigh threads against each other within one scheduling group (with the kernel's
// autogroups, the processes of one session; or one cgroup): other programs on the machine do not
// get more of it because qudao's bulk threads are lowered.
#pragma once

namespace qudao {

// 19 is the lowest nice value and what RocksDB's Env::LowerThreadPoolCPUPriority gives its pools:
// the applying thread, the committer and RocksDB's background threads then share the cores among
// themselves as before, and together yield to the HTTP thread.
inline constexpr int kBulkThreadNice = 19;

// Lowers the calling thread to kBulkThreadNice; best effort (a failure is logged once, not fatal).
void lower_this_thread_priority();

// Lowers RocksDB's flush and compaction threads (the process-wide default Env's pools) to the same.
void lower_rocksdb_thread_priority();

}  // namespace qudao
