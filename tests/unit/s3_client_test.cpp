// The pure parts of the S3 client (s3_protocol.hpp) and its settings' checks. The client against a
// real S3 server: tests/integration/s3_client_test.cpp.
#include "s3_client.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "s3_protocol.hpp"

namespace transfer::sender {
namespace {

S3Settings settings_for(const std::string& endpoint, const std::string& prefix = "") {
  S3Settings s;
  s.endpoint = endpoint;
  s.bucket = "b";
  s.prefix = prefix;
  s.access_key = "AK";
  s.secret_key = "SK";
  return s;
}

Md5Digest md5_of(std::string_view s) {
  Md5 md5;
  md5.update(s);
  return md5.digest();
}

TEST(S3Protocol, ObjectKeyJoinsThePrefixWithOneSlash) {
  struct Case {
    std::string prefix, name, key;
  };
  for (const auto& c : std::vector<Case>{{"", "a.xml", "a.xml"},
                                         {"in", "a.xml", "in/a.xml"},
                                         {"in/", "a.xml", "in/a.xml"},
                                         {"/in/x", "a.xml", "in/x/a.xml"},
                                         {"//", "a.xml", "a.xml"},
                                         {"in", "", "in/"}}) {
    EXPECT_EQ(s3_object_key(c.prefix, c.name), c.key) << c.prefix << " + " << c.name;
  }
}

TEST(S3Protocol, KeysAreEncodedOnceWithSlashesKept) {
  struct Case {
    std::string key, path, query;
  };
  for (const auto& c : std::vector<Case>{
           {"a.xml", "a.xml", "a.xml"},
           {"in/sub dir/a b.xml", "in/sub%20dir/a%20b.xml", "in%2Fsub%20dir%2Fa%20b.xml"},
           {"A-Z_a~z.0", "A-Z_a~z.0", "A-Z_a~z.0"},
           {"x+y=z&w?#%", "x%2By%3Dz%26w%3F%23%25", "x%2By%3Dz%26w%3F%23%25"},
           {"caf\xc3\xa9", "caf%C3%A9", "caf%C3%A9"},
           {"../etc", "../etc", "..%2Fetc"},
           {"a\x01\x7f", "a%01%7F", "a%01%7F"},
       }) {
    EXPECT_EQ(s3_encode_key(c.key), c.path) << c.key;
    EXPECT_EQ(s3_encode_query_component(c.key), c.query) << c.key;
  }
}

TEST(S3Protocol, CanonicalQueryIsSortedEncodedAndKeepsEmptyValues) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> params;
    std::string query;
  };
  for (const auto& c : std::vector<Case>{
           {{}, ""},
           {{{"uploads", ""}}, "uploads="},
           {{{"uploadId", "2~abc/d+e"}, {"partNumber", "3"}},
            "partNumber=3&uploadId=2~abc%2Fd%2Be"},
           {{{"uploads", ""}, {"prefix", "in/a b"}, {"upload-id-marker", "x"}, {"key-marker", "k"}},
            "key-marker=k&prefix=in%2Fa%20b&upload-id-marker=x&uploads="},
           {{{"max-keys", "1"}}, "max-keys=1"},
       }) {
    EXPECT_EQ(s3_canonical_query(c.params), c.query) << c.query;
  }
}

