// The bounded input buffer: its capacity never grows, and prepare() moves unread bytes to the
// front so a partial line never leaves the buffer stuck without room.
#include "smtpgate/smtp/input_buffer.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <string_view>

using namespace smtpgate::smtp;

namespace {

void feed(input_buffer& in, std::string_view bytes) {
    const auto space = in.prepare();
    REQUIRE(bytes.size() <= space.size());
    std::copy(bytes.begin(), bytes.end(), space.begin());
    in.commit(bytes.size());
}

}  // namespace

TEST_CASE("smtp/input_buffer - holds at most its capacity") {
    input_buffer in(8);
    CHECK(in.empty());
    CHECK(in.prepare().size() == 8);
    feed(in, "12345678");
    CHECK(in.full());
    CHECK(in.prepare().empty());
    CHECK(in.capacity() == 8);
    CHECK(in.data() == "12345678");
}

TEST_CASE("smtp/input_buffer - prepare() moves unread bytes to the front") {
    input_buffer in(8);
    feed(in, "ab\r\ncdef");
    REQUIRE(in.full());
    in.consume(4);  // a reader took "ab\r\n"; "cdef" waits for its line ending
    CHECK_FALSE(in.full());
    CHECK(in.data() == "cdef");
    CHECK(in.prepare().size() == 4);
    CHECK(in.data() == "cdef");
    feed(in, "\r\nxy");
    CHECK(in.data() == "cdef\r\nxy");
    CHECK(in.full());
}

TEST_CASE("smtp/input_buffer - consuming everything frees the whole buffer") {
    input_buffer in(8);
    feed(in, "abc");
    in.consume(3);
    CHECK(in.empty());
    CHECK(in.prepare().size() == 8);
    feed(in, "abcdef");
    in.clear();
    CHECK(in.empty());
    CHECK(in.prepare().size() == 8);
}
