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
       "destination 1 (a): 'retries' is not a field"},
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

TEST(Destinations, EachTypeTakesItsFieldsAndStoresUnderItsTemplate) {
  auto list = parse(R"({"destinations": [
    {"name": "bucket", "type": "s3", "endpoint": "http://127.0.0.1:7480/", "bucket": "ingest",
     "prefix": "in/", "path_style": true, "access_key_file": "/creds/ak", "secret_key_file": "/creds/sk",
     "key_file": "/keys/a", "part_size": "5M", "multipart_threshold": 8388608},
    {"name": "partner", "type": "sftp", "host": "sftp.example", "user": "drop",
     "private_key_file": "/creds/id", "known_hosts_file": "/creds/kh", "remote_dir": "upload",
     "payload": "xml", "on_conflict": "fail", "name_template": "{yyyy}-{mm}-{dd}_{name}.xml"},
    {"name": "legacy", "type": "ftps", "host": "ftp.example", "port": 2121, "user": "u",
     "password_file": "/creds/pw", "remote_dir": "/in", "key_file": "/keys/b", "tls": false}
  ]})");
  ASSERT_TRUE(list) << list.error().message;
  const Destination& s3 = (*list)[0];
  EXPECT_EQ(s3.type, DestinationType::kS3);
  EXPECT_EQ(s3.s3.endpoint, "http://127.0.0.1:7480");
  EXPECT_EQ(s3.s3.region, "us-east-1");
  EXPECT_TRUE(s3.s3.path_style);
  EXPECT_EQ(s3.s3.part_size, 5u << 20);
  EXPECT_EQ(s3.s3.multipart_threshold, 8u << 20);
  EXPECT_EQ(s3.url(), "s3://ingest/in/");
  EXPECT_EQ(s3.name_template.render("books", {2026, 12, 7}), "books.xml.fernet");
  EXPECT_TRUE(s3.ca_file.empty()) << "the global CA_FILE is for receivers";
  const Destination& sftp = (*list)[1];
  EXPECT_EQ(sftp.payload, PayloadKind::kXml);
  EXPECT_EQ(sftp.sftp.port, 22);
  EXPECT_EQ(sftp.sftp.on_conflict, OnConflict::kFail);
  EXPECT_TRUE(sftp.key_file.empty());
  EXPECT_EQ(sftp.name_template.render("books", {2026, 1, 7}), "2026-01-07_books.xml");
  EXPECT_EQ(sftp.url(), "sftp://drop@sftp.example:22/upload");
  const Destination& ftp = (*list)[2];
  EXPECT_FALSE(ftp.ftps.tls);
  EXPECT_EQ(ftp.url(), "ftp://u@ftp.example:2121/in");
  EXPECT_EQ(ftp.files(), (std::vector<std::pair<std::string, std::string>>{
                             {"key_file", "/keys/b"}, {"password_file", "/creds/pw"}}));
}

TEST(Destinations, TypeFieldsAreRefusedWithTheFieldNamed) {
  const std::string s3 =
      R"("name": "b", "type": "s3", "endpoint": "http://h:1", "bucket": "bkt", "access_key_file": "/creds/a", "secret_key_file": "/creds/s", "key_file": "/keys/a")";
  const std::string sftp =
      R"("name": "p", "type": "sftp", "host": "h", "user": "u", "private_key_file": "/creds/i", "known_hosts_file": "/creds/k", "remote_dir": "d", "key_file": "/keys/a")";
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {R"({"destinations": [{"name": "x", "type": "webdav", "url": "http://h:1/u", "key_file": "/keys/a"}]})",
       "type 'webdav' is not a type"},
      {"{\"destinations\": [{" + s3 + R"(, "url": "http://h:1/u"}]})",
       "'url' is not a field of a s3 destination"},
      {R"({"destinations": [{"name": "x", "url": "http://h:1/u", "key_file": "/keys/a", "bucket": "b"}]})",
       "'bucket' is not a field of a receiver destination"},
      {R"({"destinations": [{"name": "x", "url": "http://h:1/u", "payload": "xml"}]})",
       "payload must be fernet for a receiver"},
      {R"({"destinations": [{"name": "x", "url": "http://h:1/u", "payload": "zip", "key_file": "/keys/a"}]})",
       "payload must be fernet or xml"},
      {"{\"destinations\": [{" + s3 + R"(, "bucket": "A_B"}]})", "bucket 'A_B' is not a bucket name"},
      {"{\"destinations\": [{" + s3 + R"(, "endpoint": "ftp://h"}]})", "endpoint must start with"},
      {"{\"destinations\": [{" + s3 + R"(, "part_size": "1M"}]})", "part_size must be between"},
      {"{\"destinations\": [{" + s3 + R"(, "secret_key_file": "/missing/s"}]})",
       "secret_key_file /missing/s: No such file"},
      {"{\"destinations\": [{" + s3 + R"(, "name_template": "../{name}"}]})",
       "name_template '../{name}' has an empty, '.' or '..' part"},
      {"{\"destinations\": [{" + s3 + R"(, "name_template": "/abs/{name}"}]})",
       "name_template '/abs/{name}' is an absolute path"},
      {"{\"destinations\": [{" + s3 + R"(, "name_template": "a//{name}"}]})", "has an empty"},
      {"{\"destinations\": [{" + s3 + R"(, "name_template": "{yyyy}.xml"}]})", "{name} exactly once"},
      {"{\"destinations\": [{" + s3 + R"(, "name_template": "{name}{host}"}]})", "unknown placeholder"},
      {"{\"destinations\": [{" + sftp + R"(, "name_template": "{yyyy}/{name}.xml"}]})",
       "has a '/': an sftp destination stores files in remote_dir itself"},
      {"{\"destinations\": [{" + sftp + R"(, "on_conflict": "rename"}]})",
       "on_conflict must be overwrite or fail"},
      {R"({"destinations": [{"name": "p", "type": "sftp", "host": "h", "user": "u", "private_key_file": "/creds/i", "remote_dir": "d", "key_file": "/keys/a"}]})",
       "known_hosts_file is missing"},
      {"{\"destinations\": [{" + sftp + R"(, "payload": "xml"}]})",
       "key_file is not used with payload xml"},
      {R"({"destinations": [{"name": "f", "type": "ftps", "host": "h", "user": "u", "password_file": "/creds/p", "remote_dir": "d", "key_file": "/keys/a", "tls": false, "ca_file": "/tls/ca"}]})",
       "ca_file needs tls"},
  };
  for (const auto& c : cases) {
    auto r = parse(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.text << "\n  got: " << r.error().message;
  }
}

TEST(NameTemplate, PlaceholdersAndDates) {
  auto t = NameTemplate::parse("{yyyy}-{mm}/{name}.{dd}.xml");
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->render("a.b", {2026, 3, 9}), "2026-03/a.b.09.xml");
  EXPECT_EQ(NameTemplate::default_for(false).render("n", {}), "n.xml");
  const CivilDate d = utc_date_of(1'796'083'200);  // 2026-12-01T00:00:00Z
  EXPECT_EQ(d.year, 2026);
  EXPECT_EQ(d.month, 12);
  EXPECT_EQ(d.day, 1);
  for (const char* bad : {"", "{name}/..", "./{name}", "{name}\\x", "{nam}", "{name}}", "{name}{name}"}) {
    EXPECT_FALSE(NameTemplate::parse(bad)) << bad;
  }
}

}  // namespace
}  // namespace transfer::sender