TEST(S3Protocol, DigestsAndEtags) {
  EXPECT_EQ(md5_hex(md5_of("hello")), "5d41402abc4b2a76b9719d911017c592");
  EXPECT_EQ(md5_base64(md5_of("hello")), "XUFAKrxLKna5cZ2REBfFkg==");
  EXPECT_EQ(md5_base64(md5_of("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  // Python: md5(b"".join(md5(p).digest() for p in parts)).hexdigest() + "-%d" % len(parts)
  EXPECT_EQ(s3_multipart_etag({md5_of("hello"), md5_of("world"), md5_of("!")}),
            "0fe6b306db3706d84493a6b930bb5ea8-3");
  EXPECT_EQ(s3_multipart_etag({md5_of("")}), "59adb24ef3cdbe0297f05b395827453f-1");
  // The streaming digest equals the one-shot digest, however the input is cut.
  Md5 pieces;
  pieces.update("hel");
  pieces.update("");
  pieces.update("lo");
  EXPECT_EQ(md5_hex(pieces.digest()), "5d41402abc4b2a76b9719d911017c592");
  EXPECT_EQ(md5_hex(pieces.digest()), "d41d8cd98f00b204e9800998ecf8427e");  // reset: empty
}

TEST(S3Protocol, EtagQuotesAreRemoved) {
  struct Case {
    std::string in, out;
  };
  for (const auto& c : std::vector<Case>{
           {"\"abc\"", "abc"}, {"abc", "abc"}, {"W/\"abc-2\"", "abc-2"}, {"\"", "\""}, {"", ""}}) {
    EXPECT_EQ(s3_unquote_etag(c.in), c.out) << c.in;
  }
}

TEST(S3Protocol, PartCountsAndSizes) {
  constexpr uint64_t kMiB = 1024 * 1024;
  struct Case {
    uint64_t size, wanted, part_size, parts;
  };
  for (const auto& c : std::vector<Case>{
           {40 * kMiB, 5 * kMiB, 5 * kMiB, 8},
           {40 * kMiB + 1, 5 * kMiB, 5 * kMiB, 9},
           {0, 5 * kMiB, 5 * kMiB, 1},
           {1, 8 * kMiB, 8 * kMiB, 1},
           {10000 * 5 * kMiB, 5 * kMiB, 5 * kMiB, 10000},
           // 10,001 parts of 5 MiB: raised to whole MiB so that 10,000 parts suffice.
           {10001 * 5 * kMiB, 5 * kMiB, 6 * kMiB, 8335},
           {1024 * 1024 * kMiB, 8 * kMiB, 105 * kMiB, 9987},  // 1 TiB
       }) {
    const uint64_t part_size = s3_effective_part_size(c.size, c.wanted);
    EXPECT_EQ(part_size, c.part_size) << c.size;
    EXPECT_EQ(s3_part_count(c.size, part_size), c.parts) << c.size;
    EXPECT_LE(s3_part_count(c.size, part_size), 10000U) << c.size;
  }
}

TEST(S3Protocol, ErrorDocuments) {
  struct Case {
    std::string xml;
    bool is_error;
    std::string code, message;
  };
  for (const auto& c : std::vector<Case>{
           // radosgw 16.2: an empty Message.
           {"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>"
            "<Message></Message><RequestId>tx0</RequestId><HostId>1-default</HostId></Error>",
            true, "SignatureDoesNotMatch", ""},
           // AWS: extra elements, whitespace between them.
           {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchBucket</Code>\n"
            "  <Message>The specified bucket does not exist</Message>\n"
            "  <BucketName>b</BucketName>\n</Error>\n",
            true, "NoSuchBucket", "The specified bucket does not exist"},
           {"<Error><Code>SlowDown</Code><Message>a &amp; b</Message></Error>", true, "SlowDown",
            "a & b"},
           {"<Error/>", true, "", ""},
           {"<ListBucketResult><Name>b</Name></ListBucketResult>", false, "", ""},
           {"", false, "", ""},
           {"Service Unavailable", false, "", ""},
           {"<Error><Code>x</Code>", false, "", ""},  // cut short
           // No external entity is loaded and none is substituted.
           {"<!DOCTYPE Error [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
            "<Error><Code>C</Code><Message>&x;</Message></Error>",
            true, "C", ""},
       }) {
    const auto parsed = parse_s3_error(c.xml);
    ASSERT_EQ(parsed.has_value(), c.is_error) << c.xml;
    if (!parsed) continue;
    EXPECT_EQ(parsed->code, c.code) << c.xml;
    EXPECT_EQ(parsed->message, c.message) << c.xml;
  }
}

TEST(S3Protocol, InitiateAndCompleteAnswers) {
  const auto id = parse_initiate_multipart(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Key>in/a.xml</Key>"
      "<UploadId>2~Nf8LSFzVdB</UploadId></InitiateMultipartUploadResult>");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, "2~Nf8LSFzVdB");
  for (const std::string bad : {"", "<InitiateMultipartUploadResult/>", "<Error/>", "nope"}) {
    EXPECT_FALSE(parse_initiate_multipart(bad)) << bad;
  }

  auto done = parse_complete_multipart(
      "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Location>http://h/b/k</Location><Bucket>b</Bucket><Key>k</Key>"
      "<ETag>&quot;0fe6b306db3706d84493a6b930bb5ea8-3&quot;</ETag>"
      "</CompleteMultipartUploadResult>");
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done->etag, "0fe6b306db3706d84493a6b930bb5ea8-3");
  EXPECT_FALSE(done->error);
  // AWS may answer 200 and then an error document.
  done = parse_complete_multipart(
      "<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code><Message>We encountered an "
      "internal error. Please try again.</Message></Error>");
  ASSERT_TRUE(done);
  ASSERT_TRUE(done->error);
  EXPECT_EQ(done->error->code, "InternalError");
  // radosgw 16.2 leaves the ETag empty.
  done = parse_complete_multipart(
      "<CompleteMultipartUploadResult><Location>127.0.0.1/b/k</Location><Bucket>b</Bucket>"
      "<Key>k</Key><ETag></ETag></CompleteMultipartUploadResult>");
  ASSERT_TRUE(done);
  EXPECT_EQ(done->etag, "");
  EXPECT_FALSE(done->error);
  EXPECT_FALSE(parse_complete_multipart("garbage"));
}

TEST(S3Protocol, ListMultipartUploadsPages) {
  auto page = parse_list_multipart_uploads(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
      "<NextKeyMarker>in/b.xml</NextKeyMarker><NextUploadIdMarker>2~y</NextUploadIdMarker>"
      "<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>"
      "<Upload><Key>in/a.xml</Key><UploadId>2~x</UploadId><Initiated>2024-01-02T03:04:05.000Z"
      "</Initiated></Upload><Upload><Key>in/b.xml</Key><UploadId>2~y</UploadId></Upload>"
      "</ListMultipartUploadsResult>");
  ASSERT_TRUE(page) << page.error().message;
  ASSERT_EQ(page->uploads.size(), 2U);
  EXPECT_EQ(page->uploads[0].key, "in/a.xml");
  EXPECT_EQ(page->uploads[0].upload_id, "2~x");
  EXPECT_EQ(page->uploads[0].initiated, "2024-01-02T03:04:05.000Z");
  EXPECT_EQ(page->uploads[1].key, "in/b.xml");
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_key_marker, "in/b.xml");
  EXPECT_EQ(page->next_upload_id_marker, "2~y");

  page = parse_list_multipart_uploads(
      "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
      "</ListMultipartUploadsResult>");
  ASSERT_TRUE(page);
  EXPECT_TRUE(page->uploads.empty());
  EXPECT_FALSE(page->truncated);

  for (const std::string bad :
       {"", "<Error><Code>AccessDenied</Code></Error>",
        "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>"}) {
    EXPECT_FALSE(parse_list_multipart_uploads(bad)) << bad;
  }
}

