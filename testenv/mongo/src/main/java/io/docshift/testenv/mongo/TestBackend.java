package io.docshift.testenv.mongo;

import java.util.List;
import java.util.concurrent.TimeUnit;

import de.bwaldvogel.mongo.MongoCollection;
import de.bwaldvogel.mongo.backend.Cursor;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.exception.CursorNotFoundException;
import de.bwaldvogel.mongo.oplog.Oplog;
import io.netty.channel.Channel;

/**
 * mongo-java-server's in-memory backend with two test-environment additions:
 *
 * <ol>
 *   <li>Change-stream events are post-processed by {@link ChangeStreamOplog} so that update
 *       events carry a real {@code documentKey} (see there).</li>
 *   <li>{@code getMore} on a change-stream cursor waits (like a real server's awaitData) until the
 *       oplog changes or {@code maxTimeMS} (default 1000 ms, capped by {@code maxAwaitMillis})
 *       passes. mongo-java-server answers such a getMore immediately, so the Go driver's
 *       {@code ChangeStream.Next} would otherwise spin at thousands of round trips per second.
 *       A waiting getMore blocks its netty event loop, so the launcher binds with many
 *       worker loops (connections are spread round-robin over them).</li>
 * </ol>
 */
final class TestBackend extends MemoryBackend {

    private static final long DEFAULT_AWAIT_MILLIS = 1000;

    private final long maxAwaitMillis;
    private final Object oplogChanged = new Object();
    private long oplogVersion; // guarded by oplogChanged

    TestBackend(long maxAwaitMillis) {
        this.maxAwaitMillis = maxAwaitMillis;
    }

    @Override
    protected Oplog createOplog() {
        Oplog oplog = super.createOplog();
        @SuppressWarnings("unchecked")
        MongoCollection<Document> oplogCollection = (MongoCollection<Document>) resolveDatabase("local")
            .resolveCollection(OPLOG_COLLECTION_NAME, true);
        return new ChangeStreamOplog(oplog, oplogCollection, getCursorRegistry(), this::signalOplogChange);
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

    @Override
    public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
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
