#include "transfer/tls_files.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace transfer {
namespace {

struct FileClose {
  void operator()(FILE* f) const { std::fclose(f); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using UniqueFile = std::unique_ptr<FILE, FileClose>;

Result<UniqueFile> open_pem(const std::string& path, const std::string& option) {
  UniqueFile f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return make_error(ErrorCode::kInvalidArgument,
                      option + ": cannot read " + path + ": " + std::strerror(errno));
  }
  return f;
}

Result<std::unique_ptr<X509, X509Free>> first_certificate(const std::string& path, const std::string& option) {
  auto f = open_pem(path, option);
  if (!f) return f.error();
  std::unique_ptr<X509, X509Free> cert(PEM_read_X509(f->get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert) {
    return make_error(ErrorCode::kInvalidArgument,
                      option + ": " + path + " holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  }
  return cert;
}

}  // namespace

Status check_tls_files(const TlsFiles& files, const std::string& cert_option,
                       const std::string& key_option, const std::string& ca_option) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      cert_option + " and " + key_option + " must be given together");
  }
  if (!files.cert_file.empty()) {
    auto cert = first_certificate(files.cert_file, cert_option);
    if (!cert) return cert.error();
    auto f = open_pem(files.key_file, key_option);
    if (!f) return f.error();
    // A passphrase callback that gives none: an encrypted key is refused, never prompted for.
    std::unique_ptr<EVP_PKEY, KeyFree> key(PEM_read_PrivateKey(
        f->get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
    ERR_clear_error();
    if (!key) {
      return make_error(ErrorCode::kInvalidArgument,
                        key_option + ": " + files.key_file +
                            " holds no unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)");
    }
    if (X509_check_private_key(cert->get(), key.get()) != 1) {
      ERR_clear_error();
      return make_error(ErrorCode::kInvalidArgument, key_option + ": the key in " + files.key_file +
                                                         " does not match the certificate in " +
                                                         files.cert_file);
    }
  }
  if (!files.ca_file.empty()) {
    auto ca = first_certificate(files.ca_file, ca_option);
    if (!ca) return ca.error();
  }
  return ok_status();
}

}  // namespace transfer
