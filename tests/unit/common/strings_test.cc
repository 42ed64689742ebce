#include "common/strings.h"

#include <gtest/gtest.h>

#include <vector>

#include "common/time.h"

namespace pier::str {
namespace {

TEST(UriEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(uri_encode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(uri_encode("a b/c+d"), "a%20b%2Fc%2Bd");
  EXPECT_EQ(uri_encode("a b/c", true), "a%20b/c");
  EXPECT_EQ(uri_encode("\xe1\x88\xb4"), "%E1%88%B4");
}

TEST(UriDecode, DecodesAndRejectsBrokenEscapes) {
  EXPECT_EQ(uri_decode("a%20b"), "a b");
  EXPECT_EQ(uri_decode("a+b", true), "a b");
  EXPECT_EQ(uri_decode("a+b"), "a+b");
  EXPECT_EQ(uri_decode("%zz"), std::nullopt);
  EXPECT_EQ(uri_decode("%4"), std::nullopt);
  EXPECT_EQ(uri_decode("%"), std::nullopt);
}

TEST(Base64, RoundTrips) {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", std::string("\0\xff\x10", 3)}) {
    auto d = base64_decode(base64_encode(s));
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_decode("abc"), std::nullopt);
}

TEST(GlobMatch, StarsAndQuestionMarks) {
  EXPECT_TRUE(glob_match("ecs:*", "ecs:RunTask", false));
  EXPECT_TRUE(glob_match("*", "", false));
  EXPECT_TRUE(glob_match("a*b*c", "a--b--c", false));
  EXPECT_FALSE(glob_match("a*b*c", "a--b--", false));
  EXPECT_TRUE(glob_match("?cs:*", "ecs:x", false));
  EXPECT_TRUE(glob_match("ECS:run*", "ecs:RunTask", true));
  EXPECT_FALSE(glob_match("ECS:run*", "ecs:RunTask", false));
}

TEST(XmlEscape, EscapesMarkup) { EXPECT_EQ(xml_escape("<a & 'b'>"), "&lt;a &amp; &apos;b&apos;&gt;"); }

TEST(Time, AmzDateAndIso8601) {
  auto t = time::parse_amz_date("20150830T123600Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(time::amz_date(*t), "20150830T123600Z");
  EXPECT_FALSE(time::parse_amz_date("2015-08-30T12:36:00Z"));
  EXPECT_FALSE(time::parse_amz_date("20151330T123600Z"));
  EXPECT_EQ(time::iso8601(1440938160.25), "2015-08-30T12:36:00.250Z");
  EXPECT_EQ(time::parse_iso8601("2015-08-30T12:36:00.250Z"), 1440938160.25);
  EXPECT_EQ(time::parse_iso8601("2015-08-30T14:36:00+02:00"), 1440938160.0);
  EXPECT_FALSE(time::parse_iso8601("yesterday"));
}

}  // namespace
}  // namespace pier::str
