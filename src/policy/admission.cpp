#include "smtpgate/policy/admission.hpp"

#include <algorithm>
#include <optional>

namespace smtpgate::policy {

namespace replies = smtp::replies;

namespace {

// Key prefixes of the per-check cells in the limiter store.
constexpr char rate_cell = 'r';
constexpr char interval_cell = 'h';
constexpr char bad_throttle_cell = 't';
constexpr char bad_limit_cell = 'b';
constexpr char penalty_cell = 'p';

// RFC 5321 4.5.3.2.1: the client's greeting timeout is 5 minutes.
constexpr duration max_greet_pause = std::chrono::seconds(300);

}  // namespace

admission::admission(const config::settings& settings, state::limiter_store& store,
                     state::concurrency_table& connections)
    : limits_(settings.limits),
      greet_pause_(settings.greet_pause),
      interval_(settings.interval),
      modes_(settings.modes),
      prefixes_{settings.limits.client_key_ipv4_prefix, settings.limits.client_key_ipv6_prefix},
      rules_(settings.rules),
      store_(store),
      connections_(connections) {}

verdict admission::refuse(const smtp::named_reply& terminate_reply, std::string_view reason,
                          std::int64_t observed, std::int64_t limit) const {
    verdict v;
    v.reason = reason;
    v.observed = observed;
    v.limit = limit;
    if (limits_.on_exceed == config::exceed_action::terminate) {
        v.act = action::disconnect;
        v.reply = &terminate_reply;
    } else {
        v.act = action::tempfail;
        v.reply = &replies::tempfail_command;
    }
    return v;
}

admission_result admission::admit(const client_address& client, time_point now,
                                  std::string_view hostname) {
    admission_result result;
    const std::string key = client_key(client, prefixes_);
    result.key = key;
    result.key_text = client_key_text(client, prefixes_);
    result.rule = rules_.find(client, hostname);
    const config::rule* r = result.rule;

    // Settles one check: enforce decides, observe reports and goes on.
    auto settle = [&](verdict v, mode m) {
        v = with_mode(v, m);
        if (v.would_block) result.would_block.push_back(v);
        if (!v.passed()) result.decision = v;
        return v.passed();
    };

    const bool allowed = r != nullptr && r->action == config::rule_action::allow;
    if (r != nullptr && r->action == config::rule_action::deny) {
        verdict v;
        v.act = action::disconnect;
        v.reply = &replies::access_denied;
        v.reason = "access";
        if (!settle(v, modes_.access)) return result;
    }

    // The penalty box: a network caught with too many unknown recipients stays out until its
    // block ends, whatever else it would pass (only an allow rule lets it in).
    if (!allowed && modes_.bad_recipient_rate != mode::off) {
        const state::cell* penalty = store_.peek(std::string(1, penalty_cell) + key);
        if (penalty != nullptr && penalty->stamp > now) {
            verdict v = refuse(replies::penalty_box, "penalty",
                               std::chrono::ceil<duration>(penalty->stamp - now).count(),
                               limits_.bad_recipient_block_for.count());
            v.in_ms = true;
            if (!settle(v, modes_.bad_recipient_rate)) return result;
        }
    }

    if (modes_.greet_pause != mode::off) {
        duration pause = allowed ? duration(0) : greet_pause_.delay;
        if (r != nullptr && r->greet_pause) pause = *r->greet_pause;
        result.greet_pause = std::min(pause, max_greet_pause);
    }
    if (allowed) return result;

    // Host interval first: every connection is an observation, refused or not (vthrottle), so
    // a client hammering while refused for another reason keeps its interval running.
    const duration interval = r != nullptr && r->host_interval ? *r->host_interval : interval_.host;
    std::optional<verdict> interval_refusal;
    if (modes_.host_interval != mode::off && interval.count() > 0) {
        auto& cell = store_.at(std::string(1, interval_cell) + key, now);
        const auto d = interval_observe(cell.stamp, interval, now);
        cell.idle_at = d.idle_at;
        if (!d.allowed) {
            interval_refusal = refuse(replies::connecting_too_often, "host_interval",
                                      d.observed.count(), interval.count());
            interval_refusal->in_ms = true;
        }
    }
    const bool interval_blocks = interval_refusal && modes_.host_interval == mode::enforce;

    // Concurrent connections: counted before the check so this connection is included.
    const std::uint32_t conn_limit = r != nullptr && r->concurrent_per_client
                                         ? *r->concurrent_per_client
                                         : limits_.concurrent_per_client;
    if (modes_.concurrent_per_client != mode::off) {
        const std::uint32_t open = connections_.acquire(key);
        result.held_key = key;
        if (conn_limit != 0 && open > conn_limit
            && !settle(refuse(replies::too_many_client_connections, "concurrent_per_client", open,
                              conn_limit),
                       modes_.concurrent_per_client)) {
            return result;
        }
    }

    // Connection rate: decided on a copy, recorded only for a connection that is let in, so a
    // refused connection costs the client no budget.
    const config::rate rate =
        r != nullptr && r->connection_rate ? *r->connection_rate : limits_.connection_rate;
    if (modes_.connection_rate != mode::off && !rate.off()) {
        auto& cell = store_.at(std::string(1, rate_cell) + key, now);
        time_point tat = cell.stamp;
        const auto d = gcra_consume(tat, rate, now);
        if (!d.allowed) {
            if (!settle(refuse(replies::connection_rate_exceeded, "connection_rate", d.observed,
                               rate.count),
                        modes_.connection_rate)) {
                return result;
            }
        } else if (!interval_blocks) {
            cell.stamp = tat;
            cell.idle_at = d.idle_at;
        } else if (cell.idle_at < now) {
            cell.idle_at = now;  // a fresh cell: let the table drop it
        }
    }

    if (interval_refusal && !settle(*interval_refusal, modes_.host_interval)) return result;
    return result;
}

bad_recipient_verdict admission::record_bad_recipient(const admission_result& client,
                                                      time_point now) {
    bad_recipient_verdict v;
    if (modes_.bad_recipient_rate == mode::off || client.key.empty()) return v;
    if (client.rule != nullptr && client.rule->action == config::rule_action::allow) return v;
    const bool observe = modes_.bad_recipient_rate == mode::observe;
    // Both levels count every unknown recipient; the higher one decides first.
    bad_recipient_verdict throttle;
    if (!limits_.bad_recipient_throttle_rate.off()) {
        auto& cell = store_.at(std::string(1, bad_throttle_cell) + client.key, now);
        const auto d = gcra_consume(cell.stamp, limits_.bad_recipient_throttle_rate, now);
        cell.idle_at = std::max(cell.idle_at, d.idle_at);
        if (!d.allowed) {
            throttle = {bad_recipient_outcome::throttle, d.observed,
                        limits_.bad_recipient_throttle_rate.count, observe};
        }
    }
    if (!limits_.bad_recipient_limit.off()) {
        auto& cell = store_.at(std::string(1, bad_limit_cell) + client.key, now);
        const auto d = gcra_consume(cell.stamp, limits_.bad_recipient_limit, now);
        cell.idle_at = std::max(cell.idle_at, d.idle_at);
        if (!d.allowed) {
            if (!observe) {
                auto& penalty = store_.at(std::string(1, penalty_cell) + client.key, now);
                penalty.stamp = now + limits_.bad_recipient_block_for;
                penalty.idle_at = penalty.stamp;
            }
            return {bad_recipient_outcome::block, d.observed, limits_.bad_recipient_limit.count,
                    observe};
        }
    }
    return throttle;
}

void admission::release(admission_result& result) {
    if (result.held_key.empty()) return;
    connections_.release(result.held_key);
    result.held_key.clear();
}

}  // namespace smtpgate::policy
