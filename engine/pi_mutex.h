// PiMutex: an exclusive mutex with priority inheritance, for a lock that a latency thread (the HTTP
// thread, real-time where the kernel allows it: engine/thread_priority.h) shares with a bulk thread
// (the pipeline's applying thread, at ordinary priority).
//
// Why: with the HTTP thread real-time, the read models' locks were the whole query tail. The
// applying thread holds a projection's lock for one record (or a poll batch's performance changes);
// when the kernel preempts it there for another process (a compiler, the broker), a query waits
// until it gets a core again: 36 waits over 5 ms and up to 51 ms in 8 s of the bench's query70 row
// on a loaded machine (README, "Reading under ingest"). With priority inheritance the kernel lends
// the waiting thread's real-time priority to the holder until it unlocks, so the wait is the rest of
// the holder's critical section, not its wait for a core. Without a real-time waiter it is an
// ordinary mutex (a nice value is not inherited).
//
// It meets the SharedMutex requirements so that std::shared_lock and std::unique_lock work on it,
// but a shared lock is exclusive too: the kernel lends priority only through an exclusive owner.
// That costs nothing here: the one HTTP thread is the only reader.
//
// Thread-safety: a mutex; unlocked by the thread that locked it. Not recursive.
#pragma once

#include <pthread.h>

#include <cstdlib>

namespace qudao {

class PiMutex {
 public:
  PiMutex() {
    pthread_mutexattr_t attr;
    check(pthread_mutexattr_init(&attr));
    check(pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT));
    check(pthread_mutex_init(&mutex_, &attr));
    pthread_mutexattr_destroy(&attr);
  }
  ~PiMutex() { pthread_mutex_destroy(&mutex_); }
  PiMutex(const PiMutex&) = delete;
  PiMutex& operator=(const PiMutex&) = delete;

  void lock() { check(pthread_mutex_lock(&mutex_)); }
  bool try_lock() { return pthread_mutex_trylock(&mutex_) == 0; }
  void unlock() { check(pthread_mutex_unlock(&mutex_)); }
  void lock_shared() { lock(); }
  bool try_lock_shared() { return try_lock(); }
  void unlock_shared() { unlock(); }

 private:
  // A failing lock call is a bug (relocking, unlocking another thread's lock): stop, in every build.
  static void check(int rc) {
    if (rc != 0) std::abort();
  }
  pthread_mutex_t mutex_;
};

}  // namespace qudao
