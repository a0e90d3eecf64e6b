// The strict TOML loader: defaults, every key, every kind of error, the shipped example and
// the documentation kept in step with the key table.
#include "smtpgate/config/loader.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::config;

namespace {

const std::string source_dir = SMTPGATE_SOURCE_DIR;

/// The load_error that loading `text` must throw.
load_error error_from(std::string_view text) {
    try {
        (void)load_string(text, "test.toml");
    } catch (const load_error& e) {
        return e;
    }
    FAIL("loaded without error:\n" << text);
    throw std::logic_error("unreachable");
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// "table.key" for every `key =` line in a TOML file, skipping comments.
std::set<std::string> assigned_keys(const std::string& toml_text) {
    std::set<std::string> keys;
    std::istringstream lines(toml_text);
    std::string line;
    std::string table;
    while (std::getline(lines, line)) {
        const auto start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == '#') continue;
        if (line[start] == '[') {
            // "[server]" or "[[rule]]"
            const auto name_start = line.find_first_not_of('[', start);
            table = line.substr(name_start, line.find(']') - name_start);
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string::npos) continue;
        auto key = line.substr(start, equals - start);
        key.erase(key.find_last_not_of(" \t") + 1);
        keys.insert(table + "." + key);
    }
    return keys;
}

}  // namespace

TEST_CASE("config - an empty file gives the built-in defaults") {
    const settings got = load_string("", "empty.toml");
    const settings want;
    CHECK(got.source == "empty.toml");
    CHECK(got.server.listen == want.server.listen);
    CHECK(got.server.hostname.empty());
    CHECK(got.server.max_connections == 2000);
    CHECK(got.server.shutdown_grace == want.server.shutdown_grace);
    CHECK(got.backend.address == endpoint{"127.0.0.1", 10025});
    CHECK(got.backend.identity == identity_mode::none);
    CHECK(got.timeouts.command == want.timeouts.command);
    CHECK(got.smtp.max_line_length == 2048);
    CHECK(got.log.level == log_level::info);
}

