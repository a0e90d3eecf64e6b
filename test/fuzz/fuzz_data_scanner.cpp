// Fuzz target: the end-of-data scanner over arbitrary bytes, in both modes, fed as two reads
// cut at a point taken from the first input byte.
//
// Invariants (SMTP smuggling, CVE-2023-51764): the scan ends exactly where the client's bytes
// hold their first strict end of data ("\r\n.\r\n", or ".\r\n" first), never at a lone dot a
// bare CR or LF touches; the output holds an end of data only when the scan is done, and then
// exactly once, as its last bytes; consumed never exceeds the input; no bare CR or LF reaches
// the backend; the cut does not change anything; reject mode, when it does not refuse, agrees
// with normalize.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtpgate/smtp/data_scanner.hpp"

using namespace smtpgate::smtp;

namespace {

struct outcome {
    std::string out;
    data_status status = data_status::need_more;
    std::size_t consumed = 0;
};

outcome scan(std::string_view in, bool normalize, std::size_t cut) {
    data_scanner scanner(normalize);
    outcome o;
    const data_result first = scanner.scan(in.substr(0, cut), o.out);
    if (first.consumed > cut) __builtin_trap();
    o.status = first.status;
    o.consumed = first.consumed;
    if (first.status != data_status::need_more) return o;
    if (first.consumed != cut) __builtin_trap();  // need_more takes everything
    const data_result second = scanner.scan(in.substr(cut), o.out);
    if (second.consumed > in.size() - cut) __builtin_trap();
    o.status = second.status;
    o.consumed = cut + second.consumed;
    if (second.status == data_status::need_more && o.consumed != in.size()) __builtin_trap();
    return o;
}

/// Bytes of `out` up to and including the first end of data the backend would see, or npos.
std::size_t end_of_data(std::string_view out) {
    if (out.starts_with(".\r\n")) return 3;
    const auto pos = out.find("\r\n.\r\n");
    return pos == std::string_view::npos ? pos : pos + 5;
}

bool has_bare_newline(std::string_view out) {
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\r' && (i + 1 == out.size() || out[i + 1] != '\n')) return true;
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) return true;
    }
    return false;
}

void check(const outcome& o, std::string_view in) {
    if (o.consumed > in.size()) __builtin_trap();
    // CR LF is always a CRLF, so the first "\r\n.\r\n" of the input is the client's end.
    if (o.status != data_status::bare_newline) {
        const std::size_t client_end = end_of_data(in);
        const bool done = o.status == data_status::done;
        if (done != (client_end != std::string_view::npos)) __builtin_trap();
        if (done && o.consumed != client_end) __builtin_trap();
    }
    const std::size_t end = end_of_data(o.out);
    if (o.status == data_status::done) {
        if (end != o.out.size()) __builtin_trap();
    } else if (end != std::string_view::npos) {
        __builtin_trap();
    }
    if (has_bare_newline(o.out)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    const std::size_t cut = data[0] % (in.size() + 1);

    const outcome normalized = scan(in, true, cut);
    check(normalized, in);
    if (normalized.status == data_status::bare_newline) __builtin_trap();

    const outcome rejected = scan(in, false, cut);
    check(rejected, in);
    if (rejected.status != data_status::bare_newline
        && (rejected.status != normalized.status || rejected.out != normalized.out
            || rejected.consumed != normalized.consumed)) {
        __builtin_trap();
    }

    // The cut must not matter.
    for (const bool normalize : {true, false}) {
        const outcome whole = scan(in, normalize, in.size());
        const outcome& split = normalize ? normalized : rejected;
        if (whole.status != split.status || whole.consumed != split.consumed) __builtin_trap();
        if (whole.status != data_status::bare_newline && whole.out != split.out) __builtin_trap();
    }
    return 0;
}
