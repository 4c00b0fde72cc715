// The sender's input screening (input_screen.hpp) and what identification does with a refusal:
// MAX_INPUT_BYTES, sparse files (a real hole, and the allocation probe), a JSON text's first bytes
// (never refusing what the converter takes), and a refused file left unhashed. Also the
// MAX_INPUT_BYTES option itself.
#include "input_screen.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "file_identity.hpp"
#include "outbox_store.hpp"
#include "sender_config.hpp"
#include "transfer/file_util.hpp"
#include "transfer/json_to_xml.hpp"
#include "transfer/logging.hpp"

namespace transfer::sender {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/transfer-screen-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// `head`, then a hole up to `size` bytes.
void write_sparse(const std::string& path, const std::string& head, off_t size) {
  write(path, head);
  ASSERT_EQ(::truncate(path.c_str(), size), 0) << path;
}

// screen_input on the file at `path`: "" when it passes, else the refusal. Opened for writing
// only (`unreadable`), any read the screen tries fails.
std::string screen(const std::string& path, int64_t max_input_bytes = 0, bool unreadable = false) {
  UniqueFd fd(::open(path.c_str(), (unreadable ? O_WRONLY : O_RDONLY) | O_CLOEXEC));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) return "cannot open " + path;
  auto r = screen_input(fd.get(), st, fs::path(path).filename(), ScreenLimits{max_input_bytes});
  if (!r) return "error: " + r.error().message;
  if (::lseek(fd.get(), 0, SEEK_CUR) != 0) return "the file offset was left away from 0";
  return r->value_or("");
}

TEST(CheckJsonStart, RefusesOnlyWhatCannotBeginAJsonText) {
  struct Case {
    std::string prefix;
    std::string refusal;  // "" : may be JSON
  };
  const Case cases[] = {
      {"{}", ""},
      {"[1, 2]", ""},
      {"\"text\"", ""},
      {"-1", ""},
      {"0", ""},
      {"7.5e3", ""},
      {"true", ""},
      {"false", ""},
      {"null", ""},
      {" \t\r\n{}", ""},
      {"\xEF\xBB\xBF{\"bom\": 1}", ""},  // the converter skips a UTF-8 BOM
      {"\xEF\xBB\xBF \n[]", ""},
      {"", ""},      // empty: the converter says so
      {"    ", ""},  // blank so far: the converter decides
      {"\0{}"s, "invalid JSON at byte offset 0: raw NUL byte"},
      {"{\"a\": \"\0\"}"s, "invalid JSON at byte offset 7: raw NUL byte"},
      {"<?xml version='1.0'?>", "invalid JSON at byte offset 0: 0x3c cannot begin a JSON text"},
      {"  x", "invalid JSON at byte offset 2: 0x78 cannot begin a JSON text"},
      {"NaN", "invalid JSON at byte offset 0: 0x4e cannot begin a JSON text"},
      {"+1", "invalid JSON at byte offset 0: 0x2b cannot begin a JSON text"},
      {"'a'", "invalid JSON at byte offset 0: 0x27 cannot begin a JSON text"},
      {"\xFF\xFE{\0"s, "invalid JSON at byte offset 3: raw NUL byte"},  // UTF-16
      {"\xFF\xFE", "invalid JSON at byte offset 0: 0xff cannot begin a JSON text"},
      {"\xEF\xBB\xBF\xEF\xBB\xBF{}",
       "invalid JSON at byte offset 3: 0xef cannot begin a JSON text"},
      {"\xEF\xBB", "invalid JSON at byte offset 0: 0xef cannot begin a JSON text"},
      {"\v{}", "invalid JSON at byte offset 0: 0x0b cannot begin a JSON text"},
      {"\xC2\xA0{}", "invalid JSON at byte offset 0: 0xc2 cannot begin a JSON text"},
  };
  for (const auto& c : cases) {
    const auto got = check_json_start(c.prefix);
    EXPECT_EQ(got.value_or(""), c.refusal) << testing::PrintToString(c.prefix);
    // Never stricter than the converter: what is refused here, it refuses too.
    if (got) {
      EXPECT_FALSE(json_to_xml(c.prefix).ok()) << testing::PrintToString(c.prefix);
    }
  }
  // And the BOM cases really are what the converter takes.
  EXPECT_TRUE(json_to_xml("\xEF\xBB\xBF{\"bom\": 1}").ok());
  EXPECT_TRUE(json_to_xml("\xEF\xBB\xBF \n[]").ok());
}

TEST(ScreenInput, MaxInputBytesRefusesALargerFileUnread) {
  TempDir dir;
  write(dir / "a.json", std::string(2048, ' ') + "{}");  // 2050 bytes
  EXPECT_EQ(screen(dir / "a.json", 0), "");
  EXPECT_EQ(screen(dir / "a.json", 2050), "");
  const std::string refusal =
      "a.json: refused: 2050 bytes, more than MAX_INPUT_BYTES=2049 (not read)";
  EXPECT_EQ(screen(dir / "a.json", 2049), refusal);
  // Unread: through a descriptor that cannot be read, the refusal is the same, and without the
  // limit the screen's read fails.
  EXPECT_EQ(screen(dir / "a.json", 2049, /*unreadable=*/true), refusal);
  EXPECT_EQ(screen(dir / "a.json", 0, /*unreadable=*/true).rfind("error: cannot read a.json", 0),
            0U);
}