TEST(S3Protocol, CompleteBodyListsThePartsInOrder) {
  EXPECT_EQ(s3_complete_multipart_body({"\"aa\"", "bb"}),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag></Part>"
            "</CompleteMultipartUpload>\n");
}

TEST(S3Protocol, AnswersAreClassified) {
  struct Case {
    long status;
    std::string code;
    SendFault fault;
  };
  for (const auto& c : std::vector<Case>{
           {503, "SlowDown", SendFault::kTransient},
           {500, "InternalError", SendFault::kTransient},
           {503, "ServiceUnavailable", SendFault::kTransient},
           {502, "", SendFault::kTransient},
           {504, "", SendFault::kTransient},
           {400, "RequestTimeout", SendFault::kTransient},
           {400, "BadDigest", SendFault::kTransient},
           {400, "XAmzContentSHA256Mismatch", SendFault::kTransient},
           {400, "IncompleteBody", SendFault::kTransient},
           {404, "NoSuchUpload", SendFault::kTransient},
           {400, "InvalidPart", SendFault::kTransient},
           {409, "OperationAborted", SendFault::kTransient},
           {429, "", SendFault::kTransient},
           {408, "", SendFault::kTransient},
           {307, "TemporaryRedirect", SendFault::kTransient},
           {200, "InternalError", SendFault::kTransient},  // CompleteMultipartUpload's 200
           {403, "SignatureDoesNotMatch", SendFault::kDestination},
           {403, "InvalidAccessKeyId", SendFault::kDestination},
           {403, "AccessDenied", SendFault::kDestination},
           {403, "RequestTimeTooSkewed", SendFault::kDestination},
           {403, "QuotaExceeded", SendFault::kDestination},
           {403, "Forbidden", SendFault::kDestination},  // a HEAD: no document
           {403, "", SendFault::kDestination},
           {401, "", SendFault::kDestination},
           {404, "NoSuchBucket", SendFault::kDestination},
           {301, "PermanentRedirect", SendFault::kDestination},
           {301, "", SendFault::kDestination},
           {400, "AuthorizationHeaderMalformed", SendFault::kDestination},
           {400, "InvalidBucketName", SendFault::kDestination},
           {400, "ExpiredToken", SendFault::kDestination},
           {400, "EntityTooLarge", SendFault::kPermanent},
           {400, "EntityTooSmall", SendFault::kPermanent},
           {400, "KeyTooLongError", SendFault::kPermanent},
           {400, "MetadataTooLarge", SendFault::kPermanent},
           {400, "InvalidArgument", SendFault::kPermanent},
           {400, "InvalidDigest", SendFault::kPermanent},
           {404, "NoSuchKey", SendFault::kPermanent},
           {411, "MissingContentLength", SendFault::kPermanent},
           {412, "PreconditionFailed", SendFault::kPermanent},
           {400, "", SendFault::kPermanent},
       }) {
    EXPECT_EQ(classify_s3_answer(c.status, c.code), c.fault) << c.status << " " << c.code;
  }
}

