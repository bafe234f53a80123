#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "cli/commands.h"
#include "infer/load.h"
#include "serve/server.h"
#include "util/error.h"
#include "util/torch_threads.h"
#include "write/writer.h"

namespace tailor::cli {

void add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Serve a model as a SageMaker-compatible HTTP endpoint (/ping, /invocations, /describe, /metrics)");
  struct Flags {
    std::string model;
    std::string host;
    int port = -1;
    std::string device = "cpu";
    std::string dtype = "auto";
    std::string auth_token_env;
    int max_batch = 32;
    int max_wait_ms = 5;
    int queue = 256;
    int timeout_ms = 30000;
    int max_payload_mb = 6;
    int http_threads = 0;
    std::string answer = "choice";
    WriterConfig writer;
  };
  auto f = std::make_shared<Flags>();
  f->writer.kind = "none";
  cmd->add_option("--model", f->model, "Model directory (default /opt/ml/model, SageMaker's)");
  cmd->add_option("--host", f->host, "Address to listen on (default 127.0.0.1; 0.0.0.0 when --model is not given, as in a container)");
  cmd->add_option("--port", f->port, "Port (default $SAGEMAKER_BIND_TO_PORT or 8080)")->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", f->max_batch, "Most questions per model call")->check(CLI::Range(1, 4096))->capture_default_str();
  cmd->add_option("--max-wait-ms", f->max_wait_ms, "Longest a request waits for others to batch with")->check(CLI::Range(0, 60000))->capture_default_str();
  cmd->add_option("--queue", f->queue, "Requests waiting for the model before 503")->check(CLI::Range(1, 1000000))->capture_default_str();
  cmd->add_option("--timeout-ms", f->timeout_ms, "Per-request timeout (then 504)")->check(CLI::Range(1, 3600000))->capture_default_str();
  cmd->add_option("--max-payload-mb", f->max_payload_mb, "Largest request body in MiB (then 413)")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--http-threads", f->http_threads, "Connections served at once (0: queue + max batch + 8)")->check(CLI::Range(0, 4096))->capture_default_str();
  cmd->add_option("--auth-token-env", f->auth_token_env, "Require 'Authorization: Bearer <token>', the token read from this environment variable");
  cmd->add_option("--answer", f->answer, "Default answer mode: choice (the likeliest known value, with a confidence) or free (generated text); requests may set parameters.answer")
      ->check(CLI::IsMember({"choice", "free"}))
      ->capture_default_str();
  cmd->add_option("--device", f->device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--dtype", f->dtype, "auto, f32, bf16 or f16")->capture_default_str();
  cmd->add_option("--writer", f->writer.kind, "Description writer for /describe: none, offline, bedrock or openai")
      ->capture_default_str();
  cmd->add_option("--writer-model", f->writer.model, "LLM model id for the writer (else its default)");
  cmd->add_option("--region", f->writer.region, "AWS region for bedrock (else AWS_REGION, AWS_DEFAULT_REGION)");
  cmd->add_option("--endpoint-url", f->writer.endpoint_url, "Bedrock runtime endpoint URL override");
  cmd->add_option("--base-url", f->writer.base_url, "OpenAI-compatible base URL (.../v1)");
  cmd->add_option("--api-key-env", f->writer.api_key_env, "Environment variable holding the OpenAI-compatible key");

  cmd->callback([f] {
    const bool container = f->model.empty();
    ServeOptions o;
    std::string model_dir = container ? "/opt/ml/model" : f->model;
    o.host = !f->host.empty() ? f->host : (container ? "0.0.0.0" : "127.0.0.1");
    o.port = 8080;
    if (f->port >= 0) {
      o.port = f->port;
    } else if (const char* p = std::getenv("SAGEMAKER_BIND_TO_PORT")) {
      char* end = nullptr;
      long v = std::strtol(p, &end, 10);
      if (*p == '\0' || *end != '\0' || v < 1 || v > 65535)
        throw Error(std::string("SAGEMAKER_BIND_TO_PORT=\"") + p + "\" is not a port number");
      o.port = static_cast<int>(v);
    }
    o.max_batch = static_cast<size_t>(f->max_batch);
    o.max_wait_ms = f->max_wait_ms;
    o.queue_capacity = static_cast<size_t>(f->queue);
    o.timeout_ms = f->timeout_ms;
    o.max_payload_bytes = static_cast<size_t>(f->max_payload_mb) << 20;
    o.http_threads = f->http_threads;
    o.answer_mode = parse_answer_mode(f->answer);
    if (!f->auth_token_env.empty()) {
      const char* t = std::getenv(f->auth_token_env.c_str());
      if (!t || !*t) throw Error("--auth-token-env " + f->auth_token_env + ": the variable is not set or empty");
      o.auth_token = t;
    }
    // /describe: attributes only, or attributes + a description from a writer (checked now, so a
    // missing credential fails at start rather than on every request).
    if (f->writer.kind != "none") {
      std::shared_ptr<const Writer> writer = make_writer(f->writer);
      o.describer = [writer](const std::map<std::string, std::string>& attributes) {
        ProductAttributes list;
        for (const auto& [name, value] : attributes) list.push_back({name, value});
        return writer->write(list);
      };
    }

    init_torch_threads();
    LoadOptions load;
    load.device = f->device;
    load.dtype = f->dtype;
    AnswererFactory factory = [model_dir, load] { return load_answerer(model_dir, load); };

    // SIGTERM/SIGINT are taken by sigtimedwait below; block them before any thread starts so no
    // other thread gets them.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    Server server(o, factory);
    int port = server.start();
    std::fprintf(stderr, "tailor serve: listening on http://%s:%d, loading %s on %s\n", o.host.c_str(), port,
                 model_dir.c_str(), load.device.c_str());
    bool announced = false;
    int signal_number = 0;
    while (!server.load_failed()) {
      timespec wait{0, 200 * 1000 * 1000};
      int s = sigtimedwait(&signals, nullptr, &wait);
      if (s == SIGTERM || s == SIGINT) {
        signal_number = s;
        break;
      }
      if (!announced && server.ready()) {
        std::fprintf(stderr, "tailor serve: model loaded, ready\n");
        announced = true;
      }
    }
    if (signal_number)
      std::fprintf(stderr, "tailor serve: %s, finishing requests in flight\n",
                   signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
    server.stop();
    if (server.load_failed()) throw Error("cannot load the model " + model_dir + ": " + server.load_error());
    std::fprintf(stderr, "tailor serve: stopped\n");
  });
}

}  // namespace tailor::cli
