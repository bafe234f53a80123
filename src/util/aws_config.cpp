#include "util/aws_config.h"

#include <cstdlib>
#include <sstream>

#include "util/error.h"
#include "util/fs.h"
#include "util/text.h"

namespace tailor {

static std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string IniSection::get(const std::string& key) const {
  for (const auto& kv : values)
    if (kv.first == key) return kv.second;
  return "";
}

IniSection read_ini_section(const std::string& path, const std::string& section) {
  IniSection out;
  if (!file_exists(path)) return out;
  std::istringstream in(read_file(path));
  std::string line, current;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t[0] == '[') {
      if (t.back() != ']') throw Error(path + ":" + std::to_string(line_no) + ": section header without ']'");
      current = trim(t.substr(1, t.size() - 2));
      if (current == section) out.found = true;
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos) {
      // Nested values (indented lines under "s3 =") are legal in these files; only complain at top level.
      if (line[0] == ' ' || line[0] == '\t') continue;
      throw Error(path + ":" + std::to_string(line_no) + ": expected \"key = value\"");
    }
    if (current == section) out.values.push_back({trim(t.substr(0, eq)), trim(t.substr(eq + 1))});
  }
  return out;
}

static std::string home_file(const char* rel) {
  std::string home = env("HOME");
  if (home.empty()) return "";
  return join_path(home, rel);
}

AwsCredentials resolve_aws_credentials() {
  std::string id = env("AWS_ACCESS_KEY_ID"), secret = env("AWS_SECRET_ACCESS_KEY");
  if (!id.empty() || !secret.empty()) {
    if (id.empty()) throw Error("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not");
    if (secret.empty()) throw Error("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    return {id, secret, env("AWS_SESSION_TOKEN"), "environment variables AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"};
  }
  std::string profile = env("AWS_PROFILE");
  bool explicit_profile = !profile.empty();
  if (profile.empty()) profile = "default";
  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty()) file = home_file(".aws/credentials");
  if (!file.empty() && file_exists(file)) {
    IniSection s = read_ini_section(file, profile);
    if (s.found) {
      std::string where = "profile \"" + profile + "\" in " + file;
      AwsCredentials c{s.get("aws_access_key_id"), s.get("aws_secret_access_key"), s.get("aws_session_token"), where};
      if (c.access_key_id.empty() || c.secret_access_key.empty())
        throw Error(where + " lacks aws_access_key_id or aws_secret_access_key");
      return c;
    }
    if (explicit_profile) throw Error("AWS_PROFILE names profile \"" + profile + "\", which is not in " + file);
  } else if (explicit_profile) {
    throw Error("AWS_PROFILE names profile \"" + profile + "\" but the credentials file " +
                (file.empty() ? std::string("(no HOME)") : file) + " does not exist");
  }
  throw Error("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
              "temporary ones), or a profile in " + (file.empty() ? std::string("~/.aws/credentials") : file) +
              " (AWS_PROFILE, default \"default\"), or a Bedrock API key in AWS_BEARER_TOKEN_BEDROCK");
}

std::string bedrock_bearer_token() { return env("AWS_BEARER_TOKEN_BEDROCK"); }

static void check_region(const std::string& region, const std::string& from) {
  bool ok = !region.empty() && region.size() < 64;
  for (char c : region) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  // The value is shown only when it is short: a run-together config line can carry a secret key.
  if (!ok)
    throw Error((region.size() <= 24 ? "region \"" + region + "\"" : "the region (" + std::to_string(region.size()) + " characters, not shown)") +
                " from " + from + " is not an AWS region name (like us-east-1)");
}

std::string resolve_aws_region(const std::string& flag_region) {
  if (!flag_region.empty()) {
    check_region(flag_region, "--region");
    return flag_region;
  }
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::string r = env(name);
    if (!r.empty()) {
      check_region(r, name);
      return r;
    }
  }
  std::string profile = env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  std::string file = env("AWS_CONFIG_FILE");
  if (file.empty()) file = home_file(".aws/config");
  if (!file.empty() && file_exists(file)) {
    // The config file names sections "profile NAME", except "default".
    IniSection s = read_ini_section(file, profile == "default" ? "default" : "profile " + profile);
    std::string r = s.get("region");
    if (!r.empty()) {
      check_region(r, file);
      return r;
    }
  }
  throw Error("no AWS region: pass --region or set AWS_REGION (e.g. us-east-1)");
}

// The flag, else the service's variable, else AWS_ENDPOINT_URL, else the default; no trailing slash.
static std::string resolve_endpoint(const std::string& flag_endpoint, const char* service_variable,
                                    const std::string& fallback) {
  std::string e = flag_endpoint;
  if (e.empty()) e = env(service_variable);
  if (e.empty()) e = env("AWS_ENDPOINT_URL");
  if (e.empty()) e = fallback;
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

std::string resolve_bedrock_endpoint(const std::string& flag_endpoint, const std::string& region) {
  return resolve_endpoint(flag_endpoint, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                          "https://bedrock-runtime." + region + ".amazonaws.com");
}

std::string resolve_bedrock_control_endpoint(const std::string& flag_endpoint, const std::string& region) {
  return resolve_endpoint(flag_endpoint, "AWS_ENDPOINT_URL_BEDROCK", "https://bedrock." + region + ".amazonaws.com");
}

std::string resolve_s3_endpoint(const std::string& flag_endpoint, const std::string& region) {
  return resolve_endpoint(flag_endpoint, "AWS_ENDPOINT_URL_S3", "https://s3." + region + ".amazonaws.com");
}

}  // namespace tailor
