// receiver: decrypts uploads from the sender and writes the XML to the output directory.
#include <atomic>
#include <iostream>
#include <mutex>

#include "health_probe.hpp"
#include "receiver_service.hpp"
#include "transfer/process.hpp"

int main(int argc, char** argv) {
  using namespace transfer;
  // The signal thread calls stop() on the running service; main clears `running` under the same
  // lock before the service is destroyed, so stop() never runs on a destroyed service.
  static std::mutex running_mu;
  static receiver::ReceiverService* running = nullptr;
  static std::atomic<bool> stop_requested{false};
  handle_stop_signals([](int) {
    stop_requested = true;
    std::lock_guard lock(running_mu);
    if (running) running->stop();
  });
  auto set_running = [](receiver::ReceiverService* s) {
    std::lock_guard lock(running_mu);
    running = s;
  };
  auto loaded = receiver::load_receiver_config(arguments(argc, argv), process_environment());
  if (auto* exit = std::get_if<EarlyExit>(&loaded)) {
    std::cout << exit->out;
    std::cerr << exit->err;
    return exit->code;
  }
  const auto& config = std::get<receiver::ReceiverConfig>(loaded);
  if (config.health_check) return report_health(receiver::probe_health(config, 3.0));
  auto level = parse_log_level(config.log_level);
  if (!level) {
    std::cerr << "receiver: " << level.error().message << "\n";
    return 2;
  }
  auto logger = make_stderr_logger("receiver", *level, *parse_log_format(config.log_format));
  auto service = receiver::ReceiverService::create(config, logger);
  if (!service) {
    logger->critical("{}", service.error().message);
    const ErrorCode code = service.error().code;  // a setting to fix: 2, as for bad options
    return code == ErrorCode::kInvalidKey || code == ErrorCode::kInvalidArgument ? 2 : 1;
  }
  if (auto port = (*service)->start(); !port) {
    logger->critical("{}", port.error().message);
    return 1;
  }
  set_running(service->get());
  if (stop_requested) {
    set_running(nullptr);
    return 0;
  }
  const bool ok = (*service)->run().ok();
  set_running(nullptr);
  return ok ? 0 : 1;
}
