package io.docshift.testenv.mongo;

import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.ArrayFilters;
import de.bwaldvogel.mongo.backend.CollectionOptions;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.CursorRegistry;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.backend.memory.MemoryCollection;
import de.bwaldvogel.mongo.backend.memory.MemoryDatabase;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.CursorNotFoundException;
import de.bwaldvogel.mongo.exception.MongoServerError;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * mongo-java-server's in-memory backend with six test-environment additions:
 *
 * <ol>
 *   <li>Change-stream events are post-processed by {@link ChangeStreamOplog} so that update
 *       events carry a real {@code documentKey} (see there).</li>
 *   <li>Change-stream pre-images ({@code fullDocumentBeforeChange}, see {@link PreImages}):
 *       {@code collMod} and {@code create} accept {@code changeStreamPreAndPostImages:
 *       {enabled: ...}}, and collections hand the documents that delete and update statements
 *       are about to change to {@link PreImages}, which stores them in the oplog entries.</li>
 *   <li>{@code getMore} on a change-stream cursor waits (like a real server's awaitData) until the
 *       oplog changes or {@code maxTimeMS} (default 1000 ms, capped by {@code maxAwaitMillis})
 *       passes. mongo-java-server answers such a getMore immediately, so the Go driver's
 *       {@code ChangeStream.Next} would otherwise spin at thousands of round trips per second.
 *       A waiting getMore blocks its netty event loop, so the launcher binds with many
 *       worker loops (connections are spread round-robin over them).</li>
 *   <li>The admin command {@code {docshiftTruncateOplog: 1[, before: Timestamp(t, i)]}} deletes the
 *       oldest oplog entries, as a rolled-over capped oplog would, so tests can provoke
 *       ChangeStreamHistoryLost (see {@link OplogHistory}).</li>
 *   <li>The oplog is capped, as MongoDB's is: once it holds more than {@code oplogMaxEntries}
 *       entries, the oldest are deleted (in the background, as by the command above) until
 *       three quarters of that remain. mongo-java-server keeps every entry forever, in memory,
 *       so a server that outlives many heavy test runs would otherwise run out of heap.</li>
 *   <li>Given a replica set name, {@code isMaster}/{@code hello} report the server as that set's
 *       primary (its only member), so that drivers send read preferences with their reads (they
 *       send none to a standalone) and tests can see them. Nothing else about replication
 *       changes.</li>
 * </ol>
 */
final class TestBackend extends MemoryBackend {

    private static final long DEFAULT_AWAIT_MILLIS = 1000;

    private static final Set<String> GENERIC_COMMAND_FIELDS = Set.of(
        "lsid", "txnNumber", "writeConcern", "comment", "maxTimeMS", "apiVersion", "apiStrict",
        "apiDeprecationErrors");

    private final long maxAwaitMillis;
    private final int oplogMaxEntries; // 0: no cap
    private final String replicaSetName; // null: a standalone
    private final String me; // host:port, as a replica set member names itself
    private final AtomicBoolean capPending = new AtomicBoolean();
    private final ExecutorService capper = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "oplog-cap");
        t.setDaemon(true);
        return t;
    });
    private final PreImages preImages = new PreImages();
    private final OplogHistory oplogHistory = new OplogHistory();
    private OplogCollection oplogEntries; // local.oplog.rs, once created
    private final Object oplogChanged = new Object();
    private long oplogVersion; // guarded by oplogChanged

    TestBackend(long maxAwaitMillis, int oplogMaxEntries, String replicaSetName, String me) {
        this.maxAwaitMillis = maxAwaitMillis;
        this.oplogMaxEntries = oplogMaxEntries;
        this.replicaSetName = replicaSetName;
        this.me = me;
    }

    @Override
    protected Oplog createOplog() {
        Oplog oplog = super.createOplog();
        @SuppressWarnings("unchecked")
        MongoCollection<Document> oplogCollection = (MongoCollection<Document>) resolveDatabase("local")
            .resolveCollection(OPLOG_COLLECTION_NAME, true);
        return new ChangeStreamOplog(oplog, oplogCollection, getCursorRegistry(), preImages, oplogHistory,
            this::signalOplogChange);
    }

    @Override
    public MemoryDatabase openOrCreateDatabase(String databaseName) {
        return new Database(databaseName, getCursorRegistry());
    }

    /** MemoryDatabase whose collections feed {@link PreImages}. */
    private final class Database extends MemoryDatabase {

        Database(String databaseName, CursorRegistry cursorRegistry) {
            super(databaseName, cursorRegistry);
        }

        @Override
        protected MemoryCollection openOrCreateCollection(String collectionName, CollectionOptions options) {
            if (databaseName.equals("local") && collectionName.equals(OPLOG_COLLECTION_NAME)) {
                OplogCollection collection = new OplogCollection(this, collectionName, options, cursorRegistry);
                oplogEntries = collection;
                return collection;
            }
            return new PreImageCollection(this, collectionName, options, cursorRegistry);
        }
    }

    /**
     * A collection that passes each document a delete or update statement removes or changes to
     * {@link PreImages} before the change. mongo-java-server runs a statement (including writing
     * its oplog entries) under the collection's lock, so a statement's pre-images are exactly the
     * documents it changed, even with concurrent writers.
     * findAndModify removes/changes documents too, but writes no oplog entries (no events).
     */
    private final class PreImageCollection extends MemoryCollection {

        PreImageCollection(MongoDatabase database, String name, CollectionOptions options, CursorRegistry cursors) {
            super(database, name, options, cursors);
        }

        @Override
        public synchronized int deleteDocuments(Document selector, int limit, Oplog oplog) {
            preImages.begin(getFullName());
            try {
                return super.deleteDocuments(selector, limit, oplog);
            } finally {
                preImages.end();
            }
        }

        @Override
        public synchronized Document updateDocuments(Document selector, Document updateQuery, ArrayFilters arrayFilters,
                                                     boolean isMulti, boolean isUpsert, Oplog oplog) {
            preImages.begin(getFullName());
            try {
                return super.updateDocuments(selector, updateQuery, arrayFilters, isMulti, isUpsert, oplog);
            } finally {
                preImages.end();
            }
        }

        @Override
        public synchronized void removeDocument(Document document) {
            preImages.capture(getFullName(), document); // called for each document a delete removes
            super.removeDocument(document);
        }

        @Override
        protected void handleUpdate(Integer position, Document oldDocument, Document newDocument) {
            preImages.capture(getFullName(), oldDocument); // called for each document an update changes
            super.handleUpdate(position, oldDocument, newDocument);
        }
    }

    /**
     * local.oplog.rs: stores the pre-images of the running statement in its oplog entries, tells
     * {@link OplogHistory} the timestamp of every entry, and deletes the oldest ones for
     * {@value OplogHistory#COMMAND}.
     */
    private final class OplogCollection extends MemoryCollection {

        private int positionHint = -1; // see findDocumentPosition

        OplogCollection(MongoDatabase database, String name, CollectionOptions options, CursorRegistry cursors) {
            super(database, name, options, cursors);
        }

        @Override
        public synchronized void addDocuments(Stream<Document> documents) {
            super.addDocuments(documents.map(preImages::attach).peek(entry -> oplogHistory.written(entry.get("ts"))));
            if (oplogMaxEntries > 0 && count() > oplogMaxEntries && capPending.compareAndSet(false, true)) {
                capper.execute(TestBackend.this::capOplog); // not here: truncating takes OplogHistory's lock first
            }
        }

        /** The timestamps of every entry, in no particular order (freed slots are reused). */
        synchronized long[] timestamps() {
            long[] out = new long[count()];
            int n = 0;
            for (int position = 0; n < out.length; position++) {
                Document entry = getDocument(position);
                if (entry != null) {
                    out[n++] = entry.get("ts") instanceof BsonTimestamp ts ? ts.getValue() : 0;
                }
            }
            return out;
        }

        /** Deletes the entries with a timestamp below {@code cutoff}: one pass over the storage. */
        synchronized OplogHistory.Removed removeBefore(long cutoff) {
            int left = count();
            int removed = 0;
            long newestRemoved = 0;
            BsonTimestamp oldestLeft = null;
            for (int position = 0; left > 0; position++) {
                Document entry = getDocument(position);
                if (entry == null) {
                    continue; // a free slot
                }
                left--;
                if (!(entry.get("ts") instanceof BsonTimestamp ts)) {
                    continue;
                }
                if (ts.getValue() < cutoff) {
                    positionHint = position;
                    try {
                        removeDocument(entry); // keeps indexes and data size right
                    } finally {
                        positionHint = -1;
                    }
                    removed++;
                    newestRemoved = Math.max(newestRemoved, ts.getValue());
                } else if (oldestLeft == null || ts.compareTo(oldestLeft) < 0) {
                    oldestLeft = ts;
                }
            }
            return new OplogHistory.Removed(removed, newestRemoved, oldestLeft);
        }

        /** MemoryCollection searches the whole list (O(n) per entry); removeBefore knows where it is. */
        @Override
        protected Integer findDocumentPosition(Document document) {
            if (positionHint >= 0 && getDocument(positionHint) == document) {
                return positionHint;
            }
            return super.findDocumentPosition(document);
        }
    }

    private void signalOplogChange() {
        synchronized (oplogChanged) {
            oplogVersion++;
            oplogChanged.notifyAll();
        }
    }

    private long oplogVersion() {
        synchronized (oplogChanged) {
            return oplogVersion;
        }
    }

    /** Waits until the oplog version differs from {@code seen} or the deadline passes. */
    private void awaitOplogChange(long seen, long deadlineNanos) throws InterruptedException {
        synchronized (oplogChanged) {
            while (oplogVersion == seen) {
                long remainingMillis = TimeUnit.NANOSECONDS.toMillis(deadlineNanos - System.nanoTime());
                if (remainingMillis <= 0) {
                    return;
                }
                oplogChanged.wait(remainingMillis);
            }
        }
    }

    /**
     * Every command reply gets {@code operationTime}, as on a replica set: the timestamp of the
     * newest oplog entry (the {@code clusterTime} of the newest change event), or, before the first
     * write, the current wall-clock second with increment 0. mongo-java-server sends none, so
     * clients would have to fall back to the wall clock. {@code $clusterTime} is not added (the
     * driver would gossip it back). Error replies are built by mongo-java-server's wire handler
     * outside the backend and stay without it.
     */
    @Override
    public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
        Document response = dispatchCommand(channel, databaseName, command, query);
        if (response != null && !response.containsKey("operationTime")) {
            response.put("operationTime", operationTime());
        }
        return response;
    }

    /**
     * The newest oplog timestamp written so far; after a {@code docshiftTruncateOplog} that emptied
     * the oplog still the newest one written, so that operationTime never goes backwards.
     */
    private BsonTimestamp operationTime() {
        long newest = oplogHistory.newestWritten();
        if (newest != 0) {
            return new BsonTimestamp(newest);
        }
        return new BsonTimestamp(Instant.ofEpochSecond(getClock().instant().getEpochSecond()), 0);
    }

    private Document dispatchCommand(Channel channel, String databaseName, String command, Document query) {
        if (replicaSetName != null && (command.equalsIgnoreCase("isMaster") || command.equalsIgnoreCase("hello"))) {
            Document response = super.handleCommand(channel, databaseName, command, query);
            response.put("setName", replicaSetName);
            response.put("setVersion", 1);
            response.put("hosts", List.of(me));
            response.put("me", me);
            response.put("secondary", false);
            return response;
        }
        if (command.equals(OplogHistory.COMMAND)) {
            return truncateOplog(databaseName, query);
        }
        if (command.equalsIgnoreCase("collMod") || command.equalsIgnoreCase("create")) {
            return handlePreImageOption(channel, databaseName, command, query);
        }
        if (!command.equalsIgnoreCase("getMore") || !isChangeStreamCursor(query.get(command))) {
            return super.handleCommand(channel, databaseName, command, query);
        }

        long awaitMillis = DEFAULT_AWAIT_MILLIS;
        if (query.get("maxTimeMS") instanceof Number maxTimeMS && maxTimeMS.longValue() > 0) {
            awaitMillis = maxTimeMS.longValue();
        }
        awaitMillis = Math.min(awaitMillis, maxAwaitMillis);
        long deadlineNanos = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(awaitMillis);

        while (true) {
            long seen = oplogVersion(); // read before the getMore so no write can slip through
            Document response = super.handleCommand(channel, databaseName, command, query);
            if (!isEmptyBatch(response) || System.nanoTime() >= deadlineNanos) {
                return response;
            }
            try {
                awaitOplogChange(seen, deadlineNanos);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return response;
            }
        }
    }

    /**
     * {@code {docshiftTruncateOplog: 1[, before: Timestamp(t, i)]}} on the admin database: deletes
     * the oplog entries older than {@code before} (all of them without it), as a rolled-over
     * capped oplog would have; change streams then behave as described in {@link OplogHistory}.
     * Answers {@code {removed: <count>, truncationPoint: <timestamp>, oldestEntry: <timestamp|null>}}.
     */
    private Document truncateOplog(String databaseName, Document query) {
        if (!databaseName.equals("admin")) {
            throw new MongoServerError(13, "Unauthorized",
                OplogHistory.COMMAND + " may only be run against the admin database.");
        }
        Object before = query.get("before");
        if (before != null && !(before instanceof BsonTimestamp)) {
            throw new MongoServerError(14, "TypeMismatch", "BSON field '" + OplogHistory.COMMAND
                + ".before' is the wrong type, expected type 'timestamp'");
        }
        for (String field : query.keySet()) {
            if (!field.equals(OplogHistory.COMMAND) && !field.equals("before") && !field.startsWith("$")
                && !GENERIC_COMMAND_FIELDS.contains(field)) {
                throw new MongoServerError(40415, "Location40415",
                    "BSON field '" + OplogHistory.COMMAND + "." + field + "' is an unknown field.");
            }
        }
        OplogCollection entries = oplogEntries;
        if (entries == null) {
            throw new MongoServerError(20, "IllegalOperation", "the oplog is not enabled");
        }
        Document response = oplogHistory.truncate((BsonTimestamp) before, entries::removeBefore);
        signalOplogChange(); // waiting change-stream getMores look again (and fail if they lost history)
        return response;
    }

    /**
     * Deletes the oldest oplog entries until three quarters of {@code oplogMaxEntries} remain, as
     * {@value OplogHistory#COMMAND} would with the right {@code before}: change streams that had not
     * read them lose their history, as on a MongoDB whose oplog rolled over.
     */
    private void capOplog() {
        capPending.set(false);
        OplogCollection entries = oplogEntries;
        long[] stamps = entries.timestamps();
        int keep = oplogMaxEntries / 4 * 3;
        if (stamps.length <= oplogMaxEntries || keep <= 0) {
            return;
        }
        Arrays.sort(stamps);
        BsonTimestamp before = new BsonTimestamp(stamps[stamps.length - keep]);
        Document removed = oplogHistory.truncate(before, entries::removeBefore);
        signalOplogChange();
        System.err.printf("docshift mongo launcher: the oplog held %d entries, more than its cap of %d: removed the oldest %s%n",
            stamps.length, oplogMaxEntries, removed.get("removed"));
    }

    /**
     * {@code collMod: <coll>, changeStreamPreAndPostImages: {enabled: <bool>}} (MongoDB 6.0+)
     * switches pre-image recording for a collection; {@code create} accepts the same option.
     * mongo-java-server has no collMod at all (and create ignores unknown options), so collMod
     * handles this option only and rejects any other; create passes everything else on.
     */
    private Document handlePreImageOption(Channel channel, String databaseName, String command, Document query) {
        Object option = query.get("changeStreamPreAndPostImages");
        boolean collMod = command.equalsIgnoreCase("collMod");
        if (option == null && !collMod) {
            return super.handleCommand(channel, databaseName, command, query);
        }
        String collectionName = String.valueOf(query.get(command));
        String namespace = databaseName + "." + collectionName;
        Boolean enable = null;
        if (option != null) {
            if (!(option instanceof Document spec) || !(spec.get("enabled") instanceof Boolean enabled)) {
                throw new MongoServerError(14, "TypeMismatch",
                    "changeStreamPreAndPostImages must be a document {enabled: <bool>}, got " + option);
            }
            enable = enabled;
        }
        if (!collMod) {
            Document response = super.handleCommand(channel, databaseName, command, query);
            if (response.get("ok") instanceof Number ok && ok.intValue() == 1) {
                preImages.setEnabled(namespace, enable);
            }
            return response;
        }

        for (String field : query.keySet()) {
            if (!field.equals(command) && !field.equals("changeStreamPreAndPostImages") && !field.startsWith("$")
                && !GENERIC_COMMAND_FIELDS.contains(field)) {
                throw new MongoServerError(72, "InvalidOptions",
                    "collMod option '" + field + "' is not supported by the docshift test launcher"
                        + " (only changeStreamPreAndPostImages)");
            }
        }
        if (resolveDatabase(databaseName).resolveCollection(collectionName, false) == null) {
            throw new MongoServerError(26, "NamespaceNotFound", "ns does not exist: " + namespace);
        }
        if (enable != null) {
            preImages.setEnabled(namespace, enable);
        }
        return new Document("ok", 1.0);
    }

    private boolean isChangeStreamCursor(Object cursorId) {
        if (!(cursorId instanceof Number id)) {
            return false;
        }
        try {
            Cursor cursor = getCursorRegistry().getCursor(id.longValue());
            return cursor instanceof ChangeStreamOplog.ChangeStreamCursor;
        } catch (CursorNotFoundException e) {
            return false; // let the regular getMore produce the error
        }
    }

    private static boolean isEmptyBatch(Document response) {
        if (!(response.get("cursor") instanceof Document cursor)) {
            return false;
        }
        return cursor.get("nextBatch") instanceof List<?> batch && batch.isEmpty();
    }
}
