// CPU priority of the engine's bulk threads, as an operator's option (off by default).
//
// Applying events, encoding and writing commits, the consumer's librdkafka threads and RocksDB's
// flushes and compactions are throughput work; a query is latency work. With
// QUDAO_BULK_THREAD_NICE=N (1 to 19) in the environment, the applying thread, the committer and
// the consumer's librdkafka threads run at nice N and RocksDB's pools at 19
// (Env::LowerThreadPoolCPUPriority), while the HTTP I/O thread keeps the priority it was started
// with, so that on a machine with fewer cores than runnable threads a request's thread is picked
// before them. Nice values are per thread on Linux: only the thread that calls
// lower_this_thread_priority() is lowered, and threads it creates afterwards inherit it.
//
// Off by default because measuring did not justify it (README, "Reading under ingest"): once
// queries stopped copying RocksDB's memtable and the projection's lock was held per record,
// nice 19 gave no better query tail than nice 0 in alternated runs, and the in-process ingest row
// was up to a third slower in some of them (with kernel autogroups, a group's share of each core
// follows its threads' weights there, so lowered threads also lose against other sessions).
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

// Lowers RocksDB's flush and compaction threads (the process-wide default Env's pools) to nice 19,
// if bulk_thread_nice() is not 0.
void lower_rocksdb_thread_priority();

}  // namespace qudao
