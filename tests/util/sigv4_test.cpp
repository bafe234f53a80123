// tailor-test: base
// AWS's SigV4 test suite (../shared/testdata/aws-sig-v4-test-suite): for every case, parse the .req,
// compute the canonical request, string to sign and Authorization header, and compare them with the
// suite's .creq, .sts and .authz; also rebuild the signed request and compare it with .sreq.
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"
#include "util/fs.h"
#include "util/sigv4.h"

using namespace tailor;
namespace fs = std::filesystem;

// The suite's fixed inputs (AWS's documented example credentials, region and service).
static const char* kAccessKey = "AKIDEXAMPLE";
static const char* kSecretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
// From post-sts-token/readme.txt.
static const char* kSessionToken =
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8Y"
    "UuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE"
    "8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2"
    "ICCR/oLxBA==";

static std::string suite_dir() {
  fs::path p = fs::path(test::shared_dir()) / "testdata" / "aws-sig-v4-test-suite";
  if (!fs::is_directory(p))
    throw std::runtime_error("the AWS SigV4 test suite is missing: expected " + p.string() +
                             " (../shared beside the repo)");
  return p.string();
}

struct ParsedReq {
  SigV4Request req;
  std::string head;  // request line + header lines as in the file, for rebuilding .sreq
  std::string amz_date;
};

// The .req files are HTTP/1.1 requests: "METHOD target HTTP/1.1", header lines (a line starting with
// whitespace continues the previous header's value), a blank line, then the body. The target may
// hold raw spaces and UTF-8 (that is what the cases test), so it is everything between the first
// space and the last " HTTP/".
static ParsedReq parse_req(const std::string& text, const std::string& where) {
  ParsedReq p;
  size_t blank = text.find("\n\n");
  p.head = blank == std::string::npos ? text : text.substr(0, blank);
  if (blank != std::string::npos) p.req.body = text.substr(blank + 2);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= p.head.size()) {
    size_t nl = p.head.find('\n', start);
    if (nl == std::string::npos) nl = p.head.size();
    lines.push_back(p.head.substr(start, nl - start));
    start = nl + 1;
  }
  const std::string& rl = lines.at(0);
  size_t sp = rl.find(' ');
  size_t proto = rl.rfind(" HTTP/");
  if (sp == std::string::npos || proto == std::string::npos || proto <= sp)
    throw std::runtime_error(where + ": bad request line: " + rl);
  p.req.method = rl.substr(0, sp);
  std::string target = rl.substr(sp + 1, proto - sp - 1);
  size_t q = target.find('?');
  p.req.path = target.substr(0, q);
  if (q != std::string::npos) p.req.query = target.substr(q + 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (!l.empty() && (l[0] == ' ' || l[0] == '\t')) {
      if (p.req.headers.empty()) throw std::runtime_error(where + ": continuation line before any header");
      p.req.headers.back().second += "\n" + l;
      continue;
    }
    size_t colon = l.find(':');
    if (colon == std::string::npos) throw std::runtime_error(where + ": bad header line: " + l);
    p.req.headers.push_back({l.substr(0, colon), l.substr(colon + 1)});
    std::string name = l.substr(0, colon);
    if (name == "X-Amz-Date") p.amz_date = l.substr(colon + 1);
  }
  return p;
}

struct SuiteCase {
  std::string name;
  std::string dir;
};

static std::vector<SuiteCase> find_cases() {
  std::vector<SuiteCase> out;
  for (const auto& e : fs::recursive_directory_iterator(suite_dir())) {
    if (e.path().extension() != ".req") continue;
    out.push_back({e.path().stem().string(), e.path().parent_path().string()});
  }
  std::sort(out.begin(), out.end(), [](const SuiteCase& a, const SuiteCase& b) { return a.name < b.name; });
  return out;
}

