#include "smtpgate/smtp/input_buffer.hpp"

#include <cstring>

namespace smtpgate::smtp {

std::span<char> input_buffer::prepare() {
    if (begin_ != 0) {
        std::memmove(storage_.data(), storage_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    return {storage_.data() + end_, storage_.size() - end_};
}

}  // namespace smtpgate::smtp
