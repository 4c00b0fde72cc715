#include "ftps_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

namespace transfer::sender {

namespace {

constexpr long kPieceBytes = 64 * 1024;  // curl's upload buffer: one read from StoredBytes

struct CurlSlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistFree>;

void global_init() {
  // curl 7.88 is built thread-safe ("threadsafe" in curl-config --features): this may race with
  // another client's call; once per process is all that is needed.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string encode_segment(std::string_view segment) {
  std::string out;
  char buf[4];
  for (const unsigned char c : segment) {
    if (unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool is_tls_failure(int code) {
  switch (code) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

}  // namespace

// --- pure parts ---------------------------------------------------------------------------------

std::string ftp_url(const std::string& host, int port, const std::string& remote_dir,
                    const std::string& name) {
  std::string path;
  std::string_view dir = remote_dir;
  if (dir.starts_with('/')) {
    path = "%2F";  // curl: CWD from the root, not from the login directory
    dir.remove_prefix(1);
  }
  while (!dir.empty()) {
    const size_t slash = dir.find('/');
    const std::string_view segment = dir.substr(0, slash);
    dir = slash == std::string_view::npos ? std::string_view() : dir.substr(slash + 1);
    if (segment.empty() || segment == ".") continue;
    if (!path.empty() && path != "%2F") path += "/";
    path += encode_segment(segment);
  }
  if (!path.empty()) path += "/";
  const std::string authority = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "ftp://" + authority + ":" + std::to_string(port) + "/" + path + encode_segment(name);
}

SendFault classify_ftp_failure(FtpStep step, int curl_code, int reply_code, bool got_reply) {
  switch (curl_code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      return SendFault::kUnreachable;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_SSL_CONNECT_ERROR:
      return got_reply ? SendFault::kTransient : SendFault::kUnreachable;
    case CURLE_LOGIN_DENIED:          // 530 to USER/PASS
    case CURLE_REMOTE_ACCESS_DENIED:  // CWD remote_dir refused (missing, not a directory)
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
      return SendFault::kDestination;
    case CURLE_UPLOAD_FAILED:  // STOR refused
      if (reply_code >= 400 && reply_code < 500) return SendFault::kTransient;
      if (reply_code == 552) return SendFault::kTransient;  // storage allocation exceeded
      return SendFault::kDestination;  // 550/553: cannot create files in remote_dir
    case CURLE_QUOTE_ERROR:            // RNFR/RNTO/DELE refused
      if (reply_code >= 400 && reply_code < 500) return SendFault::kTransient;
      return step == FtpStep::kRename || step == FtpStep::kRemoveFinal ? SendFault::kPermanent
                                                                       : SendFault::kTransient;
    case CURLE_FILESIZE_EXCEEDED:
      return SendFault::kPermanent;
    default:
      if (is_tls_failure(curl_code)) return SendFault::kDestination;
      // Lost connections, 426 after a transfer, disk full, odd passive replies, cancellation, a
      // spool file that failed to read: try again later.
      return SendFault::kTransient;
  }
}

// --- the client ---------------------------------------------------------------------------------

struct FtpsClient::CurlHandle {
  struct Free {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, Free> easy;
};

// One curl request: what the callbacks saw.
struct FtpExchange {
  StoredBytes* bytes = nullptr;
  uint64_t sent = 0;
  std::string read_error;
  bool got_reply = false;
  int reply_code = 0;
  std::string reply;    // the last reply line, as the server wrote it
  std::string command;  // the last command's verb (never its argument: PASS carries the password)
  double content_length = -1;
  int greetings = 0;  // control connections opened
  std::string listing;  // NLST's answer (Request::kList)
  char error_buffer[CURL_ERROR_SIZE] = {};
};

struct FtpsClient::Step {
  SendFault fault = SendFault::kNone;
  std::string error;
  int curl_code = CURLE_OK;
  int reply_code = 0;
  bool ok() const { return fault == SendFault::kNone; }
};

namespace {

size_t discard(char*, size_t size, size_t count, void*) { return size * count; }

constexpr size_t kMaxListingBytes = 16 << 20;  // a remote_dir of ~100,000 names

size_t collect_listing(char* data, size_t size, size_t count, void* user) {
  auto* listing = static_cast<std::string*>(user);
  if (listing->size() + size * count > kMaxListingBytes) return 0;  // ends the transfer
  listing->append(data, size * count);
  return size * count;
}

size_t read_piece(char* buffer, size_t size, size_t count, void* user) {
  auto* ex = static_cast<FtpExchange*>(user);
  auto n = ex->bytes->read(buffer, size * count);
  if (!n.ok()) {
    ex->read_error = n.error().message;
    return CURL_READFUNC_ABORT;
  }
  ex->sent += *n;
  return *n;
}

int seek_start(void* user, curl_off_t offset, int origin) {
  auto* ex = static_cast<FtpExchange*>(user);
  if (offset != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
  ex->sent = 0;
  return ex->bytes->rewind().ok() ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

int on_debug(CURL*, curl_infotype type, char* data, size_t size, void* user) {
  auto* ex = static_cast<FtpExchange*>(user);
  std::string_view line(data, size);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (type == CURLINFO_HEADER_IN) {
    // A multi-line reply arrives line by line; the last one carries the final code.
    const size_t last = line.rfind('\n');
    if (last != std::string_view::npos) line.remove_prefix(last + 1);
    // The last line of a reply: three digits and a space (or nothing); "220-" lines go before.
    if (line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
        std::isdigit(static_cast<unsigned char>(line[1])) &&
        std::isdigit(static_cast<unsigned char>(line[2])) && (line.size() == 3 || line[3] == ' ')) {
      ex->got_reply = true;
      ex->reply_code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
      ex->reply = std::string(line.substr(0, 200));
      if (ex->reply_code == 220) ++ex->greetings;  // a new control connection
    }
  } else if (type == CURLINFO_HEADER_OUT) {
    ex->command = std::string(line.substr(0, std::min(line.find(' '), size_t{8})));
  }
  return 0;
}

}  // namespace

FtpsClient::FtpsClient(FtpsSettings settings, const std::atomic<bool>& cancel)
    : settings_(std::move(settings)), cancel_(cancel), curl_(std::make_unique<CurlHandle>()) {
  global_init();
  curl_->easy.reset(curl_easy_init());
  leftovers_ = LeftoverNames::shared_for(location_for(""));
}

FtpsClient::~FtpsClient() = default;

std::string FtpsClient::where() const {
  return std::string(settings_.tls ? "ftps " : "ftp ") + settings_.host + ":" +
         std::to_string(settings_.port);
}

std::string FtpsClient::location_for(const std::string& name) const {
  const std::string path = remote_path(settings_.remote_dir, name);
  return std::string(settings_.tls ? "ftps://" : "ftp://") + settings_.user + "@" + settings_.host +
         ":" + std::to_string(settings_.port) + (path.starts_with('/') ? "" : "/") + path;
}

FtpsStats FtpsClient::stats() const {
  std::lock_guard lock(stats_mu_);
  return stats_;
}

void FtpsClient::abort() { aborted_.store(true); }

namespace {

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* flags =
      static_cast<const std::pair<const std::atomic<bool>*, const std::atomic<bool>*>*>(user);
  return flags->first->load() || flags->second->load() ? 1 : 0;
}

}  // namespace

FtpsClient::Step FtpsClient::perform(FtpExchange& ex, Request request, const std::string& name,
                                     StoredBytes* bytes, const std::string& other) {
  CURL* curl = curl_->easy.get();
  if (curl == nullptr) return Step{SendFault::kTransient, where() + ": curl_easy_init failed"};
  ex.bytes = bytes;
  curl_easy_reset(curl);  // options only: the connection and TLS session caches stay
  const std::pair<const std::atomic<bool>*, const std::atomic<bool>*> flags{&cancel_, &aborted_};
  const long io_s = std::max(1L, std::lround(settings_.io_timeout_s));
  const bool tls = settings_.tls;
  const bool directory =
      request == Request::kRename || request == Request::kDelete || request == Request::kProbe ||
      request == Request::kList;
  const std::string url =
      ftp_url(settings_.host, settings_.port, settings_.remote_dir, directory ? "" : name);
  CurlSlistPtr quote;
  if (request == Request::kRename) {
    quote.reset(curl_slist_append(nullptr, ("RNFR " + name).c_str()));
    curl_slist_append(quote.get(), ("RNTO " + other).c_str());
  } else if (request == Request::kDelete) {
    quote.reset(curl_slist_append(nullptr, ("DELE " + name).c_str()));
  }

  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "ftp");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, ex.error_buffer);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERNAME, settings_.user.c_str());
  curl_easy_setopt(curl, CURLOPT_PASSWORD, settings_.password.c_str());
  curl_easy_setopt(curl, CURLOPT_USE_SSL, tls ? long{CURLUSESSL_ALL} : long{CURLUSESSL_NONE});
  if (tls) {
    curl_easy_setopt(curl, CURLOPT_FTPSSLAUTH, long{CURLFTPAUTH_TLS});
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!settings_.ca_file.empty())
      curl_easy_setopt(curl, CURLOPT_CAINFO, settings_.ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLVERSION,
                     settings_.allow_tls13
                         ? long{CURL_SSLVERSION_TLSv1_2}
                         : long{CURL_SSLVERSION_TLSv1_2} | long{CURL_SSLVERSION_MAX_TLSv1_2});
  }
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   std::max(1L, std::lround(settings_.connect_timeout_s * 1000)));
  curl_easy_setopt(curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, io_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, io_s);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_FTP_FILEMETHOD, long{CURLFTPMETHOD_SINGLECWD});
  curl_easy_setopt(curl, CURLOPT_FTP_CREATE_MISSING_DIRS, long{CURLFTP_CREATE_DIR_NONE});
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &flags);
  // NOBODY on a file writes "Content-Length: ..." as if HTTP: to nowhere, not to stdout.
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &discard);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &discard);
  curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);  // to on_debug only, which keeps no secret
  curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, &on_debug);
  curl_easy_setopt(curl, CURLOPT_DEBUGDATA, &ex);
  if (request == Request::kUpload) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(bytes->size()));
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, kPieceBytes);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, &read_piece);
    curl_easy_setopt(curl, CURLOPT_READDATA, &ex);
    curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, &seek_start);
    curl_easy_setopt(curl, CURLOPT_SEEKDATA, &ex);
  } else if (request == Request::kList) {
    curl_easy_setopt(curl, CURLOPT_DIRLISTONLY, 1L);  // NLST: names only
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &collect_listing);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex.listing);
  } else {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);  // SIZE for a file; CWD only for a directory
    if (quote) curl_easy_setopt(curl, CURLOPT_POSTQUOTE, quote.get());
  }

  const CURLcode code = curl_easy_perform(curl);
  curl_off_t length = -1;
  curl_easy_getinfo(curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
  ex.content_length = static_cast<double>(length);
  // curl keeps pointers to these options until the next reset: drop them now.
  curl_easy_setopt(curl, CURLOPT_POSTQUOTE, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (ex.greetings > 0) {
    std::lock_guard lock(stats_mu_);
    stats_.connects += static_cast<uint64_t>(ex.greetings);
  }
  if (code == CURLE_OK) return Step{};

  Step step;
  step.fault = SendFault::kTransient;  // the caller classifies it for its step
  step.curl_code = code;
  step.reply_code = ex.reply_code;
  std::string why = curl_easy_strerror(code);
  if (code == CURLE_ABORTED_BY_CALLBACK) {
    why = cancel_.load() ? "cancelled (shutting down)" : "aborted";
  } else if (!ex.read_error.empty()) {
    why = "reading the stored bytes: " + ex.read_error;
  } else if (ex.error_buffer[0] != '\0' && std::strcmp(ex.error_buffer, why.c_str()) != 0) {
    why += " (" + std::string(ex.error_buffer) + ")";
  }
  if (code == CURLE_LOGIN_DENIED) {
    why = "login as " + settings_.user + " refused: " + why;
  } else if (code == CURLE_REMOTE_ACCESS_DENIED) {
    why = "remote_dir " + settings_.remote_dir + " cannot be entered: " + why;
  } else if (is_tls_failure(code)) {
    why = "TLS: " + why;
  }
  if (ex.got_reply && code != CURLE_ABORTED_BY_CALLBACK) {
    why += "; the server's last reply";
    if (!ex.command.empty()) why += " (to " + ex.command + ")";
    why += ": " + ex.reply;
  }
  // The step: this request's own, unless it failed before the login was through (a new control
  // connection: TCP, greeting, AUTH TLS, USER/PASS, PBSZ/PROT), or entering remote_dir.
  const bool connecting = !ex.got_reply || ex.command.empty() || ex.command == "AUTH" ||
                          ex.command == "USER" || ex.command == "PASS" || ex.command == "PBSZ" ||
                          ex.command == "PROT" || code == CURLE_LOGIN_DENIED ||
                          code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                          is_tls_failure(code);
  std::string what;
  if (code == CURLE_REMOTE_ACCESS_DENIED) {
    what.clear();  // "remote_dir ... cannot be entered" says it
  } else if (connecting) {
    what = "connecting: ";
  } else {
    const std::string path = remote_path(settings_.remote_dir, name);
    switch (request) {
      case Request::kExists:
        what = "SIZE " + path + ": ";
        break;
      case Request::kUpload:
        what = "upload to " + path + ": ";
        break;
      case Request::kRename:
        what = "rename " + path + " to " + remote_path(settings_.remote_dir, other) + ": ";
        break;
      case Request::kDelete:
        what = "delete " + path + ": ";
        break;
      case Request::kList:
        what = "NLST " + settings_.remote_dir + ": ";
        break;
      case Request::kProbe:
        break;
    }
  }
  step.error = where() + ": " + what + why;
  return step;
}

FtpsClient::Step FtpsClient::exists(const std::string& name, bool& found) {
  FtpExchange ex;
  Step step = perform(ex, Request::kExists, name);
  found = step.ok();
  if (step.curl_code == CURLE_REMOTE_FILE_NOT_FOUND) return Step{};  // 550 to SIZE
  if (step.ok() && ex.content_length < 0) {
    // curl goes on without a size when SIZE is refused with another code than 550.
    found = false;
    return Step{SendFault::kDestination,
                where() + ": SIZE " + remote_path(settings_.remote_dir, name) +
                    " got no size; the server must answer SIZE (RFC 3659) for existence and "
                    "size checks" +
                    (ex.got_reply ? "; its last reply: " + ex.reply : std::string())};
  }
  if (!step.ok()) {
    step.fault =
        classify_ftp_failure(FtpStep::kCheckFinal, step.curl_code, step.reply_code, ex.got_reply);
  }
  return step;
}

void FtpsClient::remove_leftovers() {
  for (const std::string& name : leftovers_->names()) {
    FtpExchange ex;
    Step step = perform(ex, Request::kDelete, name);
    if (step.ok()) {
      std::lock_guard lock(stats_mu_);
      ++stats_.temporaries_removed;
    } else if (step.curl_code != CURLE_QUOTE_ERROR) {
      return;  // not now (no connection): the rest stay listed for the next put or probe
    }
    leftovers_->forget(name);  // deleted, or refused (550: gone already)
  }
}

Result<size_t> FtpsClient::remove_temporaries() {
  std::lock_guard lock(mu_);
  aborted_.store(false);
  FtpExchange ex;
  Step listed = perform(ex, Request::kList, "");
  if (!listed.ok()) return make_error(ErrorCode::kIo, listed.error);
  size_t removed = 0;
  size_t found = 0;
  size_t start = 0;
  while (start < ex.listing.size()) {
    size_t end = ex.listing.find('\n', start);
    if (end == std::string::npos) end = ex.listing.size();
    std::string name = ex.listing.substr(start, end - start);
    start = end + 1;
    if (!name.empty() && name.back() == '\r') name.pop_back();
    const size_t slash = name.rfind('/');  // some servers answer NLST with paths
    if (slash != std::string::npos) name.erase(0, slash + 1);
    if (!is_temporary_name(name)) continue;
    ++found;
    FtpExchange del;
    if (perform(del, Request::kDelete, name).ok()) ++removed;
  }
  {
    std::lock_guard stats_lock(stats_mu_);
    stats_.temporaries_removed += removed;
  }
  if (removed < found) {
    return make_error(ErrorCode::kIo, where() + ": " + std::to_string(found - removed) +
                                          " temporary file(s) in " + settings_.remote_dir +
                                          " could not be deleted");
  }
  return removed;
}

SendOutcome FtpsClient::put(const std::string& name, StoredBytes& bytes) {
  std::lock_guard lock(mu_);
  aborted_.store(false);
  SendOutcome out;
  out.location = location_for(name);
  if (auto checked = check_remote_file_name(name); !checked.ok()) {
    out.fault = SendFault::kPermanent;
    out.error = where() + ": " + checked.error().message;
    return out;
  }
  if (cancel_.load()) {  // nothing sent, not even a connection opened
    out.fault = SendFault::kTransient;
    out.error = where() + ": cancelled (shutting down)";
    return out;
  }
  remove_leftovers();
  Step stored = store(name, bytes, out.bytes_sent);
  if (!stored.ok()) {
    out.fault = stored.fault;
    out.error = stored.error;
    return out;
  }
  remove_leftovers();  // any listed while this file was sent (another client's cut-off transfer)
  std::lock_guard stats_lock(stats_mu_);
  ++stats_.puts;
  return out;
}

FtpsClient::Step FtpsClient::store(const std::string& name, StoredBytes& bytes, uint64_t& sent) {
  const std::string final_path = remote_path(settings_.remote_dir, name);
  auto exists_refusal = [&](const std::string& when) {
    return Step{SendFault::kPermanent, where() + ": " + final_path + " exists" + when +
                                           " and on_conflict is fail: not replaced"};
  };
  auto classified = [](Step step, FtpStep at, bool got_reply) {
    step.fault = classify_ftp_failure(at, step.curl_code, step.reply_code, got_reply);
    return step;
  };

  if (settings_.on_conflict == OnConflict::kFail) {
    bool found = false;
    Step checked = exists(name, found);
    if (!checked.ok()) return checked;
    if (found) return exists_refusal("");
  }

  const std::string temp = temporary_name_for(name, random_tag());
  // From here on a failure deletes the temporary file, or leaves it to the next put.
  auto abandon = [&](Step why) {
    FtpExchange ex;
    Step deleted = perform(ex, Request::kDelete, temp);
    if (!deleted.ok() && deleted.curl_code != CURLE_QUOTE_ERROR) leftovers_->add({temp});
    return why;
  };

  if (auto rewound = bytes.rewind(); !rewound.ok()) {
    return Step{SendFault::kTransient, where() + ": " + rewound.error().message};
  }
  {
    FtpExchange ex;
    Step uploaded = perform(ex, Request::kUpload, temp, &bytes);
    sent = ex.sent;
    if (!uploaded.ok()) return abandon(classified(uploaded, FtpStep::kUpload, ex.got_reply));
    if (ex.sent != bytes.size()) {
      return abandon(Step{SendFault::kTransient, where() + ": the stored bytes ended at " +
                                                     std::to_string(ex.sent) + " of " +
                                                     std::to_string(bytes.size())});
    }
  }
  {
    FtpExchange ex;
    Step sized = perform(ex, Request::kExists, temp);
    if (!sized.ok()) return abandon(classified(sized, FtpStep::kSizeTemp, ex.got_reply));
    if (ex.content_length != static_cast<double>(bytes.size())) {
      return abandon(
          Step{SendFault::kTransient,
               where() + ": size check of " + remote_path(settings_.remote_dir, temp) +
                   " failed: the server has " +
                   (ex.content_length < 0
                        ? std::string("no size (SIZE unanswered)")
                        : std::to_string(static_cast<uint64_t>(ex.content_length)) + " bytes") +
                   ", " + std::to_string(bytes.size()) + " were sent"});
    }
  }
  if (settings_.on_conflict == OnConflict::kFail) {
    bool found = false;
    Step checked = exists(name, found);
    if (!checked.ok()) return abandon(checked);
    if (found) return abandon(exists_refusal(" (it appeared while the file was being sent)"));
  }
  if (cancel_.load() || aborted_.load()) {
    return abandon(Step{SendFault::kTransient,
                        where() + (cancel_.load() ? ": cancelled (shutting down)" : ": aborted")});
  }

  FtpExchange ex;
  Step renamed = perform(ex, Request::kRename, temp, nullptr, name);
  if (renamed.ok()) return Step{};
  renamed = classified(renamed, FtpStep::kRename, ex.got_reply);
  if (renamed.curl_code != CURLE_QUOTE_ERROR || ex.command != "RNTO") return abandon(renamed);
  // RNTO refused: is it because the final name exists?
  bool found = false;
  Step checked = exists(name, found);
  if (!checked.ok()) return abandon(checked);
  if (!found) return abandon(renamed);
  if (settings_.on_conflict == OnConflict::kFail) {
    return abandon(exists_refusal(" (it appeared while the file was being sent)"));
  }
  FtpExchange dele;
  Step deleted = perform(dele, Request::kDelete, name);
  if (!deleted.ok()) return abandon(classified(deleted, FtpStep::kRemoveFinal, dele.got_reply));
  FtpExchange again;
  renamed = perform(again, Request::kRename, temp, nullptr, name);
  if (!renamed.ok()) return abandon(classified(renamed, FtpStep::kRename, again.got_reply));
  std::lock_guard lock(stats_mu_);
  ++stats_.replaced;
  return Step{};
}

ProbeOutcome FtpsClient::probe() {
  std::lock_guard lock(mu_);
  aborted_.store(false);
  if (cancel_.load()) {
    return ProbeOutcome{SendFault::kTransient, where() + ": cancelled (shutting down)"};
  }
  remove_leftovers();
  FtpExchange ex;
  Step step = perform(ex, Request::kProbe, "");
  if (step.ok()) return ProbeOutcome{};
  return ProbeOutcome{
      classify_ftp_failure(FtpStep::kProbe, step.curl_code, step.reply_code, ex.got_reply),
      step.error};
}

}  // namespace transfer::sender
