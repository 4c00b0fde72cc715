# Every dependency is a Debian 12 package found on the system; nothing is downloaded.
find_package(PkgConfig REQUIRED)
# cpp-httplib is a compiled library in Debian: its flags (OpenSSL/zlib/brotli support) must come
# from pkg-config or objects disagree on the layout of its classes.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(OpenSSL 3 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(Threads REQUIRED)
find_package(LibXml2 REQUIRED)  # the receiver's XML checks (xml_check.cpp), S3's answers
# The sender's S3 and FTPS clients (s3_client.cpp, ftps_client.cpp): libcurl 7.88 signs requests
# with AWS Signature V4 (CURLOPT_AWS_SIGV4; Debian's libs3 signs V2 only and there is no AWS C++
# SDK in Debian 12) and speaks FTP with explicit TLS (AUTH TLS + PROT P).
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
# Unicode normalization (NFC) of upload names (upload_name.cpp): utf8proc rather than ICU, a small
# C library (libutf8proc2: 0.5 MB installed; libicu72: 37 MB) for the one function we need.
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
# The sender's SFTP client (sftp_client.cpp): libssh 0.10 (its known_hosts checks, ed25519 keys,
# fsync@openssh.com).
pkg_check_modules(LIBSSH REQUIRED IMPORTED_TARGET libssh)
