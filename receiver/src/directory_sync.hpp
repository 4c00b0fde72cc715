#pragma once
// Group commit of the output directory's fsync. Each upload needs, before its 201, an fsync of
// the directory that began after its rename. Uploads that finish while one fsync runs share the
// next one: one waits for the running fsync to end and then starts a new one for all of them,
// the others wait for its result. With FSYNC=on and many connections this turns one directory
// fsync per upload into one per group, and no upload is answered before its rename is durable.
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "transfer/result.hpp"

namespace transfer::receiver {

class DirectorySync {
 public:
  using SyncFn = std::function<Status()>;
  // `sync` makes the directory's entries durable (fsync_directory of the output directory).
  explicit DirectorySync(SyncFn sync) : sync_(std::move(sync)) {}

  // Call after the change (the rename) is complete. Returns once an fsync that began after the
  // call is done, with that fsync's result: an error reaches every upload it covered.
  Status sync_after_change();
  // Callers waiting for a running fsync to end (for tests).
  size_t waiting();

 private:
  struct Round {
    bool done = false;
    Status result = ok_status();
  };
  SyncFn sync_;
  std::mutex mu_;
  std::condition_variable finished_;
  std::shared_ptr<Round> next_ = std::make_shared<Round>();  // not started: joined by new changes
  bool running_ = false;
  size_t waiting_ = 0;
};

}  // namespace transfer::receiver
