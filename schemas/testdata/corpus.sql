CREATE TABLE IF NOT EXISTS "corpus" (
  "_tenant" text NOT NULL,
  "_id" text NOT NULL,
  "_version" bigint NOT NULL,
  "_deleted" boolean NOT NULL DEFAULT false,
  "_extra" jsonb,
  "seq" integer,
  "c_text" text,
  "c_int" integer,
  "c_big" bigint,
  "c_dbl" double precision,
  "c_num" numeric,
  "c_dec" numeric(10,2),
  "c_bool" boolean,
  "c_ts" timestamptz,
  "c_uuid" uuid,
  "c_bytes" bytea,
  "c_json" jsonb,
  "a_b" text,
  PRIMARY KEY ("_tenant", "_id")
);
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "_tenant" text;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "_id" text;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "_version" bigint;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "_deleted" boolean;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "_extra" jsonb;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "seq" integer;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_text" text;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_int" integer;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_big" bigint;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_dbl" double precision;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_num" numeric;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_dec" numeric(10,2);
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_bool" boolean;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_ts" timestamptz;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_uuid" uuid;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_bytes" bytea;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "c_json" jsonb;
ALTER TABLE "corpus" ADD COLUMN IF NOT EXISTS "a_b" text;
CREATE TABLE IF NOT EXISTS "corpus__items" (
  "_tenant" text NOT NULL,
  "_id" text NOT NULL,
  "_idx" integer[] NOT NULL,
  "_extra" jsonb,
  "sku" text,
  "qty" integer,
  PRIMARY KEY ("_tenant", "_id", "_idx")
);
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "_tenant" text;
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "_id" text;
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "_idx" integer[];
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "_extra" jsonb;
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "sku" text;
ALTER TABLE "corpus__items" ADD COLUMN IF NOT EXISTS "qty" integer;
CREATE TABLE IF NOT EXISTS "corpus__items__parts" (
  "_tenant" text NOT NULL,
  "_id" text NOT NULL,
  "_idx" integer[] NOT NULL,
  "_extra" jsonb,
  "n" bigint,
  PRIMARY KEY ("_tenant", "_id", "_idx")
);
ALTER TABLE "corpus__items__parts" ADD COLUMN IF NOT EXISTS "_tenant" text;
ALTER TABLE "corpus__items__parts" ADD COLUMN IF NOT EXISTS "_id" text;
ALTER TABLE "corpus__items__parts" ADD COLUMN IF NOT EXISTS "_idx" integer[];
ALTER TABLE "corpus__items__parts" ADD COLUMN IF NOT EXISTS "_extra" jsonb;
ALTER TABLE "corpus__items__parts" ADD COLUMN IF NOT EXISTS "n" bigint;
