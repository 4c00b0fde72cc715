// The destinations file (issue 14): what it accepts, what unset fields take, and every refusal
// with the line that names the field.
#include "destinations.hpp"

#include <gtest/gtest.h>

namespace transfer::sender {
namespace {

SenderConfig globals() {
  SenderConfig c;
  c.receiver_address = "127.0.0.1";
  c.receiver_port = 8080;
  c.receiver_uri = "/upload";
  c.key_path = "/keys/default";
  c.upload_concurrency = 4;
  c.retry = RetrySettings{2, 60, 10, 3600};
  c.ca_file = "/tls/global-ca.pem";
  return c;
}

// Key files under /keys/ are usable, /keys/broken is not; every other file is readable except
// under /missing/.
Status fake_files(const std::string& field, const std::string& path) {
  if (path.rfind("/missing/", 0) == 0)
    return make_error(ErrorCode::kInvalidArgument, "No such file or directory");
  if (field == "key_file" && path == "/keys/broken")
    return make_error(ErrorCode::kInvalidKey, "not a Fernet key");
  return ok_status();
}

Result<std::vector<Destination>> parse(const std::string& text) {
  return parse_destinations(text, "DESTINATIONS_FILE d.json", globals(), fake_files);
}

TEST(Destinations, DefaultDestinationIsTheFlatOptions) {
  SenderConfig c = globals();
  c.receiver_scheme = "https";
  const Destination d = default_destination(c);
  EXPECT_EQ(d.name, "default");
  EXPECT_EQ(d.url(), "https://127.0.0.1:8080/upload");
  EXPECT_EQ(d.key_file, "/keys/default");
  EXPECT_EQ(d.ca_file, "/tls/global-ca.pem");
  EXPECT_EQ(d.upload_concurrency, 4);
  EXPECT_EQ(d.retry.max_attempts, 10);
  EXPECT_TRUE(d.enabled);
}

TEST(Destinations, TheIssuesExampleParsesAndUnsetFieldsTakeTheGlobals) {
  auto list = parse(R"({"destinations": [
    {"name": "partner-a", "url": "http://receiver-a:8080/upload", "key_file": "/keys/a"},
    {"name": "archive", "url": "https://archive:8443/upload/", "key_file": "/keys/b",
     "ca_file": "/tls/ca.pem", "upload_concurrency": 1, "max_age": 604800},
    {"name": "v6_old", "url": "http://[::1]/in", "key_file": "/keys/c", "enabled": false,
     "retry_base_delay": 0.5, "retry_max_delay": 5, "max_attempts": 0}
  ]})");
  ASSERT_TRUE(list) << list.error().message;
  ASSERT_EQ(list->size(), 3u);
  const Destination& a = (*list)[0];
  EXPECT_EQ(a.url(), "http://receiver-a:8080/upload");
  EXPECT_EQ(a.key_file, "/keys/a");
  EXPECT_EQ(a.ca_file, "");  // http: the global CA is not used
  EXPECT_EQ(a.upload_concurrency, 4);
  EXPECT_EQ(a.retry.base_delay_s, 2);
  EXPECT_EQ(a.retry.max_age_s, 3600);
  const Destination& b = (*list)[1];
  EXPECT_EQ(b.url(), "https://archive:8443/upload");
  EXPECT_EQ(b.ca_file, "/tls/ca.pem");
  EXPECT_EQ(b.upload_concurrency, 1);
  EXPECT_EQ(b.retry.max_age_s, 604800);
  EXPECT_EQ(b.retry.max_attempts, 10);
  const Destination& c = (*list)[2];
  EXPECT_EQ(c.url(), "http://[::1]:80/in");
  EXPECT_FALSE(c.enabled);
  EXPECT_EQ(c.retry.base_delay_s, 0.5);
  EXPECT_EQ(c.retry.max_delay_s, 5);
  EXPECT_EQ(c.retry.max_attempts, 0);
}

