// Package topic owns docshift's Kafka side: connecting to the cluster, naming
// the topics (one per source collection, plus the schema topic and the
// snapshot's task and state topics), and creating
// them with the settings the pipeline relies on.
//
// Its promises: records topics are compacted with a minimum compaction lag, so
// recent history is complete and a replay from offset 0 rebuilds the current
// state; they accept records as large as MongoDB's 16 MiB documents; and topic
// creation is idempotent, so any number of processes may ensure the same topic.
package topic
