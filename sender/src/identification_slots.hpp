#pragma once
// Which quiet candidates the run loop may hand to the identify workers now. Identifying a file
// hashes it to its end, so a few large files could hold every worker for minutes while small
// files waited behind them. One worker is kept for small files: large ones (over the small-file
// limit) are handed out to at most workers() - 1 at a time, those queued included, so one worker
// is always free for, or busy with, a small file; small ones may use every worker. workers() is
// UPLOAD_CONCURRENCY, at least 2, so that the worker kept never stops large files altogether. At
// most 2 x workers() files are handed out at once (one queued behind each running one, so a
// worker that finishes starts the next without waiting for the run loop). Not thread-safe: the
// sender's run() thread owns it.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace transfer::sender {

class IdentificationSlots {
 public:
  // `small_file_limit`: the largest file that counts as small (bytes).
  IdentificationSlots(int upload_concurrency, int64_t small_file_limit);

  size_t workers() const { return workers_; }
  size_t capacity() const { return 2 * workers_; }  // files handed out at most (queued included)
  // Whether a file of `size` bytes may be handed out now.
  bool may_start(int64_t size) const;
  bool full() const { return in_hand_.size() >= capacity(); }
  bool empty() const { return in_hand_.empty(); }
  bool holds(const std::string& name) const { return in_hand_.count(name) != 0; }

  void started(const std::string& name, int64_t size);
  void finished(const std::string& name);  // its result came back (a name not held: nothing)

 private:
  bool is_large(int64_t size) const { return size > small_file_limit_; }

  size_t workers_;
  int64_t small_file_limit_;
  std::map<std::string, bool> in_hand_;  // name -> large
  size_t large_in_hand_ = 0;
};

}  // namespace transfer::sender
