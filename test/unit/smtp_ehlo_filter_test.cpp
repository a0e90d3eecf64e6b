// The EHLO filter, specified by tables: which extensions the client may see, the greeting
// line, STARTTLS offered by the proxy itself, replies it leaves alone, and the wire form after
// lines were removed.
#include "smtpgate/smtp/ehlo_filter.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

using namespace smtpgate::smtp;

namespace {

using lines = std::vector<std::string>;

/// The extension lines of a filtered reply without STARTTLS, and how many STARTTLS it had.
struct split_starttls {
    lines others;
    long starttls = 0;
};

split_starttls without_starttls(const lines& in) {
    split_starttls out;
    for (const auto& l : in) {
        if (l == "STARTTLS") {
            ++out.starttls;
        } else {
            out.others.push_back(l);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("smtp/ehlo_filter - hides what the proxy does not relay, keeps the rest in order") {
    struct row {
        std::string_view name;
        lines in;
        lines want;
    };
    const std::vector<row> rows{
        {"a typical Postfix reply",
         {"mx.example", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "STARTTLS",
          "AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN",
          "SMTPUTF8", "CHUNKING", "XCLIENT NAME ADDR PROTO HELO", "XFORWARD NAME ADDR PROTO HELO"},
         {"mx.example", "PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "AUTH PLAIN LOGIN",
          "AUTH=PLAIN LOGIN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"}},
        {"hidden keywords in any case",
         {"mx.example", "starttls", "Chunking", "binarymime", "xclient NAME", "XForward ADDR",
          "PIPELINING"},
         {"mx.example", "PIPELINING"}},
        {"BINARYMIME with CHUNKING (RFC 3030)",
         {"mx.example", "BINARYMIME", "CHUNKING", "8BITMIME"},
         {"mx.example", "8BITMIME"}},
        {"parameters stay with a kept keyword",
         {"mx.example", "SIZE 10240000", "AUTH PLAIN LOGIN CRAM-MD5", "AUTH=LOGIN"},
         {"mx.example", "SIZE 10240000", "AUTH PLAIN LOGIN CRAM-MD5", "AUTH=LOGIN"}},
        {"lines that are no ehlo-keyword (RFC 5321 4.1.1.1) are dropped",
         {"mx.example", "", " SIZE 100", "-FOO", "FOO_BAR", "FOO:BAR", "FOO.BAR", "AUTH=",
          "\xc3\x9c"
          "BER",
          "X-EXPS GSSAPI", "8BITMIME"},
         {"mx.example", "X-EXPS GSSAPI", "8BITMIME"}},
        {"keywords that only look like hidden ones are kept",
         {"mx.example", "STARTTLSX", "XCLIENTS", "X-CHUNKING"},
         {"mx.example", "STARTTLSX", "XCLIENTS", "X-CHUNKING"}},
        {"the greeting line is kept whatever it says",
         {"STARTTLS", "PIPELINING"},
         {"STARTTLS", "PIPELINING"}},
        {"a greeting that is no keyword is kept",
         {"mx.example.org Hello client.example [192.0.2.1]", "8BITMIME"},
         {"mx.example.org Hello client.example [192.0.2.1]", "8BITMIME"}},
        {"a greeting alone", {"mx.example"}, {"mx.example"}},
        {"every extension hidden", {"mx.example", "XCLIENT", "STARTTLS"}, {"mx.example"}},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        reply got{250, r.in};
        filter_ehlo(got, ehlo_policy{});
        CHECK(got.code == 250);
        CHECK(got.lines == r.want);
    }
}

TEST_CASE("smtp/ehlo_filter - offer_starttls adds STARTTLS exactly once") {
    struct row {
        std::string_view name;
        lines in;
        lines want_others;  ///< the lines besides STARTTLS, greeting first
    };
    const std::vector<row> rows{
        {"backend without STARTTLS", {"mx.example", "PIPELINING"}, {"mx.example", "PIPELINING"}},
        {"backend with STARTTLS",
         {"mx.example", "STARTTLS", "PIPELINING"},
         {"mx.example", "PIPELINING"}},
        {"backend with STARTTLS twice, any case",
         {"mx.example", "STARTTLS", "starttls", "8BITMIME"},
         {"mx.example", "8BITMIME"}},
        {"a greeting alone", {"mx.example"}, {"mx.example"}},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        reply got{250, r.in};
        filter_ehlo(got, ehlo_policy{true});
        const auto split = without_starttls(got.lines);
        CHECK(split.starttls == 1);
        CHECK(split.others == r.want_others);
        REQUIRE_FALSE(got.lines.empty());
        CHECK(got.lines.front() == r.in.front());
    }
}

TEST_CASE("smtp/ehlo_filter - replies other than 250 are left alone") {
    struct row {
        int code;
        lines in;
    };
    const std::vector<row> rows{
        {550, {"5.7.1 go away", "XCLIENT", "STARTTLS"}},
        {421, {"4.3.0 mx.example shutting down"}},
        {502, {"5.5.1 EHLO not implemented"}},
        {554, {"5.7.1 <unknown[192.0.2.1]>: Client host rejected", "CHUNKING"}},
        {250, {}},
    };
    for (const auto& r : rows) {
        INFO("code " << r.code);
        for (const bool offer : {false, true}) {
            reply got{r.code, r.in};
            filter_ehlo(got, ehlo_policy{offer});
            CHECK(got.code == r.code);
            CHECK(got.lines == r.in);
        }
    }
}

TEST_CASE("smtp/ehlo_filter - the filtered reply serializes with '-' on all but the last line") {
    struct row {
        std::string_view name;
        lines in;
        bool offer_starttls;
        std::string want;
    };
    const std::vector<row> rows{
        {"the last line removed",
         {"mx.example", "PIPELINING", "CHUNKING"},
         false,
         "250-mx.example\r\n250 PIPELINING\r\n"},
        {"every extension removed", {"mx.example", "XCLIENT NAME"}, false, "250 mx.example\r\n"},
        {"lines removed in the middle",
         {"mx.example", "XFORWARD NAME", "PIPELINING", "STARTTLS", "8BITMIME"},
         false,
         "250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"},
        {"STARTTLS added to a greeting alone",
         {"mx.example"},
         true,
         "250-mx.example\r\n250 STARTTLS\r\n"},
    };
    for (const auto& r : rows) {
        INFO(r.name);
        reply filtered{250, r.in};
        filter_ehlo(filtered, ehlo_policy{r.offer_starttls});
        std::string got;
        append_reply(got, filtered);
        CHECK(got == r.want);
    }
}