TEST(ScreenInput, AHoleBeforeTheEndIsRefusedAsSparse) {
  TempDir dir;
  const off_t gib16 = off_t{16} << 30;
  write_sparse(dir / "all-hole.json", "", gib16);
  EXPECT_EQ(screen(dir / "all-hole.json"),
            "all-hole.json: refused as sparse: 17179869184 bytes with 0 allocated, a hole at byte "
            "offset 0 (a hole reads as NUL bytes, which no JSON text holds); not hashed");
  // A JSON head does not help: the hole after it is found.
  write_sparse(dir / "head.json", "{\"a\": \"" + std::string(8192, 'x'), gib16);
  const std::string head = screen(dir / "head.json");
  EXPECT_EQ(head.rfind("head.json: refused as sparse: 17179869184 bytes with ", 0), 0U) << head;
  const size_t at = head.find(", a hole at byte offset ");
  ASSERT_NE(at, std::string::npos) << head;
  EXPECT_GE(std::stoll(head.substr(at + 24)), 8199) << head;  // past the head written
  // A hole at the end only (written, then extended by 1 MiB).
  write_sparse(dir / "tail.json", "[" + std::string(1 << 20, ' ') + "]", (2 << 20) + 2);
  EXPECT_NE(screen(dir / "tail.json").find("a hole at byte offset"), std::string::npos);
}

TEST(ScreenInput, AFullyWrittenFileOfAnySizePasses) {
  TempDir dir;
  for (const size_t size : {size_t{2}, size_t{4096}, size_t{3} << 20}) {
    const std::string json = "[" + std::string(size - 2, ' ') + "]";
    write(dir / "f.json", json);
    EXPECT_EQ(screen(dir / "f.json"), "") << size;
  }
  write(dir / "empty.json", "");
  EXPECT_EQ(screen(dir / "empty.json"), "");  // the converter says what is wrong with it
}

TEST(ScreenInput, TheFirstBytesAreLookedAtBeforeHashing) {
  TempDir dir;
  write(dir / "nul.json", "\0{}"s + std::string(10000, ' '));
  EXPECT_EQ(screen(dir / "nul.json"),
            "nul.json: invalid JSON at byte offset 0: raw NUL byte (seen in its first bytes; not "
            "hashed)");
  write(dir / "xml.json", "<a/>");
  EXPECT_EQ(
      screen(dir / "xml.json"),
      "xml.json: invalid JSON at byte offset 0: 0x3c cannot begin a JSON text (seen in its first "
      "bytes; not hashed)");
  // A NUL past the first 4 KiB is the converter's to find (the file is hashed and converted).
  write(dir / "late.json", "[" + std::string(kScreenPrefixBytes, ' ') + "\0]"s);
  EXPECT_EQ(screen(dir / "late.json"), "");
}

// A written file is all data to SEEK_HOLE and fully allocated: a NUL byte inside it is the
// converter's to find, not the screen's (no probe is spent on it).
TEST(ScreenInput, AFullyAllocatedFileIsNeverProbed) {
  TempDir dir;
  std::string bytes = "[" + std::string((2 << 20) - 2, ' ') + "]";
  bytes[1 << 20] = '\0';
  write(dir / "nul-inside.json", bytes);
  EXPECT_EQ(screen(dir / "nul-inside.json"), "");
}

// Where the file system reports no holes: which files are probed, and where.
TEST(SparseProbeOffsets, OnlyLargeFilesWithLittleAllocatedAreProbedAllOverThem) {
  const int64_t mib = 1 << 20, gib = int64_t{1} << 30;
  struct Case {
    int64_t size, allocated;
    bool probed;
  };
  const Case cases[] = {
      {16 * gib, 0, true},              // truncate: nothing allocated
      {16 * gib, 2 * gib - 512, true},  // just under an eighth
      {16 * gib, 2 * gib, false},       // an eighth: compressed 8 times, not probed
      {16 * gib, 16 * gib, false},      // fully allocated
      {mib, 0, true},                   // from 1 MiB
      {mib - 1, 0, false},              // smaller: inline data, and hashing it costs nothing
      {0, 0, false},
  };
  for (const auto& c : cases) {
    const auto offsets = sparse_probe_offsets(c.size, c.allocated);
    const std::string what =
        std::to_string(c.size) + " bytes, " + std::to_string(c.allocated) + " allocated";
    if (!c.probed) {
      EXPECT_TRUE(offsets.empty()) << what;
      continue;
    }
    ASSERT_EQ(offsets.size(), static_cast<size_t>(kSparseProbes)) << what;
    EXPECT_EQ(offsets.front(), 0) << what;
    EXPECT_EQ(offsets.back(), c.size - static_cast<int64_t>(kScreenPrefixBytes))
        << what;  // the last block
    for (size_t k = 1; k < offsets.size(); ++k) {
      EXPECT_GT(offsets[k], offsets[k - 1]) << what;
      EXPECT_LE(offsets[k] - offsets[k - 1], c.size / (kSparseProbes - 1) + 1)
          << what;  // evenly spread
    }
  }
}

