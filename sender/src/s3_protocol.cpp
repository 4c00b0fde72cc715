#include "s3_protocol.hpp"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>

#include "transfer/sha256.hpp"

namespace transfer::sender {
namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const unsigned char c : s) {
    if (unreserved(c) || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

struct XmlDocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
using XmlDoc = std::unique_ptr<xmlDoc, XmlDocFree>;
struct XmlCharFree {
  void operator()(xmlChar* s) const { xmlFree(s); }
};
struct XmlBufferFree {
  void operator()(xmlBuffer* b) const { xmlBufferFree(b); }
};
struct XmlWriterFree {
  void operator()(xmlTextWriter* w) const { xmlFreeTextWriter(w); }
};

// Parses an answer from the server: no network, no entity substitution, no DTD, quiet.
XmlDoc parse_xml(std::string_view xml) {
  if (xml.empty() || xml.size() > static_cast<size_t>(INT32_MAX)) return nullptr;
  return XmlDoc(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), "s3-answer.xml", nullptr,
                              XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
}

bool is_element(const xmlNode* node, std::string_view local_name) {
  return node != nullptr && node->type == XML_ELEMENT_NODE &&
         std::string_view(reinterpret_cast<const char*>(node->name)) == local_name;
}

const xmlNode* child(const xmlNode* parent, std::string_view local_name) {
  for (const xmlNode* n = parent->children; n != nullptr; n = n->next) {
    if (is_element(n, local_name)) return n;
  }
  return nullptr;
}

std::string text_of(const xmlNode* node) {
  if (node == nullptr) return {};
  const std::unique_ptr<xmlChar, XmlCharFree> content(xmlNodeGetContent(node));
  return content ? std::string(reinterpret_cast<const char*>(content.get())) : std::string();
}

std::string child_text(const xmlNode* parent, std::string_view local_name) {
  return text_of(child(parent, local_name));
}

Error xml_error(std::string_view what, std::string_view xml) {
  constexpr size_t kQuote = 200;
  std::string quoted(xml.substr(0, kQuote));
  for (char& c : quoted) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return make_error(ErrorCode::kMalformedRequest, std::string(what) + ": unexpected answer: \"" +
                                                      quoted +
                                                      (xml.size() > kQuote ? "...\"" : "\""));
}

std::optional<S3ErrorBody> error_of(const xmlNode* root) {
  if (!is_element(root, "Error")) return std::nullopt;
  return S3ErrorBody{child_text(root, "Code"), child_text(root, "Message")};
}

}  // namespace

std::string s3_object_key(std::string_view prefix, std::string_view name) {
  while (!prefix.empty() && prefix.front() == '/') prefix.remove_prefix(1);
  std::string key(prefix);
  if (!key.empty() && key.back() != '/') key += '/';
  key += name;
  return key;
}

std::string s3_encode_key(std::string_view key) { return percent_encode(key, true); }

std::string s3_encode_query_component(std::string_view s) { return percent_encode(s, false); }

std::string s3_canonical_query(std::vector<std::pair<std::string, std::string>> params) {
  for (auto& [name, value] : params) {
    name = s3_encode_query_component(name);
    value = s3_encode_query_component(value);
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

void Md5::Free::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Md5::Md5() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr) != 1) std::abort();
}

void Md5::update(const void* data, size_t size) {
  if (size > 0 && EVP_DigestUpdate(ctx_.get(), data, size) != 1) std::abort();
}

Md5Digest Md5::digest() {
  Md5Digest out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &len) != 1 || len != out.size()) std::abort();
  if (EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr) != 1) std::abort();
  return out;
}

std::string md5_hex(const Md5Digest& digest) { return to_hex(digest.data(), digest.size()); }

std::string md5_base64(const Md5Digest& digest) {
  unsigned char out[32];  // 4 * ceil(16 / 3) = 24, plus the NUL
  const int n = EVP_EncodeBlock(out, digest.data(), static_cast<int>(digest.size()));
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
}

