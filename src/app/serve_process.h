// `tailor serve` as one call: the serve process around serve/server.h. It settles the listening
// address (SageMaker's conventions), the optional bearer token and /describe writer, starts the
// server, and waits for SIGTERM/SIGINT (finishing the requests in flight) or a failed model load.
#pragma once
#include <string>

#include "serve/server.h"
#include "write/writer.h"

namespace tailor {

struct ServeProcessOptions {
  std::string model_dir;       // empty: /opt/ml/model, SageMaker's (and listen on 0.0.0.0)
  std::string host;            // empty: 127.0.0.1, or 0.0.0.0 in a container (no model_dir)
  int port = -1;               // < 0: $SAGEMAKER_BIND_TO_PORT or 8080
  std::string device = "cpu", dtype = "auto", quantize = "auto";
  std::string auth_token_env;  // require this variable's value as a bearer token
  ServeOptions server;         // queue, batch and limits; host, port and auth are filled in here
  WriterConfig writer;         // kind "none": /describe returns attributes only
};

// Returns after a signal; throws Error when the model cannot be loaded or an option is wrong.
void run_serve_process(const ServeProcessOptions& o);

}  // namespace tailor
