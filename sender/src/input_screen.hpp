#pragma once
// Screening (a part of identification): what the sender refuses about an input file from its size,
// its allocation and its first bytes, before it hashes it, so a file that cannot be delivered costs
// a few system calls and never a read to its end. The rules, in the order they are applied:
//   MAX_INPUT_BYTES  larger than the limit (0: no limit): not read at all.
//   sparse           a hole before the end of the file (lseek SEEK_HOLE): a hole reads as NUL
//                    bytes, which no JSON text holds. Where the file system does not report holes
//                    (SEEK_HOLE fails, or its generic implementation calls the whole file data),
//                    a file of 1 MiB or more with less than an eighth of its size allocated
//                    (st_blocks x 512) is read at 16 places spread over it and refused when one
//                    holds a NUL byte. The allocation alone never refuses a file: one stored
//                    compressed (ZFS and f2fs count compressed blocks; JSON often compresses 5 to
//                    20 times, far more when it repeats) costs those 16 reads and nothing more.
//   first bytes      a raw NUL byte in the first 4 KiB, or a first byte (after an optional UTF-8
//                    BOM, which the converter skips, and JSON whitespace) that cannot begin a JSON
//                    text: { [ " - 0-9 t f n. An empty or all-blank start is left to the converter.
// A refusal is final for that version of the file: the caller gives it up for every destination
// and quarantines it with the reason. Thread-safe (no state).

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "transfer/result.hpp"

struct stat;

namespace transfer::sender {

inline constexpr size_t kScreenPrefixBytes = 4096;  // the first bytes looked at
// Below this size the allocation is not compared (small files may live inside the inode, and
// hashing them costs nothing); SEEK_HOLE and the first bytes still apply.
inline constexpr int64_t kSparseCheckMinBytes = 1 << 20;
// A file with less than size / kSparseAllocationRatio bytes allocated is probed for NUL bytes.
inline constexpr int64_t kSparseAllocationRatio = 8;
inline constexpr int kSparseProbes = 16;  // reads of kScreenPrefixBytes spread over the file

// Where a file of `size` bytes with `allocated` bytes allocated, in which SEEK_HOLE found no hole,
// is read (kScreenPrefixBytes at each offset) for NUL bytes: none when it is under
// kSparseCheckMinBytes or at least an eighth allocated; else kSparseProbes offsets from 0 to the
// last block, evenly spread.
std::vector<int64_t> sparse_probe_offsets(int64_t size, int64_t allocated);

// The refusal of a JSON text's first bytes (`prefix`, the file's first bytes, at most
// kScreenPrefixBytes), worded as the converter words its errors ("invalid JSON at byte offset 0:
// raw NUL byte"); nothing when it may be JSON.
std::optional<std::string> check_json_start(std::string_view prefix);

struct ScreenLimits {
  int64_t max_input_bytes = 0;  // MAX_INPUT_BYTES; 0: no limit
};

// Screens the open regular file `fd`, whose fstat() is `st`: nothing when it may be hashed, or why
// it is refused ("<name>: refused as sparse: ...", "<name>: invalid JSON at byte offset 0: ..."
// (seen in its first bytes; not hashed)"); an error when it could not be read (retried
// later). Leaves the file offset at 0.
Result<std::optional<std::string>> screen_input(int fd, const struct stat& st,
                                                const std::string& name,
                                                const ScreenLimits& limits);

}  // namespace transfer::sender
