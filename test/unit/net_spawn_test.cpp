// The co_spawn completion handler (net/spawn.hpp): whatever escapes a spawned coroutine is
// logged as internal_error, never rethrown out of io_context::run(). No sockets: the
// coroutines only throw or yield.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "smtpgate/net/spawn.hpp"
#include "smtpgate/ops/learn.hpp"
#include "smtpgate/ops/log.hpp"

namespace asio = boost::asio;
using smtpgate::net::logged;

namespace {

asio::awaitable<void> throws_runtime_error() {
    throw std::runtime_error("boom");
    co_return;
}

asio::awaitable<void> throws_int() {
    throw 42;
    co_return;
}

asio::awaitable<void> yields_then_looks(std::weak_ptr<int> owner, bool& alive) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    alive = !owner.expired();
}

/// Runs `io` to the end with stderr, where the log goes, sent to a file; returns its lines.
std::vector<std::string> run_logging(asio::io_context& io) {
    smtpgate::ops::configure_logging({});
    std::fflush(stderr);
    std::FILE* file = std::tmpfile();
    REQUIRE(file != nullptr);
    const int saved = ::dup(STDERR_FILENO);
    ::dup2(::fileno(file), STDERR_FILENO);
    bool threw = false;
    try {
        io.run();
    } catch (...) {
        threw = true;
    }
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);
    CHECK_FALSE(threw);
    std::vector<std::string> lines;
    std::rewind(file);
    std::string line;
    for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) {
        if (c != '\n') {
            line += static_cast<char>(c);
            continue;
        }
        lines.push_back(line);
        line.clear();
    }
    std::fclose(file);
    return lines;
}

}  // namespace

TEST_CASE("net/spawn - an escaped exception is logged as internal_error, whatever was thrown") {
    asio::io_context io;
    asio::co_spawn(io, throws_runtime_error(), logged("test std"));
    asio::co_spawn(io, throws_int(), logged("test other"));
    const auto lines = run_logging(io);
    REQUIRE(lines.size() == 2);
    const auto first = smtpgate::ops::parse_log_line(lines[0]);
    const auto second = smtpgate::ops::parse_log_line(lines[1]);
    REQUIRE(first);
    REQUIRE(second);
    CHECK(first->at("event") == "internal_error");
    CHECK(first->at("where") == "test std");
    CHECK(first->at("error") == "boom");
    CHECK(second->at("event") == "internal_error");
    CHECK(second->at("where") == "test other");
    CHECK(second->at("error") == "unknown");
}

TEST_CASE("net/spawn - the handler keeps its owner alive until the coroutine has finished") {
    asio::io_context io;
    auto owner = std::make_shared<int>(1);
    const std::weak_ptr<int> watch = owner;
    bool alive_after_yield = false;
    asio::co_spawn(io, yields_then_looks(watch, alive_after_yield),
                   logged("test keep_alive", std::move(owner)));
    const auto lines = run_logging(io);
    CHECK(lines.empty());
    CHECK(alive_after_yield);
    CHECK(watch.expired());  // the handler, and the owner with it, is gone once it has run
}
