#include "cli/flags.h"

namespace tailor::cli {

void add_distributed_flags(CLI::App* cmd, DistributedOptions& o) {
  cmd->add_option("--nproc", o.nproc,
                  "Data-parallel on this host: start N ranks of tailor (else the torchrun variables RANK, "
                  "WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK say who this process is)");
  cmd->add_option("--dist-timeout", o.timeout_s,
                  "Seconds to wait for the other ranks at rendezvous and at each collective (default 300)");
}

void add_writer_flags(CLI::App* cmd, WriterConfig& w, const std::string& kinds) {
  cmd->add_option("--writer", w.kind, "Description writer: " + kinds)->capture_default_str();
  cmd->add_option("--writer-model", w.model, "LLM model id (bedrock default " + std::string(kDefaultBedrockModel) +
                                                 ", openai default " + kDefaultOpenAIModel + ")");
  cmd->add_option("--bedrock-api", w.bedrock_api,
                  "converse (Bedrock's Converse API: any chat model) or invoke (InvokeModel with Anthropic's body)")
      ->check(CLI::IsMember({"converse", "invoke"}))
      ->capture_default_str();
  cmd->add_option("--region", w.region, "AWS region for bedrock (else AWS_REGION, AWS_DEFAULT_REGION)");
  cmd->add_option("--endpoint-url", w.endpoint_url,
                  "Bedrock endpoint (else AWS_ENDPOINT_URL_BEDROCK_RUNTIME, AWS_ENDPOINT_URL)");
  cmd->add_option("--base-url", w.base_url, "OpenAI-compatible base URL (…/v1)");
  cmd->add_option("--api-key-env", w.api_key_env, "Environment variable holding the OpenAI-compatible key");
}

}  // namespace tailor::cli
