// CPU priorities: the HTTP thread's, raised by default (real-time where the kernel allows it, else
// nice -10); the engine's bulk threads', lowered only when an operator asks.
//
// Applying events, encoding and writing commits, the consumer's librdkafka threads and RocksDB's
// flushes and compactions are throughput work; a query is latency work. On a machine with fewer
// cores than runnable threads, a request's thread that has to wait its turn behind them waits
// tens of milliseconds.
//
// The HTTP I/O thread makes itself real-time: SCHED_RR at priority kLatencyThreadRtPriorityDefault
// (1, the lowest; QUDAO_HTTP_THREAD_RT_PRIORITY=N, 0 to kLatencyThreadRtPriorityMax, sets another,
// 0 never), with SCHED_RESET_ON_FORK so that a thread it starts is an ordinary one. A nice value
// ranks a thread only among the threads of its own session (kernel autogroups) and only at the
// fair scheduler's next decision (this kernel is built without preemption of kernel code, ticks at
// 250 Hz): measured in the bench's query70 row on a loaded machine, the nice -10 HTTP thread still
// waited for a core behind other sessions' compilers and its own process's committer, up to 36 ms,
// where a real-time one waited at most 4 ms. Real-time needs CAP_SYS_NICE or an RLIMIT_RTPRIO that
// allows it (systemd's LimitRTPRIO=); without either it falls back to nice kLatencyThreadNiceDefault
// (-10; QUDAO_HTTP_THREAD_NICE=N, -20 to 0, sets another, 0 leaves it alone), which needs the same
// privilege or RLIMIT_NICE, and without that the thread quietly keeps the priority it was started
// with. A real-time thread outranks every ordinary thread on the machine; the HTTP thread needs
// little CPU (a request is 0.1-1 ms), and the kernel's real-time throttling
// (/proc/sys/kernel/sched_rt_runtime_us, 95 % by default) leaves the rest a share even if it spun.
// The projections' locks are PiMutexes (engine/pi_mutex.h), so the real-time HTTP thread lends its
// priority to the applying thread it waits for instead of waiting behind whatever preempted it.
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
inline constexpr int kLatencyThreadRtPriorityDefault = 1;
inline constexpr int kLatencyThreadRtPriorityMax = 49;  // below the kernel's own real-time threads (50+)

// QUDAO_HTTP_THREAD_RT_PRIORITY if set to 0..kLatencyThreadRtPriorityMax (otherwise a warning and the
// default); read once. 0: never real-time.
int latency_thread_rt_priority();

// Makes the calling thread SCHED_RR at `priority` (threads it starts afterwards are ordinary ones);
// false if the kernel refused (no CAP_SYS_NICE, no RLIMIT_RTPRIO).
bool set_this_thread_realtime(int priority);

// QUDAO_HTTP_THREAD_NICE if set to -20..0 (otherwise a warning and the default); read once.
int latency_thread_nice();

// Raises the calling thread (the HTTP I/O thread) to real-time at latency_thread_rt_priority(), or if
// that is 0 or refused to latency_thread_nice(); true if either worked. Best effort and quiet:
// without the privilege to raise a priority the thread keeps its own.
bool raise_this_thread_priority();

// Lowers RocksDB's flush and compaction threads (the process-wide default Env's pools) to nice 19,
// if bulk_thread_nice() is not 0.
void lower_rocksdb_thread_priority();

}  // namespace qudao
