#!/usr/bin/env bash
# The demo `make demo` runs: a small multi-tenant data set in MongoDB goes
# through `docshift snapshot` into Kafka and through `docshift consume` into
# PostgreSQL; `docshift verify` then prints source and target counts per
# tenant. Expects KAFKA_SEEDS, PG_URL and MONGO_URI (make demo sets them).
#
# The data set is the same on every run (a fixed seed), so running the demo
# again re-publishes the same documents with newer versions and the target
# converges to the same state: that is docshift's idempotence at work.
set -euo pipefail
docshift=${1:-bin/docshift}
root=$(cd "$(dirname "$0")/.." && pwd)
mapping="$root/.services/demo-mapping.yaml"

echo "== seeding MongoDB ($MONGO_URI)"
"$docshift" seed --tenants 4 --documents 250 --write-mapping "$mapping"
echo "== mapping: $mapping"
echo "== snapshot: MongoDB -> Kafka ($KAFKA_SEEDS)"
"$docshift" snapshot --mapping "$mapping" --topic-prefix demo
echo "== consume: Kafka -> PostgreSQL (until everything is applied)"
"$docshift" consume --topic-prefix demo --group demo-sink --stop-at-end
echo "== source and target, per tenant"
"$docshift" verify --mapping "$mapping"
