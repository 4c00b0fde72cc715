// Units behind the operations endpoints: metrics text, JSON log lines, the reloading key ring,
// the /files listing over a real ledger, TLS file checks and the sender's operator commands.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>
#include <thread>

#include "ledger_api.hpp"
#include "file_identity.hpp"
#include "outbox_store.hpp"
#include "sender_admin.hpp"
#include "transfer/key_ring.hpp"
#include "transfer/logging.hpp"
#include "transfer/metrics.hpp"
#include "transfer/readiness.hpp"
#include "transfer/tls_files.hpp"
#include "transfer/upload_ledger.hpp"

namespace transfer {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/transfer-ops-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

constexpr const char* kKeyA = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
constexpr const char* kKeyB = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

TEST(Metrics, RendersCountersGaugesAndCumulativeHistograms) {
  MetricsRegistry r;
  auto& uploads = r.counter("x_uploads_total", "Uploads\nanswered", {"outcome", "code"});
  uploads.with({"accepted", "201"}).add();
  uploads.with({"accepted", "201"}).add(2);
  uploads.with({"rej\"ected", "4\\00"}).add();
  r.gauge("x_in_flight", "In flight").get().set(2.5);
  auto& h = r.histogram("x_seconds", "Latency", {0.1, 1}).get();
  for (const double v : {0.05, 0.1, 0.5, 7.0}) h.observe(v);
  r.gauge_callback("x_free_bytes", "Free", [] { return 1e12; });
  const std::string text = r.render();
  const char* expected[] = {
      "# HELP x_uploads_total Uploads\\nanswered\n# TYPE x_uploads_total counter\n",
      "x_uploads_total{outcome=\"accepted\",code=\"201\"} 3\n",
      "x_uploads_total{outcome=\"rej\\\"ected\",code=\"4\\\\00\"} 1\n",
      "# TYPE x_in_flight gauge\nx_in_flight 2.5\n",
      "x_seconds_bucket{le=\"0.1\"} 2\nx_seconds_bucket{le=\"1\"} 3\nx_seconds_bucket{le=\"+Inf\"} 4\n",
      "x_seconds_sum 7.65\nx_seconds_count 4\n",
      "# TYPE x_free_bytes gauge\nx_free_bytes 1000000000000\n"};
  for (const char* e : expected) EXPECT_NE(text.find(e), std::string::npos) << e << "\nin:\n" << text;
}

TEST(Metrics, CountsFromManyThreadsAddUp) {
  MetricsRegistry r;
  auto& c = r.counter("x_total", "X", {"k"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < 10000; ++i) c.with({std::to_string(t % 2)}).add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.with({"0"}).value() + c.with({"1"}).value(), 40000);
}

TEST(JsonLog, SplitsEventAndTypedFields) {
  const auto line = nlohmann::json::parse(json_log_line(
      "2026-01-01T00:00:00.000Z", "warning", "receiver",
      "upload rejected name=\"a b\" transfer_id=ab12 status=422 ms=1.5 reason=\"bad \\\"token\\\"\\x0a\" "
      "duplicate=true level=x (trailing words)"));
  EXPECT_EQ(line["time"], "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(line["level"], "warn");
  EXPECT_EQ(line["logger"], "receiver");
  EXPECT_EQ(line["event"], "upload rejected");
  EXPECT_EQ(line["name"], "a b");
  EXPECT_EQ(line["transfer_id"], "ab12");
  EXPECT_EQ(line["status"], 422);
  EXPECT_DOUBLE_EQ(line["ms"].get<double>(), 1.5);
  EXPECT_EQ(line["reason"], "bad \"token\"\n");
  EXPECT_EQ(line["duplicate"], true);
  EXPECT_EQ(line["field_level"], "x");
  EXPECT_EQ(line["detail"], "(trailing words)");
}

TEST(JsonLog, NeverThrowsOnOddText) {
  for (const char* msg : {"", "=", "a=\"unterminated", "k=\"\\x", "k=\"\\xZZ\"", "x =1", "\xff\xfe k=\xff",
                          "a=007 b=-1.5 c=1e999 d=.5"}) {
    const std::string line = json_log_line("t", "info", "n", msg);
    EXPECT_TRUE(nlohmann::json::accept(line)) << msg << " -> " << line;
  }
  EXPECT_EQ(nlohmann::json::parse(json_log_line("t", "info", "n", "a=007"))["a"], "007");
}

TEST(KeyRing, ReloadsAChangedFileAndKeepsKeysWhenItBreaks) {
  TempDir dir;
  const std::string path = dir / "key";
  write(path, std::string(kKeyA) + "\n");
  auto ring = KeyRing::load(path);
  ASSERT_TRUE(ring.ok()) << ring.error().message;
  auto& r = **ring;
  EXPECT_EQ(r.keys()->size(), 1U);
  EXPECT_FALSE(*r.refresh());  // unchanged
  write(path, std::string(kKeyB) + "\n" + kKeyA + "\n");  // the new key first, the old one kept
  ASSERT_TRUE(r.refresh().ok());
  ASSERT_EQ(r.keys()->size(), 2U);
  EXPECT_EQ(r.keys()->at(1).signing_key, parse_key_text(kKeyA, "a")->at(0).signing_key);
  const KeySet before = r.keys();
  write(path, "not a key\n");
  auto broken = r.refresh();
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message.find("not a key"), std::string::npos) << "key file text leaked";
  EXPECT_TRUE(r.error().has_value());
  EXPECT_EQ(r.keys(), before);  // still the last good keys
  fs::remove(path);
  EXPECT_FALSE(r.refresh().ok());
  write(path, std::string(kKeyB) + "\n");
  ASSERT_TRUE(r.refresh().ok());
  EXPECT_FALSE(r.error().has_value());
  EXPECT_EQ(r.keys()->size(), 1U);
}

TEST(Readiness, NamesEachFailingCheck) {
  Readiness r;
  r.add("key", ok_status(), "1 key");
  r.add("database", make_error(ErrorCode::kDatabase, "locked"), "ledger answers");
  EXPECT_EQ(r.http_status(), 503);
  const auto j = nlohmann::json::parse(r.json());
  EXPECT_EQ(j["status"], "not ready");
  EXPECT_EQ(j["failing"], nlohmann::json::array({"database"}));
  EXPECT_EQ(j["checks"]["database"]["detail"], "locked");
  EXPECT_EQ(j["checks"]["key"]["ok"], true);
  TempDir dir;
  EXPECT_TRUE(check_directory_writable(dir.path()).ok());
  EXPECT_FALSE(check_directory_writable(dir / "missing").ok());
  EXPECT_GT(*free_bytes(dir.path()), 0U);
}

TEST(LedgerApi, PagesThroughDeliveriesAndFindsOne) {
  TempDir dir;
  auto ledger = UploadLedger::open(dir / "receiver.db");
  ASSERT_TRUE(ledger.ok());
  for (int i = 0; i < 5; ++i) {
    Delivery d;
    d.output_path = "/out/f" + std::to_string(i) + ".xml";
    d.name = "f" + std::to_string(i);
    d.sha256 = std::string(64, static_cast<char>('a' + i));
    d.bytes = 100 + i;
    d.key_index = i % 2;
    ASSERT_TRUE(ledger->record_delivery(d, "peer").ok());
  }
  std::vector<std::string> seen;
  std::map<std::string, std::string> query = {{"limit", "2"}};
  for (int page = 0; page < 5; ++page) {
    const auto res = receiver::list_files(*ledger, query);
    ASSERT_EQ(res.status, 200) << res.body;
    const auto j = nlohmann::json::parse(res.body);
    for (const auto& f : j["files"]) seen.push_back(f["file"]);
    EXPECT_LE(j["files"].size(), 2U);
    if (j["next"].is_null()) break;
    query["after"] = j["next"];
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"f0.xml", "f1.xml", "f2.xml", "f3.xml", "f4.xml"}));
  for (const char* bad : {"0", "1001", "x", "-1"}) {
    EXPECT_EQ(receiver::list_files(*ledger, {{"limit", bad}}).status, 400) << bad;
  }
  EXPECT_EQ(receiver::list_files(*ledger, {{"after", "zz"}}).status, 400);
  const auto one = nlohmann::json::parse(receiver::describe_file(*ledger, "f3.xml").body);
  EXPECT_EQ(one["name"], "f3");
  EXPECT_EQ(one["bytes"], 103);
  EXPECT_EQ(one["key_index"], 1);
  EXPECT_EQ(one["sha256"], std::string(64, 'd'));
  EXPECT_EQ(nlohmann::json::parse(receiver::describe_file(*ledger, "f2").body)["file"], "f2.xml");
  EXPECT_EQ(receiver::describe_file(*ledger, "f9").status, 404);
  EXPECT_EQ(receiver::describe_file(*ledger, "%").status, 404);  // no LIKE wildcard
}

