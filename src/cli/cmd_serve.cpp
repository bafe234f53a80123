#include "app/serve_process.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace tailor::cli {

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model as a SageMaker-compatible HTTP endpoint (/ping, /invocations, /describe, /metrics)");
  auto f = std::make_shared<ServeProcessOptions>();
  f->writer.kind = "none";
  auto max_payload_mb = std::make_shared<int>(6);
  auto answer = std::make_shared<std::string>("choice");
  auto deadline_s = std::make_shared<int>(30);
  auto idle_s = std::make_shared<int>(5);
  auto image_mpixels = std::make_shared<double>(50);
  auto inflight_mpixels = std::make_shared<double>(200);
  cmd->add_option("--model", f->model_dir, "Model directory (default /opt/ml/model, SageMaker's)");
  cmd->add_option("--host", f->host, "Address to listen on (default 127.0.0.1; 0.0.0.0 when --model is not given, as in a container)");
  cmd->add_option("--port", f->port, "Port (default $SAGEMAKER_BIND_TO_PORT or 8080)")->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", f->server.max_batch, "Most questions per model call")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--max-wait-ms", f->server.max_wait_ms, "Longest a request waits for others to batch with")->check(CLI::Range(0, 60000))->capture_default_str();
  cmd->add_option("--queue", f->server.queue_capacity, "Requests waiting for the model before 503")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--timeout-ms", f->server.timeout_ms, "Per-request timeout (then 504)")->check(CLI::Range(1, 3600000))->capture_default_str();
  cmd->add_option("--max-payload-mb", *max_payload_mb, "Largest request body in MiB, as read and as inflated (then 413)")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--http-threads", f->server.http_threads, "Requests handled at once (0: queue + max batch + 8); slow or idle connections take none")->check(CLI::Range(0, 4096))->capture_default_str();
  cmd->add_option("--request-deadline-s", *deadline_s, "A request's headers and body must arrive within this (then 408)")->check(CLI::Range(1, 3600))->capture_default_str();
  cmd->add_option("--idle-timeout-s", *idle_s, "A keep-alive connection without a request is closed after this")->check(CLI::Range(1, 3600))->capture_default_str();
  cmd->add_option("--max-connections", f->server.max_connections, "Open connections (then 503; bounded by the descriptor limit)")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--max-image-mpixels", *image_mpixels, "Largest image in megapixels, checked from its header before decoding (then 400)")->check(CLI::Range(0.001, 1000.0))->capture_default_str();
  cmd->add_option("--max-inflight-mpixels", *inflight_mpixels, "Decoded megapixels of all requests being served (3 bytes each; then 503)")->check(CLI::Range(0.001, 100000.0))->capture_default_str();
  cmd->add_option("--auth-token-env", f->auth_token_env, "Require 'Authorization: Bearer <token>', the token read from this environment variable");
  cmd->add_option("--answer", *answer, "Default answer mode: choice (the likeliest known value, with a confidence) or free (generated text); requests may set parameters.answer")
      ->check(CLI::IsMember({"choice", "free"}))
      ->capture_default_str();
  cmd->add_option("--device", f->device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "auto, f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--quantize", f->quantize, "Frozen weights: auto (as the model directory has them), none, int8 (per channel) or nf4 (QLoRA's 4-bit, groups of 64)")->capture_default_str();
  add_writer_flags(cmd, f->writer, "none, offline, bedrock or openai (for /describe)");
  cmd->callback([f, max_payload_mb, answer, deadline_s, idle_s, image_mpixels, inflight_mpixels] {
    f->server.max_payload_bytes = static_cast<size_t>(*max_payload_mb) << 20;
    f->server.request_deadline_ms = *deadline_s * 1000;
    f->server.idle_timeout_ms = *idle_s * 1000;
    f->server.max_image_pixels = static_cast<uint64_t>(*image_mpixels * 1e6);
    f->server.max_pixels_in_flight = static_cast<uint64_t>(*inflight_mpixels * 1e6);
    f->server.answer_mode = parse_answer_mode(*answer);
    run_serve_process(*f);
  });
}

}  // namespace tailor::cli
