// The payload (issue 14): one conversion of a file version for several destinations' keys.
#include "payload.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "transfer/key_file.hpp"

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

}  // namespace
}  // namespace transfer::sender
