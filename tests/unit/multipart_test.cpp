#include "transfer/multipart.hpp"

#include <gtest/gtest.h>

namespace transfer {
namespace {

struct Collected {
  std::vector<MultipartPart> parts;
  std::vector<std::string> data;
};

Status parse_in_chunks(const std::string& body, size_t chunk, Collected& c) {
  MultipartParser p("XyZ", {[&](const MultipartPart& part) {
                              c.parts.push_back(part);
                              c.data.emplace_back();
                              return ok_status();
                            },
                            [&](const char* d, size_t n) {
                              c.data.back().append(d, n);
                              return ok_status();
                            },
                            [] { return ok_status(); }});
  for (size_t i = 0; i < body.size(); i += chunk) {
    if (auto st = p.feed(body.substr(i, chunk)); !st) return st;
  }
  return p.finish();
}

const std::string kRequestsBody =
    "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"books.xml.enc\"\r\n\r\n"
    "gAAAAA-token\r\n--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n"
    "Content-Type: text/plain\r\n\r\nv\r\n--XyZ--\r\n";

TEST(Multipart, ParsesAtEveryChunkSize) {
  for (size_t chunk = 1; chunk <= kRequestsBody.size(); ++chunk) {
    Collected c;
    ASSERT_TRUE(parse_in_chunks(kRequestsBody, chunk, c).ok()) << chunk;
    ASSERT_EQ(c.parts.size(), 2U);
    EXPECT_EQ(c.parts[0].name, "file");
    EXPECT_EQ(c.parts[0].filename.value_or(""), "books.xml.enc");
    EXPECT_EQ(c.data[0], "gAAAAA-token");
    EXPECT_EQ(c.parts[1].name, "other");
    EXPECT_EQ(c.parts[1].content_type, "text/plain");
    EXPECT_EQ(c.data[1], "v");
  }
}

TEST(Multipart, DataThatLooksLikeABoundaryPrefixPassesThrough) {
  const std::string body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n"
                           "a\r\n--Xy\r\n--XyZZ\r\n--XyZ--";
  Collected c;
  ASSERT_TRUE(parse_in_chunks(body, 1, c).ok());
  EXPECT_EQ(c.data[0], "a\r\n--Xy\r\n--XyZZ");  // "--XyZZ" is not followed by CRLF or "--"
}

TEST(Multipart, RefusesMalformedBodies) {
  const std::vector<std::string> bad = {
      "",                                                          // nothing
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",  // truncated
      "--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--XyZ--\r\ngarbage",
      "--XyZ\r\nNoColonHere\r\n\r\nabc\r\n--XyZ--",
      "--XyZ\r\nContent-Type: text/plain\r\n\r\nabc\r\n--XyZ--",     // no disposition
      "--XyZ\r\nContent-Disposition: attachment; name=\"file\"\r\n\r\nx\r\n--XyZ--",
      "--XyZjunk\r\n",
      "--XyZ\r\n" + std::string(20000, 'h'),                        // endless headers
  };
  for (const auto& body : bad) {
    Collected c;
    auto st = parse_in_chunks(body, 7, c);
    EXPECT_FALSE(st.ok()) << body.substr(0, 60);
  }
}

TEST(Multipart, APreambleLimitThatDoesNotDependOnChunking) {
  // Found by fuzz_multipart: a long preamble was accepted in one piece and refused in chunks.
  // The default limit is 16 KiB: the opening delimiter must start within it.
  for (const size_t preamble : {size_t{100}, size_t{16 * 1024 - 2}, size_t{16 * 1024 + 1}, size_t{40000}}) {
    const std::string body = std::string(preamble, 'p') + "\r\n" + kRequestsBody;
    const bool want = preamble + 2 <= 16 * 1024;
    for (const size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, body.size()}) {
      Collected c;
      EXPECT_EQ(parse_in_chunks(body, chunk, c).ok(), want) << preamble << " in chunks of " << chunk;
    }
  }
}

TEST(Multipart, BoundaryFromContentType) {
  EXPECT_EQ(multipart_boundary("multipart/form-data; boundary=abc").value_or(""), "abc");
  EXPECT_EQ(multipart_boundary("Multipart/Form-Data; charset=x; boundary=\"a b\"").value_or(""), "a b");
  EXPECT_FALSE(multipart_boundary("multipart/form-data").has_value());
  EXPECT_FALSE(multipart_boundary("application/octet-stream; boundary=x").has_value());
  EXPECT_FALSE(multipart_boundary("multipart/form-data; boundary=" + std::string(71, 'a')).has_value());
}

}  // namespace
}  // namespace transfer
