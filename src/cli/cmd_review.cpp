#include <cstdlib>

#include "app/review_server.h"
#include "cli/commands.h"
#include "util/error.h"

namespace tailor::cli {

void add_review(CLI::App& app) {
  auto* cmd = app.add_subcommand("review", "Serve a web page to check, fix and approve what `tailor describe` wrote");
  auto o = std::make_shared<ReviewOptions>();
  auto auth_env = std::make_shared<std::string>();
  cmd->add_option("--describe", o->describe_path, "The JSONL `tailor describe` wrote")->required();
  cmd->add_option("--db", o->db_path, "Review database (SQLite; default <describe>.review.sqlite)");
  cmd->add_option("--catalog", o->photos.catalog_dir, "Catalog directory: photos images/<id>.jpg, names from styles.csv");
  cmd->add_option("--photos", o->photos.photos_dir, "Directory of <id>.jpg / <id>.png photos (for `describe --images`)");
  cmd->add_option("--model", o->model_dir, "Model directory: its tailor_task.json gives the questions and allowed values");
  cmd->add_option("--train-log", o->train_log, "train_log.jsonl of the model's training, for the summary's loss curve");
  cmd->add_option("--host", o->host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free one)")->check(CLI::Range(0, 65535))->capture_default_str();
  cmd->add_option("--auth-token-env", *auth_env,
                  "Require a login: the password / bearer token is read from this environment variable");
  cmd->add_option("--export", o->export_dir,
                  "Write approved.jsonl, approved.csv and corrections.jsonl to this directory and exit");
  cmd->add_option("--writer", o->writer.kind, "Writer for \"regenerate\": offline, bedrock or openai")->capture_default_str();
  cmd->add_option("--writer-model", o->writer.model, "LLM model id for the writer (else its default)");
  cmd->add_option("--region", o->writer.region, "AWS region for bedrock");
  cmd->add_option("--endpoint-url", o->writer.endpoint_url, "Bedrock runtime endpoint URL override");
  cmd->add_option("--base-url", o->writer.base_url, "OpenAI-compatible base URL (.../v1)");
  cmd->add_option("--api-key-env", o->writer.api_key_env, "Environment variable holding the OpenAI-compatible key");
  cmd->callback([o, auth_env] {
    if (!auth_env->empty()) {
      const char* t = std::getenv(auth_env->c_str());
      if (!t || !*t) throw Error("--auth-token-env " + *auth_env + ": the variable is not set or empty");
      o->auth_token = t;
    }
    run_review(*o);
  });
}

}  // namespace tailor::cli
