#pragma once
// The shutdown deadline both programs share: after SIGTERM, work in flight may finish for a
// while; if it has not by then, `on_timeout` runs (on the deadline's own thread). Thread-safe.

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace transfer {

class DrainDeadline {
 public:
  DrainDeadline() = default;
  DrainDeadline(const DrainDeadline&) = delete;
  DrainDeadline& operator=(const DrainDeadline&) = delete;
  ~DrainDeadline();  // finished(), then waits for the deadline's thread

  // Starts the clock once; does nothing after finished() or a first start().
  void start(double timeout_s, std::function<void()> on_timeout);
  // The work is done: on_timeout will not run.
  void finished();

 private:
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace transfer