TEST(TlsFiles, ExplainsWhatIsWrongWithoutShowingContent) {
  TempDir dir;
  write(dir / "junk.pem", "secret-material\n");
  auto st = check_tls_files({dir / "junk.pem", dir / "junk.pem", ""}, "TLS_CERT_FILE", "TLS_KEY_FILE", "CLIENT_CA_FILE");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("TLS_CERT_FILE"), std::string::npos);
  EXPECT_EQ(st.error().message.find("secret-material"), std::string::npos);
  st = check_tls_files({dir / "missing.pem", dir / "k.pem", ""}, "C", "K", "CA");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("missing.pem"), std::string::npos);
  EXPECT_FALSE(check_tls_files({dir / "junk.pem", "", ""}, "C", "K", "CA").ok());  // cert without key
  EXPECT_FALSE(check_tls_files({"", "", dir / "junk.pem"}, "C", "K", "CA").ok());
  EXPECT_TRUE(check_tls_files({"", "", ""}, "C", "K", "CA").ok());
}

class AdminCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "in");
    fs::create_directories(dir_ / "state");
    auto store = OutboxStore::open(dir_ / "state/sender.db");
    ASSERT_TRUE(store.ok());
    store_.emplace(std::move(*store));
  }
  int run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    args.insert(args.end(), {"--input-dir", dir_ / "in", "--status-db-path", dir_ / "state"});
    auto code = sender::run_admin_command(args, [](const std::string&) { return std::nullopt; }, out_, err_);
    return code ? *code : -1;
  }
  TempDir dir_;
  std::optional<OutboxStore> store_;
  std::ostringstream out_, err_;
};

