// Where AWS settings come from (Bedrock's writer, the catalog's S3 photos and tables), in the order the AWS SDKs use: credentials (environment, then
// the shared credentials file profile), a Bedrock API key, region and endpoint override.
#pragma once
#include <string>

#include "util/sigv4.h"

namespace tailor {

// AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), else the profile AWS_PROFILE (or
// "default") of AWS_SHARED_CREDENTIALS_FILE (or ~/.aws/credentials). Throws Error saying what was
// looked at when none is found; messages name variables, files and profiles, never values.
AwsCredentials resolve_aws_credentials();

// AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key); "" when unset.
std::string bedrock_bearer_token();

// --region, else AWS_REGION, else AWS_DEFAULT_REGION, else the profile's region in
// AWS_CONFIG_FILE (or ~/.aws/config). Throws Error when none is set.
std::string resolve_aws_region(const std::string& flag_region);

// --endpoint-url, else AWS_ENDPOINT_URL_BEDROCK_RUNTIME, else AWS_ENDPOINT_URL, else
// https://bedrock-runtime.{region}.amazonaws.com. No trailing slash.
std::string resolve_bedrock_endpoint(const std::string& flag_endpoint, const std::string& region);

// Bedrock's control plane (batch inference jobs): the flag, else AWS_ENDPOINT_URL_BEDROCK, else
// AWS_ENDPOINT_URL, else https://bedrock.{region}.amazonaws.com. No trailing slash.
std::string resolve_bedrock_control_endpoint(const std::string& flag_endpoint, const std::string& region);

// --endpoint-url, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else https://s3.{region}.amazonaws.com.
std::string resolve_s3_endpoint(const std::string& flag_endpoint, const std::string& region);

// One [section] of an INI-style AWS file: key -> value; empty map when the section is absent.
// Throws Error (naming the file and line) on a malformed line.
struct IniSection {
  bool found = false;
  std::vector<std::pair<std::string, std::string>> values;
  std::string get(const std::string& key) const;
};
IniSection read_ini_section(const std::string& path, const std::string& section);

}  // namespace tailor
