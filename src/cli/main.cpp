#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "app/training_job.h"

#include "cli/commands.h"
#include "util/crash.h"
#include "util/error.h"
#include "util/runtime_env.h"

int main(int argc, char** argv) {
  tailor::ensure_runtime_env();
  tailor::install_crash_handler();
  CLI::App app{"tailor: product attributes and descriptions from catalog photos (BLIP-2 in C++)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every command");
  tailor::cli::add_prepare(app);
  tailor::cli::add_synth(app);
  tailor::cli::add_demo(app);
  tailor::cli::add_init(app);
  tailor::cli::add_ask(app);
  tailor::cli::add_train(app);
  tailor::cli::add_eval(app);
  tailor::cli::add_serve(app);
  tailor::cli::add_describe(app);
  tailor::cli::add_review(app);
  tailor::cli::add_package(app);
  tailor::cli::add_quantize(app);
  // SageMaker starts a training job as `docker run IMAGE train`: no flags, the job's files say it all,
  // and a failure's reason goes to its output/failure as well.
  const bool job = argc == 2 && std::strcmp(argv[1], "train") == 0 && tailor::training_job_present();
  try {
    if (job) tailor::cli::run_training_job(app);
    else app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (job) tailor::write_job_failure(std::string("hyperparameters: ") + e.what());
    return app.exit(e);
  } catch (const tailor::Error& e) {
    if (job) tailor::write_job_failure(e.what());
    std::fprintf(stderr, "tailor: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    if (job) tailor::write_job_failure(std::string("internal error: ") + e.what());
    std::fprintf(stderr, "tailor: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
