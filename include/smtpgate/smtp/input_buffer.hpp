// A bounded byte buffer between a socket and the parsers.
//
// The I/O layer reads into `prepare()` and `commit()`s what arrived; parsers look at `data()`
// and `consume()` what they used. Views into `data()` stay valid until the next `prepare()`,
// which may move unread bytes to the front. The capacity never grows: a peer cannot make the
// proxy buffer more than it was built with (STYLE 8, everything is bounded).
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace smtpgate::smtp {

class input_buffer {
  public:
    explicit input_buffer(std::size_t capacity) : storage_(capacity) {}

    /// Unread bytes.
    std::string_view data() const { return {storage_.data() + begin_, end_ - begin_}; }
    std::size_t size() const { return end_ - begin_; }
    bool empty() const { return begin_ == end_; }
    /// No free space even after compaction: the reader must consume before reading more.
    bool full() const { return size() == storage_.size(); }
    std::size_t capacity() const { return storage_.size(); }

    void consume(std::size_t n) {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    void clear() { begin_ = end_ = 0; }

    /// Free space after the unread bytes; compacts first. Invalidates views from data().
    std::span<char> prepare();
    void commit(std::size_t n) { end_ += n; }

  private:
    std::vector<char> storage_;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace smtpgate::smtp
