// The payload (issue 14): one conversion of a file version for several destinations' keys.
#include "payload.hpp"
#include "destination_client.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "transfer/key_file.hpp"
#include "transfer/sha256.hpp"

namespace transfer::sender {
namespace {

namespace fs = std::filesystem;

// Counts how often the converter reads the input through (a rewind starts another pass).
class CountingSource : public JsonSource {
 public:
  explicit CountingSource(std::string json) : json_(std::move(json)) {}
  Result<size_t> read(char* buf, size_t cap) override {
    if (at_ == 0) ++passes;
    const size_t n = std::min(cap, json_.size() - at_);
    std::copy_n(json_.data() + at_, n, buf);
    at_ += n;
    return n;
  }
  Status rewind() override {
    at_ = 0;
    return ok_status();
  }
  int passes = 0;

 private:
  std::string json_;
  size_t at_ = 0;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Payload, OneConversionFeedsOneSpoolPerDestinationKey) {
  const fs::path dir = fs::temp_directory_path() / ("payload_test." + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::string json = "{\"items\": [";
  for (int i = 0; i < 5000; ++i)
    json += (i ? "," : "") + std::string("{\"id\": ") + std::to_string(i) + ", \"s\": \"x<y\"}";
  json += "]}";

  std::vector<FernetKey> keys;
  std::vector<std::unique_ptr<TokenSpoolSink>> spools;
  std::vector<XmlSink*> sinks;
  for (int d = 0; d < 3; ++d) {
    auto text = generate_key_text();
    ASSERT_TRUE(text);
    auto parsed = parse_key_text(*text, "test key");
    ASSERT_TRUE(parsed);
    const FernetKey key = parsed->front();
    keys.push_back(key);
    auto temp = create_temp_file(dir.string(), "xml");
    ASSERT_TRUE(temp);
    spools.push_back(std::make_unique<TokenSpoolSink>(std::move(*temp), key, /*threaded=*/d == 1,
                                                      /*hash=*/false));
    sinks.push_back(spools.back().get());
  }
  TeeXmlSink tee(sinks);
  CountingSource source(json);
  auto stats = convert_json_to_xml(source, tee, JsonToXmlOptions{}, "doc.json");
  ASSERT_TRUE(stats) << stats.error().message;
  EXPECT_EQ(source.passes, 1);  // converted once for three destinations

  auto expected = json_to_xml(json, JsonToXmlOptions{}, "doc.json");
  ASSERT_TRUE(expected);
  Sha256 h;
  h.update(expected->data(), expected->size());
  EXPECT_EQ(tee.sha256(), h.hex_digest());  // hashed once, over the one XML
  for (int d = 0; d < 3; ++d) {
    ASSERT_TRUE(spools[d]->finish());
    const std::string token = slurp(spools[d]->path());
    EXPECT_EQ(token.size(), spools[d]->token_bytes());
    EXPECT_EQ(token.size(), fernet_token_length(stats->xml_bytes));
    auto plain = fernet_decrypt({keys[d]}, token);
    ASSERT_TRUE(plain) << d << ": " << plain.error().message;
    EXPECT_EQ(*plain, *expected) << d;
    for (int other = 0; other < 3; ++other) {
      if (other != d) {
        EXPECT_FALSE(fernet_decrypt({keys[other]}, token)) << d << " opened by " << other;
      }
    }
  }
  spools.clear();  // each removes its spool file
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

FernetKey new_key() {
  auto text = generate_key_text();
  auto parsed = parse_key_text(*text, "test key");
  return parsed->front();
}

std::string sha_of(const std::string& s) {
  Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

// A file version on disk, its FilePayload::Source, and a spool directory.
struct PayloadFixture {
  PayloadFixture() {
    dir = fs::temp_directory_path() / ("file_payload_test." + std::to_string(::getpid()));
    fs::create_directories(dir / "spool");
  }
  ~PayloadFixture() { fs::remove_all(dir); }
  FilePayload::Source write(const std::string& name, const std::string& json) {
    const std::string path = (dir / name).string();
    std::ofstream(path, std::ios::binary) << json;
    struct stat st {};
    ::stat(path.c_str(), &st);
    return FilePayload::Source{name, path, sha_of(json), static_cast<int64_t>(st.st_size),
                               static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                   st.st_mtim.tv_nsec,
                               std::nullopt};
  }
  std::unique_ptr<FilePayload> payload(FilePayload::Source source, int64_t in_memory_limit,
                                       std::vector<std::string> destinations = {"a", "b", "c"}) {
    return std::make_unique<FilePayload>(std::move(source), std::move(destinations),
                                         JsonToXmlOptions{}, (dir / "spool").string(),
                                         in_memory_limit, /*encrypt_beside_size=*/1 << 20, cancel);
  }
  fs::path dir;
  std::atomic<bool> cancel{false};
};

std::string big_json() {
  std::string json = "{\"rows\": [";
  for (int i = 0; i < 20000; ++i)
    json += (i ? "," : "") + std::string("{\"n\": ") + std::to_string(i) + ", \"t\": \"a&b\"}";
  return json + "]}";
}

TEST(FilePayload, ThreeDestinationsPreparingAtOnceShareOneConversionOfALargeFile) {
  PayloadFixture f;
  const std::string json = big_json();
  auto payload = f.payload(f.write("big.json", json), /*in_memory_limit=*/1024);
  std::map<std::string, FernetKey> keys{{"a", new_key()}, {"b", new_key()}, {"c", new_key()}};
  std::atomic<int> keys_asked{0};
  std::vector<std::thread> uploads;
  std::vector<PayloadStatus> statuses(3);
  for (int d = 0; d < 3; ++d) {
    uploads.emplace_back([&, d] {
      statuses[d] = payload->prepare([&](const std::string& name) {
        ++keys_asked;
        return keys.at(name);
      });
    });
  }
  for (auto& t : uploads) t.join();
  for (auto s : statuses) EXPECT_EQ(s, PayloadStatus::kReady) << payload->error();
  EXPECT_EQ(payload->conversions(), 1);  // one conversion for three destinations
  EXPECT_EQ(keys_asked.load(), 3);       // one token per destination key
  EXPECT_FALSE(payload->in_memory());
  auto expected = json_to_xml(json, JsonToXmlOptions{}, "big.json");
  ASSERT_TRUE(expected);
  EXPECT_EQ(payload->xml_sha256(), sha_of(*expected));
  for (const auto& [name, key] : keys) {
    TokenSpoolSink* spool = payload->spool(name);
    ASSERT_NE(spool, nullptr) << name;
    auto plain = fernet_decrypt({key}, slurp(spool->path()));
    ASSERT_TRUE(plain) << name << ": " << plain.error().message;
    EXPECT_EQ(*plain, *expected) << name;
  }
  EXPECT_EQ(payload->spool("other"), nullptr);
}

// What a store-type destination stores (issue 21): the token for its key, or the XML itself, from
// memory for a small file and from its spool for a large one; read twice the same.
TEST(FilePayload, EachDestinationStoresItsTokenOrThePlainXml) {
  PayloadFixture f;
  const std::string json = big_json();
  auto expected = json_to_xml(json, JsonToXmlOptions{}, "big.json");
  ASSERT_TRUE(expected);
  const FernetKey key = new_key();
  Destination tokens;
  tokens.name = "a";
  Destination plain;
  plain.name = "b";
  plain.payload = PayloadKind::kXml;
  auto read_all = [](StoredBytes& bytes) {
    std::string out(bytes.size() + 7, '?');
    size_t n = 0;
    for (;;) {
      auto got = bytes.read(out.data() + n, 1000);
      EXPECT_TRUE(got.ok());
      if (!got.ok() || *got == 0) break;
      n += *got;
    }
    out.resize(n);
    return out;
  };
  for (const int64_t in_memory_limit : {int64_t{1} << 24, int64_t{1024}}) {
    auto payload = f.payload(f.write("big.json", json), in_memory_limit, {"a", "b"});
    ASSERT_EQ(payload->prepare([&](const std::string& d) -> std::optional<FernetKey> {
      if (d == "b") return std::nullopt;
      return key;
    }), PayloadStatus::kReady) << payload->error();
    auto token = stored_bytes_for(*payload, tokens, key);
    ASSERT_TRUE(token.ok()) << token.error().message;
    EXPECT_EQ((*token)->size(), fernet_token_length(expected->size()));
    const std::string first = read_all(**token);
    ASSERT_TRUE((*token)->rewind().ok());
    EXPECT_EQ(read_all(**token), first) << "read again from the start: the same bytes";
    EXPECT_EQ(*fernet_decrypt({key}, first), *expected);
    auto xml = stored_bytes_for(*payload, plain, key);
    ASSERT_TRUE(xml.ok()) << xml.error().message;
    EXPECT_EQ(read_all(**xml), *expected) << "payload xml: the XML itself";
  }
}

TEST(DestinationClient, AStoresOutcomeIsWhatTheSchedulerReads) {
  struct Case {
    SendFault fault;
    AttemptVerdict verdict;
    bool answered;  // false: the destination yields (unreachable, or unusable as a whole)
  } cases[] = {
      {SendFault::kNone, AttemptVerdict::kDelivered, true},
      {SendFault::kTransient, AttemptVerdict::kTransient, true},
      {SendFault::kPermanent, AttemptVerdict::kPermanent, true},
      {SendFault::kDestination, AttemptVerdict::kTransient, false},
      {SendFault::kUnreachable, AttemptVerdict::kTransient, false},
  };
  for (const auto& c : cases) {
    SendOutcome o;
    o.fault = c.fault;
    o.error = "why";
    o.location = "s3://b/k";
    o.parts = 3;
    o.retry_after_s = 7;
    const DeliveryResult r = delivery_result_of(o, 0.5);
    EXPECT_EQ(r.verdict, c.verdict) << send_fault_name(c.fault);
    EXPECT_EQ(r.answered, c.answered) << send_fault_name(c.fault);
    EXPECT_EQ(r.retry_after, "7");
    if (c.fault == SendFault::kNone) {
      EXPECT_NE(r.body.find("\"parts\":3"), std::string::npos) << r.body;
    } else {
      EXPECT_EQ(r.error, "why");
    }
  }
}

TEST(FilePayload, ASmallFileIsConvertedOnceInMemoryFromTheContentGiven) {
  PayloadFixture f;
  const std::string json = R"({"a": [1, true, null], "b": "x<y"})";
  FilePayload::Source source = f.write("small.json", json);
  source.content = json;
  fs::remove(source.path);  // the bytes given are used: the file is not read again
  auto payload = f.payload(source, 1 << 20);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(payload->prepare([](const std::string&) { return new_key(); }), PayloadStatus::kReady);
  }
  EXPECT_EQ(payload->conversions(), 1);
  EXPECT_TRUE(payload->in_memory());
  auto expected = json_to_xml(json, JsonToXmlOptions{}, "small.json");
  EXPECT_EQ(payload->xml(), *expected);
  EXPECT_EQ(payload->xml_sha256(), sha_of(*expected));
  EXPECT_EQ(payload->upload_name(), "small");  // as the old sender named uploads
}

TEST(FilePayload, AFileNoLongerTheVersionNamedIsChangedOrGone) {
  PayloadFixture f;
  FilePayload::Source small = f.write("s.json", R"({"v": 1})");
  small.sha256 = sha_of(R"({"v": 2})");  // another version than the one on disk
  EXPECT_EQ(f.payload(small, 1 << 20)->prepare([](const std::string&) { return new_key(); }),
            PayloadStatus::kChanged);
  FilePayload::Source large = f.write("l.json", big_json());
  large.sha256 = sha_of("something else");
  EXPECT_EQ(f.payload(large, 1024)->prepare([](const std::string&) { return new_key(); }),
            PayloadStatus::kChanged);
  FilePayload::Source gone = f.write("g.json", big_json());
  fs::remove(gone.path);
  EXPECT_EQ(f.payload(gone, 1024)->prepare([](const std::string&) { return new_key(); }),
            PayloadStatus::kGone);
  EXPECT_TRUE(fs::is_empty(f.dir / "spool"));  // nothing left behind by the failed ones
}

TEST(FilePayload, InvalidJsonTooDeepOrAnUnusableNameIsPermanent) {
  PayloadFixture f;
  auto key = [](const std::string&) { return new_key(); };
  auto invalid = f.payload(f.write("bad.json", "{\"a\": "), 1 << 20);
  EXPECT_EQ(invalid->prepare(key), PayloadStatus::kInvalid);
  EXPECT_NE(invalid->error().find("bad.json"), std::string::npos) << invalid->error();
  std::string deep(300, '[');
  deep += std::string(300, ']');
  EXPECT_EQ(f.payload(f.write("deep.json", deep), 1 << 20)->prepare(key), PayloadStatus::kInvalid);
  EXPECT_EQ(f.payload(f.write("   .json", "{}"), 1 << 20)->prepare(key), PayloadStatus::kInvalid);
}

}  // namespace
}  // namespace transfer::sender
