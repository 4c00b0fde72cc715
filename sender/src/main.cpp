// sender: converts JSON files to XML, encrypts them and uploads them to the receiver.
#include <atomic>
#include <csignal>
#include <optional>
#include <ctime>
#include <iostream>
#include <mutex>

#include "destinations.hpp"
#include "sender_admin.hpp"
#include "sender_health.hpp"
#include "sender_service.hpp"
#include "sign_request_command.hpp"
#include "transfer/process.hpp"

int main(int argc, char** argv) {
  using namespace transfer;
  // The signal thread calls stop() on the running service; main clears `running` under the same
  // lock before the service is destroyed, so stop() never runs on a destroyed service.
  static std::mutex running_mu;
  static sender::SenderService* running = nullptr;
  static std::atomic<bool> stop_requested{false};
  handle_stop_signals([](int sig) {
    std::lock_guard lock(running_mu);
    if (sig == SIGHUP) {  // read the destinations file again
      if (running) running->request_reload();
      return;
    }
    stop_requested = true;
    if (running) running->stop();
  });
  auto set_running = [](sender::SenderService* s) {
    std::lock_guard lock(running_mu);
    running = s;
  };
  if (auto code = sender::run_sign_request(arguments(argc, argv), process_environment(),
                                           static_cast<uint64_t>(std::time(nullptr)), std::cout,
                                           std::cerr)) {
    return *code;
  }
  if (auto code = sender::run_admin_command(arguments(argc, argv), process_environment(), std::cout, std::cerr)) {
    return *code;
  }
  auto loaded = sender::load_sender_config(arguments(argc, argv), process_environment());
  if (auto* exit = std::get_if<EarlyExit>(&loaded)) {
    std::cout << exit->out;
    std::cerr << exit->err;
    return exit->code;
  }
  const auto& config = std::get<sender::SenderConfig>(loaded);
  if (config.health_check) return report_health(sender::check_health(config));
  auto level = parse_log_level(config.log_level);
  if (!level) {
    std::cerr << "sender: " << level.error().message << "\n";
    return 2;
  }
  auto logger = make_stderr_logger("sender", *level, *parse_log_format(config.log_format));
  // The receivers: the DESTINATIONS_FILE's, or the one the flat options describe. A bad file
  // refuses to start with one line naming the field.
  std::vector<sender::Destination> destinations;
  if (config.destinations_file.empty()) {
    destinations.push_back(sender::default_destination(config));
  } else {
    auto loaded_destinations = sender::load_destinations_file(config.destinations_file, config);
    if (!loaded_destinations) {
      std::cerr << "sender: " << loaded_destinations.error().message << "\n";
      return 2;
    }
    destinations = std::move(*loaded_destinations);
  }
  // A reload (the destinations file or a credential file changed, or SIGHUP) ends run() once
  // nothing is in flight; a service with the new destinations takes over (state is in sender.db).
  std::optional<std::vector<sender::Destination>> in_force;  // before a reload: to fall back on
  for (;;) {
    auto service = sender::SenderService::create(config, destinations, logger);
    if (!service && in_force) {  // the new destinations do not start: keep the ones in force
      logger->error("the new destinations do not start, keeping those in force: {}",
                    service.error().message);
      destinations = std::move(*in_force);
      in_force.reset();
      continue;
    }
    if (!service) {
      logger->critical("{}", service.error().message);
      return service.error().code == ErrorCode::kInvalidKey ? 2 : 1;
    }
    in_force.reset();
    set_running(service->get());
    if (stop_requested) {
      set_running(nullptr);
      return 0;
    }
    auto summary = (*service)->run();
    set_running(nullptr);
    if (summary.reload && !stop_requested) {
      in_force = std::move(destinations);
      destinations = std::move(*summary.reload);
      continue;
    }
    if (!config.once || stop_requested) return 0;
    return summary.failed + summary.quarantined > 0 ? 1 : 0;
  }
}