TEST(SigV4Suite, EveryCaseMatchesCanonicalRequestStringToSignAndAuthorization) {
  std::vector<SuiteCase> cases = find_cases();
  // The suite as shipped has 31 cases (29 + 2 session-token cases); none may go missing unnoticed.
  ASSERT_EQ(cases.size(), 31u) << "unexpected number of .req files in " << suite_dir();
  int passed = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string base = join_path(c.dir, c.name);
    ParsedReq p = parse_req(read_file(base + ".req"), base + ".req");
    ASSERT_EQ(p.amz_date.size(), 16u);

    AwsCredentials creds{kAccessKey, kSecretKey, "", "suite"};
    SigV4Options opts;
    opts.region = "us-east-1";
    opts.service = "service";
    opts.amz_date = p.amz_date;
    // post-sts-header-after: the token is added after signing; -before: the .req already has it.
    bool token_after = c.name == "post-sts-header-after";
    if (token_after) {
      creds.session_token = kSessionToken;
      opts.sign_session_token = false;
    }
    SigV4Result r = sigv4_sign(p.req, creds, opts);
    EXPECT_EQ(r.canonical_request, read_file(base + ".creq"));
    EXPECT_EQ(r.string_to_sign, read_file(base + ".sts"));
    EXPECT_EQ(r.authorization, read_file(base + ".authz"));

    std::string sreq = p.head;
    if (token_after) sreq += std::string("\nX-Amz-Security-Token:") + kSessionToken;
    sreq += "\nAuthorization: " + r.authorization;
    if (!p.req.body.empty()) sreq += "\n\n" + p.req.body;
    EXPECT_EQ(sreq, read_file(base + ".sreq"));
    if (!::testing::Test::HasFailure()) ++passed;
  }
  EXPECT_EQ(passed, 31);
}

TEST(SigV4Suite, SessionTokenCasesUseTheReadmeToken) {
  // The token in post-sts-header-before.req is the one from the readme: both cases sign the same
  // credentials, once with the token signed and once with it added afterwards.
  std::string dir = join_path(suite_dir(), "post-sts-token");
  std::string readme = read_file(join_path(dir, "readme.txt"));
  EXPECT_NE(readme.find(kSessionToken), std::string::npos);
  std::string before = read_file(join_path(dir, "post-sts-header-before/post-sts-header-before.req"));
  EXPECT_NE(before.find(std::string("X-Amz-Security-Token:") + kSessionToken), std::string::npos);
}

TEST(SigV4, SignRequestAddsHeadersAndSignsTheToken) {
  SigV4Request req;
  req.method = "POST";
  req.path = "/";
  ParsedReq expect = parse_req(
      read_file(join_path(suite_dir(), "post-sts-token/post-sts-header-before/post-sts-header-before.req")), "req");
  SigV4Options opts;
  opts.region = "us-east-1";
  opts.service = "service";
  opts.amz_date = "20150830T123600Z";
  AwsCredentials creds{kAccessKey, kSecretKey, kSessionToken, "test"};
  SigV4Result r = sigv4_sign_request(req, "example.amazonaws.com", creds, opts);
  EXPECT_EQ(r.authorization,
            read_file(join_path(suite_dir(), "post-sts-token/post-sts-header-before/post-sts-header-before.authz")));
  ASSERT_EQ(req.headers.size(), 4u);
  EXPECT_EQ(req.headers.back().first, "Authorization");
}

TEST(SigV4, BedrockModelIdIsEncodedTwiceInTheCanonicalPath) {
  // The URL carries the model id with ':' encoded once; non-S3 canonical URIs encode each segment
  // of that path again (what botocore and the other SDKs do for bedrock-runtime).
  EXPECT_EQ(sigv4_canonical_uri("/model/anthropic.claude-3-sonnet-20240229-v1%3A0/invoke", true, true),
            "/model/anthropic.claude-3-sonnet-20240229-v1%253A0/invoke");
  EXPECT_EQ(sigv4_canonical_uri("/model/a%3A0/invoke", false, false), "/model/a%3A0/invoke");  // S3 style
  EXPECT_EQ(uri_encode("a:b/c d~", false), "a%3Ab%2Fc%20d~");
  EXPECT_EQ(percent_decode("a%3Ab%2"), "a:b%2");
}

TEST(SigV4, RejectsBadDateAndMissingKeys) {
  SigV4Request req;
  req.method = "GET";
  req.path = "/";
  SigV4Options opts{"us-east-1", "service", "2015-08-30"};
  EXPECT_THROW(sigv4_sign(req, {kAccessKey, kSecretKey, "", ""}, opts), std::exception);
  opts.amz_date = "20150830T123600Z";
  EXPECT_THROW(sigv4_sign(req, {"", "", "", ""}, opts), std::exception);
  EXPECT_EQ(amz_date_from_unix(1440938160), "20150830T123600Z");
}
