package io.docshift.testenv.mongo;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CountDownLatch;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;

/**
 * Starts an in-memory mongo-java-server for docshift's local/CI tests.
 *
 * <p>Usage: {@code java -cp launcher.jar:libs/* io.docshift.testenv.mongo.Launcher
 * [--host 127.0.0.1] [--port 27117] [--wire-version 17] [--max-await-ms 1000] [--worker-threads 128]
 * [--oplog-max-entries 1000000] [--replica-set NAME]}
 *
 * <ul>
 *   <li>The oplog is enabled, so collection-level {@code $changeStream} aggregations work;
 *       {@link TestBackend} and {@link ChangeStreamOplog} make change-stream getMores wait for
 *       data and correct update events (documentKey etc.).</li>
 *   <li>mongo-java-server reports maxWireVersion 8 (MongoDB 5.0) by default, which
 *       go.mongodb.org/mongo-driver/v2 rejects (it needs at least 9, MongoDB 4.4).
 *       The launcher therefore reports a configurable wire version (default 17, MongoDB 6.0).
 *       Only the advertised version changes: the feature set stays mongo-java-server's.</li>
 *   <li>All data lives in memory and is lost when the process exits. The oplog is capped at
 *       {@code --oplog-max-entries} entries (0: never), as MongoDB's is (see {@link TestBackend}).</li>
 *   <li>With {@code --replica-set NAME} the server says it is the primary of a one-member replica set
 *       NAME, so that drivers send their read preferences (see {@link TestBackend}).</li>
 * </ul>
 */
public final class Launcher {

    private static final String DEFAULT_HOST = "127.0.0.1";
    private static final int DEFAULT_PORT = 27117;
    private static final int DEFAULT_WIRE_VERSION = 17;
    private static final long DEFAULT_MAX_AWAIT_MILLIS = 1000;
    private static final int DEFAULT_WORKER_THREADS = 128;
    private static final int DEFAULT_OPLOG_MAX_ENTRIES = 1_000_000;

    private Launcher() {
    }

    /** A server version that the Go driver accepts. */
    private record ReportedVersion(List<Integer> versionArray, int wireVersion) implements MongoVersion {

        static ReportedVersion forWireVersion(int wireVersion) {
            // wire version -> MongoDB release, for what buildInfo reports
            List<Integer> version = switch (wireVersion) {
                case 9 -> List.of(4, 4, 0);
                case 13 -> List.of(5, 0, 0);
                case 17 -> List.of(6, 0, 0);
                case 21 -> List.of(7, 0, 0);
                case 25 -> List.of(8, 0, 0);
                default -> List.of(6, 0, 0);
            };
            return new ReportedVersion(version, wireVersion);
        }

        @Override
        public List<Integer> getVersionArray() {
            return versionArray;
        }

        @Override
        public int getWireVersion() {
            return wireVersion;
        }
    }

    public static void main(String[] args) throws InterruptedException {
        String host = DEFAULT_HOST;
        int port = DEFAULT_PORT;
        int wireVersion = DEFAULT_WIRE_VERSION;
        long maxAwaitMillis = DEFAULT_MAX_AWAIT_MILLIS;
        int workerThreads = DEFAULT_WORKER_THREADS;
        int oplogMaxEntries = DEFAULT_OPLOG_MAX_ENTRIES;
        String replicaSet = null;

        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (i + 1 >= args.length) {
                usage("missing value for " + arg);
            }
            String value = args[++i];
            switch (arg) {
                case "--host" -> host = value;
                case "--port" -> port = parseInt(arg, value);
                case "--wire-version" -> wireVersion = parseInt(arg, value);
                case "--max-await-ms" -> maxAwaitMillis = parseInt(arg, value);
                case "--worker-threads" -> workerThreads = parseInt(arg, value);
                case "--oplog-max-entries" -> oplogMaxEntries = parseInt(arg, value);
                case "--replica-set" -> replicaSet = value;
                default -> usage("unknown argument " + arg);
            }
        }

        if (oplogMaxEntries < 0) {
            usage("--oplog-max-entries: " + oplogMaxEntries + ", want 0 (no cap) or more");
        }
        TestBackend backend = new TestBackend(maxAwaitMillis, oplogMaxEntries, replicaSet, host + ":" + port);
        ReportedVersion version = ReportedVersion.forWireVersion(wireVersion);
        backend.version(version);
        backend.enableOplog();

        MongoServer server = new MongoServer(backend);
        // many event loops: a waiting change-stream getMore blocks its loop (see TestBackend)
        server.bind(new InetSocketAddress(host, port), 1, workerThreads);

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("docshift mongo launcher: shutting down");
            server.shutdownNow();
            stopped.countDown();
        }, "shutdown"));

        System.err.printf("docshift mongo launcher: listening on %s:%d (maxWireVersion %d, version %s, oplog enabled, capped at %s entries%s)%n",
            host, port, version.getWireVersion(), version.toVersionString(), oplogMaxEntries == 0 ? "no" : oplogMaxEntries,
            replicaSet == null ? "" : ", primary of replica set " + replicaSet);
        stopped.await();
    }

    private static int parseInt(String arg, String value) {
        try {
            return Integer.parseInt(value);
        } catch (NumberFormatException e) {
            usage("not a number for " + arg + ": " + value);
            return -1;
        }
    }

    private static void usage(String problem) {
        System.err.println("docshift mongo launcher: " + problem);
        System.err.println("usage: Launcher [--host HOST] [--port PORT] [--wire-version N] [--max-await-ms MS] [--worker-threads N]"
            + " [--oplog-max-entries N] [--replica-set NAME]");
        System.exit(2);
    }
}
