#include "store/store.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace pier::store {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    path = fs::temp_directory_path() / ("pier-store-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter++));
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path path;
  static inline int counter = 0;
};

TEST(Store, MigratesANewStoreToTheNewestVersion) {
  TempDir d;
  auto s = Store::open(d.path.string());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ((*s)->schema_version(), static_cast<int>(migrations().size()));
}

TEST(Store, ReopensWithoutMigratingAgainAndKeepsData) {
  TempDir d;
  {
    auto s = Store::open(d.path.string());
    ASSERT_TRUE(s.ok());
    auto w = (*s)->write([](Db& db) -> Status {
      PIER_ASSIGN(auto* st, db.prepare("INSERT INTO tags(arn, key, value) VALUES(?,?,?)"));
      st->args("arn:x", "k", "v");
      return st->run();
    });
    ASSERT_TRUE(w.ok()) << w.error().message;
  }
  auto s = Store::open(d.path.string());
  ASSERT_TRUE(s.ok());
  auto v = (*s)->read([](Db& db) -> Result<std::string> {
    PIER_ASSIGN(auto* st, db.prepare("SELECT value FROM tags WHERE arn='arn:x'"));
    PIER_ASSIGN(bool row, st->step());
    if (!row) return Error::not_found("x", "missing");
    return st->text(0);
  });
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "v");
}

TEST(Store, UpgradesFromEveryEarlierVersion) {
  // Build a store at each version by hand, then let open() finish the job.
  for (size_t upto = 0; upto < migrations().size(); ++upto) {
    TempDir d;
    fs::create_directories(d.path);
    {
      auto db = Db::open((d.path / "pier.db").string());
      ASSERT_TRUE(db.ok());
      for (size_t i = 0; i < upto; ++i) ASSERT_TRUE((*db)->exec(migrations()[i]).ok());
      ASSERT_TRUE((*db)->exec("PRAGMA user_version=" + std::to_string(upto)).ok());
    }
    auto s = Store::open(d.path.string());
    ASSERT_TRUE(s.ok()) << "from version " << upto << ": " << s.error().message;
  }
}

TEST(Store, RefusesAStoreFromTheFuture) {
  TempDir d;
  fs::create_directories(d.path);
  {
    auto db = Db::open((d.path / "pier.db").string());
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->exec("PRAGMA user_version=9999").ok());
  }
  auto s = Store::open(d.path.string());
  ASSERT_FALSE(s.ok());
}

TEST(Store, FailedWriteRollsBack) {
  TempDir d;
  auto s = Store::open(d.path.string());
  ASSERT_TRUE(s.ok());
  auto w = (*s)->write([](Db& db) -> Status {
    PIER_ASSIGN(auto* st, db.prepare("INSERT INTO tags(arn, key, value) VALUES('a','k','v')"));
    PIER_TRY(st->run());
    return Error::invalid("Nope", "changed my mind");
  });
  ASSERT_FALSE(w.ok());
  auto n = (*s)->read([](Db& db) -> Result<int64_t> {
    PIER_ASSIGN(auto* st, db.prepare("SELECT count(*) FROM tags"));
    PIER_ASSIGN(bool row, st->step());
    return row ? st->integer(0) : -1;
  });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
}

// A read that takes the first row only and leaves its statement part-way
// must not pin the connection's snapshot: the next read sees newer writes.
TEST(Store, AReadLeftPartWayDoesNotHideLaterWrites) {
  TempDir d;
  auto s = Store::open(d.path.string());
  ASSERT_TRUE(s.ok());
  auto put = [&](const std::string& v) {
    return (*s)->write([&](Db& db) -> Status {
      PIER_ASSIGN(auto* st, db.prepare("INSERT OR REPLACE INTO tags(arn, key, value) VALUES('arn:x', 'k', ?)"));
      st->args(v);
      return st->run();
    });
  };
  auto first_row = [&] {
    return (*s)->read([](Db& db) -> Result<std::string> {
      PIER_ASSIGN(auto* st, db.prepare("SELECT value FROM tags WHERE arn='arn:x' UNION ALL SELECT 'end'"));
      PIER_ASSIGN(bool row, st->step());
      if (!row) return std::string();
      return st->text(0);  // the statement stays part-way
    });
  };
  ASSERT_TRUE(put("one").ok());
  EXPECT_EQ(*first_row(), "one");
  ASSERT_TRUE(put("two").ok());
  EXPECT_EQ(*first_row(), "two");
}

TEST(Store, UsesWriteAheadLogging) {
  TempDir d;
  auto s = Store::open(d.path.string());
  ASSERT_TRUE(s.ok());
  auto mode = (*s)->read([](Db& db) -> Result<std::string> {
    PIER_ASSIGN(auto* st, db.prepare("PRAGMA journal_mode"));
    PIER_ASSIGN(bool row, st->step());
    return row ? st->text(0) : std::string();
  });
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(*mode, "wal");
}

}  // namespace
}  // namespace pier::store