TEST(S3Protocol, TransportErrorsAreClassified) {
  struct Case {
    CURLcode code;
    bool sent;
    SendFault fault;
  };
  for (const auto& c : std::vector<Case>{
           {CURLE_OK, false, SendFault::kNone},
           {CURLE_COULDNT_RESOLVE_HOST, false, SendFault::kUnreachable},
           {CURLE_COULDNT_CONNECT, false, SendFault::kUnreachable},
           {CURLE_SSL_CONNECT_ERROR, false, SendFault::kUnreachable},
           {CURLE_OPERATION_TIMEDOUT, false, SendFault::kUnreachable},
           {CURLE_OPERATION_TIMEDOUT, true, SendFault::kTransient},
           {CURLE_SEND_ERROR, true, SendFault::kTransient},
           {CURLE_RECV_ERROR, true, SendFault::kTransient},
           {CURLE_GOT_NOTHING, true, SendFault::kTransient},
           {CURLE_PARTIAL_FILE, true, SendFault::kTransient},
           {CURLE_READ_ERROR, true, SendFault::kTransient},
           {CURLE_PEER_FAILED_VERIFICATION, false, SendFault::kDestination},
           {CURLE_SSL_CACERT_BADFILE, false, SendFault::kDestination},
           {CURLE_URL_MALFORMAT, false, SendFault::kDestination},
           {CURLE_UNSUPPORTED_PROTOCOL, false, SendFault::kDestination},
       }) {
    EXPECT_EQ(classify_transport_error(c.code, c.sent), c.fault)
        << curl_easy_strerror(c.code) << " sent=" << c.sent;
  }
}

