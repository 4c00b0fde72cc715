#pragma once
// The pure parts of the S3 client (s3_client.hpp): object keys and query strings as SigV4 wants
// them written, MD5s and the ETags S3 computes from them, the XML S3 answers and expects (read and
// written with libxml2), and how an answer or a transport error is classified. No sockets, no
// state: each function is tested on its own (tests/unit/s3_client_test.cpp).

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stored_bytes.hpp"
#include "transfer/result.hpp"

struct evp_md_ctx_st;

namespace transfer::sender {

// ---- keys, paths and query strings --------------------------------------------------------

// The object key for `name` under `prefix`: a non-empty prefix ends in '/' (one is added when it
// does not: "in/x" + "a.xml" -> "in/x/a.xml"); leading '/' of the prefix are dropped (S3 keys do
// not start with one).
std::string s3_object_key(std::string_view prefix, std::string_view name);

// Percent-encodes a key for the request path: RFC 3986 unreserved characters and '/' stay, every
// other byte becomes %XX (upper-case hex). libcurl 7.88 signs the path exactly as written, and
// S3's canonical URI is this encoding done once.
std::string s3_encode_key(std::string_view key);

// Percent-encodes a query-string name or value: as s3_encode_key, but '/' is encoded too.
std::string s3_encode_query_component(std::string_view s);

// The canonical query string: each name and value encoded, sorted by name (then value), joined
// as "a=1&b=&c=x". An empty value keeps its '=' ("uploads="), as SigV4's canonical form wants:
// libcurl 7.88 signs the query exactly as it is written in the URL.
std::string s3_canonical_query(std::vector<std::pair<std::string, std::string>> params);

// ---- digests and ETags ----------------------------------------------------------------------

using Md5Digest = std::array<uint8_t, 16>;

// Streaming MD5 (OpenSSL EVP). Not thread-safe; one instance per stream.
class Md5 {
 public:
  Md5();
  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // Finishes the hash; the object is then reset.
  Md5Digest digest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

std::string md5_hex(const Md5Digest& digest);
// The Content-MD5 header's value: the binary digest in base64.
std::string md5_base64(const Md5Digest& digest);

// The ETag S3 gives an object stored by one PUT: the body's MD5 in hex.
// The ETag of a multipart upload: the MD5 of the parts' binary MD5s, in order, then "-N".
std::string s3_multipart_etag(const std::vector<Md5Digest>& part_md5s);

// An ETag header or element without its quotes (and without a weak validator's W/).
std::string s3_unquote_etag(std::string_view etag);

// How many parts a multipart upload of `size` bytes takes with parts of `part_size` bytes
// (the last one smaller).
uint64_t s3_part_count(uint64_t size, uint64_t part_size);

// The part size used for `size` bytes: `wanted`, raised (to a multiple of 1 MiB) when S3's limit
// of 10,000 parts would otherwise be passed.
uint64_t s3_effective_part_size(uint64_t size, uint64_t wanted);

// ---- XML ----------------------------------------------------------------------------------

// An S3 error document (<Error><Code>...</Code><Message>...</Message>...</Error>).
struct S3ErrorBody {
  std::string code;
  std::string message;
};
// The Code and Message of `xml` when it is an S3 <Error> document; nullopt otherwise (not XML,
// or another document).
std::optional<S3ErrorBody> parse_s3_error(std::string_view xml);

// The UploadId of an InitiateMultipartUploadResult.
Result<std::string> parse_initiate_multipart(std::string_view xml);

// The ETag of a CompleteMultipartUploadResult (unquoted; empty when the server left it empty, as
// radosgw 16.2 does: the object's HEAD has it). S3 may answer 200 with an <Error>
// document when the completion failed after it started: that is an error here too (its Code and
// Message in the error's text, see complete_error below).
struct S3CompleteResult {
  std::string etag;                  // of a CompleteMultipartUploadResult (maybe empty)
  std::optional<S3ErrorBody> error;  // set when it is an <Error>
};
Result<S3CompleteResult> parse_complete_multipart(std::string_view xml);

// One incomplete multipart upload, as ListMultipartUploads reports it.
struct S3MultipartUpload {
  std::string key;
  std::string upload_id;
  std::string initiated;  // ISO 8601, as the server wrote it
};
// One page of a ListMultipartUploadsResult.
struct S3UploadListPage {
  std::vector<S3MultipartUpload> uploads;
  bool truncated = false;
  std::string next_key_marker;
  std::string next_upload_id_marker;
};
Result<S3UploadListPage> parse_list_multipart_uploads(std::string_view xml);

// The CompleteMultipartUpload request's body: each part's number and (quoted) ETag, in order.
std::string s3_complete_multipart_body(const std::vector<std::string>& part_etags);

// ---- classification -------------------------------------------------------------------------

// What an S3 answer that is not a success means for the file and the destination, from the HTTP
// status and the error document's Code (empty when there was none, e.g. an answer to HEAD):
//   kTransient: 5xx, 429, 408, SlowDown, RequestTimeout, InternalError, ServiceUnavailable,
//     BadDigest / XAmzContentSHA256Mismatch / IncompleteBody (the bytes were damaged on the way),
//     NoSuchUpload and InvalidPart (our upload vanished: start again), OperationAborted, 307;
//   kDestination: 401, 403 (SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied, ...),
//     NoSuchBucket, PermanentRedirect / 301 (wrong region or endpoint),
//     AuthorizationHeaderMalformed (wrong region), RequestTimeTooSkewed (our clock),
//     InvalidBucketName, QuotaExceeded, other 3xx;
//   kPermanent: any other 4xx (the request for this file is wrong: EntityTooLarge,
//     KeyTooLongError, MetadataTooLarge, InvalidArgument, ...).
// A code the table knows decides before the status does.
SendFault classify_s3_answer(long http_status, std::string_view code);

// What a transport error (a CURLcode) means. `request_sent`: the request had gone out (a
// timeout then is a server that stopped answering mid-request, not an unreachable one).
//   kUnreachable: resolve and connect failures, TLS handshake failures, a timeout before the
//     request went out;
//   kTransient: send/receive errors (a connection reset mid-body), an empty answer, a timeout
//     after the request went out, a read error of the bytes to store, anything else;
//   kDestination: a certificate that fails verification, an unusable CA file, a malformed URL or
//     unsupported scheme (the destination's settings are wrong).
SendFault classify_transport_error(int curl_code, bool request_sent);

}  // namespace transfer::sender
