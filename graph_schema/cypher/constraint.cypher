// One uniqueness constraint per keyed label. {name}, {label} and {key} come from schema.json only.
CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.{key} IS UNIQUE
