// Time as AWS writes it. Time points are system_clock; a Clock can be injected
// for tests.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pier::time {

using Clock = std::function<std::chrono::system_clock::time_point()>;
Clock system_clock();

// 20150830T123600Z
std::string amz_date(std::chrono::system_clock::time_point t);
std::optional<std::chrono::system_clock::time_point> parse_amz_date(std::string_view s);
// 2015-08-30T12:36:00.123Z (ISO 8601, as query/XML protocols write timestamps)
std::string iso8601(double epoch_seconds);
std::optional<double> parse_iso8601(std::string_view s);
// Fri, 30 Aug 2015 12:36:00 GMT
std::string rfc822(double epoch_seconds);
double epoch(std::chrono::system_clock::time_point t);

}  // namespace pier::time