TEST_F(AdminCommand, StatusRetryForgetAndVerify) {
  ASSERT_TRUE(store_->record_seen("a.json", "h1", 1, 1).ok());
  ASSERT_TRUE(store_->mark_failed("a.json", "h1", FailureRecord{"connection refused", 0, "", 1, 9e9}).ok());
  ASSERT_TRUE(store_->record_seen("b.json", "h2", 1, 1).ok());
  ASSERT_TRUE(store_->mark_delivered("b.json", "h2", 201, "{}").ok());
  write(dir_ / "in/q.json", "{");
  fs::create_directories(dir_ / "in/.quarantine");
  fs::rename(dir_ / "in/q.json", dir_ / "in/.quarantine/q.json");
  ASSERT_TRUE(store_->record_seen("q.json", "h3", 1, 1).ok());
  ASSERT_TRUE(store_->mark_quarantined("q.json", "h3", FailureRecord{"JSON parse error", 0, "", 1, 0},
                                       dir_ / "in/.quarantine/q.json").ok());

  EXPECT_EQ(run({"status", "--json"}), 0) << err_.str();
  const auto status = nlohmann::json::parse(out_.str());
  EXPECT_EQ(status["counts"]["failed"], 1);
  EXPECT_EQ(status["counts"]["delivered"], 1);
  EXPECT_EQ(status["counts"]["quarantined"], 1);
  EXPECT_EQ(status["oldest_pending"]["name"], "a.json");
  EXPECT_EQ(status["last_errors"].size(), 2U);
  EXPECT_EQ(run({"status"}), 0);
  EXPECT_NE(out_.str().find("connection refused"), std::string::npos) << out_.str();

  EXPECT_EQ(run({"retry", "nope.json"}), 1);
  EXPECT_EQ(run({"retry", "../x"}), 2);
  EXPECT_EQ(run({"retry", "q.json"}), 0) << err_.str();
  EXPECT_TRUE(fs::exists(dir_ / "in/q.json"));  // moved back from quarantine
  EXPECT_EQ((*store_->find("q.json", "h3"))->state, OutboxState::kPending);
  EXPECT_EQ(run({"retry", "--all-failed"}), 0) << err_.str();
  auto a = **store_->find("a.json", "h1");
  EXPECT_EQ(a.state, OutboxState::kPending);
  EXPECT_EQ(a.next_attempt_unix, 0);

  EXPECT_EQ(run({"verify", "--json"}), 0) << out_.str();
  EXPECT_TRUE(nlohmann::json::parse(out_.str())["ok"].get<bool>());
  ASSERT_TRUE(store_->mark_quarantined("a.json", "h1", FailureRecord{"x", 0, "", 1, 0}, dir_ / "in/.quarantine/gone.json").ok());
  EXPECT_EQ(run({"verify"}), 1);
  EXPECT_NE(out_.str().find("problem: a.json"), std::string::npos) << out_.str();

  EXPECT_EQ(run({"forget", "a.json"}), 0) << err_.str();
  EXPECT_FALSE(store_->find("a.json", "h1")->has_value());
  EXPECT_EQ(run({"forget", "a.json"}), 1);
  EXPECT_EQ(run({"verify"}), 0) << out_.str();
  EXPECT_FALSE(sender::run_admin_command({"--once"}, [](const std::string&) { return std::nullopt; }, out_, err_));
}