std::string s3_multipart_etag(const std::vector<Md5Digest>& part_md5s) {
  Md5 md5;
  for (const auto& d : part_md5s) md5.update(d.data(), d.size());
  return md5_hex(md5.digest()) + "-" + std::to_string(part_md5s.size());
}

std::string s3_unquote_etag(std::string_view etag) {
  if (etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  // Some servers write the quotes as entities inside XML; libxml2 has decoded those already.
  return std::string(etag);
}

uint64_t s3_part_count(uint64_t size, uint64_t part_size) {
  if (part_size == 0) return 0;
  return size == 0 ? 1 : (size + part_size - 1) / part_size;
}

uint64_t s3_effective_part_size(uint64_t size, uint64_t wanted) {
  constexpr uint64_t kMaxParts = 10000;
  constexpr uint64_t kMiB = 1024 * 1024;
  if (wanted == 0) wanted = 8 * kMiB;
  if (s3_part_count(size, wanted) <= kMaxParts) return wanted;
  const uint64_t needed = (size + kMaxParts - 1) / kMaxParts;
  return (needed + kMiB - 1) / kMiB * kMiB;
}

std::optional<S3ErrorBody> parse_s3_error(std::string_view xml) {
  const XmlDoc doc = parse_xml(xml);
  if (!doc) return std::nullopt;
  return error_of(xmlDocGetRootElement(doc.get()));
}

Result<std::string> parse_initiate_multipart(std::string_view xml) {
  const XmlDoc doc = parse_xml(xml);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (!is_element(root, "InitiateMultipartUploadResult")) {
    return xml_error("InitiateMultipartUpload", xml);
  }
  std::string id = child_text(root, "UploadId");
  if (id.empty()) return xml_error("InitiateMultipartUpload: no UploadId", xml);
  return id;
}

Result<S3CompleteResult> parse_complete_multipart(std::string_view xml) {
  const XmlDoc doc = parse_xml(xml);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  S3CompleteResult result;
  if (auto error = error_of(root)) {
    result.error = std::move(error);
    return result;
  }
  if (!is_element(root, "CompleteMultipartUploadResult")) {
    return xml_error("CompleteMultipartUpload", xml);
  }
  // Empty from radosgw 16.2 (<ETag></ETag>): the HEAD that follows checks the object's ETag.
  result.etag = s3_unquote_etag(child_text(root, "ETag"));
  return result;
}

Result<S3UploadListPage> parse_list_multipart_uploads(std::string_view xml) {
  const XmlDoc doc = parse_xml(xml);
  const xmlNode* root = doc ? xmlDocGetRootElement(doc.get()) : nullptr;
  if (!is_element(root, "ListMultipartUploadsResult")) {
    return xml_error("ListMultipartUploads", xml);
  }
  S3UploadListPage page;
  for (const xmlNode* n = root->children; n != nullptr; n = n->next) {
    if (!is_element(n, "Upload")) continue;
    S3MultipartUpload upload{child_text(n, "Key"), child_text(n, "UploadId"),
                             child_text(n, "Initiated")};
    if (upload.key.empty() || upload.upload_id.empty()) {
      return xml_error("ListMultipartUploads: an Upload without Key or UploadId", xml);
    }
    page.uploads.push_back(std::move(upload));
  }
  page.truncated = child_text(root, "IsTruncated") == "true";
  page.next_key_marker = child_text(root, "NextKeyMarker");
  page.next_upload_id_marker = child_text(root, "NextUploadIdMarker");
  return page;
}

std::string s3_complete_multipart_body(const std::vector<std::string>& part_etags) {
  const std::unique_ptr<xmlBuffer, XmlBufferFree> buffer(xmlBufferCreate());
  if (!buffer) std::abort();
  // The writer owns nothing of the buffer: it is freed first, flushing into it.
  {
    const std::unique_ptr<xmlTextWriter, XmlWriterFree> writer(
        xmlNewTextWriterMemory(buffer.get(), 0));
    if (!writer) std::abort();
    auto* w = writer.get();
    auto chars = [](const char* s) { return reinterpret_cast<const xmlChar*>(s); };
    bool ok = xmlTextWriterStartDocument(w, nullptr, "UTF-8", nullptr) >= 0 &&
              xmlTextWriterStartElement(w, chars("CompleteMultipartUpload")) >= 0 &&
              xmlTextWriterWriteAttribute(w, chars("xmlns"),
                                          chars("http://s3.amazonaws.com/doc/2006-03-01/")) >= 0;
    for (size_t i = 0; ok && i < part_etags.size(); ++i) {
      const std::string number = std::to_string(i + 1);
      const std::string etag = "\"" + s3_unquote_etag(part_etags[i]) + "\"";
      ok = xmlTextWriterStartElement(w, chars("Part")) >= 0 &&
           xmlTextWriterWriteElement(w, chars("PartNumber"), chars(number.c_str())) >= 0 &&
           xmlTextWriterWriteElement(w, chars("ETag"), chars(etag.c_str())) >= 0 &&
           xmlTextWriterEndElement(w) >= 0;
    }
    ok = ok && xmlTextWriterEndDocument(w) >= 0;
    if (!ok) std::abort();  // only memory can fail here
  }
  return std::string(reinterpret_cast<const char*>(xmlBufferContent(buffer.get())),
                     static_cast<size_t>(xmlBufferLength(buffer.get())));
}

SendFault classify_s3_answer(long http_status, std::string_view code) {
  struct Known {
    std::string_view code;
    SendFault fault;
  };
  static constexpr Known kCodes[] = {
      {"SlowDown", SendFault::kTransient},
      {"RequestTimeout", SendFault::kTransient},
      {"InternalError", SendFault::kTransient},
      {"ServiceUnavailable", SendFault::kTransient},
      {"BadDigest", SendFault::kTransient},
      {"XAmzContentSHA256Mismatch", SendFault::kTransient},
      {"IncompleteBody", SendFault::kTransient},
      {"NoSuchUpload", SendFault::kTransient},
      {"InvalidPart", SendFault::kTransient},
      {"OperationAborted", SendFault::kTransient},
      {"SignatureDoesNotMatch", SendFault::kDestination},
      {"InvalidAccessKeyId", SendFault::kDestination},
      {"AccessDenied", SendFault::kDestination},
      {"AccountProblem", SendFault::kDestination},
      {"AllAccessDisabled", SendFault::kDestination},
      {"InvalidToken", SendFault::kDestination},
      {"ExpiredToken", SendFault::kDestination},
      {"NoSuchBucket", SendFault::kDestination},
      {"PermanentRedirect", SendFault::kDestination},
      {"AuthorizationHeaderMalformed", SendFault::kDestination},
      {"RequestTimeTooSkewed", SendFault::kDestination},
      {"InvalidBucketName", SendFault::kDestination},
      {"QuotaExceeded", SendFault::kDestination},
  };
  for (const auto& k : kCodes) {
    if (k.code == code) return k.fault;
  }
  if (http_status >= 500 || http_status == 429 || http_status == 408) return SendFault::kTransient;
  if (http_status == 307) return SendFault::kTransient;  // S3's TemporaryRedirect (a new bucket)
  if (http_status == 401 || http_status == 403) return SendFault::kDestination;
  if (http_status >= 300 && http_status < 400) return SendFault::kDestination;
  if (http_status >= 400) return SendFault::kPermanent;
  return SendFault::kTransient;  // a 1xx or 2xx that still carried an error: try again
}

SendFault classify_transport_error(int curl_code, bool request_sent) {
  switch (static_cast<CURLcode>(curl_code)) {
    case CURLE_OK:
      return SendFault::kNone;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
      return SendFault::kUnreachable;
    case CURLE_OPERATION_TIMEDOUT:
      return request_sent ? SendFault::kTransient : SendFault::kUnreachable;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return SendFault::kDestination;
    default:
      return SendFault::kTransient;  // SEND_ERROR, RECV_ERROR, GOT_NOTHING, PARTIAL_FILE, ...
  }
}

}  // namespace transfer::sender
