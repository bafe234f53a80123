// tailor-test: base
#include <gtest/gtest.h>

#include "serve/base64.h"
#include "util/error.h"

namespace tailor {

static std::string decoded(const std::string& s) {
  std::vector<uint8_t> b = decode_base64(s);
  return std::string(b.begin(), b.end());
}

static std::string encoded(const std::string& s) {
  return encode_base64(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// RFC 4648 section 10 test vectors.
TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},          {"f", "Zg=="},       {"fo", "Zm8="},
                                                    {"foo", "Zm9v"},  {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                                                    {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, b64] : v) {
    EXPECT_EQ(encoded(plain), b64);
    EXPECT_EQ(decoded(b64), plain);
  }
}

TEST(Base64, UnpaddedWhitespaceAndUrlSafe) {
  EXPECT_EQ(decoded("Zm9vYg"), "foob");
  EXPECT_EQ(decoded("Zm9v\r\nYmFy\n"), "foobar");
  // 0xfb 0xff encodes to "+/8=" in the standard alphabet, "-_8=" in the URL-safe one.
  std::string bytes = "\xfb\xff";
  EXPECT_EQ(encoded(bytes), "+/8=");
  EXPECT_EQ(decoded("-_8="), bytes);
}

TEST(Base64, AllByteValuesRoundTrip) {
  std::vector<uint8_t> all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<uint8_t>(i));
  for (size_t n = 250; n <= 256; ++n) {
    std::vector<uint8_t> part(all.begin(), all.begin() + n);
    EXPECT_EQ(decode_base64(encode_base64(part.data(), part.size())), part);
  }
}

static std::string error_of(const std::string& s) {
  try {
    decode_base64(s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Base64, ErrorsNameTheOffset) {
  EXPECT_NE(error_of("Zm9v!mFy").find("'!' at offset 4"), std::string::npos) << error_of("Zm9v!mFy");
  EXPECT_NE(error_of("Zm9v\x01").find("0x01 at offset 4"), std::string::npos);
  EXPECT_NE(error_of("Zg==Zg==").find("after padding"), std::string::npos);
  EXPECT_NE(error_of("Zm9vY").find("truncated"), std::string::npos);
  EXPECT_NE(error_of("Zg=").find("padding"), std::string::npos);
  EXPECT_NE(error_of("====").find("padding"), std::string::npos);
}

}  // namespace tailor
