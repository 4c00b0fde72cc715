#include "transfer/http/body_reader.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace transfer::http {
namespace {

// Bodies are read in pieces of up to 256 KiB (issue 22: at 64 KiB a 463 MB token took 7,000
// reads and as many writes of its plaintext); a smaller body gets a buffer of its own size.
constexpr size_t kMaxPiece = 256 * 1024;

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, 3'600'000));
}

}  // namespace

bool wait_ready(const Connection& connection, IoState state, int timeout_ms) {
  pollfd p{connection.fd(), static_cast<short>(state == IoState::kWantWrite ? POLLOUT : POLLIN), 0};
  for (;;) {
    const int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

bool write_all_within(Connection& connection, std::string_view bytes, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!bytes.empty()) {
    const IoResult r = connection.write_some(bytes.data(), bytes.size());
    if (r.state == IoState::kDone) {
      bytes.remove_prefix(r.bytes);
    } else if (r.state == IoState::kWantRead || r.state == IoState::kWantWrite) {
      const int left = ms_until(deadline);
      if (left == 0 || !wait_ready(connection, r.state, left)) return false;
    } else {
      return false;
    }
  }
  return true;
}

BodyReader::BodyReader(Connection& connection, uint64_t length, BodyTimeouts timeouts)
    : c_(connection), length_(length), timeouts_(timeouts), start_(Clock::now()) {}

BodyReader::Outcome BodyReader::read(const std::function<bool(const char*, size_t)>& sink) {
  // Bytes that came with the head first.
  const size_t piece_size = static_cast<size_t>(std::clamp<uint64_t>(length_ - received_, 1, kMaxPiece));
  const std::unique_ptr<char[]> piece(new char[piece_size]);  // not zero-filled: written before read
  while (received_ < length_ && c_.unread() > 0) {
    const size_t n =
        c_.take(piece.get(), static_cast<size_t>(std::min<uint64_t>(piece_size, length_ - received_)));
    received_ += n;
    if (!sink(piece.get(), n)) return Outcome::kStopped;
  }
  while (received_ < length_) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(piece_size, length_ - received_));
    const IoResult r = c_.read_some(piece.get(), want);
    switch (r.state) {
      case IoState::kDone:
        received_ += r.bytes;
        if (!sink(piece.get(), r.bytes)) return Outcome::kStopped;
        break;
      case IoState::kClosed:
      case IoState::kError:
        return Outcome::kEnded;
      case IoState::kWantRead:
      case IoState::kWantWrite: {
        auto deadline = Clock::now() + seconds(timeouts_.stall_timeout_s);
        if (timeouts_.min_rate > 0) {
          deadline = std::min(
              deadline, start_ + seconds(timeouts_.grace_s +
                                         static_cast<double>(received_) / timeouts_.min_rate));
        }
        const int left = ms_until(deadline);
        if (left == 0 || !wait_ready(c_, r.state, left)) return Outcome::kTimedOut;
        break;
      }
    }
  }
  return Outcome::kComplete;
}

}  // namespace transfer::http
