// tailor-test: base
// Where Bedrock's credentials, API key, region and endpoint come from: environment first, then the
// shared credentials file profile (AWS_PROFILE), with temp HOME and files. Errors name variables,
// files and profiles, never secret values.
#include <gtest/gtest.h>

#include "../write/mock_server.h"
#include "test_util.h"
#include "util/error.h"
#include "util/fs.h"
#include "util/aws_config.h"

using namespace tailor;

struct Credentials : ::testing::Test {
  std::string home;
  void SetUp() override {
    mock::clear_env();
    home = test::temp_dir("cred-home-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    setenv("HOME", home.c_str(), 1);
  }
  void TearDown() override { mock::clear_env(); }
  void write_home_credentials(const std::string& text) {
    make_dirs(join_path(home, ".aws"));
    write_file_atomic(join_path(home, ".aws/credentials"), text);
  }
  std::string error_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

static const char* kFile =
    "# comment\n"
    "[default]\n"
    "aws_access_key_id = AKIDDEFAULTPROFILE\n"
    "aws_secret_access_key = defaultSecretValue123\n"
    "\n"
    "[dev]\n"
    "aws_access_key_id=AKIDDEVPROFILE\n"
    "aws_secret_access_key=devSecretValue456\n"
    "aws_session_token=devSessionToken789\n"
    "; another comment\n"
    "[broken]\n"
    "aws_access_key_id = AKIDBROKEN\n";

TEST_F(Credentials, EnvironmentComesFirst) {
  write_home_credentials(kFile);
  setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envSecret", 1);
  setenv("AWS_SESSION_TOKEN", "envToken", 1);
  setenv("AWS_PROFILE", "dev", 1);
  AwsCredentials c = resolve_aws_credentials();
  EXPECT_EQ(c.access_key_id, "AKIDFROMENV");
  EXPECT_EQ(c.secret_access_key, "envSecret");
  EXPECT_EQ(c.session_token, "envToken");
  EXPECT_NE(c.source.find("environment"), std::string::npos);
}

TEST_F(Credentials, HalfSetEnvironmentIsAnErrorWithoutTheValue) {
  setenv("AWS_ACCESS_KEY_ID", "AKIDHALF", 1);
  std::string e = error_of([] { resolve_aws_credentials(); });
  EXPECT_NE(e.find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << e;
  EXPECT_EQ(e.find("AKIDHALF"), std::string::npos) << e;
}

TEST_F(Credentials, DefaultProfileOfHomeFile) {
  write_home_credentials(kFile);
  AwsCredentials c = resolve_aws_credentials();
  EXPECT_EQ(c.access_key_id, "AKIDDEFAULTPROFILE");
  EXPECT_EQ(c.secret_access_key, "defaultSecretValue123");
  EXPECT_EQ(c.session_token, "");
  EXPECT_NE(c.source.find("profile \"default\""), std::string::npos) << c.source;
  EXPECT_NE(c.source.find(join_path(home, ".aws/credentials")), std::string::npos) << c.source;
}

TEST_F(Credentials, AwsProfileSelectsTheSection) {
  write_home_credentials(kFile);
  setenv("AWS_PROFILE", "dev", 1);
  AwsCredentials c = resolve_aws_credentials();
  EXPECT_EQ(c.access_key_id, "AKIDDEVPROFILE");
  EXPECT_EQ(c.secret_access_key, "devSecretValue456");
  EXPECT_EQ(c.session_token, "devSessionToken789");
}

TEST_F(Credentials, SharedCredentialsFileVariableOverridesHome) {
  write_home_credentials(kFile);
  std::string other = join_path(test::temp_dir("cred-other"), "creds");
  write_file_atomic(other, "[default]\naws_access_key_id = AKIDOTHERFILE\naws_secret_access_key = otherSecret\n");
  setenv("AWS_SHARED_CREDENTIALS_FILE", other.c_str(), 1);
  EXPECT_EQ(resolve_aws_credentials().access_key_id, "AKIDOTHERFILE");
}

TEST_F(Credentials, MissingOrIncompleteProfilesAreNamed) {
  write_home_credentials(kFile);
  setenv("AWS_PROFILE", "prod", 1);
  std::string e = error_of([] { resolve_aws_credentials(); });
  EXPECT_NE(e.find("\"prod\""), std::string::npos) << e;
  setenv("AWS_PROFILE", "broken", 1);
  e = error_of([] { resolve_aws_credentials(); });
  EXPECT_NE(e.find("\"broken\""), std::string::npos) << e;
  EXPECT_NE(e.find("aws_secret_access_key"), std::string::npos) << e;
  EXPECT_EQ(e.find("AKIDBROKEN"), std::string::npos) << e;
}

TEST_F(Credentials, NothingAnywhereSaysWhatToSet) {
  std::string e = error_of([] { resolve_aws_credentials(); });
  EXPECT_NE(e.find("AWS_ACCESS_KEY_ID"), std::string::npos) << e;
  EXPECT_NE(e.find("AWS_BEARER_TOKEN_BEDROCK"), std::string::npos) << e;
}

TEST_F(Credentials, MalformedFileNamesTheLine) {
  write_home_credentials("[default]\naws_access_key_id = AKIDX\nthis line is wrong\n");
  std::string e = error_of([] { resolve_aws_credentials(); });
  EXPECT_NE(e.find("credentials:3"), std::string::npos) << e;
}

TEST_F(Credentials, BearerToken) {
  EXPECT_EQ(bedrock_bearer_token(), "");
  setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKtoken", 1);
  EXPECT_EQ(bedrock_bearer_token(), "ABSKtoken");
}

TEST_F(Credentials, RegionOrder) {
  EXPECT_THROW(resolve_aws_region(""), Error);
  make_dirs(join_path(home, ".aws"));
  write_file_atomic(join_path(home, ".aws/config"), "[default]\nregion = ap-south-1\n[profile dev]\nregion = eu-west-3\n");
  EXPECT_EQ(resolve_aws_region(""), "ap-south-1");
  setenv("AWS_PROFILE", "dev", 1);
  EXPECT_EQ(resolve_aws_region(""), "eu-west-3");
  setenv("AWS_DEFAULT_REGION", "us-east-2", 1);
  EXPECT_EQ(resolve_aws_region(""), "us-east-2");
  setenv("AWS_REGION", "us-west-2", 1);
  EXPECT_EQ(resolve_aws_region(""), "us-west-2");
  EXPECT_EQ(resolve_aws_region("eu-central-1"), "eu-central-1");
  std::string e = error_of([] { resolve_aws_region("us east 1"); });
  EXPECT_NE(e.find("--region"), std::string::npos) << e;  // A run-together config line is not echoed: it can hold the secret key.
  setenv("AWS_REGION", "us-east-1aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", 1);
  e = error_of([] { resolve_aws_region(""); });
  EXPECT_NE(e.find("not shown"), std::string::npos) << e;
  EXPECT_EQ(e.find("wJalrXUtnFEMI"), std::string::npos) << e;
}

TEST_F(Credentials, EndpointOrder) {
  EXPECT_EQ(resolve_bedrock_endpoint("", "us-east-1"), "https://bedrock-runtime.us-east-1.amazonaws.com");
  setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/all/", 1);
  EXPECT_EQ(resolve_bedrock_endpoint("", "us-east-1"), "http://127.0.0.1:9/all");
  setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "http://127.0.0.1:8", 1);
  EXPECT_EQ(resolve_bedrock_endpoint("", "us-east-1"), "http://127.0.0.1:8");
  EXPECT_EQ(resolve_bedrock_endpoint("https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com", "us-east-1"),
            "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com");
}
