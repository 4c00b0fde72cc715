#include "transfer/key_file.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "transfer/key_ring.hpp"

namespace transfer {
namespace {

namespace fs = std::filesystem;

constexpr const char* kKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/key-file-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_key(const std::string& path, unsigned mode) {
  std::ofstream(path) << kKey << "\n";
  ::chmod(path.c_str(), mode);
}

TEST(KeyFile, AcceptsWhatTheOldPairWrote) {
  const std::vector<std::string> good = {
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",        // standard alphabet
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",      // openssl base64 output
      "  cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\r\n",  // URL-safe, CRLF, spaces
      "++//AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
  };
  for (const auto& text : good) {
    auto keys = parse_key_text(text, "k");
    ASSERT_TRUE(keys.ok()) << text << ": " << keys.error().message;
    EXPECT_EQ(keys->size(), 1U);
  }
}

TEST(KeyFile, StandardAndUrlSafeSpellingsAreTheSameKey) {
  auto a = parse_key_text("+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/8=", "a");
  auto b = parse_key_text("-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8=", "b");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->front().signing_key, b->front().signing_key);
  EXPECT_EQ(a->front().encryption_key, b->front().encryption_key);
}

TEST(KeyFile, RefusesWhatIsNotAKeyWithoutPrintingIt) {
  const std::vector<std::string> bad = {
      "", "\n\n", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",   // no padding
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",                 // 31 bytes
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",  // hex
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx*dHh8=",
  };
  for (const auto& text : bad) {
    auto keys = parse_key_text(text, "/run/secrets/k");
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.error().code, ErrorCode::kInvalidKey);
    EXPECT_NE(keys.error().message.find("/run/secrets/k"), std::string::npos);
    EXPECT_NE(keys.error().message.find("openssl base64"), std::string::npos);
    if (text.size() > 8) {
      EXPECT_EQ(keys.error().message.find(text.substr(0, 8)), std::string::npos);
    }
  }
}

TEST(KeyFile, SeveralKeysOnePerLine) {
  auto keys = parse_key_text("# new key first\ncw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n"
                             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", "k");
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(keys->size(), 2U);
}

TEST(KeyFile, MissingFileNamesThePathAndTheFix) {
  auto keys = load_key_file("/nonexistent/key");
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.error().message.find("/nonexistent/key"), std::string::npos);
  EXPECT_NE(keys.error().message.find("dd if=/dev/urandom"), std::string::npos);
}

// A socket file at `path` (bound, then closed: the file stays).
void make_socket_file(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
  ::close(s);
}

// A key file that is not a regular file is refused at once (a FIFO with no writer used to block
// the program forever), with one line that names the path and what it is.
TEST(KeyFile, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  fs::create_directory(dir / "dir");
  make_socket_file(dir / "sock");
  fs::create_symlink(dir / "fifo", dir / "link");
  struct Case {
    std::string path;
    std::string says;
  };
  const std::vector<Case> cases = {
      {dir / "fifo", "is a FIFO"},
      {dir / "dir", "is a directory"},
      {"/dev/null", "is a character device"},
      {dir / "sock", "is a socket"},
      {dir / "link", "is a FIFO"},  // a symlink is followed: what counts is what it points to
  };
  for (const auto& c : cases) {
    const auto started = std::chrono::steady_clock::now();
    auto keys = read_key_file(c.path);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2)) << c.path;
    ASSERT_FALSE(keys.ok()) << c.path;
    EXPECT_EQ(keys.error().code, ErrorCode::kInvalidKey) << c.path;
    EXPECT_NE(keys.error().message.find("key file " + c.path + " " + c.says), std::string::npos)
        << c.path << ": " << keys.error().message;
    EXPECT_EQ(keys.error().message.find('\n'), std::string::npos) << c.path << ": not one line";
  }
}

// Readable by others (o+r): the keys load and the warning names the path and the chmod to run.
TEST(KeyFile, WarnsWhenOthersMayRead) {
  TempDir dir;
  struct Case {
    unsigned mode;
    bool warns;
  };
  for (const Case c : {Case{0600, false}, Case{0400, false}, Case{0640, false}, Case{0604, true},
                       Case{0644, true}, Case{0444, true}}) {
    const std::string path = dir / "key";
    write_key(path, c.mode);
    auto contents = read_key_file(path);
    ASSERT_TRUE(contents.ok()) << std::oct << c.mode;
    EXPECT_EQ(contents->keys.size(), 1U);
    EXPECT_EQ(!contents->access_warning.empty(), c.warns)
        << std::oct << c.mode << ": " << contents->access_warning;
    if (c.warns) {
      EXPECT_NE(contents->access_warning.find("chmod o-r " + path), std::string::npos)
          << contents->access_warning;
    }
    fs::remove(path);
  }
}

TEST(KeyFile, WarningQuotesAPathForTheShell) {
  EXPECT_EQ(key_file_access_warning("/k", 0600), "");
  EXPECT_EQ(
      key_file_access_warning("/run/secrets/key", 0100644),
      "key file /run/secrets/key is readable by every user on this host (mode 0644): run chmod o-r "
      "/run/secrets/key (or chmod 600 /run/secrets/key)");
  const std::string w = key_file_access_warning("/tmp/my key's", 0644);
  EXPECT_NE(w.find("chmod o-r '/tmp/my key'\\''s'"), std::string::npos) << w;
}

// A reload applies the same check: the file replaced by a FIFO is refused at once and the keys
// held stay in force.
TEST(KeyRing, RefusesAFileReplacedByAFifo) {
  TempDir dir;
  const std::string path = dir / "key";
  write_key(path, 0600);
  auto ring = KeyRing::load(path);
  ASSERT_TRUE(ring.ok()) << ring.error().message;
  EXPECT_EQ((*ring)->access_warning(), "");
  const KeySet before = (*ring)->keys();
  fs::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const auto started = std::chrono::steady_clock::now();
  auto refreshed = (*ring)->refresh();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  ASSERT_FALSE(refreshed.ok());
  EXPECT_EQ(refreshed.error().code, ErrorCode::kInvalidKey);
  EXPECT_NE(refreshed.error().message.find("is a FIFO"), std::string::npos)
      << refreshed.error().message;
  EXPECT_EQ((*ring)->keys(), before);
  fs::remove(path);
  write_key(path, 0644);  // back, but readable by all: reloaded, and the warning is there
  ASSERT_TRUE((*ring)->refresh().ok());
  EXPECT_NE((*ring)->access_warning().find("chmod o-r " + path), std::string::npos);
}

TEST(KeyFile, GeneratedKeysParse) {
  auto text = generate_key_text();
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->size(), 44U);
  EXPECT_TRUE(parse_key_text(*text, "gen").ok());
}

}  // namespace
}  // namespace transfer