// Names are someone else's text: the table escapes them (no screen cleared, no line forged, no
// text reordered); --json carries them as they are.
TEST_F(AdminCommand, StatusTextEscapesNamesAndJsonKeepsThem) {
  const std::vector<std::pair<std::string, std::string>> names = {
      {"\x1b[2Jx.json", R"("\x1b[2Jx.json")"},
      {"a\nforged line.json", R"("a\nforged line.json")"},
      {"invoice\u202egpj.json", R"("invoice\u202egpj.json")"},
      {"plain.json", "plain.json"},
  };
  for (const auto& [name, shown] : names) {
    ASSERT_TRUE(store_->record_seen(name, "h", 1, 1).ok());
    ASSERT_TRUE(store_->mark_quarantined(name, "h", FailureRecord{name + ": invalid JSON\x1b[0m", 0, "", 1, 0}, "").ok());
  }
  ASSERT_TRUE(store_->record_seen("\x1b]0;title\x07p.json", "h", 1, 1).ok());  // oldest pending
  EXPECT_EQ(run({"status"}), 0) << err_.str();
  const std::string text = out_.str();
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_EQ(text.find("\u202e"), std::string::npos) << text;
  EXPECT_EQ(text.find("\nforged"), std::string::npos) << text;
  for (const auto& [name, shown] : names) {
    EXPECT_NE(text.find(" " + shown + " "), std::string::npos) << shown << "\n" << text;
  }
  EXPECT_NE(text.find(R"(oldest pending: "\x1b]0;title\x07p.json" (seen )"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(: invalid JSON\x1b[0m)"), std::string::npos) << text;  // errors escaped, unquoted

  EXPECT_EQ(run({"status", "--json"}), 0) << err_.str();
  std::set<std::string> listed;
  const auto status = nlohmann::json::parse(out_.str());
  for (const auto& e : status["last_errors"]) listed.insert(e["name"].get<std::string>());
  for (const auto& [name, shown] : names) EXPECT_TRUE(listed.count(name)) << shown;
}

// A file refused before it was hashed has a row under kUnhashed: `sender retry` drops that row
// (the file is screened afresh, and a version that then passes gets rows of its own) instead of
// leaving it pending for ever.
TEST_F(AdminCommand, RetryOfAFileRefusedBeforeHashingDropsItsRecord) {
  fs::create_directories(dir_ / "in/.quarantine");
  write(dir_ / "in/.quarantine/big.json", "{}");
  ASSERT_TRUE(store_->record_seen("big.json", sender::kUnhashed, 2, 1).ok());
  ASSERT_TRUE(store_->mark_quarantined("big.json", sender::kUnhashed,
                                       FailureRecord{"big.json: refused: 2 bytes, more than MAX_INPUT_BYTES=1", 0, "", 1, 0},
                                       dir_ / "in/.quarantine/big.json")
                  .ok());
  EXPECT_EQ(run({"retry", "--all-failed"}), 0) << err_.str();
  EXPECT_TRUE(fs::exists(dir_ / "in/big.json"));  // moved back
  EXPECT_NE(out_.str().find("big.json: refused before hashing; its record for destination default is dropped"),
            std::string::npos)
      << out_.str();
  EXPECT_FALSE(store_->find("big.json", sender::kUnhashed)->has_value());
  EXPECT_EQ(run({"status", "--json"}), 0);
  EXPECT_EQ(nlohmann::json::parse(out_.str())["counts"]["pending"], 0);
}

}  // namespace
}  // namespace transfer
