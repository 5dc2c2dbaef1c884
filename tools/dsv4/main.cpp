// dsv4: one binary, one subcommand per job (see README "CLI").
#include <CLI/CLI.hpp>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"dsv4.cpp: DeepSeek-V4 inference engine"};
  app.require_subcommand(1);
  int exit_code = 0;
  dsv4::cli::RegisterMakeTiny(app, &exit_code);
  dsv4::cli::RegisterInspect(app, &exit_code);
  dsv4::cli::RegisterPlan(app, &exit_code);
  dsv4::cli::RegisterLogits(app, &exit_code);
  dsv4::cli::RegisterRun(app, &exit_code);
  dsv4::cli::RegisterBench(app, &exit_code);
  dsv4::cli::RegisterServe(app, &exit_code);
  dsv4::cli::RegisterTokenize(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