TEST(Destinations, HttpsTakesTheGlobalTlsFilesUnlessItHasItsOwn) {
  auto list = parse(
      R"({"destinations": [{"name": "s", "url": "https://h/upload", "key_file": "/keys/a"}]})");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_EQ((*list)[0].ca_file, "/tls/global-ca.pem");
  EXPECT_EQ((*list)[0].port, 443);
}

TEST(Destinations, EveryRefusalNamesTheFileTheDestinationAndTheField) {
  const std::string a = R"("name": "a", "url": "http://h:1/upload", "key_file": "/keys/a")";
  struct Case {
    std::string text;
    std::string message;
    ErrorCode code = ErrorCode::kInvalidArgument;
  };
  const Case cases[] = {
      {"", "DESTINATIONS_FILE d.json: not JSON"},
      {"[]", "DESTINATIONS_FILE d.json: must be a JSON object"},
      {R"({"destinations": [], "extra": 1})", "DESTINATIONS_FILE d.json: 'extra' is not a field"},
      {R"({"destination": []})", "'destination' is not a field"},
      {R"({})", "\"destinations\" must be a list"},
      {R"({"destinations": {}})", "\"destinations\" must be a list"},
      {R"({"destinations": []})", "\"destinations\" is empty"},
      {R"({"destinations": [7]})", "destination 1: must be an object"},
      {"{\"destinations\": [{" + a + R"(, "retries": 3}]})",
       "destination 1: 'retries' is not a field"},
      {R"({"destinations": [{"url": "http://h/u", "key_file": "/keys/a"}]})",
       "destination 1: name is missing"},
      {R"({"destinations": [{"name": 5, "url": "http://h/u", "key_file": "/keys/a"}]})",
       "destination 1: name must be a string"},
      {R"({"destinations": [{"name": "", "url": "http://h/u", "key_file": "/keys/a"}]})",
       "destination 1: name is empty"},
      {R"({"destinations": [{"name": "Partner A", "url": "http://h/u", "key_file": "/keys/a"}]})",
       "destination 1: name 'Partner A' must be 1 to 32 of a-z 0-9 _ -"},
      {R"({"destinations": [{"name": "abcdefghijklmnopqrstuvwxyz0123456", "url": "http://h/u", "key_file": "/keys/a"}]})",
       "must be 1 to 32"},
      {"{\"destinations\": [{" + a + "}, {" + a + "}]}",
       "destination 2 (a): name 'a' is used twice"},
      {R"({"destinations": [{"name": "a", "key_file": "/keys/a"}]})",
       "destination 1 (a): url is missing"},
      {R"({"destinations": [{"name": "a", "url": "ftp://h/u", "key_file": "/keys/a"}]})",
       "destination 1 (a): url 'ftp://h/u' must start with http:// or https://"},
      {R"({"destinations": [{"name": "a", "url": "receiver:8080", "key_file": "/keys/a"}]})",
       "url 'receiver:8080' is not"},
      {R"({"destinations": [{"name": "a", "url": "http://:80/u", "key_file": "/keys/a"}]})",
       "has no host"},
      {R"({"destinations": [{"name": "a", "url": "http://h:99999/u", "key_file": "/keys/a"}]})",
       "the port must be 1 to 65535"},
      {R"({"destinations": [{"name": "a", "url": "http://h/u?x=1", "key_file": "/keys/a"}]})",
       "no user, query, fragment"},
      {R"({"destinations": [{"name": "a", "url": "http://h/u"}]})",
       "destination 1 (a): key_file is missing"},
      {R"({"destinations": [{"name": "a", "url": "http://h/u", "key_file": "/missing/k"}]})",
       "destination 1 (a): key_file /missing/k: No such file or directory"},
      {R"({"destinations": [{"name": "a", "url": "http://h/u", "key_file": "/keys/broken"}]})",
       "destination 1 (a): key_file /keys/broken: not a Fernet key", ErrorCode::kInvalidKey},
      {"{\"destinations\": [{" + a + R"(, "ca_file": "/tls/ca.pem"}]})",
       "destination 1 (a): ca_file needs an https url"},
      {R"({"destinations": [{"name": "a", "url": "https://h/u", "key_file": "/keys/a", "ca_file": "/missing/ca"}]})",
       "destination 1 (a): ca_file /missing/ca: No such file"},
      {R"({"destinations": [{"name": "a", "url": "https://h/u", "key_file": "/keys/a", "client_cert_file": "/tls/c"}]})",
       "destination 1 (a): client_key_file is missing"},
      {"{\"destinations\": [{" + a + R"(, "upload_concurrency": 0}]})",
       "destination 1 (a): upload_concurrency must be between 1 and 256"},
      {"{\"destinations\": [{" + a + R"(, "upload_concurrency": 1.5}]})",
       "upload_concurrency must be an integer"},
      {"{\"destinations\": [{" + a + R"(, "max_age": "1d"}]})",
       "destination 1 (a): max_age must be a number of seconds"},
      {"{\"destinations\": [{" + a + R"(, "max_age": -1}]})", "max_age must be between 0 and 1e9"},
      {"{\"destinations\": [{" + a + R"(, "max_attempts": -1}]})",
       "max_attempts must be between 0 and"},
      {"{\"destinations\": [{" + a + R"(, "retry_base_delay": 0}]})",
       "retry_base_delay must be between"},
      {"{\"destinations\": [{" + a + R"(, "retry_base_delay": 10, "retry_max_delay": 5}]})",
       "retry_max_delay must be at least retry_base_delay"},
      {"{\"destinations\": [{" + a + R"(, "enabled": "no"}]})",
       "destination 1 (a): enabled must be true or false"},
      {"{\"destinations\": [{" + a + R"(, "enabled": false}]})", "every destination is disabled"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.error().code, c.code) << c.text << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.text << "\n  got: " << r.error().message;
    EXPECT_EQ(r.error().message.find('\n'), std::string::npos) << "one line: " << r.error().message;
  }
}

TEST(Destinations, ADisabledDestinationsFilesAreNotRequired) {
  auto list = parse(R"({"destinations": [
    {"name": "a", "url": "http://h/u", "key_file": "/keys/a"},
    {"name": "old", "url": "http://h/u", "key_file": "/missing/old-key", "enabled": false}]})");
  ASSERT_TRUE(list) << list.error().message;
  EXPECT_FALSE((*list)[1].enabled);
}

}  // namespace
}  // namespace transfer::sender