TEST_CASE("config - missing keys keep their defaults") {
    const settings got = load_string(R"(
[timeouts]
command = "1m"

[log]
format = "json"
)",
                                     "partial.toml");
    const settings want;
    CHECK(got.timeouts.command == duration{60'000});
    CHECK(got.timeouts.data == want.timeouts.data);
    CHECK(got.timeouts.session == want.timeouts.session);
    CHECK(got.log.format == log_format::json);
    CHECK(got.log.target == want.log.target);
    CHECK(got.server.listen == want.server.listen);
}

TEST_CASE("config - every key is read into settings") {
    const settings got = load_string(R"(
[server]
listen = ["192.0.2.1:25", "[2001:db8::1]:25"]
hostname = "mx1.example.org"
max_connections = 1000000
shutdown_grace = "0s"
user = "nobody"

[backend]
address = "postfix:10025"
identity = "proxy-v2"
connect_timeout = "1s"
reply_timeout = "1h"
data_reply_timeout = "2h"

[timeouts]
command = "1s"
data = "24h"
session = "7d"

[smtp]
max_line_length = 512
bare_newline = "reject"

[log]
format = "json"
target = "syslog"
level = "debug"
)",
                                     "all.toml");
    CHECK(got.server.listen == std::vector<endpoint>{{"192.0.2.1", 25}, {"2001:db8::1", 25}});
    CHECK(got.server.hostname == "mx1.example.org");
    CHECK(got.server.max_connections == 1'000'000);
    CHECK(got.server.shutdown_grace == duration{0});
    CHECK(got.server.user == "nobody");
    CHECK(got.backend.address == endpoint{"postfix", 10025});
    CHECK(got.backend.identity == identity_mode::proxy_v2);
    CHECK(got.backend.connect_timeout == duration{1'000});
    CHECK(got.backend.reply_timeout == duration{3'600'000});
    CHECK(got.backend.data_reply_timeout == duration{7'200'000});
    CHECK(got.timeouts.command == duration{1'000});
    CHECK(got.timeouts.data == duration{86'400'000});
    CHECK(got.timeouts.session == duration{7 * 86'400'000});
    CHECK(got.smtp.max_line_length == 512);
    CHECK(got.smtp.bare_newline == bare_newline_mode::reject);
    CHECK(got.log.format == log_format::json);
    CHECK(got.log.target == log_target::syslog);
    CHECK(got.log.level == log_level::debug);
}

TEST_CASE("config - inline tables and dotted keys are the same as tables") {
    const settings got = load_string(R"(
server = { max_connections = 10 }
log.level = "error"
)",
                                     "inline.toml");
    CHECK(got.server.max_connections == 10);
    CHECK(got.log.level == log_level::error);
}

TEST_CASE("config - errors name the file, line, column and key") {
    struct error_case {
        std::string_view what;
        std::string text;
        std::size_t line;
        std::size_t column;
        std::string_view key;
        std::string_view problem;  // a part of the message
    };
    const std::vector<error_case> cases{
        {"unknown key, with a suggestion", "[server]\nhostnme = \"mx\"\n", 2, 1, "server.hostnme",
         "unknown key in [server]; did you mean 'hostname'?"},
        {"unknown key in the wrong table", "[server]\nconnect_timeout = \"5s\"\n", 2, 1,
         "server.connect_timeout", "'connect_timeout' belongs in [backend]"},
        {"unknown key, nothing close", "\n[log]\nlevel = \"info\"\ncolour = true\n", 4, 1,
         "log.colour", "unknown key in [log]"},
        {"unknown table, with a suggestion", "[sever]\nlisten = []\n", 1, 2, "sever",
         "unknown table; did you mean [server]?"},
        {"unknown table, nothing close", "[metrics]\nport = 1\n", 1, 2, "metrics",
         "unknown table; the tables are [server] [backend] [admin] [tls] [timeouts] [smtp] [log]"},
        {"key outside any table", "listen = [\"127.0.0.1:25\"]\n", 1, 1, "listen",
         "unknown top-level key; 'listen' belongs in [server]"},
        {"table that is not a table", "server = 5\n", 1, 10, "server",
         "expected a table [server], got integer 5"},
        {"nested table", "[server.tls]\ncert = \"x\"\n", 1, 9, "server.tls",
         "unknown key in [server]"},
        {"duration with words", "\n\n[timeouts]\ncommand = \"5 minutes\"\n", 4, 11,
         "timeouts.command", R"(expected a duration like "30s" or "5m", got "5 minutes")"},
        {"duration as a number", "[timeouts]\ndata = 600\n", 2, 8, "timeouts.data",
         "got integer 600 (a duration is a string with a unit"},
        {"duration out of range", "[timeouts]\nsession = \"8d\"\n", 2, 11, "timeouts.session",
         R"(must be between 1s and 7d, got "8d")"},
        {"duration below range", "[backend]\nconnect_timeout = \"500ms\"\n", 2, 19,
         "backend.connect_timeout", R"(must be between 1s and 5m, got "500ms")"},
        {"duration above an at-most range", "[server]\nshutdown_grace = \"2h\"\n", 2, 18,
         "server.shutdown_grace", R"(must be at most 1h, got "2h")"},
        {"user unknown to the system", "[server]\nuser = \"no-such-user-here\"\n", 2, 8,
         "server.user", R"(no user "no-such-user-here" on this system)"},
        {"integer as a string", "[server]\nmax_connections = \"2000\"\n", 2, 19,
         "server.max_connections", R"(expected an integer, got "2000")"},
        {"integer as a float", "[smtp]\nmax_line_length = 1024.0\n", 2, 19, "smtp.max_line_length",
         "expected an integer, got float 1024"},
        {"integer out of range", "[smtp]\nmax_line_length = 100\n", 2, 19, "smtp.max_line_length",
         "must be between 512 and 65536, got 100"},
        {"integer zero", "[server]\nmax_connections = 0\n", 2, 19, "server.max_connections",
         "must be between 1 and 1000000, got 0"},
        {"choice not listed", "[log]\nformat = \"xml\"\n", 2, 10, "log.format",
         R"(expected one of "text", "json", got "xml")"},
        {"choice wrong type", "[log]\nlevel = 3\n", 2, 9, "log.level",
         R"(expected one of "debug", "info", "warning", "error", got integer 3)"},
        {"tls key without certificate", "[tls]\nkey = \"/etc/k.pem\"\n", 1, 1, "tls",
         "key is set but certificate is not; STARTTLS needs both"},
        {"tls certificate without key", "\n[tls]\ncertificate = \"/etc/c.pem\"\n", 2, 1, "tls",
         "certificate is set but key is not; STARTTLS needs both"},
        {"tls version", "[tls]\nmin_version = \"1.1\"\n", 2, 15, "tls.min_version",
         R"(expected one of "1.2", "1.3", got "1.1")"},
        {"trusted proxy with host bits", "[server]\ntrusted_proxies = [\"10.0.0.1/8\"]\n", 2, 20,
         "server.trusted_proxies[0]", "with the host bits clear, got \"10.0.0.1/8\""},
        {"trusted proxy twice", "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/8\"]\n", 2,
         34, "server.trusted_proxies[1]", "\"10.0.0.0/8\" is listed twice"},
        {"trusted proxies not a list", "[server]\ntrusted_proxies = \"10.0.0.0/8\"\n", 2, 19,
         "server.trusted_proxies", "expected an array of networks"},
        {"listen not an array", "[server]\nlisten = \"0.0.0.0:25\"\n", 2, 10, "server.listen",
         R"(expected an array of addresses like ["0.0.0.0:25", "[::]:25"], got "0.0.0.0:25")"},
        {"listen empty", "[server]\nlisten = []\n", 2, 10, "server.listen",
         "must list at least one address"},
        {"listen host name", "[server]\nlisten = [\"127.0.0.1:25\", \"localhost:25\"]\n", 2, 27,
         "server.listen[1]", "must be an IP address, not a host name"},
        {"listen IPv6 without brackets", "[server]\nlisten = [\"::1:25\"]\n", 2, 11,
         "server.listen[0]", "(IPv6 addresses go in brackets"},
        {"listen without port", "[server]\nlisten = [\"0.0.0.0\"]\n", 2, 11, "server.listen[0]",
         "(the port is required)"},
        {"listen element not a string", "[server]\nlisten = [25]\n", 2, 11, "server.listen[0]",
         "got integer 25"},
        {"listen duplicate", "[server]\nlisten = [\"[::1]:25\", \"[0::1]:25\"]\n", 2, 23,
         "server.listen[1]", R"("[::1]:25" is listed twice (also server.listen[0]))"},
        {"backend address", "[backend]\naddress = \"postfix\"\n", 2, 11, "backend.address",
         R"(got "postfix" (the port is required))"},
        {"hostname invalid", "[server]\nhostname = \"mail_host\"\n", 2, 12, "server.hostname",
         R"(expected a domain name)"},
        {"hostname too long", "[server]\nhostname = \"" + std::string(254, 'a') + "\"\n", 2, 12,
         "server.hostname", "at most 253 characters"},
        {"syntax: bare words", "[timeouts]\ncommand = 5 minutes\n", 2, 13, "timeouts.command",
         "invalid TOML"},
        {"syntax: duplicate key", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n", 3, 0, "log.level",
         "invalid TOML"},
        {"syntax: unterminated string", "[backend]\naddress = \"127.0.0.1:25\n", 2, 0,
         "backend.address", "invalid TOML"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        const auto error = error_from(c.text);
        const std::string message = error.what();
        CAPTURE(message);
        REQUIRE(error.diagnostics().size() == 1);
        const auto& d = error.diagnostics().front();
        CHECK(d.source == "test.toml");
        CHECK(d.line == c.line);
        if (c.column != 0) CHECK(d.column == c.column);
        CHECK(d.key == c.key);
        CHECK_THAT(d.problem, Catch::Contains(std::string(c.problem)));
        const std::string position =
            "test.toml:" + std::to_string(c.line) + ":" + std::to_string(d.column) + ": ";
        CHECK_THAT(message, Catch::StartsWith(position + std::string(c.key) + ": "));
    }
}

TEST_CASE("config - the example message format") {
    const auto error = error_from("[timeouts]\ncommand = \"5 minutes\"\n");
    CHECK(
        std::string(error.what())
        == R"(test.toml:2:11: timeouts.command: expected a duration like "30s" or "5m", got "5 minutes")");
}

TEST_CASE("config - all problems are reported, in file order") {
    const auto error = error_from(R"([timeouts]
command = "2h"

[server]
max_connections = -1
hostnme = "mx"
)");
    const auto& d = error.diagnostics();
    REQUIRE(d.size() == 3);
    CHECK(d[0].key == "timeouts.command");
    CHECK(d[0].line == 2);
    CHECK(d[1].key == "server.max_connections");
    CHECK(d[1].line == 5);
    CHECK(d[2].key == "server.hostnme");
    CHECK(d[2].line == 6);
    CHECK(std::count(error.what(), error.what() + std::strlen(error.what()), '\n') == 2);
}

TEST_CASE("config - values in messages are escaped and shortened") {
    const auto error =
        error_from("[log]\nformat = \"a\\u0007\\\"b" + std::string(200, 'x') + "\"\n");
    const std::string problem = error.diagnostics().front().problem;
    CHECK_THAT(problem, Catch::Contains(R"(got "a\x07\"bxxx)"));
    CHECK_THAT(problem, Catch::EndsWith("...\""));
    CHECK(problem.size() < 200);
}

TEST_CASE("config - load_file reads a file and names it") {
    const std::string path = source_dir + "/config/smtpgate.toml";
    CHECK(load_file(path).source == path);

    try {
        (void)load_file(source_dir + "/config/no-such-file.toml");
        FAIL("loaded a missing file");
    } catch (const load_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("no-such-file.toml: cannot read: "));
        CHECK(e.diagnostics().front().line == 0);
    }
    CHECK_THROWS_AS(load_file(source_dir + "/config"), load_error);
}

TEST_CASE("config - the shipped example loads and holds the defaults") {
    const settings got = load_file(source_dir + "/config/smtpgate.toml");
    const settings want;
    // The two demo addresses.
    CHECK(got.server.listen == std::vector<endpoint>{{"127.0.0.1", 2525}});
    CHECK(got.backend.address == endpoint{"127.0.0.1", 10025});
    // Everything else as config.hpp says.
    CHECK(got.server.hostname == want.server.hostname);
    CHECK(got.server.max_connections == want.server.max_connections);
    CHECK(got.server.shutdown_grace == want.server.shutdown_grace);
    CHECK(got.backend.address == want.backend.address);
    CHECK(got.backend.identity == want.backend.identity);
    CHECK(got.backend.connect_timeout == want.backend.connect_timeout);
    CHECK(got.backend.reply_timeout == want.backend.reply_timeout);
    CHECK(got.backend.data_reply_timeout == want.backend.data_reply_timeout);
    CHECK(got.timeouts.command == want.timeouts.command);
    CHECK(got.timeouts.data == want.timeouts.data);
    CHECK(got.timeouts.session == want.timeouts.session);
    CHECK(got.smtp.max_line_length == want.smtp.max_line_length);
    CHECK(got.smtp.bare_newline == want.smtp.bare_newline);
    CHECK(got.log.format == want.log.format);
    CHECK(got.log.target == want.log.target);
    CHECK(got.log.level == want.log.level);
}

TEST_CASE("config - every known key is in the example file and the documentation") {
    const auto keys = known_keys();
    REQUIRE(keys.size() == 80);
    CHECK(keys.front() == "server.listen");

    const auto example = assigned_keys(read_text(source_dir + "/config/smtpgate.toml"));
    const auto docs = read_text(source_dir + "/docs/configuration.md");
    for (const auto& key : keys) {
        CAPTURE(key);
        CHECK(example.count(key) == 1);
        const auto dot = key.find('.');
        const auto qualified = "[" + key.substr(0, dot) + "] " + key.substr(dot + 1);
        const bool documented =
            docs.find(key) != std::string::npos || docs.find(qualified) != std::string::npos;
        CHECK(documented);
    }
    for (const auto& key : example) {
        CAPTURE(key);
        CHECK(std::find(keys.begin(), keys.end(), key) != keys.end());
    }
}
