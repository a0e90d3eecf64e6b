// smtpgate: command line. Parses options, loads the configuration and starts the server.
#include <fmt/format.h>
#include <boost/program_options.hpp>

#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtpgate/config/loader.hpp"
#include "smtpgate/config/units.hpp"
#include "smtpgate/net/server.hpp"
#include "smtpgate/net/tls_context.hpp"
#include "smtpgate/ops/learn.hpp"
#include "smtpgate/ops/log.hpp"

namespace po = boost::program_options;
using namespace smtpgate;

namespace {

constexpr const char* default_config = "/etc/smtpgate/smtpgate.toml";

config::endpoint endpoint_option(const std::string& text, bool allow_hostname, const char* option) {
    auto ep = config::parse_endpoint(text, allow_hostname);
    if (!ep) {
        throw std::runtime_error(fmt::format(
            "--{}: expected an address like \"127.0.0.1:25\" or \"[::1]:25\", got \"{}\"", option,
            text));
    }
    return *ep;
}

}  // namespace

// `smtpgate learn [--min-count N] LOG...`: suggested interval exceptions (vmeasure).
int learn(int argc, char** argv) {
    po::options_description options("Options for learn");
    options.add_options()("help,h", "show this help and exit")(
        "min-count", po::value<std::size_t>()->default_value(2),
        "suggest an entry only when it would have been throttled at least this often")(
        "log", po::value<std::vector<std::string>>()->value_name("FILE"),
        "a log file written by smtpgate (text or JSON); - for standard input");
    po::positional_options_description positional;
    positional.add("log", -1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::fprintf(stderr, "smtpgate learn: %s (try --help)\n", e.what());
        return 2;
    }
    if (vm.count("help") || !vm.count("log")) {
        std::cout
            << "Usage: smtpgate learn [--min-count N] LOG...\n\n"
               "Reads logs of a proxy running its interval throttles in observe mode and prints\n"
               "[[exception]] and [[rule]] entries for the HELO names, senders and networks\n"
               "that enforcement would have throttled.\n\n"
            << options << "\n";
        return vm.count("help") ? 0 : 2;
    }
    ops::interval_learner learner;
    for (const auto& path : vm["log"].as<std::vector<std::string>>()) {
        if (path == "-") {
            learner.add_stream(std::cin);
            continue;
        }
        std::ifstream in(path);
        if (!in) {
            std::fprintf(stderr, "smtpgate learn: cannot read %s\n", path.c_str());
            return 1;
        }
        learner.add_stream(in);
    }
    std::cout << learner.suggestions(vm["min-count"].as<std::size_t>());
    return 0;
}

int main(int argc, char** argv) {
    if (argc >= 2 && std::string_view(argv[1]) == "learn") return learn(argc - 1, argv + 1);
    po::options_description options("Options");
    options.add_options()("help,h", "show this help and exit")("version,V",
                                                               "show the version and exit")(
        "config,c", po::value<std::string>()->value_name("FILE"),
        "configuration file (default /etc/smtpgate/smtpgate.toml)")(
        "check-config", "validate the configuration, print a summary and exit (0 when valid)")(
        "listen", po::value<std::vector<std::string>>()->value_name("ADDR:PORT")->composing(),
        "listen on this address instead of server.listen (repeatable)")(
        "backend", po::value<std::string>()->value_name("HOST:PORT"),
        "relay to this backend instead of backend.address");

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::fprintf(stderr, "smtpgate: %s (try --help)\n", e.what());
        return 2;
    }
    if (vm.count("help")) {
        std::cout << "Usage: smtpgate [--config FILE] [--check-config] [--listen ADDR:PORT]... "
                     "[--backend HOST:PORT]\n"
                     "       smtpgate learn [--min-count N] LOG...\n\n"
                     "An SMTP front-end proxy that screens clients and relays clean sessions to "
                     "a backend MTA.\n\n"
                  << options << "\n";
        return 0;
    }
    if (vm.count("version")) {
        std::cout << "smtpgate " << SMTPGATE_VERSION << "\n";
        return 0;
    }

    // The file plus the command-line overrides; SIGHUP runs the same steps again.
    const std::string path = vm.count("config") ? vm["config"].as<std::string>() : default_config;
    const auto load = [path, vm]() {
        config::settings loaded = config::load_file(path);
        if (vm.count("listen")) {
            loaded.server.listen.clear();
            for (const auto& text : vm["listen"].as<std::vector<std::string>>()) {
                loaded.server.listen.push_back(endpoint_option(text, false, "listen"));
            }
        }
        if (vm.count("backend")) {
            loaded.backend.address =
                endpoint_option(vm["backend"].as<std::string>(), true, "backend");
        }
        return loaded;
    };
    config::settings settings;
    try {
        settings = load();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "smtpgate: %s\n", e.what());
        return 1;
    }

    if (vm.count("check-config")) {
        if (settings.tls.enabled()) {
            // The files are part of the configuration: a key that does not match its
            // certificate must fail here, not at the first STARTTLS.
            try {
                net::make_server_context(settings.tls);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "smtpgate: %s\n", e.what());
                return 1;
            }
        }
        if (settings.backend.tls == config::backend_tls_mode::starttls) {
            try {
                net::make_backend_context(settings.backend.tls_ca_file);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "smtpgate: %s\n", e.what());
                return 1;
            }
        }
        std::string listen;
        for (const auto& ep : settings.server.listen)
            listen += (listen.empty() ? "" : ", ") + ep.to_string();
        std::cout << fmt::format(
            "{}: configuration is valid\n  listen:  {}\n  backend: {}\n  tls:     {}\n",
            settings.source, listen, settings.backend.address.to_string(),
            settings.tls.enabled() ? settings.tls.certificate : std::string("off"));
        return 0;
    }

    ops::configure_logging(settings.log);
    try {
        return net::run(settings, load);
    } catch (const std::exception& e) {
        ops::log(ops::level::error, "fatal").kv("error", e.what());
        std::fprintf(stderr, "smtpgate: %s\n", e.what());
        return 1;
    }
}