TEST(S3Settings, AreValidatedBeforeAnyRequest) {
  const S3Settings good = settings_for("http://127.0.0.1:7480");
  ASSERT_TRUE(validate_s3_settings(good));
  struct Case {
    std::string what;
    void (*change)(S3Settings&);
    bool valid;
  };
  constexpr uint64_t kMiB = 1024 * 1024;
  for (const auto& c : std::vector<Case>{
           {"https with a port", [](S3Settings& s) { s.endpoint = "https://s3.example:9000"; },
            true},
           {"trailing slash", [](S3Settings& s) { s.endpoint = "https://s3.example/"; }, true},
           {"ipv6", [](S3Settings& s) { s.endpoint = "http://[::1]:7480"; }, true},
           {"ftp", [](S3Settings& s) { s.endpoint = "ftp://s3.example"; }, false},
           {"a path", [](S3Settings& s) { s.endpoint = "https://s3.example/bucket"; }, false},
           {"a query", [](S3Settings& s) { s.endpoint = "https://s3.example/?x=1"; }, false},
           {"a user", [](S3Settings& s) { s.endpoint = "https://u:p@s3.example"; }, false},
           {"not a URL", [](S3Settings& s) { s.endpoint = "s3 example"; }, false},
           {"empty endpoint", [](S3Settings& s) { s.endpoint.clear(); }, false},
           {"no bucket", [](S3Settings& s) { s.bucket.clear(); }, false},
           {"bucket with /", [](S3Settings& s) { s.bucket = "a/b"; }, false},
           {"no region", [](S3Settings& s) { s.region.clear(); }, false},
           {"region with :", [](S3Settings& s) { s.region = "a:b"; }, false},
           {"no secret", [](S3Settings& s) { s.secret_key.clear(); }, false},
           {"access key with :", [](S3Settings& s) { s.access_key = "a:b"; }, false},
           {"part of 5 MiB", [](S3Settings& s) { s.part_size = 5 * kMiB; }, true},
           {"part under 5 MiB", [](S3Settings& s) { s.part_size = 5 * kMiB - 1; }, false},
           {"part over 5 GiB", [](S3Settings& s) { s.part_size = 5121 * kMiB; }, false},
           {"threshold 0", [](S3Settings& s) { s.multipart_threshold = 0; }, true},
           {"threshold over 5 GiB", [](S3Settings& s) { s.multipart_threshold = 5121 * kMiB; },
            false},
           {"no io timeout", [](S3Settings& s) { s.io_timeout_s = 0; }, false},
       }) {
    S3Settings s = good;
    c.change(s);
    const Status status = validate_s3_settings(s);
    EXPECT_EQ(status.ok(), c.valid) << c.what;
    if (!status.ok()) {
      EXPECT_EQ(status.error().message.rfind("s3 ", 0), 0U) << c.what;
    }
  }
}

TEST(S3Client, KeysAndLocationsFollowThePrefix) {
  const std::atomic<bool> cancel{false};
  S3Client client(settings_for("http://127.0.0.1:1", "in"), cancel);
  EXPECT_EQ(client.object_key("a.xml"), "in/a.xml");
  EXPECT_EQ(client.location(client.object_key("a.xml")), "s3://b/in/a.xml");
}

// A loopback port that refuses connections while this lives: bound, never listening.
class RefusingPort {
 public:
  RefusingPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0) {
      ADD_FAILURE() << "cannot bind a loopback port";
    }
    port_ = ntohs(sin.sin_port);
  }
  ~RefusingPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

TEST(S3Client, MetadataOutsideWhatHeadersCarryIsRefusedBeforeAnyRequest) {
  const std::atomic<bool> cancel{false};
  const RefusingPort refusing;
  S3Client client(settings_for(refusing.endpoint()), cancel);
  MemoryBytes bytes("x");
  for (const auto& metadata : std::vector<std::map<std::string, std::string>>{
           {{"Upper", "v"}}, {{"", "v"}}, {{"a b", "v"}}, {{"k", "line\nbreak"}}, {{"k", " v"}}}) {
    const SendOutcome outcome = client.put("a.xml", bytes, metadata);
    EXPECT_EQ(outcome.fault, SendFault::kPermanent) << metadata.begin()->first;
    EXPECT_NE(outcome.error.find("s3 metadata"), std::string::npos) << outcome.error;
  }
  const SendOutcome unreachable = client.put("a.xml", bytes, {{"sha256", "ab"}});
  EXPECT_EQ(unreachable.fault, SendFault::kUnreachable) << unreachable.error;
  EXPECT_EQ(client.probe().fault, SendFault::kUnreachable);
}

}  // namespace
}  // namespace transfer::sender