// --- identification ------------------------------------------------------------------------------

class Identify : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "in");
    auto store = OutboxStore::open(dir_ / "sender.db");
    ASSERT_TRUE(store.ok());
    store_.emplace(std::move(*store));
    logger_ = make_stream_logger("sender", log_, LogFormat::kText);
  }
  Identification identify(const std::string& name, int64_t max_input_bytes = 0) {
    FileIdentifier identifier(dir_ / "in", {kDefaultDestination}, 1536 * 1024,
                              ScreenLimits{max_input_bytes}, *store_, cancel_, logger_);
    struct stat st {};
    EXPECT_EQ(::stat((dir_ / ("in/" + name)).c_str(), &st), 0);
    return identifier.identify(name, stamp_of(st));
  }
  TempDir dir_;
  std::optional<OutboxStore> store_;
  std::atomic<bool> cancel_{false};
  std::ostringstream log_;
  Logger logger_;
};

TEST_F(Identify, ARefusedFileIsNotHashedAndSaysWhy) {
  write_sparse(dir_ / "in/sparse.json", "", off_t{16} << 30);
  write(dir_ / "in/nul.json", "\0"s);
  write(dir_ / "in/big.json", "{\"a\": [1, 2, 3]}");
  write(dir_ / "in/ok.json", "{\"a\": [1, 2, 3]}");
  struct Case {
    std::string name;
    int64_t max_input_bytes;
    std::string says;
  };
  for (const Case& c :
       {Case{"sparse.json", 0, "sparse.json: refused as sparse: "},
        Case{"nul.json", 0, "nul.json: invalid JSON at byte offset 0: raw NUL byte"},
        Case{"big.json", 8, "big.json: refused: 16 bytes, more than MAX_INPUT_BYTES=8"}}) {
    const Identification id = identify(c.name, c.max_input_bytes);
    EXPECT_EQ(id.outcome, Identification::Outcome::kRefused) << c.name;
    EXPECT_EQ(id.refusal.rfind(c.says, 0), 0U) << id.refusal;
    EXPECT_EQ(id.sha256, kUnhashed) << c.name;
    EXPECT_FALSE(id.content.has_value()) << c.name;
  }
  const Identification ok = identify("ok.json", 16);
  EXPECT_EQ(ok.outcome, Identification::Outcome::kOk);
  EXPECT_EQ(ok.sha256.size(), 64U);
  EXPECT_EQ(ok.content.value_or(""), "{\"a\": [1, 2, 3]}");
}

// --- the option ----------------------------------------------------------------------------------

TEST(MaxInputBytesOption, DefaultsToNoLimitAndTakesSizeSuffixes) {
  auto load = [](std::vector<std::string> args,
                 std::map<std::string, std::string> env) -> std::variant<SenderConfig, EarlyExit> {
    args.insert(args.end(), {"--input-dir", "/tmp/in", "--quarantine-dir", "/nonexistent-q"});
    return load_sender_config(args, [env](const std::string& k) -> std::optional<std::string> {
      auto it = env.find(k);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
  };
  struct Case {
    std::vector<std::string> args;
    std::map<std::string, std::string> env;
    int64_t want;  // -1: refused
  };
  const Case cases[] = {
      {{}, {}, 0},
      {{}, {{"MAX_INPUT_BYTES", "1048576"}}, 1 << 20},
      {{}, {{"MAX_INPUT_BYTES", "64K"}}, 64 << 10},
      {{"--max-input-bytes", "2G"}, {{"MAX_INPUT_BYTES", "64K"}}, int64_t{2} << 30},  // flag wins
      {{"--max-input-bytes=10M"}, {}, 10 << 20},
      {{}, {{"MAX_INPUT_BYTES", "-1"}}, -1},
      {{}, {{"MAX_INPUT_BYTES", "2X"}}, -1},
  };
  for (const auto& c : cases) {
    auto got = load(c.args, c.env);
    const std::string what = testing::PrintToString(c.args) + testing::PrintToString(c.env);
    if (c.want < 0) {
      ASSERT_TRUE(std::holds_alternative<EarlyExit>(got)) << what;
      EXPECT_EQ(std::get<EarlyExit>(got).code, 2) << what;
      EXPECT_NE(std::get<EarlyExit>(got).err.find("MAX_INPUT_BYTES"), std::string::npos) << what;
    } else {
      ASSERT_TRUE(std::holds_alternative<SenderConfig>(got))
          << what << std::get<EarlyExit>(got).err;
      EXPECT_EQ(std::get<SenderConfig>(got).max_input_bytes, c.want) << what;
    }
  }
}

}  // namespace
}  // namespace transfer::sender
