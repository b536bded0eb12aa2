// CPU priorities: the HTTP thread's, raised by default; the engine's bulk threads', lowered only
// when an operator asks.
//
// Applying events, encoding and writing commits, the consumer's librdkafka threads and RocksDB's
// flushes and compactions are throughput work; a query is latency work. On a machine with fewer
// cores than runnable threads, a request's thread that has to wait its turn behind them waits
// tens of milliseconds.
//
// The HTTP I/O thread raises itself to nice kLatencyThreadNiceDefault (-10;
// QUDAO_HTTP_THREAD_NICE=N, -20 to 0, sets another, 0 leaves it alone) so that the kernel picks it
// before the process's other threads when a request arrives. It needs little CPU (a request is
// 0.1-1 ms), so this costs ingest little. Raising a priority needs CAP_SYS_NICE or an RLIMIT_NICE
// that allows it (systemd's LimitNICE=); without either the thread quietly keeps the priority it
// was started with, as before. Measured in README, "Reading under ingest": at a fixed 60,000
// events/s with other sessions' builds on the machine, the three queries' p99 went from 114 and
// 1,075 ms to 24 and 39 ms in alternated runs, and serve kept up better.
//
// With QUDAO_BULK_THREAD_NICE=N (1 to 19) in the environment, the applying thread, the committer and
// the consumer's librdkafka threads run at nice N and RocksDB's pools at 19
// (Env::LowerThreadPoolCPUPriority). Nice values are per thread on Linux: only the thread that calls
// lower_this_thread_priority() or raise_this_thread_priority() changes, and threads it creates
// afterwards inherit it. Off by default because measuring did not justify it: nice 19 gave no
// better query tail than nice 0 in alternated runs, and the in-process ingest row was up to a third
// slower in some of them (with kernel autogroups, a group's share of each core follows its
// threads' weights there, so lowered threads also lose against other sessions).
#pragma once

namespace qudao {

inline constexpr int kBulkThreadNiceDefault = 0;  // 0: nothing is lowered

// QUDAO_BULK_THREAD_NICE if set to 0..19 (otherwise a warning and the default); read once.
int bulk_thread_nice();

// Sets the calling thread's nice value; false if the kernel refused (e.g. raising it without
// CAP_SYS_NICE).
bool set_this_thread_nice(int nice);

// Lowers the calling thread to bulk_thread_nice(), if that is not 0; best effort (a failure is
// logged once, never fatal).
void lower_this_thread_priority();

inline constexpr int kLatencyThreadNiceDefault = -10;

// QUDAO_HTTP_THREAD_NICE if set to -20..0 (otherwise a warning and the default); read once.
int latency_thread_nice();

// Raises the calling thread (the HTTP I/O thread) to latency_thread_nice(); true if it did. Best
// effort and quiet: without the privilege to raise a priority the thread keeps its own.
bool raise_this_thread_priority();

// Lowers RocksDB's flush and compaction threads (the process-wide default Env's pools) to nice 19,
// if bulk_thread_nice() is not 0.
void lower_rocksdb_thread_priority();

}  // namespace qudao
